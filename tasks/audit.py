"""The quality gate: the Soda contract (plus declared volume bounds) on the partition's audit output."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from runtime.connections import connect
from shipshape.audit import AuditResult, CheckOutcome, verify_contract
from shipshape.audit_area import RunTables
from shipshape.catalog import DeclaredPipeline
from shipshape.declaration import Volume
from shipshape.outcomes import TransformReport
from shipshape.warehouses import AUDIT_SCHEMA


@task(name="audit-partition", cache_policy=NO_CACHE)
def audit_partition(declared: DeclaredPipeline, run: RunTables, output: TransformReport) -> AuditResult:
    """Verify the contract on this partition's audit table; failing checks are logged and shown as an artifact."""
    logger = get_run_logger()
    data_timestamp = run.window.end or datetime.now(UTC)
    with connect() as warehouse:
        target = warehouse.soda_target()
        result = verify_contract(declared.contract_path, target, AUDIT_SCHEMA, output.table, data_timestamp)
    result = AuditResult(checks=[*result.checks, *_volume_checks(declared.spec.volume, output.rows)])
    for check in result.checks:
        if check.blocking:
            logger.error(
                "Check failed for %s: %s — measured %s (%s)", run.window.key, check.name, check.measured, check.detail
            )
        elif check.outcome == "warned":
            logger.warning(
                "Check warned for %s: %s — measured %s (%s)", run.window.key, check.name, check.measured, check.detail
            )
    if not result.passed:
        create_table_artifact(
            key=f"audit-{declared.name}-{run.window.table_suffix}".replace("_", "-").lower(),
            table=[{"partition": run.window.key, **check.as_row()} for check in result.checks],
            description=f"Blocked: {declared.name} partition {run.window.key} failed its contract; "
            f"audit data quarantined in {AUDIT_SCHEMA}.{output.table}",
        )
    return result


def _volume_checks(volume: Volume, row_count: int) -> list[CheckOutcome]:
    """Declared volume bounds, reported like contract checks so one list gates the publish."""
    if volume.min_rows is None and volume.max_rows is None:
        return []
    low = volume.min_rows if volume.min_rows is not None else 0
    high = volume.max_rows if volume.max_rows is not None else float("inf")
    inside = low <= row_count <= high
    return [
        CheckOutcome(
            name="volume: row_count within declared bounds",
            column=None,
            check_type="volume",
            outcome="passed" if inside else "failed",
            blocking=not inside,
            measured=row_count,
            detail=f"expected between {low} and {high} rows",
        )
    ]
