"""Atomic publish: every audited partition of a run, its dead-letter cleanup and its ledger row, in one transaction.

Readers keep seeing the previous rows until COMMIT (MVCC on both engines): never a mix, never an
empty window. A crash or SIGKILL before COMMIT leaves the published table exactly as it was.
The ledger row is written last, so a lock on the ledger holds a publish at its very end.
The rows a publish replaces are kept, in the same transaction, in a history table of their own
(`replace_scope`, `shipshape.history`), for the pipeline's `history.retention`. Where the engine exchanges
partitions (`partition_exchange.exchanging`), a `replace_partition` publish copies no row: the partition's table
moves into history and the audited table becomes the partition, so it costs the same for 1k rows as for 10M.
Publishes to one table wait for each other (a destination lock, first in the transaction), and each then checks
that its run still holds its partition locks: a run whose lock session dropped publishes nothing, since another
run may already be processing the same partitions.
A transform output with new columns or wider types changes the published table in the same transaction
(`_evolve_schema`, through the adapter's published-table DDL: on PostgreSQL with roles, the owner role's functions).
What a publish would replace is measured before the audit gate by `replaced_rows`, scope for scope as
`replace_scope` deletes it, so the gate can refuse an empty or shrinking publish (`shipshape.volume`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from shipshape.declaration import Pipeline
from shipshape.errors import PartitionLostError, PublishError
from shipshape.history import kept
from shipshape.ledger import LedgerEntry, PublishedTable, current_row_count, forget_superseded_dead_letters, record
from shipshape.names import destination_lock, history_table, partition_table
from shipshape.partition_exchange import exchanging
from shipshape.partitions import Window
from shipshape.schema_changes import version_bump
from shipshape.schema_evolution import compare
from shipshape.transform import window_bounds
from shipshape.volume import Replaced
from shipshape.warehouses import AUDIT_SCHEMA, HISTORY_SCHEMA, Warehouse
from shipshape.warehouses.exchange import PartitionExchange
from shipshape.warehouses.locks import LockClaim

PublishMode = Literal["all_or_none", "per_partition"]
"""How a run over several partitions publishes: all in one transaction or none if any is blocked (a range run),
or each passing partition in its own transaction (a backfill's batch of days, `publish` called per partition)."""


@dataclass(frozen=True)
class StagedPartition:
    """An audited partition, ready to publish, with the ledger row that will record it."""

    window: Window
    out_table: str
    ledger_entry: LedgerEntry


def publish(warehouse: Warehouse, spec: Pipeline, staged: list[StagedPartition], claim: LockClaim) -> None:
    """Publish `staged` in one transaction, if the run still holds `claim` (its partition locks) once it is there."""
    schema, table = spec.destination.schema_name, spec.destination.published_table
    with warehouse.transaction():
        # Before any DDL or DML: concurrent first publishes would both create the table, concurrent merges of one
        # key would both insert it (each deletes only what was committed before it started).
        warehouse.hold_until_commit(destination_lock(schema, table))
        if not warehouse.still_holds(claim):
            raise PartitionLostError(
                f"pipeline {spec.name}, partition(s) {', '.join(p.window.key for p in staged)}: this run no longer "
                "holds its partition locks (the connection holding them ended), so another run may be processing "
                f"them. Nothing was published; {schema}.{table} is unchanged. Re-run the partition(s)"
            )
        for partition in staged:  # before the first read of any of them: `create_published_table` reads one
            _check_plain_table(warehouse, spec, partition)
        warehouse.ensure_schema(schema)
        warehouse.ensure_schema(HISTORY_SCHEMA)
        if not warehouse.table_exists(schema, table):
            _create(warehouse, spec, staged[0].out_table)
        staged = [_evolve_schema(warehouse, spec, partition) for partition in staged]
        published_columns = warehouse.table_columns(schema, table)
        exchange = exchanging(warehouse, spec)
        for partition in staged:
            entry = partition.ledger_entry
            if exchange is None:
                replace_scope(warehouse, spec, partition.window, partition.out_table, entry.entry_id)
                warehouse.insert_from(schema, table, AUDIT_SCHEMA, partition.out_table, published_columns)
                kept_rows = None
            else:
                source = (AUDIT_SCHEMA, partition.out_table)
                kept_rows = exchange_partition(warehouse, exchange, spec, partition.window, source, entry)
            forget_superseded_dead_letters(warehouse, entry.pipeline, entry.partition_key, entry.run_tag)
            kept(warehouse, spec, entry, kept_rows)
        for partition in staged:
            record(warehouse, partition.ledger_entry)


def _create(warehouse: Warehouse, spec: Pipeline, out_table: str) -> None:
    """The first publish creates the table: partitioned by the partition column where publishes exchange partitions
    (`partition_exchange.exchanging`), plain otherwise."""
    schema, table = spec.destination.schema_name, spec.destination.published_table
    exchange = exchanging(warehouse, spec)
    if exchange is not None and spec.partition is not None:
        exchange.create_partitioned_table(schema, table, AUDIT_SCHEMA, out_table, spec.partition.column)
    else:
        warehouse.create_published_table(schema, table, AUDIT_SCHEMA, out_table)


def exchange_partition(
    warehouse: Warehouse,
    exchange: PartitionExchange,
    spec: Pipeline,
    window: Window,
    source: tuple[str, str],
    entry: LedgerEntry,
) -> int:
    """Make `source` the window's partition, the replaced one `history.h_<entry>`; returns the rows kept there, as
    the ledger counted them when they were published (counting the table would scan it)."""
    schema, table = spec.destination.schema_name, spec.destination.published_table
    kept_rows = current_row_count(warehouse, PublishedTable.of(spec), window.key)
    bounds = window_bounds(spec, window)
    replaced = exchange.exchange_partition(
        schema, table, bounds, partition_table(table, window.key), source, history_table(entry.entry_id)
    )
    return kept_rows if replaced else 0


def _check_plain_table(warehouse: Warehouse, spec: Pipeline, partition: StagedPartition) -> None:
    """The publisher reads the transform output with its own rights: only a plain table runs none of the loader's
    code there (a view calling a loader's function would write with the publisher's rights)."""
    problem = warehouse.plain_table_problem(AUDIT_SCHEMA, partition.out_table)
    if problem is not None:
        schema, table = spec.destination.schema_name, spec.destination.published_table
        raise PublishError(
            f"pipeline {spec.name}, partition {partition.window.key}: the transform output "
            f"{AUDIT_SCHEMA}.{partition.out_table} {problem}; publish copies only from a plain table the run "
            f"created. Nothing was published; {schema}.{table} is unchanged. Drop that relation and re-run the "
            "partition"
        )


def replace_scope(warehouse: Warehouse, spec: Pipeline, window: Window, out_table: str, entry_id: str) -> None:
    """Remove exactly what the new rows replace — the partition, the matching keys, or everything — after keeping
    those rows in `history.h_<entry_id>` (`shipshape.history`), so `shipshape rollback` can put them back."""
    schema, table = spec.destination.schema_name, spec.destination.published_table
    kept_as = history_table(entry_id)
    if spec.load.mode == "full_replace":
        warehouse.snapshot_all(schema, table, kept_as)
        warehouse.delete_all(schema, table)
    elif spec.load.mode == "merge":
        warehouse.snapshot_matching_keys(schema, table, AUDIT_SCHEMA, out_table, spec.load.key, kept_as)
        warehouse.delete_matching_keys(schema, table, AUDIT_SCHEMA, out_table, spec.load.key)
    elif spec.partition is not None:
        start, end = window_bounds(spec, window)
        warehouse.snapshot_range(schema, table, spec.partition.column, start, end, kept_as)
        warehouse.delete_range(schema, table, spec.partition.column, start, end)
    else:  # `Pipeline` refuses replace_partition without a partition; never fall back to replacing everything
        raise PublishError(f"pipeline {spec.name}: load.mode {spec.load.mode!r} needs a partition to replace")


def replaced_rows(warehouse: Warehouse, spec: Pipeline, window: Window, out_table: str, new_rows: int) -> Replaced:
    """What publishing `out_table` (`new_rows` rows) would do to the rows it replaces, counted as `replace_scope`
    deletes them: the partition's rows (`replace_partition`), or the whole table (`full_replace`, `merge`)."""
    schema, table = spec.destination.schema_name, spec.destination.published_table
    target = f"{schema}.{table}"
    partitioned = spec.load.mode == "replace_partition" and spec.partition is not None
    scope = f"partition {window.key} of {target}" if partitioned else target
    if not warehouse.table_exists(schema, table):  # the first publish creates it
        return Replaced(scope, 0, new_rows)
    if spec.load.mode == "full_replace":
        return Replaced(scope, warehouse.row_count(schema, table), new_rows)
    if spec.load.mode == "merge":
        before = warehouse.row_count(schema, table)
        replaced = warehouse.count_matching_keys(schema, table, AUDIT_SCHEMA, out_table, spec.load.key)
        return Replaced(scope, before, before - replaced + new_rows)
    if spec.partition is not None:
        start, end = window_bounds(spec, window)
        return Replaced(scope, warehouse.count_range(schema, table, spec.partition.column, start, end), new_rows)
    raise PublishError(f"pipeline {spec.name}: load.mode {spec.load.mode!r} needs a partition to replace")


def _evolve_schema(warehouse: Warehouse, spec: Pipeline, partition: StagedPartition) -> StagedPartition:
    """Give the published table the output's new columns and wider types (earlier rows read NULL in a new column),
    inside the publish transaction; refuse a removed, narrowed or otherwise changed column. Returns the partition
    with what was changed on its ledger row (message and one outcome per column)."""
    schema, table = spec.destination.schema_name, spec.destination.published_table
    out = partition.out_table
    change = compare(warehouse.column_shapes(schema, table), warehouse.column_shapes(AUDIT_SCHEMA, out))
    if change.refused:
        fix = version_bump(spec.name, spec.destination, datetime.now(UTC).date())
        raise PublishError(
            f"pipeline {spec.name}, partition {partition.window.key}: the transform output {AUDIT_SCHEMA}.{out} "
            f"differs from {schema}.{table} in a way publish does not make by itself ({change.describe()}): it "
            "would drop or reinterpret published data. Nothing was published; the table is unchanged. Restore the "
            f"column or its type in the transform, or {fix}"
        )
    if not change:
        return partition
    if change.added:
        warehouse.add_published_columns(schema, table, AUDIT_SCHEMA, out)
    for old, _ in change.widened:
        warehouse.widen_published_column(schema, table, old.name, AUDIT_SCHEMA, out)
    entry = partition.ledger_entry
    message = "; ".join(filter(None, [entry.message, f"schema change: {change.describe()}"]))
    recorded = replace(entry, message=message, check_results=[*entry.check_results, *change.outcomes()])
    return replace(partition, ledger_entry=recorded)
