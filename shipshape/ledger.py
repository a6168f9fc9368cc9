"""The publish ledger and the dead-letter table: the platform's own records, kept in the warehouse.

The ledger records each publish and each blocked or failed attempt. Publish rows are written in
the same transaction as the data they describe, so the ledger can never claim a publish that did
not happen (or miss one that did). Freshness, backfill planning and SLOs read it. The tables are versioned:
`shipshape.platform_schema` creates and changes them, one migration at a time.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa

from shipshape.audit import CheckOutcome
from shipshape.column_types import ColumnType
from shipshape.convert import RejectedRow
from shipshape.run_timeout import PastRun
from shipshape.warehouses import PLATFORM_SCHEMA, Warehouse

LEDGER_TABLE = "publish_ledger"
DEAD_LETTER_TABLE = "dead_letters"
INCIDENT_TABLE = "incidents"
HISTORY_INDEX_TABLE = "publish_history"
Status = Literal["published", "blocked", "failed", "rolled_back"]
PUBLISHED: tuple[Status, ...] = ("published", "rolled_back")
"""The statuses whose entry changed the published rows: a publish, and a rollback restoring an earlier publish."""

_LEDGER_COLUMNS = {
    "entry_id": "text",
    "pipeline": "text",
    "partition_key": "text",
    "partition_start": "timestamptz",
    "partition_end": "timestamptz",
    "flow_run_id": "text",
    "run_tag": "text",
    "code_version": "text",
    "contract_hash": "text",
    "row_count": "bigint",
    "rejected_rows": "bigint",
    "status": "text",
    "check_results": "text",
    "message": "text",
    "started_at": "timestamptz",
    "finished_at": "timestamptz",
    "restored_entry_id": "text",  # a `rolled_back` entry: the entry whose rows it restored
}
_DEAD_LETTER_COLUMNS = {
    "pipeline": "text",
    "partition_key": "text",
    "run_tag": "text",
    "row_number": "bigint",
    "reason": "text",
    "raw_record": "text",
    "created_at": "timestamptz",
}
_INCIDENT_COLUMNS = {  # one row per pipeline and incident kind: is it open now (see incidents.py)
    "pipeline": "text",
    "kind": "text",
    "is_open": "boolean",
    "changed_at": "timestamptz",
    "detail": "text",
}
_HISTORY_INDEX_COLUMNS = {  # one row per kept `history.h_<entry id>` table (see shipshape/history.py)
    "entry_id": "text",
    "pipeline": "text",
    "partition_key": "text",
    "row_count": "bigint",
    "created_at": "timestamptz",
    "expires_at": "timestamptz",
}
# What this code reads and writes; the tables themselves are made by migrations (`shipshape.platform_migrations`),
# and a test holds the migrated tables to exactly these columns.
PLATFORM_TABLES = {
    LEDGER_TABLE: _LEDGER_COLUMNS,
    DEAD_LETTER_TABLE: _DEAD_LETTER_COLUMNS,
    INCIDENT_TABLE: _INCIDENT_COLUMNS,
    HISTORY_INDEX_TABLE: _HISTORY_INDEX_COLUMNS,
}


@dataclass(frozen=True)
class LedgerEntry:
    pipeline: str
    partition_key: str
    partition_start: datetime | None
    partition_end: datetime | None
    flow_run_id: str
    run_tag: str
    code_version: str
    contract_hash: str
    row_count: int
    rejected_rows: int
    status: Status
    check_results: list[CheckOutcome]
    message: str
    started_at: datetime
    finished_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    entry_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    restored_entry_id: str | None = None

    def as_row(self) -> list[Any]:
        """The values in `_LEDGER_COLUMNS` order, check results as JSON text."""
        values = asdict(self) | {"check_results": json.dumps([check.as_row() for check in self.check_results])}
        return [values[column] for column in _LEDGER_COLUMNS]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> LedgerEntry:
        """The inverse of `as_row`: a row read back in `_LEDGER_COLUMNS` order."""
        values = dict(zip(_LEDGER_COLUMNS, row, strict=True))
        checks = [CheckOutcome(**check) for check in json.loads(values["check_results"])]
        return cls(**values | {"check_results": checks})


def missing_platform_tables(warehouse: Warehouse) -> list[str]:
    """The platform tables not yet in the warehouse (one catalog query), in creation order."""
    existing = set(warehouse.list_tables(PLATFORM_SCHEMA))
    return [table for table in PLATFORM_TABLES if table not in existing]


def record(warehouse: Warehouse, entry: LedgerEntry) -> None:
    placeholders = ", ".join("?" for _ in _LEDGER_COLUMNS)
    warehouse.execute(
        f"INSERT INTO {warehouse.qualified(PLATFORM_SCHEMA, LEDGER_TABLE)} ({', '.join(_LEDGER_COLUMNS)}) "
        f"VALUES ({placeholders})",
        entry.as_row(),
    )


def recorded_run_tags(warehouse: Warehouse, pipeline: str, partition_key: str) -> set[str]:
    rows = warehouse.fetch_all(
        f"SELECT run_tag FROM {warehouse.qualified(PLATFORM_SCHEMA, LEDGER_TABLE)} "
        "WHERE pipeline = ? AND partition_key = ?",
        [pipeline, partition_key],
    )
    return {row[0] for row in rows}


def entries(warehouse: Warehouse, pipeline: str) -> list[LedgerEntry]:
    """Ledger rows of a pipeline, newest first, typed as they were written (check results decoded)."""
    rows = warehouse.fetch_all(
        f"SELECT {', '.join(_LEDGER_COLUMNS)} FROM {warehouse.qualified(PLATFORM_SCHEMA, LEDGER_TABLE)} "
        "WHERE pipeline = ? ORDER BY finished_at DESC",
        [pipeline],
    )
    return [LedgerEntry.from_row(row) for row in rows]


def published_row_counts_before(
    warehouse: Warehouse, pipeline: str, partition_start: datetime, limit: int
) -> list[int]:
    """Row counts of the `limit` latest published partitions that start before `partition_start` (newest first).

    The volume baseline: each partition counts once, with its latest publish (or the rollback that restored an
    earlier one: its row count is the restored rows').
    """
    table = warehouse.qualified(PLATFORM_SCHEMA, LEDGER_TABLE)
    rows = warehouse.fetch_all(
        f"SELECT row_count FROM (SELECT partition_start, row_count, ROW_NUMBER() OVER "
        f"(PARTITION BY partition_key ORDER BY finished_at DESC) AS newest FROM {table} "
        "WHERE pipeline = ? AND status IN (?, ?) AND partition_start < ?) AS latest "
        "WHERE newest = 1 ORDER BY partition_start DESC LIMIT ?",
        [pipeline, *PUBLISHED, partition_start, limit],
    )
    return [row[0] for row in rows]


def published_times(warehouse: Warehouse, pipeline: str, since: datetime) -> list[datetime]:
    """When the pipeline published (one instant per publishing flow run) since `since`, oldest first.

    The latest publish before `since` is included too: it decides whether the pipeline was fresh at `since`.
    A run publishing several partitions writes one row each, all in one transaction: the latest is its instant.
    A publish a rollback undid does not count, nor does the rollback itself: freshness then judges the restored
    publish, by the time it was made (`undone_entries`).
    """
    rows = warehouse.fetch_all(
        f"SELECT entry_id, partition_key, flow_run_id, status, finished_at, restored_entry_id "
        f"FROM {warehouse.qualified(PLATFORM_SCHEMA, LEDGER_TABLE)} WHERE pipeline = ? AND status IN (?, ?)",
        [pipeline, *PUBLISHED],
    )
    changes = [PublishedChange(*row) for row in rows]
    undone = undone_entries(changes)
    by_run: dict[str, datetime] = {}
    for change in changes:
        if change.status == "published" and change.entry_id not in undone and change.finished_at is not None:
            finished = change.finished_at.astimezone(UTC)
            by_run[change.flow_run_id] = max(finished, by_run.get(change.flow_run_id, finished))
    before = [instant for instant in by_run.values() if instant < since]
    return sorted([instant for instant in by_run.values() if instant >= since] + ([max(before)] if before else []))


@dataclass(frozen=True)
class PublishedChange:
    """A ledger row that changed a partition's published rows: a publish or a rollback."""

    entry_id: str
    partition_key: str
    flow_run_id: str
    status: str
    finished_at: datetime
    restored_entry_id: str | None


def undone_entries(changes: Sequence[PublishedChange]) -> set[str]:
    """The entries whose rows a later rollback of their partition replaced with an earlier entry's.

    In time order per partition: a rollback restoring P undoes every entry between P and itself, and P counts
    again (a rollback may restore an entry an earlier rollback undid).
    """
    undone: set[str] = set()
    by_partition: dict[str, list[PublishedChange]] = {}
    for change in sorted(changes, key=lambda change: change.finished_at):
        by_partition.setdefault(change.partition_key, []).append(change)
    for sequence in by_partition.values():
        for position, change in enumerate(sequence):
            if change.status != "rolled_back":
                continue
            ids = [earlier.entry_id for earlier in sequence[:position]]
            restored = ids.index(change.restored_entry_id) if change.restored_entry_id in ids else -1
            undone.update(ids[restored + 1 :])
            undone.discard(change.restored_entry_id or "")
    return undone


def recent_successful_runs(warehouse: Warehouse, pipeline: str, limit: int) -> list[PastRun]:
    """The `limit` latest publishing runs of the pipeline (newest first): how long each took, for how many partitions.

    A run's rows share its start (`started_at` is the flow's start) and were all written by its publish.
    """
    rows = warehouse.fetch_all(
        f"SELECT min(started_at), max(finished_at), count(*) FROM {warehouse.qualified(PLATFORM_SCHEMA, LEDGER_TABLE)} "
        "WHERE pipeline = ? AND status = 'published' GROUP BY flow_run_id ORDER BY max(finished_at) DESC LIMIT ?",
        [pipeline, limit],
    )
    return [PastRun(duration=finished - started, partitions=int(count)) for started, finished, count in rows]


def write_dead_letters(
    warehouse: Warehouse, pipeline: str, partition_key: str, run_tag: str, rejected: list[RejectedRow]
) -> None:
    """Keep every rejected row with its reason, through the bulk path (a bad file can reject millions)."""
    if not rejected:
        return
    count = len(rejected)
    schema = pa.schema([(name, ColumnType.parse(kind).arrow) for name, kind in _DEAD_LETTER_COLUMNS.items()])
    batch = pa.record_batch(
        [
            pa.array([pipeline] * count),
            pa.array([partition_key] * count),
            pa.array([run_tag] * count),
            pa.array([row.row_number for row in rejected], pa.int64()),
            pa.array([row.reason for row in rejected]),
            pa.array([row.raw_record for row in rejected]),
            pa.array([datetime.now(UTC)] * count, schema.field("created_at").type),
        ],
        schema=schema,
    )
    warehouse.append_arrow(PLATFORM_SCHEMA, DEAD_LETTER_TABLE, pa.RecordBatchReader.from_batches(schema, [batch]))


def carry_over_dead_letters(
    warehouse: Warehouse, pipeline: str, partition_key: str, from_tag: str, to_tag: str
) -> None:
    """A run re-using another run's raw data owns that load's rejects too, so publishing keeps them."""
    columns = ", ".join(_DEAD_LETTER_COLUMNS)
    copied = ", ".join("?" if name == "run_tag" else name for name in _DEAD_LETTER_COLUMNS)
    table = warehouse.qualified(PLATFORM_SCHEMA, DEAD_LETTER_TABLE)
    warehouse.execute(
        f"INSERT INTO {table} ({columns}) SELECT {copied} FROM {table} "
        "WHERE pipeline = ? AND partition_key = ? AND run_tag = ?",
        [to_tag, pipeline, partition_key, from_tag],
    )


def forget_superseded_dead_letters(warehouse: Warehouse, pipeline: str, partition_key: str, run_tag: str) -> None:
    """On publish, earlier runs' rejects of the partition are superseded: re-runs never duplicate them."""
    warehouse.execute(
        f"DELETE FROM {warehouse.qualified(PLATFORM_SCHEMA, DEAD_LETTER_TABLE)} "
        "WHERE pipeline = ? AND partition_key = ? AND run_tag <> ?",
        [pipeline, partition_key, run_tag],
    )
