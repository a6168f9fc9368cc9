"""`backfill`: re-run a pipeline's days from the UI — planned from the publish ledger, one child run per day.

The typed parameters are the UI's Custom Run form: the pipeline is a dropdown of the declared pipelines,
dates are date pickers, the mode a dropdown and the concurrency bounded.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact
from prefect.client.schemas.objects import FlowRun
from pydantic import Field

from flows.backfill_children import Fanout
from shipshape.backfill_plan import Mode, PartitionPlan
from shipshape.catalog import load_all
from shipshape.errors import BackfillFailedError
from shipshape.names import deployment_name
from shipshape.settings import environment_name
from tasks.backfill_ledger import plan_days, published_rows

# Built when the module loads (at deploy time too), so the deployment's schema offers exactly these names.
# An enum, not a Literal: a Literal of one name becomes a JSON-schema `const`, which the UI shows as an empty,
# locked field instead of a dropdown (a project with a single pipeline could not submit the form).
# mypy cannot see members computed at import time; that is the point here.
PipelineName = StrEnum("PipelineName", {declared.name: declared.name for declared in load_all()})  # type: ignore[misc]


@flow(name="backfill")
async def backfill(
    pipeline: PipelineName,
    start_date: date,
    end_date: date,
    mode: Mode = "missing",
    dry_run: bool = False,
    max_concurrent: Annotated[int, Field(ge=1, le=16)] = 4,
) -> list[dict[str, object]]:
    """Run a pipeline's days from start_date to end_date again, one child run of its deployment per day.

    Args:
        pipeline: The declared pipeline to backfill.
        start_date: First day (UTC) of the backfill.
        end_date: Last day (UTC) of the backfill, included.
        mode: missing = days never published; failed = days whose latest attempt failed or was blocked;
            all = every day in the range.
        dry_run: Only show the plan (status, last publish, rows, estimated duration); run nothing.
        max_concurrent: At most this many of the backfill's runs at once (the pipelines' queue limit also applies).
    """
    plans = plan_days(pipeline, start_date, end_date)
    selected = [plan for plan in plans if plan.selected_by(mode)]
    get_run_logger().info(
        "Backfill %s %s..%s mode=%s: %d of %d day(s) selected", pipeline, start_date, end_date, mode, len(selected),
        len(plans),
    )
    if dry_run:
        rows = [plan.as_row(mode) for plan in plans]
        await _artifact(pipeline, "plan", rows, f"{pipeline} {start_date}..{end_date}, mode={mode}: the plan (dry run)")
        return rows
    fanout = Fanout(deployment_name(pipeline, environment_name()), max_concurrent)
    await fanout.prepare()
    children = await fanout.run_all(selected)
    return await _summarise(pipeline, selected, children)


async def _summarise(pipeline: str, plans: list[PartitionPlan], children: list[FlowRun]) -> list[dict[str, object]]:
    """The summary artifact; any day whose run did not complete fails the backfill, naming the days."""
    rows_by_run = published_rows(pipeline, [str(child.id) for child in children])
    rows = [
        {
            "partition": plan.key,
            "run": child.name,
            "state": child.state.name if child.state else "unknown",
            "rows published": _blank_if_none(rows_by_run[str(child.id)]),
            "duration (s)": round(child.total_run_time.total_seconds(), 1),
        }
        for plan, child in zip(plans, children, strict=True)
    ]
    await _artifact(pipeline, "summary", rows, f"{pipeline}: the backfill's runs, one per day")
    failed = [row for row in rows if row["state"] != "Completed"]
    if failed:
        days = ", ".join(f"{row['partition']} ({row['run']}: {row['state']})" for row in failed)
        raise BackfillFailedError(
            f"backfill of {pipeline}: {len(failed)} of {len(rows)} day(s) did not complete — {days}. The other days "
            "are published; see each run for why, fix the cause, then re-run with mode=failed"
        )
    return rows


def _blank_if_none(value: object) -> object:
    return "" if value is None else value


async def _artifact(pipeline: str, kind: str, rows: list[dict[str, object]], description: str) -> None:
    key = f"backfill-{pipeline}-{kind}".replace("_", "-")
    await acreate_table_artifact(key=key, table=rows, description=description)
