"""`run-pipeline`: one declared pipeline over a date range — extract, load, transform, audit, publish all or none."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import create_table_artifact

from shipshape.audit import AuditResult
from shipshape.audit_area import RunTables
from shipshape.catalog import DeclaredPipeline, find_pipeline
from shipshape.errors import AuditFailedError, PartitionBusyError
from shipshape.ledger import LedgerEntry, Status, ensure_platform_tables, recorded_run_tags
from shipshape.partitions import windows_for
from shipshape.publish import StagedPartition
from shipshape.settings import code_version, load_settings
from shipshape.warehouses import AUDIT_SCHEMA, open_warehouse
from tasks.audit import audit_partition
from tasks.extract_load import LoadReport, extract_to_audit
from tasks.publish import publish_partitions, record_attempts
from tasks.retry_policy import with_declared_retries
from tasks.reuse_raw import reuse_latest_raw
from tasks.transform import TransformReport, transform_partition


@dataclass(frozen=True)
class PartitionOutcome:
    run: RunTables
    load: LoadReport
    output: TransformReport
    audit: AuditResult


@flow(name="run-pipeline")
def run_pipeline(
    pipeline: str, start_date: date | None = None, end_date: date | None = None, reuse_raw: bool = False
) -> list[dict[str, object]]:
    """Run every partition of `pipeline` from `start_date` to `end_date` (both included).

    Args:
        pipeline: Name of a declaration in pipelines/.
        start_date: First partition day; with neither date, the latest complete partition.
        end_date: Last partition day (included); defaults to start_date.
        reuse_raw: Re-transform and re-audit the raw data already loaded, without extracting again.
    """
    declared = find_pipeline(pipeline)
    started = datetime.now(UTC)
    run_tag = _run_tag()
    windows = windows_for(declared.spec.partition and declared.spec.partition.grain, start_date, end_date, started)
    runs = [RunTables(declared.name, window, run_tag) for window in windows]
    with open_warehouse(load_settings().warehouse_url) as warehouse:
        ensure_platform_tables(warehouse)
        with warehouse.exclusive([f"shipshape:{declared.name}:{window.key}" for window in windows]) as acquired:
            if not acquired:
                raise PartitionBusyError(
                    f"pipeline {declared.name}: another run is processing one of partitions "
                    f"{windows[0].key}..{windows[-1].key}; this run changed nothing. Re-run after it finishes"
                )
            for run in runs:
                run.drop_runs(warehouse, keep=recorded_run_tags(warehouse, declared.name, run.window.key))
            outcomes = [_stage(declared, run, reuse_raw, started) for run in runs]
            _publish_or_block(declared, outcomes, started)
    return _summarise(declared, outcomes, published=True)


def _stage(declared: DeclaredPipeline, run: RunTables, reuse_raw: bool, started: datetime) -> PartitionOutcome:
    """Write and audit one partition; a failure is recorded in the ledger before it stops the run."""
    retries = declared.spec.retries
    try:
        if reuse_raw:
            load = reuse_latest_raw(declared, run)
        else:
            load = with_declared_retries(extract_to_audit, retries)(declared, run)
        output = with_declared_retries(transform_partition, retries)(declared, run)
        audit = with_declared_retries(audit_partition, retries)(declared, run, output)
        return PartitionOutcome(run, load, output, audit)
    except Exception as error:
        record_attempts([_ledger_entry(declared, run, "failed", started, message=str(error))])
        raise


def _publish_or_block(declared: DeclaredPipeline, outcomes: list[PartitionOutcome], started: datetime) -> None:
    blocked = [o for o in outcomes if not o.audit.passed]
    if blocked:
        record_attempts([_entry_for(declared, o, "blocked", started) for o in blocked])
        _summarise(declared, outcomes, published=False)
        details = "; ".join(
            f"{o.run.window.key}: {o.audit.failed_summary()} (quarantined in {AUDIT_SCHEMA}.{o.output.table})"
            for o in blocked
        )
        raise AuditFailedError(
            f"pipeline {declared.name}: contract {declared.spec.contract} blocked {len(blocked)} of {len(outcomes)} "
            f"partition(s) — {details}. Nothing was published; "
            f"{declared.spec.destination.schema_name}.{declared.spec.destination.table} is unchanged"
        )
    staged = [
        StagedPartition(o.run.window, o.output.table, _entry_for(declared, o, "published", started))
        for o in outcomes
    ]
    publish_partitions(declared, staged)


def _entry_for(declared: DeclaredPipeline, outcome: PartitionOutcome, status: Status, started: datetime) -> LedgerEntry:
    message = "" if status == "published" else outcome.audit.failed_summary()
    return _ledger_entry(
        declared,
        outcome.run,
        status,
        started,
        message=message,
        rows=outcome.output.rows,
        rejected=outcome.load.rejected,
        checks=[check.as_row() for check in outcome.audit.checks],
    )


def _ledger_entry(
    declared: DeclaredPipeline,
    run: RunTables,
    status: Status,
    started: datetime,
    *,
    message: str,
    rows: int = 0,
    rejected: int = 0,
    checks: list[dict[str, object]] | None = None,
) -> LedgerEntry:
    return LedgerEntry(
        pipeline=declared.name,
        partition_key=run.window.key,
        partition_start=run.window.start,
        partition_end=run.window.end,
        flow_run_id=str(runtime.flow_run.id or ""),
        run_tag=run.run_tag,
        code_version=code_version(),
        contract_hash=hashlib.sha256(declared.contract_path.read_bytes()).hexdigest()[:16],
        row_count=rows,
        rejected_rows=rejected,
        status=status,
        check_results=checks or [],
        message=message,
        started_at=started,
    )


def _summarise(
    declared: DeclaredPipeline, outcomes: list[PartitionOutcome], published: bool
) -> list[dict[str, object]]:
    rows = [
        {
            "partition": outcome.run.window.key,
            "rows": outcome.output.rows,
            "rejected": outcome.load.rejected,
            "checks": f"{sum(not check.blocking for check in outcome.audit.checks)}/{len(outcome.audit.checks)} ok",
            "status": "published" if published else ("blocked" if not outcome.audit.passed else "not published"),
        }
        for outcome in outcomes
    ]
    create_table_artifact(
        key=f"run-{declared.name}".replace("_", "-"), table=rows, description=f"{declared.name}: partitions of this run"
    )
    get_run_logger().info("Summary of %s: %s", declared.name, rows)
    return rows


def _run_tag() -> str:
    """Short, unique per flow run, safe in table names."""
    flow_run_id = runtime.flow_run.id
    return (uuid.UUID(str(flow_run_id)) if flow_run_id else uuid.uuid4()).hex[:8]
