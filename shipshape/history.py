"""The history of published rows: what each publish (or rollback) replaced, kept for `shipshape rollback`.

Each publish copies the rows it is about to delete into `history.h_<its ledger entry id>` in its own transaction
(`shipshape.publish.replace_scope`), and notes that table here, in `platform.publish_history`, with the time it may
be pruned (now + the pipeline's `history.retention`). One table per publish rather than one per destination: it
keeps the columns the rows had then (a rollback after a schema change restores them by name), and pruning one is
a DROP, not a DELETE leaving dead rows. The history schema is the publisher's; consumers and the loader get no
privilege on it (`infra.warehouse`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from shipshape.declaration import Pipeline
from shipshape.ledger import HISTORY_INDEX_TABLE, LedgerEntry
from shipshape.names import history_table
from shipshape.warehouses import HISTORY_SCHEMA, PLATFORM_SCHEMA, Warehouse
from shipshape.warehouses.exchange import partition_exchange


@dataclass(frozen=True)
class Kept:
    """One kept history table: the rows the ledger entry `entry_id` replaced in its partition."""

    entry_id: str
    pipeline: str
    partition_key: str
    row_count: int
    created_at: datetime
    expires_at: datetime

    @property
    def table(self) -> str:
        return history_table(self.entry_id)


def kept(warehouse: Warehouse, spec: Pipeline, entry: LedgerEntry, row_count: int | None = None) -> Kept:
    """Note the history table the publish recorded by `entry` just filled, inside its transaction; `row_count`: its
    rows, when the step that filled it counted them (a partition exchange: the publisher cannot read that table)."""
    created = datetime.now(UTC)
    record = Kept(
        entry.entry_id,
        entry.pipeline,
        entry.partition_key,
        warehouse.row_count(HISTORY_SCHEMA, history_table(entry.entry_id)) if row_count is None else row_count,
        created,
        created + spec.history.retention_delta,
    )
    warehouse.execute(
        f"INSERT INTO {warehouse.qualified(PLATFORM_SCHEMA, HISTORY_INDEX_TABLE)} "
        "(entry_id, pipeline, partition_key, row_count, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        [record.entry_id, record.pipeline, record.partition_key, record.row_count, created, record.expires_at],
    )
    return record


def find(warehouse: Warehouse, entry_id: str) -> Kept | None:
    """The history kept for the ledger entry `entry_id`; None once pruned (or if it never replaced anything)."""
    rows = warehouse.fetch_all(
        "SELECT entry_id, pipeline, partition_key, row_count, created_at, expires_at "
        f"FROM {warehouse.qualified(PLATFORM_SCHEMA, HISTORY_INDEX_TABLE)} WHERE entry_id = ?",
        [entry_id],
    )
    return Kept(*rows[0]) if rows else None


def prune(warehouse: Warehouse, now: datetime) -> list[Kept]:
    """Drop every history table whose retention ended before `now`, and its note; returns what was pruned.

    One transaction per table, so a prune interrupted half-way leaves no note pointing at a dropped table. A
    rollback reading a table takes the destination lock, not this one: it may find its history gone and say so.
    """
    rows = warehouse.fetch_all(
        "SELECT entry_id, pipeline, partition_key, row_count, created_at, expires_at "
        f"FROM {warehouse.qualified(PLATFORM_SCHEMA, HISTORY_INDEX_TABLE)} WHERE expires_at < ? ORDER BY expires_at",
        [now],
    )
    pruned = [Kept(*row) for row in rows]
    exchange = partition_exchange(warehouse)
    for expired in pruned:
        with warehouse.transaction():
            if exchange is None:
                warehouse.drop_table(HISTORY_SCHEMA, expired.table)
            else:  # a partition exchange moved it here as the owner role's
                exchange.drop_history_table(expired.table)
            forget(warehouse, expired.entry_id)
    return pruned


def forget(warehouse: Warehouse, entry_id: str) -> None:
    """Remove the note of `entry_id`'s kept table: it was pruned, or a rollback by partition exchange made it the
    published partition again (its rows are current; the next publish keeps them anew)."""
    warehouse.execute(
        f"DELETE FROM {warehouse.qualified(PLATFORM_SCHEMA, HISTORY_INDEX_TABLE)} WHERE entry_id = ?", [entry_id]
    )


def stored_bytes(warehouse: Warehouse, kept_table: Kept) -> int | None:
    """Bytes the kept table takes on disk, as the engine reports it (`Warehouse.table_bytes`)."""
    return warehouse.table_bytes(HISTORY_SCHEMA, kept_table.table)
