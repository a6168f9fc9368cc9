"""`run-pipeline`: one declared pipeline over a date range — extract, load, transform, audit, publish.

Two publish modes, chosen by the caller: `all_or_none` (the default: a range run is one change, every partition
or none) and `per_partition` (a backfill's batch of days: each day that passes is published in its own
transaction, a blocked or failed day stops no other, and the run ends failed naming those days).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import create_table_artifact
from prefect.client.schemas.objects import State
from prefect.states import Failed
from prefect.task_engine import TaskRunTimeoutError

from flows.retry_policy import with_declared_retries
from runtime.connections import connect, ensure_platform_schema, import_warehouse_adapters
from shipshape.audit import import_soda
from shipshape.audit_area import RunTables
from shipshape.catalog import find_pipeline
from shipshape.errors import (
    AUDIT_FAILED_STATE,
    TIMED_OUT_STATE,
    AuditFailedError,
    PartitionBusyError,
    RunTimedOutError,
)
from shipshape.ledger import PublishedTable, recent_successful_runs, recorded_run_tags
from shipshape.names import PIPELINE_FLOW, partition_lock
from shipshape.outcomes import PartitionOutcome, RunContext, failed_row
from shipshape.partitions import Grain, Window, partition_instant, windows_for
from shipshape.publish import PublishMode, StagedPartition
from shipshape.run_timeout import HISTORY_RUNS, Deadline, run_timeout, timed_out_message
from shipshape.schema_guard import check_published
from shipshape.volume import VolumeVerdict
from shipshape.warehouses import AUDIT_SCHEMA
from shipshape.warehouses.locks import LockClaim
from tasks.audit import audit_partition
from tasks.extract_load import extract_to_audit
from tasks.publish import publish_partitions, record_attempts
from tasks.reuse_raw import reuse_latest_raw
from tasks.transform import transform_partition
from tasks.volume import check_volume


def _run_name() -> str:
    """`shop_orders 2026-11-05` (or a range): the partition shows in the UI and in every alert about the run."""
    parameters = runtime.flow_run.parameters
    pipeline, start, end = parameters["pipeline"], parameters.get("start_date"), parameters.get("end_date")
    windows = _windows(find_pipeline(pipeline).spec.grain, start, end)
    keys = windows[0].key if len(windows) == 1 else f"{windows[0].key}..{windows[-1].key}"
    return f"{pipeline} {keys}"


def _windows(grain: Grain | None, start_date: date | None, end_date: date | None) -> list[Window]:
    """The run's partitions; without dates, the latest complete one at the run's scheduled start (see
    `partition_instant`). The run name and the body both come here, so they name the same partition."""
    instant = partition_instant(runtime.flow_run.scheduled_start_time, datetime.now(UTC))
    return windows_for(grain, start_date, end_date, instant)


def import_run_libraries() -> None:
    """Import now what a run imports on first use: the warehouse adapters and drivers, Soda (2-4 s together).

    A local command calls it while its local Prefect API starts, so the first partition does not wait for it."""
    import_warehouse_adapters()
    import_soda()


@flow(name=PIPELINE_FLOW, flow_run_name=_run_name)
def run_pipeline(
    pipeline: str,
    start_date: date | None = None,
    end_date: date | None = None,
    reuse_raw: bool = False,
    publish_mode: PublishMode = "all_or_none",
) -> list[dict[str, object]] | State:
    """Run every partition of `pipeline` from `start_date` to `end_date` (both included).

    Args:
        pipeline: Name of a declaration in pipelines/.
        start_date: First partition day; with neither date, the latest complete partition at the run's
            scheduled start (a late scheduled run still processes the partition it was scheduled for).
        end_date: Last partition day (included); defaults to start_date.
        reuse_raw: Re-transform and re-audit the raw data already loaded, without extracting again.
        publish_mode: all_or_none = publish every partition in one transaction, or none if any is blocked;
            per_partition = publish each partition that passes in its own transaction, block only the others.
    """
    context = RunContext(find_pipeline(pipeline), str(runtime.flow_run.id or ""), datetime.now(UTC))
    spec = context.declared.spec
    windows = _windows(spec.grain, start_date, end_date)
    runs = [RunTables(spec.name, window, _run_tag()) for window in windows]
    with connect() as warehouse:
        ensure_platform_schema(warehouse)
        check_published(warehouse, context.declared)  # a breaking change stops here, before anything is loaded
        history = recent_successful_runs(warehouse, PublishedTable.of(spec), HISTORY_RUNS)
        deadline = Deadline(run_timeout(spec.timeout_delta, history, len(windows)))
        locks = [partition_lock(spec.name, window.key) for window in windows]
        with warehouse.exclusive(locks) as acquired:
            if not acquired:
                raise PartitionBusyError(
                    f"pipeline {spec.name}: another run is processing one of partitions "
                    f"{windows[0].key}..{windows[-1].key}; this run changed nothing. Re-run after it finishes"
                )
            claim = warehouse.claim(locks)  # now, while the lock session is known to be alive; checked at publish
            for run in runs:  # leftovers of killed runs; recorded (quarantined) runs stay
                run.drop_runs(warehouse, keep=recorded_run_tags(warehouse, spec.name, run.window.key))
            try:
                outcomes, failures = _write_and_audit_each(context, runs, reuse_raw, deadline, publish_mode)
            except RunTimedOutError as timed_out:  # leaving the block releases the locks
                return Failed(name=TIMED_OUT_STATE, message=str(timed_out), data=timed_out)
            if publish_mode == "per_partition":
                return _publish_each(context, outcomes, failures, claim)
            try:
                _publish_or_block(context, outcomes, claim)
            except AuditFailedError as blocked:
                return Failed(name=AUDIT_FAILED_STATE, message=str(blocked), data=blocked)
    return _summarise(context, outcomes, _published_statuses(context, outcomes))


def _published_statuses(context: RunContext, published: list[PartitionOutcome]) -> list[str]:
    """Each published partition's status, with its volume verdict (which may open an incident)."""
    verdicts = check_volume(context.declared, [(outcome.run.window, outcome.output.rows) for outcome in published])
    return [_published_status(verdicts.get(outcome.run.window.key)) for outcome in published]


def _published_status(verdict: VolumeVerdict | None) -> str:
    return f"published; volume anomaly: {verdict.describe()}" if verdict and verdict.anomalous else "published"


def _write_and_audit_each(
    context: RunContext, runs: list[RunTables], reuse_raw: bool, deadline: Deadline, publish_mode: PublishMode
) -> tuple[list[PartitionOutcome], dict[str, Exception]]:
    """Every partition up to the gate. All-or-none stops at the first failure; per-partition goes on with the
    next partition and returns the failures by partition key (each already in the ledger). A timeout stops
    both: the run's time is up for every partition."""
    outcomes: list[PartitionOutcome] = []
    failures: dict[str, Exception] = {}
    for run in runs:
        try:
            outcomes.append(_write_and_audit(context, run, reuse_raw, deadline))
        except RunTimedOutError:
            raise
        except Exception as error:
            if publish_mode == "all_or_none":
                raise
            failures[run.window.key] = error
    return outcomes, failures


def _write_and_audit(context: RunContext, run: RunTables, reuse_raw: bool, deadline: Deadline) -> PartitionOutcome:
    """One partition up to the gate, each step within the run's deadline; a failure is recorded in the ledger
    before it stops the run, a timeout as `RunTimedOutError` with the message the alert shows."""
    declared, retries = context.declared, context.declared.spec.retries
    step = "extract"
    try:
        if reuse_raw:
            load = reuse_latest_raw(declared, run)
        else:
            load = with_declared_retries(extract_to_audit, retries, deadline)(declared, run)
        step = "transform"
        output = with_declared_retries(transform_partition, retries, deadline)(declared, run)
        step = "audit"
        audit = with_declared_retries(audit_partition, retries, deadline)(declared, run, output)
        return PartitionOutcome(run, load, output, audit)
    except (TaskRunTimeoutError, RunTimedOutError) as error:  # not any TimeoutError: a source's own is its error
        spec = declared.spec
        message = timed_out_message(spec.name, run.window.key, deadline.timeout, spec.timeout is not None, step)
        record_attempts([context.ledger_entry(run, "failed", message)])
        raise RunTimedOutError(message) from error
    except Exception as error:
        record_attempts([context.ledger_entry(run, "failed", str(error))])
        raise


def _publish_or_block(context: RunContext, outcomes: list[PartitionOutcome], claim: LockClaim) -> None:
    """All partitions passed → publish them in one transaction while `claim` holds; any blocked → publish none."""
    blocked = [outcome for outcome in outcomes if not outcome.audit.passed]
    if not blocked:
        publish_partitions(context.declared, _staged(context, outcomes), claim)
        return
    record_attempts([outcome.ledger_entry(context, "blocked") for outcome in blocked])
    _summarise(context, outcomes, ["blocked" if not o.audit.passed else "not published" for o in outcomes])
    spec = context.declared.spec
    details = "; ".join(
        f"{o.run.window.key}: {o.audit.failed_summary()} (quarantined in {AUDIT_SCHEMA}.{o.output.table})"
        for o in blocked
    )
    raise AuditFailedError(
        f"pipeline {spec.name}: contract {spec.contract} blocked {len(blocked)} of {len(outcomes)} partition(s) — "
        f"{details}. Nothing was published; {spec.destination.schema_name}.{spec.destination.published_table} "
        "is unchanged"
    )


def _staged(context: RunContext, passed: list[PartitionOutcome]) -> list[StagedPartition]:
    return [StagedPartition(o.run.window, o.output.table, o.ledger_entry(context, "published")) for o in passed]


def _publish_each(
    context: RunContext, outcomes: list[PartitionOutcome], failures: dict[str, Exception], claim: LockClaim
) -> list[dict[str, object]] | State:
    """Per-partition mode: each passing partition in its own transaction while `claim` holds, the blocked ones
    recorded; the run fails (AuditFailed when only audits blocked) naming every partition it did not publish."""
    declared = context.declared
    passed = [outcome for outcome in outcomes if outcome.audit.passed]
    blocked = [outcome for outcome in outcomes if not outcome.audit.passed]
    if passed:
        publish_partitions(declared, _staged(context, passed), claim, "per_partition")
    if blocked:
        record_attempts([outcome.ledger_entry(context, "blocked") for outcome in blocked])
    statuses = dict(zip((o.run.window.key for o in passed), _published_statuses(context, passed), strict=True))
    rows = _summarise(context, outcomes, [statuses.get(o.run.window.key, "blocked") for o in outcomes], failures)
    if not blocked and not failures:
        return rows
    spec = declared.spec
    reasons = [
        f"{o.run.window.key}: blocked, {o.audit.failed_summary()} (quarantined in {AUDIT_SCHEMA}.{o.output.table})"
        for o in blocked
    ] + [f"{key}: failed, {error}" for key, error in failures.items()]
    message = (
        f"pipeline {spec.name}: {len(reasons)} of {len(outcomes) + len(failures)} partition(s) not published — "
        f"{'; '.join(sorted(reasons))}. The {len(passed)} other partition(s) are published in "
        f"{spec.destination.schema_name}.{spec.destination.table}; fix the cause and re-run the partitions named"
    )
    if failures:
        return Failed(message=message)
    return Failed(name=AUDIT_FAILED_STATE, message=message, data=AuditFailedError(message))


def _summarise(
    context: RunContext,
    outcomes: list[PartitionOutcome],
    statuses: list[str],
    failures: dict[str, Exception] | None = None,
) -> list[dict[str, object]]:
    """The run's table artifact in the UI, one row per partition (per-partition mode: failed ones too)."""
    rows = [outcome.summary_row(status) for outcome, status in zip(outcomes, statuses, strict=True)]
    rows += [failed_row(key, str(error)) for key, error in (failures or {}).items()]
    rows.sort(key=lambda row: str(row["partition"]))
    name = context.declared.name
    create_table_artifact(key=f"run-{name}".replace("_", "-"), table=rows, description=f"{name}: this run's partitions")
    get_run_logger().info("Summary of %s: %s", name, rows)
    return rows


def _run_tag() -> str:
    """Short, unique per flow run, safe in table names."""
    flow_run_id = runtime.flow_run.id
    return (uuid.UUID(str(flow_run_id)) if flow_run_id else uuid.uuid4()).hex[:8]
