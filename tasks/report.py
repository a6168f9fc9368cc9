"""Write the environment's report (`shipshape report`) and link it from the run as an artifact."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact
from prefect.cache_policies import NO_CACHE

from runtime.report_sources import environment_history
from shipshape import report_page
from shipshape.cost import PipelineMonth
from shipshape.names import report_artifact_key
from shipshape.settings import environment_name


@task(name="publish-report", cache_policy=NO_CACHE)
def publish_report(costs: Sequence[PipelineMonth]) -> Path:
    """Rewrite `<data folder>/reports/report-<env>.html` with `costs` (`runtime.cost_sources.recent_months`) and link
    it (a file:// link: open it where the worker writes, or serve or mount that folder)."""
    environment = environment_name()
    history = environment_history(datetime.now(UTC), environment, costs)
    path = report_page.write(history, report_page.default_path(environment))
    create_link_artifact(
        key=report_artifact_key(environment),
        link=path.as_uri(),
        link_text=path.name,
        description="Freshness, error budgets, volume bands, cost and lineage per pipeline (shipshape report)",
    )
    get_run_logger().info("report written to %s", path)
    return path
