"""The quality gate: the Soda contract, plus the volume rules (declared bounds, empty and shrinking publishes)
and, for a merge, its key rules (no NULL, no repeated key), on the partition's audit output."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from runtime.connections import connect
from shipshape.audit import AuditResult, verify_contract
from shipshape.audit_area import RunTables
from shipshape.catalog import DeclaredPipeline
from shipshape.merge_keys import merge_key_checks
from shipshape.outcomes import TransformReport
from shipshape.publish import replaced_rows
from shipshape.volume import bound_checks, loss_checks
from shipshape.warehouses import AUDIT_SCHEMA


@task(name="audit-partition", cache_policy=NO_CACHE)
def audit_partition(declared: DeclaredPipeline, run: RunTables, output: TransformReport) -> AuditResult:
    """Verify the contract on this partition's audit table; failing checks are logged and shown as an artifact."""
    logger = get_run_logger()
    data_timestamp = run.window.end or datetime.now(UTC)
    with connect() as warehouse:
        target = warehouse.soda_target()
        result = verify_contract(declared.contract_path, target, AUDIT_SCHEMA, output.table, data_timestamp)
        replaced = replaced_rows(warehouse, declared.spec, run.window, output.table, output.rows)
        key_checks = merge_key_checks(warehouse, declared.spec.load, AUDIT_SCHEMA, output.table)
    volume = declared.spec.volume
    result = AuditResult(
        checks=[
            *result.checks,
            *bound_checks(volume, output.rows),
            *loss_checks(volume, output.rows, replaced),
            *key_checks,
        ]
    )
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
