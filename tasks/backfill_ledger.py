"""What a backfill reads from the publish ledger: the plan before it runs, how each child ended each of its days.

Sync tasks on purpose: the backfill flow is async (it awaits its children together), and inside an async
run Prefect's block loading — which resolves the warehouse connection — would hand back a coroutine.
"""

from __future__ import annotations

from datetime import date

from prefect import task
from prefect.cache_policies import NO_CACHE

from runtime.connections import connect, ensure_platform_schema
from shipshape.backfill_plan import PartitionPlan, day_outcome, plan_backfill
from shipshape.catalog import find_pipeline
from shipshape.ledger import PublishedTable, entries


@task(name="plan-backfill", cache_policy=NO_CACHE)
def plan_days(pipeline: str, start_date: date, end_date: date) -> list[PartitionPlan]:
    """Every day in the range with its ledger status (selection by mode is the caller's)."""
    spec = find_pipeline(pipeline).spec
    with connect() as warehouse:
        ensure_platform_schema(warehouse)
        recorded = entries(warehouse, PublishedTable.of(spec))  # the current version's: v1's days do not count
    return plan_backfill(recorded, spec.grain, start_date, end_date)


@task(name="read-day-outcomes", cache_policy=NO_CACHE)
def day_outcomes(pipeline: str, flow_run_id: str, days: list[date]) -> dict[date, tuple[str, int | None]]:
    """How the child run `flow_run_id` ended each of `days`, per the ledger: status and rows published."""
    spec = find_pipeline(pipeline).spec
    grain = spec.grain
    if grain is None:  # `plan_backfill` refuses a pipeline without partitions before any child runs
        raise ValueError(f"pipeline {pipeline} has no partitions to backfill")
    with connect() as warehouse:
        recorded = entries(warehouse, PublishedTable.of(spec))
    return {day: day_outcome(recorded, flow_run_id, grain, day) for day in days}
