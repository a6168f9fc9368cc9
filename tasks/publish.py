"""Publish every audited partition atomically, and record attempts that did not publish."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from runtime.connections import connect
from shipshape.audit_area import RunTables
from shipshape.catalog import DeclaredPipeline
from shipshape.ledger import LedgerEntry, record
from shipshape.publish import PublishMode, StagedPartition, publish
from shipshape.warehouses.locks import LockClaim


@task(name="publish-partitions", cache_policy=NO_CACHE)
def publish_partitions(
    declared: DeclaredPipeline, staged: list[StagedPartition], claim: LockClaim, mode: PublishMode = "all_or_none"
) -> None:
    """Publish while `claim` (the run's partition locks) holds: all partitions in one transaction, or (per_partition)
    each in its own, in order, stopping at the first that fails. Afterwards only each published partition's new raw
    data stays in the audit area. One task and one pair of connections either way: a backfill's batch of days pays
    Prefect's task overhead and the connection set-up once, not once per day."""
    groups = [staged] if mode == "all_or_none" else [[partition] for partition in staged]
    with connect("publisher") as publisher, connect() as loader:  # the loader owns the audit area and cleans it
        for group in groups:
            publish(publisher, declared.spec, group, claim)
            for partition in group:
                run = RunTables(declared.name, partition.window, partition.ledger_entry.run_tag)
                run.drop_runs(loader, keep={run.run_tag})
    get_run_logger().info(
        "Published %s partition(s) of %s into %s.%s",
        len(staged),
        declared.name,
        declared.spec.destination.schema_name,
        declared.spec.destination.published_table,
    )


@task(name="record-attempts", cache_policy=NO_CACHE)
def record_attempts(entries: list[LedgerEntry]) -> None:
    """Blocked and failed attempts go in the ledger too: it is the audit log, not just a publish log."""
    with connect() as warehouse:
        for entry in entries:
            record(warehouse, entry)
