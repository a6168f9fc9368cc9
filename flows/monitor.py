"""`monitor`: freshness from the publish ledger, SLOs and error budgets; opens and resolves incidents; prunes the
history of replaced rows past its retention (`shipshape.history`); rewrites the environment's report and links it
(`tasks.report`).

Scheduled every few minutes per environment, and started at once by each pipeline's freshness trigger
(a proactive automation on its deployment, in prefect.yaml) when no run completed within the SLA. Reading
the ledger, not run events, catches pipelines that never published, which no run-based trigger can.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from runtime.connections import connect, ensure_platform_schema
from runtime.incidents import announce
from runtime.slo_sources import slo_reports
from shipshape.catalog import find_pipeline
from shipshape.history import prune
from shipshape.incidents import transition
from shipshape.monitoring import observations
from shipshape.settings import environment_name
from tasks.report import publish_report


@flow(name="monitor")
def monitor(pipeline: str | None = None) -> list[dict[str, object]]:
    """Evaluate every pipeline's freshness and SLOs now; announce incidents that opened or resolved.

    Args:
        pipeline: Only this pipeline (its freshness trigger passes it); empty means every declared pipeline.
    """
    reports = [report for report in slo_reports(datetime.now(UTC)) if pipeline in (None, report.pipeline)]
    logger = get_run_logger()
    with connect("monitor") as warehouse:
        ensure_platform_schema(warehouse)
        for report in reports:
            for observed in observations(report):
                change = transition(warehouse, report.pipeline, observed.kind, observed.breached, observed.summary)
                if change is not None:
                    logger.warning("%s %s: %s — %s", report.pipeline, change, observed.kind, observed.summary)
                    announce(find_pipeline(report.pipeline), observed.kind, change, observed.summary)
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
    publish_report()
    return rows
