"""The inputs of the SLO arithmetic (`shipshape.slo`): publishes from the ledger, run outcomes from Prefect.

Runs are found by the tags every run of a pipeline carries — `pipeline:<name>` and `env:<environment>` (the
deployments tag them; `shipshape run` tags local runs) — so one Prefect API can serve several environments
without their numbers mixing. Reading Prefect's run history is why this module sits in `runtime/`, not in the
engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterEndTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort

from runtime.connections import connect
from shipshape.catalog import load_all
from shipshape.errors import ConfigurationError
from shipshape.ledger import LEDGER_TABLE, PublishedTable, missing_platform_tables, published_times
from shipshape.names import run_tags
from shipshape.settings import environment_name
from shipshape.slo import RunOutcome, SloReport, evaluate

# Final states that count: Completed is a success; any failed-type state (Failed, TimedOut, a custom-named one
# such as AuditFailed) and Crashed are failures. Cancelled runs were stopped on purpose and are not counted.
COUNTED_STATES = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED]
_PAGE = 200  # the API's default page limit


def run_outcomes(
    pipeline: str, environment: str, since: datetime, client: SyncPrefectClient | None = None
) -> list[RunOutcome]:
    """Finished flow runs of `pipeline` in `environment` that ended at or after `since`, newest first."""
    if client is None:
        with get_client(sync_client=True) as own_client:
            return run_outcomes(pipeline, environment, since, own_client)
    return [_outcome(run) for run in finished_runs(client, run_tags(pipeline, environment), since)]


def slo_reports(now: datetime, environment: str | None = None, only: list[str] | None = None) -> list[SloReport]:
    """The SLO report of every declared pipeline (or those named in `only`) at `now`, in `environment` (default:
    this process's).

    One warehouse connection and one Prefect client for all pipelines. A warehouse where nothing ever ran
    (no ledger table yet) means no publishes; it is not created here, so a read-only role can run this.
    """
    environment = environment or environment_name()
    pipelines = [declared.spec for declared in load_all() if only is None or declared.name in only]
    with connect("monitor") as warehouse, get_client(sync_client=True) as client:
        has_ledger = LEDGER_TABLE not in missing_platform_tables(warehouse)
        return [
            evaluate(
                spec,
                published_times(warehouse, PublishedTable.of(spec), now - spec.slo.window_delta) if has_ledger else [],
                run_outcomes(spec.name, environment, now - spec.slo.window_delta, client),
                now,
            )
            for spec in pipelines
        ]


def finished_runs(client: SyncPrefectClient, tags: list[str], since: datetime) -> Iterator[FlowRun]:
    """Every counted run (`COUNTED_STATES`) with these tags that ended at or after `since`, page by page."""
    flow_run_filter = FlowRunFilter(
        tags=FlowRunFilterTags(all_=tags),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=COUNTED_STATES)),
        end_time=FlowRunFilterEndTime(after_=since),
    )
    offset = 0
    while page := _read_page(client, flow_run_filter, offset):
        yield from page
        offset += len(page)


def _read_page(client: SyncPrefectClient, flow_run_filter: FlowRunFilter, offset: int) -> list[FlowRun]:
    """One page of runs; an API that cannot be reached is a configuration problem, said in one line."""
    try:
        return client.read_flow_runs(
            flow_run_filter=flow_run_filter, sort=FlowRunSort.END_TIME_DESC, limit=_PAGE, offset=offset
        )
    except httpx.HTTPError as error:
        raise ConfigurationError(
            f"cannot read flow runs from the Prefect API at {client.api_url}: {error or type(error).__name__}; "
            "set PREFECT_API_URL to the environment's Prefect API"
        ) from None


def _outcome(run: FlowRun) -> RunOutcome:
    state = run.state
    if state is None:
        raise ValueError(f"flow run {run.id} has no state; only finished runs are read")
    return RunOutcome(
        flow_run_id=str(run.id),
        finished_at=run.end_time or state.timestamp,
        succeeded=state.type == StateType.COMPLETED,
        state_name=state.name or state.type.value,
    )
