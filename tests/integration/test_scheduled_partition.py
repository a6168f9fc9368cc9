"""Which partition a run without dates publishes: the one it was scheduled for, however late it starts.

A real flow run of `run_pipeline` on DuckDB and PostgreSQL against a real temporary Prefect API. The late run is
made the way Prefect makes one: a flow run whose first state is Scheduled at a past time (what the scheduler writes
for a cron slot; Prefect's scheduler itself never creates past runs), executed as a worker executes it
(`prefect.flow_engine.run_flow` on the flow run read from the API, what `python -m prefect.engine` does once a worker
has picked the run up). A deployment and a worker would add start-up time and no other code path: nothing in the
run reads them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from demo.shop_app import generate, orders_per_day
from flows.run_pipeline import run_pipeline
from shipshape.ledger import entries
from shipshape.warehouses import open_warehouse
from tests.support.project import Project, make_project

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:soda_.*")

PIPELINE = "shop_orders"
SCHEMA, TABLE = "analytics", "fct_orders"


@pytest.fixture
def project(tmp_path: Path, warehouse_url: str, monkeypatch: pytest.MonkeyPatch, prefect_api: str) -> Project:
    return make_project(tmp_path, warehouse_url, monkeypatch)


def published_days(project: Project) -> dict[date, int]:
    with open_warehouse(project.warehouse_url) as warehouse:
        if not warehouse.table_exists(SCHEMA, TABLE):
            return {}
        rows = warehouse.fetch_all(f"SELECT order_date, count(*) FROM {SCHEMA}.{TABLE} GROUP BY order_date")
    return {day: int(count) for day, count in rows}


def ledger_keys(project: Project) -> list[tuple[str, str]]:
    """(partition_key, status) of every ledger row of the pipeline, newest first."""
    with open_warehouse(project.warehouse_url) as warehouse:
        return [(entry.partition_key, entry.status) for entry in entries(warehouse, PIPELINE)]


def read_flow_run(flow_run_id: Any) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def test_a_scheduled_run_that_starts_a_day_late_publishes_the_partition_it_was_scheduled_for(
    project: Project,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow
    from prefect.states import Scheduled

    today = datetime.now(UTC).date()
    scheduled = datetime.combine(today - timedelta(days=1), time(2, 30), tzinfo=UTC)  # yesterday's 02:30 slot
    scheduled_for = scheduled.date() - timedelta(days=1)  # the day before the scheduled day
    by_the_clock = today - timedelta(days=1)  # what "the latest complete partition now" would be
    generate(project.shop_db, scheduled_for, 2)  # orders on both days: either could be published
    with get_client(sync_client=True) as client:
        created = client.create_flow_run(
            run_pipeline, parameters={"pipeline": PIPELINE}, state=Scheduled(scheduled_time=scheduled)
        )
        flow_run = client.read_flow_run(created.id)
    assert flow_run.expected_start_time == scheduled
    assert flow_run.state is not None and flow_run.state.is_scheduled()

    state = run_flow(run_pipeline, flow_run=flow_run, return_type="state")

    assert state.is_completed(), state.message
    assert ledger_keys(project) == [(scheduled_for.isoformat(), "published")]
    assert scheduled_for != by_the_clock
    assert published_days(project) == {scheduled_for: orders_per_day(scheduled_for)}
    finished = read_flow_run(flow_run.id)
    assert finished.name == f"{PIPELINE} {scheduled_for.isoformat()}"
    assert finished.start_time is not None and finished.start_time - scheduled > timedelta(hours=20)


def test_an_ad_hoc_run_without_dates_publishes_the_latest_complete_partition_now(project: Project) -> None:
    """A direct call has no scheduled time of its own: Prefect records the moment the call created the run."""
    today = datetime.now(UTC).date()
    generate(project.shop_db, today - timedelta(days=2), 3)  # a run that crosses midnight finds its day too

    state = run_pipeline(PIPELINE, return_state=True)

    assert state.is_completed(), state.message
    flow_run = read_flow_run(state.state_details.flow_run_id)
    assert flow_run.expected_start_time is not None and flow_run.start_time is not None
    assert timedelta(0) <= flow_run.start_time - flow_run.expected_start_time < timedelta(minutes=1)
    latest = flow_run.expected_start_time.astimezone(UTC).date() - timedelta(days=1)
    assert latest in (today - timedelta(days=1), today)  # today only if the run started after midnight
    assert ledger_keys(project) == [(latest.isoformat(), "published")]
    assert published_days(project) == {latest: orders_per_day(latest)}
    assert flow_run.name == f"{PIPELINE} {latest.isoformat()}"
