"""The publish ledger and the dead-letter table: the platform's own records, kept in the warehouse.

The ledger records each publish and each blocked or failed attempt. Publish rows are written in
the same transaction as the data they describe, so the ledger can never claim a publish that did
not happen (or miss one that did). Freshness, backfill planning and SLOs read it. The tables are versioned:
`shipshape.platform_schema` creates and changes them, one migration at a time.

Each row names the table it is about (`destination`, `schema.table`): after `destination.version: 2` the pipeline
publishes `<table>_v2`, and backfill planning, the volume baseline, the run-timeout history, rollback and freshness
judge that table alone (`PublishedTable`). Rows written before platform migration 4 have no destination (NULL):
they are about the pipeline's version-1 table, the declared `schema.table`, which is the only table a pipeline
could publish then.
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
from shipshape.declaration import Pipeline
from shipshape.run_timeout import PastRun
from shipshape.warehouses import PLATFORM_SCHEMA, Warehouse

LEDGER_TABLE = "publish_ledger"
DEAD_LETTER_TABLE = "dead_letters"
INCIDENT_TABLE = "incidents"
HISTORY_INDEX_TABLE = "publish_history"
USAGE_SAMPLE_TABLE = "usage_samples"
"""What the monitor measured of each pipeline's tables each time it ran: bytes per area, read counters
(`shipshape.usage`)."""
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
    "destination": "text",  # the published table the entry is about, `schema.table`; NULL: the version-1 table
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
USAGE_SAMPLE_COLUMNS = {  # one row per pipeline, area (or published table) and monitor pass (shipshape/usage.py)
    "pipeline": "text",
    "area": "text",
    "table_name": "text",
    "sampled_at": "timestamptz",
    "bytes": "bigint",
    "read_counter": "bigint",
    "read_method": "text",
    "partition_read_counters": "text",
}
# What this code reads and writes; the tables themselves are made by migrations (`shipshape.platform_migrations`),
# and a test holds the migrated tables to exactly these columns.
PLATFORM_TABLES = {
    LEDGER_TABLE: _LEDGER_COLUMNS,
    DEAD_LETTER_TABLE: _DEAD_LETTER_COLUMNS,
    INCIDENT_TABLE: _INCIDENT_COLUMNS,
    HISTORY_INDEX_TABLE: _HISTORY_INDEX_COLUMNS,
    USAGE_SAMPLE_TABLE: USAGE_SAMPLE_COLUMNS,
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
    # Required of every writer (no default): `schema.table` the entry is about. Read back, None is a row written
    # before migration 4, about the pipeline's version-1 table.
    destination: str | None = field(kw_only=True)

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


@dataclass(frozen=True)
class PublishedTable:
    """The table a pipeline publishes now, as the ledger names it: the rows a reader of "this version" means.

    Backfill `missing`/`failed` of version 2 must not count days published to version 1, nor the volume baseline
    or the run-timeout history version 1's runs; so every read that judges the current table filters by it.
    """

    pipeline: str
    destination: str  # `schema.table` the current version publishes (`analytics.fct_orders_v2`)
    first_version: str  # `schema.table` of version 1: what a row without destination (before migration 4) is about

    @classmethod
    def of(cls, spec: Pipeline) -> PublishedTable:
        target = spec.destination
        return cls(
            spec.name,
            _ledger_name(target.schema_name, target.published_table),
            _ledger_name(target.schema_name, target.table),
        )


def _ledger_name(schema: str, table: str) -> str:
    """How a ledger row names its table: the same text on every engine, never quoted (a value, not SQL)."""
    return f"{schema}.{table}"


def _rows_of(about: str | PublishedTable) -> tuple[str, list[Any]]:
    """The WHERE condition and its parameters: a pipeline name means all its rows, a `PublishedTable` that table's."""
    if isinstance(about, str):
        return "pipeline = ?", [about]
    return "pipeline = ? AND COALESCE(destination, ?) = ?", [about.pipeline, about.first_version, about.destination]


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


def entries(warehouse: Warehouse, about: str | PublishedTable) -> list[LedgerEntry]:
    """Ledger rows newest first, typed as they were written (check results decoded): of every table of a pipeline
    (`about` its name: raw data re-use, listings) or of one published table (`PublishedTable`)."""
    condition, parameters = _rows_of(about)
    rows = warehouse.fetch_all(
        f"SELECT {', '.join(_LEDGER_COLUMNS)} FROM {warehouse.qualified(PLATFORM_SCHEMA, LEDGER_TABLE)} "
        f"WHERE {condition} ORDER BY finished_at DESC",
        parameters,
    )
    return [LedgerEntry.from_row(row) for row in rows]


def current_row_count(warehouse: Warehouse, about: PublishedTable, partition_key: str) -> int:
    """The rows the partition holds as the ledger counted them: those of its newest entry that changed them
    (`published` counts the audited rows it published, `rolled_back` the rows it restored); 0 if none did."""
    condition, parameters = _rows_of(about)
    statuses = ", ".join("?" for _ in PUBLISHED)
    rows = warehouse.fetch_all(
        f"SELECT row_count FROM {warehouse.qualified(PLATFORM_SCHEMA, LEDGER_TABLE)} WHERE {condition} "
        f"AND partition_key = ? AND status IN ({statuses}) ORDER BY finished_at DESC LIMIT 1",
        [*parameters, partition_key, *PUBLISHED],
    )
    return int(rows[0][0]) if rows else 0


def published_row_counts_before(
    warehouse: Warehouse, about: PublishedTable, partition_start: datetime, limit: int
) -> list[int]:
    """Row counts of the `limit` latest published partitions that start before `partition_start` (newest first).

    The volume baseline: each partition counts once, with its latest publish (or the rollback that restored an
    earlier one: its row count is the restored rows').
    """
    table = warehouse.qualified(PLATFORM_SCHEMA, LEDGER_TABLE)
    condition, parameters = _rows_of(about)
    rows = warehouse.fetch_all(
        f"SELECT row_count FROM (SELECT partition_start, row_count, ROW_NUMBER() OVER "
        f"(PARTITION BY partition_key ORDER BY finished_at DESC) AS newest FROM {table} "
        f"WHERE {condition} AND status IN (?, ?) AND partition_start < ?) AS latest "
        "WHERE newest = 1 ORDER BY partition_start DESC LIMIT ?",
        [*parameters, *PUBLISHED, partition_start, limit],
    )
    return [row[0] for row in rows]


def published_times(warehouse: Warehouse, about: PublishedTable, since: datetime) -> list[datetime]:
    """When the pipeline published its current table (one instant per publishing flow run) since `since`, oldest
    first. Right after a version bump the new table has no publish yet: stale until its backfill, which is honest.

    The latest publish before `since` is included too: it decides whether the pipeline was fresh at `since`.
    A run publishing several partitions writes one row each, all in one transaction: the latest is its instant.
    A publish a rollback undid does not count, nor does the rollback itself: freshness then judges the restored
    publish, by the time it was made (`undone_entries`).
    """
    condition, parameters = _rows_of(about)
    rows = warehouse.fetch_all(
        f"SELECT entry_id, partition_key, flow_run_id, status, finished_at, restored_entry_id "
        f"FROM {warehouse.qualified(PLATFORM_SCHEMA, LEDGER_TABLE)} WHERE {condition} AND status IN (?, ?)",
        [*parameters, *PUBLISHED],
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


def recent_successful_runs(warehouse: Warehouse, about: PublishedTable, limit: int) -> list[PastRun]:
    """The `limit` latest publishing runs of the current table (newest first): how long each took, for how many
    partitions.

    A run's rows share its start (`started_at` is the flow's start) and were all written by its publish.
    """
    condition, parameters = _rows_of(about)
    rows = warehouse.fetch_all(
        f"SELECT min(started_at), max(finished_at), count(*) FROM {warehouse.qualified(PLATFORM_SCHEMA, LEDGER_TABLE)} "
        f"WHERE {condition} AND status = 'published' GROUP BY flow_run_id ORDER BY max(finished_at) DESC LIMIT ?",
        [*parameters, limit],
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
