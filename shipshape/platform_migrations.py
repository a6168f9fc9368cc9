"""The history of the platform's own tables (ledger, dead letters, incidents, history index), one migration each.

A warehouse records the migrations it ran (`platform.schema_version`); `shipshape.platform_schema` runs the ones
after its last, each once. A released migration is never edited: every existing warehouse already ran it. So a
migration keeps its own frozen copy of what it creates — `shipshape.ledger`'s column lists are what the code reads
and writes now, and a later change to them is a new migration (ALTER TABLE … ADD COLUMN), not an edit of
migration 1. `tests/integration/test_platform_schema.py` checks that the migrated tables hold exactly those columns.

To change a platform table (a ledger column, the history table): append `Migration(<next version>, "<what>",
<function of the warehouse>)` to `MIGRATIONS`. Statements whose text differs per engine go through an adapter
method (`Warehouse.create_index`, `create_table`, …) or a `Capabilities` flag, never a branch on the engine here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shipshape.column_types import ColumnType
from shipshape.ledger import DEAD_LETTER_TABLE, HISTORY_INDEX_TABLE, INCIDENT_TABLE, LEDGER_TABLE, USAGE_SAMPLE_TABLE
from shipshape.warehouses import PLATFORM_SCHEMA, Warehouse


@dataclass(frozen=True)
class Migration:
    version: int
    description: str  # stored with the version row: what a reader of the warehouse sees it ran
    apply: Callable[[Warehouse], None]  # runs inside the migration's transaction, under the platform schema lock


# The tables exactly as the release before schema versions created them (`ensure_platform_tables`); frozen.
RELEASE_1_TABLES: dict[str, dict[str, str]] = {
    LEDGER_TABLE: {
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
    },
    DEAD_LETTER_TABLE: {
        "pipeline": "text",
        "partition_key": "text",
        "run_tag": "text",
        "row_number": "bigint",
        "reason": "text",
        "raw_record": "text",
        "created_at": "timestamptz",
    },
    INCIDENT_TABLE: {
        "pipeline": "text",
        "kind": "text",
        "is_open": "boolean",
        "changed_at": "timestamptz",
        "detail": "text",
    },
}


def _create_release_1_tables(warehouse: Warehouse) -> None:
    """Each table of release 1 that is missing. A warehouse that release created has them all, so there this
    changes nothing: it is recognised as version 1 as it stands (`platform_schema.installed_version`)."""
    existing = set(warehouse.list_tables(PLATFORM_SCHEMA))
    for table, columns in RELEASE_1_TABLES.items():
        if table not in existing:
            warehouse.create_table(
                PLATFORM_SCHEMA, table, {name: ColumnType.parse(kind) for name, kind in columns.items()}
            )


@dataclass(frozen=True)
class _Index:
    table: str
    name: str
    columns: tuple[str, ...]


# Every read of a pipeline's ledger filters on `pipeline` first; without an index each one scans the whole history
# (`make bench-ledger`). Incidents hold one row per pipeline and kind: too few to need one.
_HOT_QUERY_INDEXES = (
    # backfill planning (`ledger.entries`, newest first), freshness and SLOs (`published_times`), the derived run
    # timeout (`recent_successful_runs`): one pipeline's rows, by when they finished.
    _Index(LEDGER_TABLE, "publish_ledger_pipeline_finished_at", ("pipeline", "finished_at")),
    # re-run planning (`recorded_run_tags`) and the volume baseline (`published_row_counts_before`): one partition.
    _Index(LEDGER_TABLE, "publish_ledger_pipeline_partition", ("pipeline", "partition_key")),
    # every publish deletes the partition's superseded rejects (`forget_superseded_dead_letters`), reuse_raw copies.
    _Index(DEAD_LETTER_TABLE, "dead_letters_pipeline_partition", ("pipeline", "partition_key")),
)


def _index_hot_queries(warehouse: Warehouse) -> None:
    for index in _HOT_QUERY_INDEXES:
        warehouse.create_index(PLATFORM_SCHEMA, index.table, index.name, index.columns)


# Frozen: what keeping history and rolling back added (`shipshape.history`, `shipshape.rollback`).
_RESTORED_ENTRY_COLUMN = ("restored_entry_id", "text")  # a `rolled_back` ledger row: the entry it restored
_HISTORY_INDEX_COLUMNS = {  # one row per kept `history.h_<entry id>` table
    "entry_id": "text",
    "pipeline": "text",
    "partition_key": "text",
    "row_count": "bigint",
    "created_at": "timestamptz",
    "expires_at": "timestamptz",
}


def _keep_history(warehouse: Warehouse) -> None:
    """The ledger learns which entry a rollback restored, and kept history gets its index of tables; the monitor
    prunes by expiry, rollback looks up one entry."""
    column, kind = _RESTORED_ENTRY_COLUMN
    warehouse.add_column(PLATFORM_SCHEMA, LEDGER_TABLE, column, warehouse.ddl_type(ColumnType.parse(kind)))
    warehouse.create_table(
        PLATFORM_SCHEMA,
        HISTORY_INDEX_TABLE,
        {name: ColumnType.parse(kind) for name, kind in _HISTORY_INDEX_COLUMNS.items()},
    )
    warehouse.create_index(PLATFORM_SCHEMA, HISTORY_INDEX_TABLE, "publish_history_entry", ("entry_id",))
    warehouse.create_index(PLATFORM_SCHEMA, HISTORY_INDEX_TABLE, "publish_history_expires_at", ("expires_at",))


# Frozen: which published table a ledger row is about (`destination.version` publishes `<table>_vN`).
_DESTINATION_COLUMN = ("destination", "text")


def _ledger_names_destination(warehouse: Warehouse) -> None:
    """Each ledger row names the table it is about. Rows already there stay NULL: written before versions, they
    are about the pipeline's version-1 table (`ledger.PublishedTable`); nothing is rewritten, so this is instant
    on any ledger size."""
    column, kind = _DESTINATION_COLUMN
    warehouse.add_column(PLATFORM_SCHEMA, LEDGER_TABLE, column, warehouse.ddl_type(ColumnType.parse(kind)))


# Frozen: the monitor's samples of each pipeline's storage and reads (`shipshape.usage`).
_USAGE_SAMPLE_COLUMNS = {
    "pipeline": "text",
    "area": "text",  # published | audit | dead_letters | history
    "table_name": "text",  # `schema.table` of a published table; the area's tables in words otherwise
    "sampled_at": "timestamptz",
    "bytes": "bigint",  # NULL: the engine does not say
    "read_counter": "bigint",  # the engine's cumulative counter (published tables); NULL: unknown
    "read_method": "text",  # statements | scans | NULL
}


def _sample_usage(warehouse: Warehouse) -> None:
    """The monitor's samples of storage and reads: cost and value per pipeline and month come from them."""
    warehouse.create_table(
        PLATFORM_SCHEMA,
        USAGE_SAMPLE_TABLE,
        {name: ColumnType.parse(kind) for name, kind in _USAGE_SAMPLE_COLUMNS.items()},
    )
    warehouse.create_index(PLATFORM_SCHEMA, USAGE_SAMPLE_TABLE, "usage_samples_pipeline_sampled_at",
                           ("pipeline", "sampled_at"))


# Frozen: each partition's scan counter, with a sample of a partitioned table (`usage.Sample.partition_counters`).
_PARTITION_READ_COUNTERS_COLUMN = ("partition_read_counters", "text")  # JSON {"<partition oid>": scans}; NULL: none


def _sample_partition_scans(warehouse: Warehouse) -> None:
    """Samples keep a partitioned table's scans per partition: without `pg_stat_statements` its reads come from the
    partitions two samples share (`shipshape.usage`). Rows already there stay NULL (their reads stay unknown)."""
    column, kind = _PARTITION_READ_COUNTERS_COLUMN
    warehouse.add_column(PLATFORM_SCHEMA, USAGE_SAMPLE_TABLE, column, warehouse.ddl_type(ColumnType.parse(kind)))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "ledger, dead letters and incidents as release 1 created them", _create_release_1_tables),
    Migration(2, "indexes for the ledger's and dead letters' per-pipeline reads", _index_hot_queries),
    Migration(3, "kept history: the ledger's restored_entry_id and the publish_history index", _keep_history),
    Migration(4, "the ledger's destination: which published table (version) each entry is about",
              _ledger_names_destination),
    Migration(5, "usage samples: storage and read counters of each pipeline's tables", _sample_usage),
    Migration(6, "usage samples: a partitioned table's scan counters per partition", _sample_partition_scans),
)
"""In version order, 1, 2, 3 …: the code needs the last one."""
