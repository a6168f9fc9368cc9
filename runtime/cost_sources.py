"""The inputs of the cost arithmetic (`shipshape.cost`) that live in Prefect: each pipeline's run durations and the
environment's cost model (the Prefect variable `make apply` writes), then `monthly_costs` over them.

Runs are found by the tags every run of a pipeline carries (`names.run_tags`), like the SLOs' (`slo_sources`); a
run's compute is Prefect's `total_run_time` (time in Running, retries included, waiting excluded).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from prefect.client.orchestration import SyncPrefectClient, get_client

from runtime.connections import connect
from runtime.slo_sources import finished_runs
from shipshape.catalog import load_all
from shipshape.cost import TRAILING_DAYS, CostModel, Month, PipelineMonth, RunTime, monthly_costs
from shipshape.ledger import USAGE_SAMPLE_TABLE, missing_platform_tables
from shipshape.names import cost_model_variable, role_name, run_tags


def run_times(pipeline: str, environment: str, since: datetime, client: SyncPrefectClient) -> list[RunTime]:
    """Each finished run of the pipeline in the environment that ended at or after `since`: end and run time."""
    return [
        RunTime(run.end_time or run.state.timestamp, run.total_run_time.total_seconds())
        for run in finished_runs(client, run_tags(pipeline, environment), since)
        if run.state is not None
    ]


def cost_model(environment: str, client: SyncPrefectClient) -> CostModel:
    """The environment's model as `make apply` stored it; the documented defaults where it never ran (local)."""
    name = cost_model_variable(environment)
    variable = client.read_variable_by_name(name)
    if variable is None or variable.value is None:
        return CostModel()
    return CostModel.from_value(variable.value, f"Prefect variable {name!r}")


def consumers(environment: str) -> list[str]:
    """The roles whose reads count as consumers' (`make apply`'s consumer role of the environment)."""
    return [role_name(environment, "consumer")]


def pipeline_months(
    month: Month, environment: str, now: datetime, only: Sequence[str] | None = None, *, measure_now: bool = True
) -> list[PipelineMonth]:
    """Every declared pipeline's (or those in `only`) cost for `month` in `environment`, as of `now`."""
    specs = [declared.spec for declared in load_all() if only is None or declared.name in only]
    since = min(month.start, now - timedelta(days=TRAILING_DAYS))
    with connect("monitor") as warehouse, get_client(sync_client=True) as client:
        if USAGE_SAMPLE_TABLE in missing_platform_tables(warehouse):
            return []
        runs = {spec.name: run_times(spec.name, environment, since, client) for spec in specs}
        return monthly_costs(
            warehouse, specs, environment, month, runs, cost_model(environment, client), now, consumers(environment),
            measure_now=measure_now,
        )


def recent_months(environment: str, now: datetime, count: int, *, measure_now: bool = True) -> list[PipelineMonth]:
    """Every declared pipeline's last `count` months up to `now`'s, oldest first (the report's cost and reads chart;
    the monitor prices this month from the same rows)."""
    months = [Month.of(now)]
    while len(months) < count:
        months.append(months[-1].previous())
    return [
        row for month in reversed(months) for row in pipeline_months(month, environment, now, measure_now=measure_now)
    ]
