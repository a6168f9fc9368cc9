"""Publish every audited partition atomically, and record attempts that did not publish."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from runtime.connections import connect
from shipshape.audit_area import RunTables
from shipshape.catalog import DeclaredPipeline
from shipshape.ledger import LedgerEntry, record
from shipshape.publish import StagedPartition, publish
from shipshape.warehouses.locks import LockClaim


@task(name="publish-partitions", cache_policy=NO_CACHE)
def publish_partitions(declared: DeclaredPipeline, staged: list[StagedPartition], claim: LockClaim) -> None:
    """All partitions of the run or none, while `claim` (the run's partition locks) holds; afterwards only each
    partition's new raw data stays in the audit area."""
    with connect("publisher") as warehouse:
        publish(warehouse, declared.spec, staged, claim)
    with connect() as warehouse:  # the loader owns the audit area, so it cleans it up
        for partition in staged:
            run = RunTables(declared.name, partition.window, partition.ledger_entry.run_tag)
            run.drop_runs(warehouse, keep={run.run_tag})
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
