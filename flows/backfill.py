"""`backfill`: re-run a pipeline's days from the UI — planned from the publish ledger, run in batches of days.

Each child run takes several consecutive days (sized so the children fill the concurrency limit and each one's
work is worth its start-up, or as the form says) and publishes day by day: the summary and the progress are
per day, as if each day had its own run.

When the days are few and short enough that running them here ends no later than children started side by side
(`shipshape.backfill_plan.runs_in_this_process`: W ≤ S + W/k, and W ≤ 2·S), the backfill runs them as one child
run in its own process (`flows.backfill_in_process`), sparing a worker poll and a process start-up; the child run,
its slot, the summary and the progress are the same.

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

from flows.backfill_children import Fanout, launch_child
from flows.backfill_in_process import run_in_this_process
from flows.backfill_progress import BackfillProgress
from shipshape.backfill_plan import Batch, Mode, batches, days_per_child, runs_in_this_process
from shipshape.catalog import load_all
from shipshape.errors import BackfillFailedError
from shipshape.names import deployment_name
from shipshape.settings import environment_name
from tasks.backfill_ledger import day_outcomes, plan_days

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
    days_per_run: Annotated[int, Field(ge=0, le=366)] = 0,
) -> list[dict[str, object]]:
    """Run a pipeline's days from start_date to end_date again, in child runs of its deployment (a small,
    short backfill: one child run executed in this process).

    Args:
        pipeline: The declared pipeline to backfill.
        start_date: First day (UTC) of the backfill.
        end_date: Last day (UTC) of the backfill, included.
        mode: missing = days never published; failed = days whose latest attempt failed or was blocked;
            all = every day in the range.
        dry_run: Only show the plan (status, last publish, rows, estimated duration); run nothing.
        max_concurrent: At most this many of the backfill's runs at once (the pipelines' queue limit also applies).
        days_per_run: Consecutive days each child run processes; 0 = automatic: consecutive days whose work
            (from the durations in the ledger) is at most the ~10 s start-up of a child plus that work shared by
            the slots, and at most twice that start-up, run as one batch in the backfill's own process; otherwise
            children fill max_concurrent (or the pipelines' queue limit if lower), each with enough days that its
            work takes a quarter of its start-up.
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
    slots = await fanout.prepare()
    if runs_in_this_process(selected, slots, days_per_run):
        planned, start = [Batch(tuple(selected))], run_in_this_process
        get_run_logger().info("1 batch in this process: %s", planned[0].key)
    else:
        estimate = selected[0].estimated_seconds if selected else None
        planned = batches(selected, days_per_run or days_per_child(len(selected), slots, estimate))
        start = launch_child
        get_run_logger().info("%d child run(s): %s", len(planned), ", ".join(batch.key for batch in planned))
    progress = BackfillProgress(str(pipeline), len(selected))
    await progress.start()

    async def child_ended(batch: Batch, child: FlowRun) -> None:
        await progress.child_ended(batch, child, day_outcomes(pipeline, str(child.id), [p.day for p in batch.plans]))

    children = await fanout.run_all(planned, start, child_ended)
    return await _summarise(str(pipeline), planned, children, progress)


async def _summarise(
    pipeline: str, planned: list[Batch], children: list[FlowRun], progress: BackfillProgress
) -> list[dict[str, object]]:
    """The summary artifact, one row per day with its child run; any day not published fails the backfill,
    naming the days and their runs."""
    rows = [
        {
            "partition": plan.key,
            "run": child.name,
            "outcome": progress.outcomes[plan.day][0],
            "rows published": _blank_if_none(progress.outcomes[plan.day][1]),
            "run state": child.state.name if child.state else "unknown",
            "run duration (s)": round(child.total_run_time.total_seconds(), 1),
        }
        for batch, child in zip(planned, children, strict=True)
        for plan in batch.plans
    ]
    await _artifact(pipeline, "summary", rows, f"{pipeline}: the backfill's days, the run of each and its outcome")
    failed = [row for row in rows if row["outcome"] != "published"]
    if failed:
        days = ", ".join(f"{row['partition']} ({row['outcome']} in {row['run']}: {row['run state']})" for row in failed)
        raise BackfillFailedError(
            f"backfill of {pipeline}: {len(failed)} of {len(rows)} day(s) not published — {days}. The other days "
            "are published; see each run for why, fix the cause, then re-run with mode=failed"
        )
    return rows


def _blank_if_none(value: object) -> object:
    return "" if value is None else value


async def _artifact(pipeline: str, kind: str, rows: list[dict[str, object]], description: str) -> None:
    key = f"backfill-{pipeline}-{kind}".replace("_", "-")
    await acreate_table_artifact(key=key, table=rows, description=description)
