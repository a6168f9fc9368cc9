"""What a backfill reads from the publish ledger: the plan before it runs, the rows each child published after.

Sync tasks on purpose: the backfill flow is async (it awaits its children together), and inside an async
run Prefect's block loading — which resolves the warehouse connection — would hand back a coroutine.
"""

from __future__ import annotations

from datetime import date

from prefect import task
from prefect.cache_policies import NO_CACHE

from runtime.connections import connect
from shipshape.backfill_plan import PartitionPlan, plan_backfill, rows_published_by
from shipshape.catalog import find_pipeline
from shipshape.ledger import ensure_platform_tables, entries


@task(name="plan-backfill", cache_policy=NO_CACHE)
def plan_days(pipeline: str, start_date: date, end_date: date) -> list[PartitionPlan]:
    """Every day in the range with its ledger status (selection by mode is the caller's)."""
    spec = find_pipeline(pipeline).spec
    with connect() as warehouse:
        ensure_platform_tables(warehouse)
        recorded = entries(warehouse, pipeline)
    return plan_backfill(recorded, spec.grain, start_date, end_date)


@task(name="read-published-rows", cache_policy=NO_CACHE)
def published_rows(pipeline: str, flow_run_ids: list[str]) -> dict[str, int | None]:
    """Rows each given run published, per the ledger (None: it published nothing)."""
    with connect() as warehouse:
        recorded = entries(warehouse, pipeline)
    return {flow_run_id: rows_published_by(recorded, flow_run_id) for flow_run_id in flow_run_ids}
