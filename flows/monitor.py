"""`monitor`: freshness from the publish ledger, SLOs and error budgets; samples storage and consumer reads
(`shipshape.usage`) and prices the month (`shipshape.cost`: budgets, the monthly cost artifact); opens and resolves
incidents (freshness, fast burn, cost, unused); prunes the history of replaced rows past its retention
(`shipshape.history`); rewrites the environment's report and links it (`tasks.report`).

Scheduled every few minutes per environment, and started at once by each pipeline's freshness trigger
(a proactive automation on its deployment, in prefect.yaml) when no run completed within the SLA. Reading
the ledger, not run events, catches pipelines that never published, which no run-based trigger can.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from runtime.connections import connect, ensure_platform_schema
from runtime.cost_sources import consumers, recent_months
from runtime.incidents import announce
from runtime.report_sources import COST_MONTHS
from runtime.slo_sources import slo_reports
from shipshape.catalog import find_pipeline, load_all
from shipshape.cost import Month, PipelineMonth
from shipshape.declaration import Pipeline
from shipshape.history import prune
from shipshape.incidents import transition
from shipshape.monitoring import Observation, cost_observation, observations, unused_observation
from shipshape.names import cost_artifact_key
from shipshape.settings import environment_name
from shipshape.usage import measure, quiet_since, record
from shipshape.warehouses import Warehouse
from tasks.report import publish_report


@flow(name="monitor")
def monitor(pipeline: str | None = None) -> list[dict[str, object]]:
    """Evaluate every pipeline's freshness, SLOs, reads and cost now; announce incidents that opened or resolved.

    Args:
        pipeline: Only this pipeline (its freshness trigger passes it); empty means every declared pipeline.
    """
    logger = get_run_logger()
    now = datetime.now(UTC)
    reports = [report for report in slo_reports(now) if pipeline in (None, report.pipeline)]
    specs = [declared.spec for declared in load_all() if pipeline in (None, declared.name)]
    with connect("monitor") as warehouse:
        ensure_platform_schema(warehouse)
        for report in reports:
            for observed in observations(report):
                _observe(warehouse, report.pipeline, observed)
        _watch_reads(warehouse, specs, now)
    months = recent_months(environment_name(), now, COST_MONTHS, measure_now=False)  # with the samples just taken
    if pipeline is None:  # the month's artifact lists every pipeline; a freshness trigger's run leaves it be
        _watch_costs([month for month in months if month.month == str(Month.of(now))], now)
    with connect("publisher") as publisher:  # the history tables are the publisher's: it alone may drop them
        for pruned in prune(publisher, datetime.now(UTC)):
            logger.info("pruned history of %s partition %s (entry %s)", pruned.pipeline, pruned.partition_key,
                        pruned.entry_id)
    rows = [report.as_row() for report in reports]
    create_table_artifact(
        key=f"slo-{environment_name()}",
        table=rows,
        description="Freshness, success rate, error budgets and burn rates per pipeline (shipshape status)",
    )
    publish_report(months)
    return rows


def _watch_reads(warehouse: Warehouse, specs: list[Pipeline], now: datetime) -> None:
    """Sample storage and read counters, then open or resolve `unused` where reads are known."""
    record(warehouse, measure(warehouse, specs, consumers(environment_name()), now))
    for spec in specs:
        quiet = quiet_since(warehouse, spec, now)
        if quiet is not None:  # reads unknown (DuckDB) or never published: nothing to judge
            table = f"{spec.destination.schema_name}.{spec.destination.published_table}"
            _observe(warehouse, spec.name, unused_observation(table, quiet, now, spec.value.unread_after_delta))


def _watch_costs(months: list[PipelineMonth], now: datetime) -> None:
    """This month's rows, priced with the samples just recorded: `cost` incidents, and the month's table artifact."""
    with connect("monitor") as warehouse:
        for month in months:
            _observe(warehouse, month.pipeline, cost_observation(month))
    create_table_artifact(
        key=cost_artifact_key(environment_name()),
        table=[month.as_row() for month in months],
        description=f"Cost, storage and consumer reads per pipeline, {Month.of(now)} so far (shipshape cost)",
    )


def _observe(warehouse: Warehouse, pipeline: str, observed: Observation) -> None:
    """Record the observation; a change of state is logged and announced (the automation posts it to Slack)."""
    change = transition(warehouse, pipeline, observed.kind, observed.breached, observed.summary)
    if change is not None:
        get_run_logger().warning("%s %s: %s — %s", pipeline, change, observed.kind, observed.summary)
        announce(find_pipeline(pipeline), observed.kind, change, observed.summary)
