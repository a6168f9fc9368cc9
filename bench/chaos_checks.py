"""What the chaos benchmark checks after every recovered run: the published rows, and what the faults left behind.

All of it is computed in SQL through the generic `Warehouse` interface, so a 1M-row table never crosses the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from orders_data import DAY
from wap_run import DESTINATION_SCHEMA, DESTINATION_TABLE, PIPELINE

from shipshape.audit_area import RunTables
from shipshape.ledger import entries
from shipshape.partitions import plan_windows
from shipshape.warehouses import Warehouse


@dataclass(frozen=True)
class Fingerprint:
    """The published table's rows, distinct keys, and an order-independent checksum of every row's full text."""

    rows: int
    keys: int
    checksum: Decimal


@dataclass(frozen=True)
class Leftovers:
    """What a later successful run should have removed: audit tables of earlier runs, advisory locks still held."""

    audit_tables: list[str]
    advisory_locks: int

    @property
    def count(self) -> int:
        return len(self.audit_tables) + self.advisory_locks


def fingerprint(warehouse: Warehouse) -> Fingerprint:
    """Sum of the first 64 bits of each row's md5: any changed, lost or doubled row changes it (numeric sum, no
    overflow); rows and keys tell lost from duplicated."""
    table = warehouse.qualified(DESTINATION_SCHEMA, DESTINATION_TABLE)
    [(rows, keys, checksum)] = warehouse.fetch_all(
        "SELECT count(*), count(DISTINCT order_id), "
        "coalesce(sum(('x' || left(md5(published::text), 16))::bit(64)::bigint::numeric), 0) "
        f"FROM {table} AS published"
    )
    return Fingerprint(int(rows), int(keys), Decimal(checksum))


def leftovers(warehouse: Warehouse) -> Leftovers:
    """After a successful run only its own raw table stays in the audit area (kept for `--reuse-raw`)."""
    [window] = plan_windows("day", DAY, DAY)
    published = [entry for entry in entries(warehouse, PIPELINE) if entry.status == "published"]
    latest = max(published, key=lambda entry: entry.finished_at)
    run = RunTables(PIPELINE, window, latest.run_tag)
    tables = [table for tables in run.partition_tables(warehouse).values() for table in tables if table != run.raw]
    [(locks,)] = warehouse.fetch_all("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
    return Leftovers(sorted(tables), int(locks))

