"""The warehouse interface: the shared logic lives here, each engine adds only its differences.

Callers branch on `capabilities`, never on an engine name, and never see driver exceptions:
adapters translate them into `TransientError` (retry) or `WarehouseError` (stop).
SQL in this module uses `?` placeholders; adapters translate to their driver's style. The SQL here is the
portable default (DuckDB and PostgreSQL both run it); an adapter overrides a method only where its dialect differs.
What every adapter must do is pinned by `tests/integration/test_warehouse_conformance.py`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, ClassVar, Self

import pyarrow as pa

from shipshape.column_types import ColumnType
from shipshape.errors import ShipshapeError, WarehouseError
from shipshape.names import AUDIT_SCHEMA, HISTORY_SCHEMA, PLATFORM_SCHEMA
from shipshape.schema_evolution import ColumnShape, widens
from shipshape.warehouses.capabilities import Capabilities
from shipshape.warehouses.locks import AdvisoryLocks, LockClaim
from shipshape.warehouses.roles import RoleStatements
from shipshape.warehouses.usage_stats import UsageStatistics

if TYPE_CHECKING:
    from shipshape.audit import SodaTarget

__all__ = ["AUDIT_SCHEMA", "HISTORY_SCHEMA", "PLATFORM_SCHEMA", "Warehouse"]


class Warehouse(RoleStatements, UsageStatistics, ABC):
    """One connection to one warehouse; not shared between threads."""

    capabilities: ClassVar[Capabilities]
    _process_locks: ClassVar[dict[str, threading.Lock]] = {}
    _process_locks_guard: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    @abstractmethod
    def from_url(cls, url: str) -> Self:
        """Connect to the warehouse a URL of one of this adapter's schemes names (see `shipshape.warehouses`)."""

    @classmethod
    @abstractmethod
    def connection_url(cls, host: str, port: int, database: str, user: str, password: str) -> str:
        """The URL `from_url` accepts for a connection block's fields; only ever handed to drivers, never logged."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement; `?` marks parameters."""

    def execute_one(self, sql: str) -> None:
        """Run `sql`, which must be exactly one statement: the engine itself refuses a second one.

        For statements that embed user SQL (`create_table_as`): `shipshape.user_sql` already refused a second
        statement, and this is the engine-side layer under it, for the day a parser and an engine disagree.
        """
        self.execute(sql)

    @abstractmethod
    def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside commit together or not at all."""

    @abstractmethod
    def _load_batches(self, schema: str, table: str, batches: pa.RecordBatchReader) -> None:
        """Bulk-load the batches into an existing table (never row-by-row); `append_arrow` is how callers reach it."""

    @abstractmethod
    def ddl_type(self, column_type: ColumnType) -> str: ...

    @abstractmethod
    def soda_target(self) -> SodaTarget:
        """What `shipshape.audit.verify_contract` needs to reach this warehouse (the engine's Soda data source)."""

    # --- shared logic -------------------------------------------------------------------------

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @staticmethod
    def quote(identifier: str) -> str:
        return '"' + identifier.replace('"', '""') + '"'

    def qualified(self, schema: str, table: str) -> str:
        return f"{self.quote(schema)}.{self.quote(table)}"

    def append_arrow(self, schema: str, table: str, batches: pa.RecordBatchReader) -> None:
        """Bulk-load a stream of batches into an existing table; if the stream itself fails, raise its error as is.

        The stream is produced while the load runs (a source read page by page), so a source fault — an API
        answering 503 after its client's own retries, a lost connection, a 4xx — is raised inside the driver.
        Each driver reports it as one of its own errors, its class gone and a Python traceback pasted into its
        text, which the adapter would then translate into a terminal `WarehouseError`: a transient source fault
        would never be retried. The original exception is kept here, where the stream is handed over, rather than
        in each adapter's error translation, because only this seam can tell "the stream failed" from "the
        warehouse refused" without parsing driver messages, and so every adapter behaves alike.

        A load that ends without error over a stream that failed raises the stream's error too: the table does
        not hold everything the stream was meant to deliver.
        """
        stream = _FailureKeepingStream(batches)
        try:
            self._load_batches(schema, table, stream.reader)
        except Exception:
            if stream.failure is None:
                raise
        if stream.failure is not None:
            # Raised outside the `except`, so it is the source's error with its own cause, not chained to the
            # driver's restatement of it.
            raise stream.failure

    def schema_exists(self, schema: str) -> bool:
        return bool(self.fetch_all("SELECT 1 FROM information_schema.schemata WHERE schema_name = ?", [schema]))

    def ensure_schema(self, schema: str) -> None:
        """Create the schema only if it is missing.

        PostgreSQL checks the CREATE privilege before IF NOT EXISTS, so a role that may only use an
        existing schema (the least-privilege loader) would be refused even though nothing needs creating.
        """
        if not self.schema_exists(schema):
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {self.quote(schema)}")

    def create_table(self, schema: str, table: str, columns: dict[str, ColumnType], *, scratch: bool = False) -> None:
        """(Re)create a table with declared types; `scratch` tables skip durability where the engine allows."""
        body = ", ".join(f"{self.quote(name)} {self.ddl_type(kind)}" for name, kind in columns.items())
        unlogged = "UNLOGGED " if scratch and self.capabilities.supports_unlogged_tables else ""
        self.execute(f"DROP TABLE IF EXISTS {self.qualified(schema, table)}")
        self.execute(f"CREATE {unlogged}TABLE {self.qualified(schema, table)} ({body})")

    def create_table_as(self, schema: str, table: str, select_sql: str, *, scratch: bool = False) -> None:
        unlogged = "UNLOGGED " if scratch and self.capabilities.supports_unlogged_tables else ""
        self.execute(f"DROP TABLE IF EXISTS {self.qualified(schema, table)}")
        self.execute_one(f"CREATE {unlogged}TABLE {self.qualified(schema, table)} AS {select_sql}")

    def drop_table(self, schema: str, table: str) -> None:
        self.execute(f"DROP TABLE IF EXISTS {self.qualified(schema, table)}")

    def list_tables(self, schema: str) -> list[str]:
        rows = self.fetch_all(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY table_name", [schema]
        )
        return [row[0] for row in rows]

    def table_exists(self, schema: str, table: str) -> bool:
        return table in self.list_tables(schema)

    def create_index(self, schema: str, table: str, name: str, columns: Sequence[str]) -> None:
        """A b-tree index on `columns` unless one of that name exists (portable: both engines take this text)."""
        listed = ", ".join(self.quote(column) for column in columns)
        self.execute(f"CREATE INDEX IF NOT EXISTS {self.quote(name)} ON {self.qualified(schema, table)} ({listed})")

    @abstractmethod
    def index_names(self, schema: str, table: str) -> list[str]:
        """The table's indexes by name, sorted (the catalog holding them is each engine's own)."""

    def table_columns(self, schema: str, table: str) -> list[str]:
        rows = self.fetch_all(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position",
            [schema, table],
        )
        return [row[0] for row in rows]

    def plain_table_problem(self, schema: str, table: str) -> str | None:
        """None if reading `schema.table` runs nobody's code: a plain table; otherwise what it is instead.

        The publisher reads the loader's transform output with its own rights, so a view (or anything else that
        runs code when read) there would run the loader's SQL as the publisher. Call it inside the publish
        transaction, before the first read; an engine that can change a relation under a reader locks it here.
        DuckDB runs no code when a base table is read; PostgreSQL overrides this with its further checks.
        """
        rows = self.fetch_all(
            "SELECT table_type FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        )
        if not rows:
            return "does not exist"
        return None if rows[0][0] == "BASE TABLE" else f"is a {str(rows[0][0]).lower()}, not a plain table"

    def row_count(self, schema: str, table: str) -> int:
        return int(self.fetch_all(f"SELECT count(*) FROM {self.qualified(schema, table)}")[0][0])

    def table_bytes(self, schema: str, table: str) -> int | None:
        """Bytes the table (with its indexes and TOAST) takes on disk; None where the engine does not say per table
        (DuckDB reports only its file's size). What history costs is measured with it (`make bench`)."""
        return None

    # --- DDL on a published table: one method each. An engine with roles may route them through its owner role
    # (PostgreSQL, once `make apply` installed `PUBLISHED_TABLE_FUNCTIONS`); here they run as the connection. ---

    def create_published_table(self, schema: str, table: str, source_schema: str, source_table: str) -> None:
        """Create `schema.table` empty with the source's columns and types, unless it exists (first publish)."""
        self.execute(
            f"CREATE TABLE IF NOT EXISTS {self.qualified(schema, table)} AS "
            f"SELECT * FROM {self.qualified(source_schema, source_table)} WHERE 1 = 0"
        )

    def add_published_columns(self, schema: str, table: str, source_schema: str, source_table: str) -> None:
        """Add every column of the source that `schema.table` lacks, with the source's type; existing rows read NULL."""
        present = set(self.table_columns(schema, table))
        for column, ddl_type in self._ddl_types(source_schema, source_table).items():
            if column not in present:
                self.add_column(schema, table, column, ddl_type)

    def add_column(self, schema: str, table: str, column: str, ddl_type: str) -> None:
        """A new column that every existing row reads as NULL (both engines take this text)."""
        self.execute(f"ALTER TABLE {self.qualified(schema, table)} ADD COLUMN {self.quote(column)} {ddl_type}")

    def widen_published_column(
        self, schema: str, table: str, column: str, source_schema: str, source_table: str
    ) -> None:
        """Give `column` the source column's type, which must widen it (`shipshape.schema_evolution.widens`)."""
        old = {shape.name: shape for shape in self.column_shapes(schema, table)}.get(column)
        new = {shape.name: shape for shape in self.column_shapes(source_schema, source_table)}.get(column)
        if old is None or new is None or not widens(old, new):
            raise WarehouseError(
                f"{schema}.{table}.{column}: the type of {source_schema}.{source_table}.{column} does not widen it "
                f"({old.type_text if old else 'no such column'} → {new.type_text if new else 'no such column'})"
            )
        ddl_type = self._ddl_types(source_schema, source_table)[column]
        self.execute(f"ALTER TABLE {self.qualified(schema, table)} ALTER COLUMN {self.quote(column)} TYPE {ddl_type}")

    def column_shapes(self, schema: str, table: str) -> list[ColumnShape]:
        """The table's columns as `information_schema.columns` describes them on every engine, in table order."""
        rows = self.fetch_all(
            "SELECT column_name, data_type, character_maximum_length, numeric_precision, numeric_scale "
            "FROM information_schema.columns WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [schema, table],
        )
        shapes = []
        for name, data_type, length, precision, scale in rows:
            family = str(data_type).split("(", 1)[0].strip().lower()  # DuckDB spells `DECIMAL(12,2)`
            sized = family in ("numeric", "decimal")
            shapes.append(ColumnShape(name, family, length, precision if sized else None, scale if sized else None))
        return shapes

    def _ddl_types(self, schema: str, table: str) -> dict[str, str]:
        """Each column's type as DDL spells it; `information_schema.columns.data_type` is that on DuckDB
        (`DECIMAL(12,2)`); an engine that drops the sizes there overrides this."""
        rows = self.fetch_all(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position",
            [schema, table],
        )
        return {str(name): str(data_type) for name, data_type in rows}

    # --- publish DML: what replacing a partition, merging keys or replacing everything is made of ---------------

    def _range_condition(self, column: str) -> str:
        """Rows of one partition's window: `column` in [?, ?)."""
        return f"{self.quote(column)} >= ? AND {self.quote(column)} < ?"

    def _matching_keys_condition(self, source_schema: str, source_table: str, keys: Sequence[str]) -> str:
        """Rows (aliased `t`) whose `keys` match a row of the source: the rows a merge replaces."""
        matches = " AND ".join(f"s.{self.quote(key)} = t.{self.quote(key)}" for key in keys)
        return f"EXISTS (SELECT 1 FROM {self.qualified(source_schema, source_table)} AS s WHERE {matches})"

    def delete_range(self, schema: str, table: str, column: str, start: object, end: object) -> None:
        """Delete the rows whose `column` lies in [start, end): one partition's window."""
        self.execute(f"DELETE FROM {self.qualified(schema, table)} WHERE {self._range_condition(column)}", [start, end])

    def delete_matching_keys(
        self, schema: str, table: str, source_schema: str, source_table: str, keys: Sequence[str]
    ) -> None:
        """Delete the rows whose `keys` match a row of the source: the rows a merge replaces."""
        condition = self._matching_keys_condition(source_schema, source_table, keys)
        self.execute(f"DELETE FROM {self.qualified(schema, table)} AS t WHERE {condition}")

    def count_range(self, schema: str, table: str, column: str, start: object, end: object) -> int:
        """How many rows `delete_range` with the same arguments would delete."""
        condition = self._range_condition(column)
        rows = self.fetch_all(f"SELECT count(*) FROM {self.qualified(schema, table)} WHERE {condition}", [start, end])
        return int(rows[0][0])

    def count_matching_keys(
        self, schema: str, table: str, source_schema: str, source_table: str, keys: Sequence[str]
    ) -> int:
        """How many rows `delete_matching_keys` with the same arguments would delete."""
        condition = self._matching_keys_condition(source_schema, source_table, keys)
        rows = self.fetch_all(f"SELECT count(*) FROM {self.qualified(schema, table)} AS t WHERE {condition}")
        return int(rows[0][0])

    # --- history: what a publish replaces, kept in a table of its own for `shipshape rollback` ---------------

    def snapshot_range(self, schema: str, table: str, column: str, start: object, end: object, into: str) -> None:
        """Copy the rows `delete_range` with the same arguments would delete into the new history table `into`."""
        self._snapshot(schema, table, self._range_condition(column), [start, end], into)

    def snapshot_matching_keys(
        self, schema: str, table: str, source_schema: str, source_table: str, keys: Sequence[str], into: str
    ) -> None:
        """Copy the rows `delete_matching_keys` with the same arguments would delete into the history table `into`."""
        self._snapshot(schema, table, self._matching_keys_condition(source_schema, source_table, keys), [], into)

    def snapshot_all(self, schema: str, table: str, into: str) -> None:
        """Copy every row (what `delete_all` deletes) into the new history table `into`."""
        self._snapshot(schema, table, "true", [], into)

    def _snapshot(self, schema: str, table: str, condition: str, params: Sequence[object], into: str) -> None:
        """One `CREATE TABLE … AS SELECT` per publish: the table holds exactly the columns the rows had then, so
        a rollback after a schema change restores them by name (new columns NULL), and pruning is one DROP."""
        self.execute(
            f"CREATE TABLE {self.qualified(HISTORY_SCHEMA, into)} AS "
            f"SELECT * FROM {self.qualified(schema, table)} AS t WHERE {condition}",
            params,
        )

    def count_null_keys(self, schema: str, table: str, keys: Sequence[str]) -> int:
        """Rows with any of `keys` NULL: `delete_matching_keys` can never match them (`=` is never true for NULL)."""
        nulls = " OR ".join(f"{self.quote(key)} IS NULL" for key in keys)
        rows = self.fetch_all(f"SELECT count(*) FROM {self.qualified(schema, table)} WHERE {nulls}")
        return int(rows[0][0])

    def count_repeated_keys(self, schema: str, table: str, keys: Sequence[str]) -> tuple[int, int]:
        """(keys, rows): how many non-NULL values of `keys` occur on more than one row, and on how many rows."""
        listed = ", ".join(self.quote(key) for key in keys)
        present = " AND ".join(f"{self.quote(key)} IS NOT NULL" for key in keys)
        rows = self.fetch_all(
            f"SELECT count(*), coalesce(sum(copies), 0) FROM (SELECT count(*) AS copies "
            f"FROM {self.qualified(schema, table)} WHERE {present} GROUP BY {listed} HAVING count(*) > 1) AS repeats"
        )
        return int(rows[0][0]), int(rows[0][1])

    def delete_all(self, schema: str, table: str) -> None:
        """Empty the table inside the caller's transaction (unlike TRUNCATE on some engines, DELETE is MVCC-safe)."""
        self.execute(f"DELETE FROM {self.qualified(schema, table)}")

    def insert_from(
        self, schema: str, table: str, source_schema: str, source_table: str, columns: Sequence[str]
    ) -> None:
        """Copy every row of the source into the table, matching columns by name (their order may differ)."""
        listed = ", ".join(self.quote(column) for column in columns)
        self.execute(
            f"INSERT INTO {self.qualified(schema, table)} ({listed}) "
            f"SELECT {listed} FROM {self.qualified(source_schema, source_table)}"
        )

    def conditional_update(
        self, schema: str, table: str, key: Mapping[str, object], values: Mapping[str, object], compared: Sequence[str]
    ) -> bool:
        """Set `values` on the row matching `key` if any `compared` column differs from its new value.

        Returns whether a row changed. One statement, so of two sessions making the same change at the same moment
        exactly one is told it did (the other's row no longer differs once the first commits). Uses RETURNING
        (`capabilities.supports_returning`); an engine without it overrides this method.
        """
        assignments = ", ".join(f"{self.quote(column)} = ?" for column in values)
        matches = " AND ".join(f"{self.quote(column)} = ?" for column in key)
        differs = " OR ".join(f"{self.quote(column)} IS DISTINCT FROM ?" for column in compared)
        changed = self.fetch_all(
            f"UPDATE {self.qualified(schema, table)} SET {assignments} WHERE {matches} AND ({differs}) RETURNING 1",
            [*values.values(), *key.values(), *(values[column] for column in compared)],
        )
        return bool(changed)

    @contextmanager
    def exclusive(self, names: Sequence[str]) -> Iterator[bool]:
        """Hold named locks for the block; yields False (holding none) if any is already held elsewhere.

        A refused caller gives back the locks it took before yielding, so while it reports the refusal another
        run can already take them.

        Locks are taken in sorted order so two runs over overlapping ranges cannot deadlock.
        Within a process a thread lock guards each name; across processes the engine's own advisory
        lock does (`capabilities.supports_advisory_locks`), and the engine releases it if this process
        dies (SIGKILL included). An engine without advisory locks must keep other processes out itself
        (DuckDB: one process per file).
        """
        held: list[str] = []
        acquired = True
        try:
            for name in sorted(set(names)):
                if not self._take(name):
                    acquired = False
                    self._release_all(held)
                    break
                held.append(name)
            yield acquired
        except BaseException:
            # The block's own error says what went wrong. Releasing fails when the connection is gone (the
            # database crashed or restarted): the engine then dropped the locks with the session, and the
            # "while running: pg_advisory_unlock" error would only hide the real one.
            with suppress(ShipshapeError):
                self._release_all(held)
            raise
        self._release_all(held)

    def _advisory_locks(self) -> AdvisoryLocks | None:
        """This adapter's cross-process locks when it declares `supports_advisory_locks` (and implements them)."""
        return self if self.capabilities.supports_advisory_locks and isinstance(self, AdvisoryLocks) else None

    def hold_until_commit(self, name: str) -> None:
        """Wait for the named lock, inside the open transaction, and hold it until that transaction ends.

        Serialises work on one object across processes: two first publishes of a table would otherwise both create
        it, and PostgreSQL answers the second with a unique violation on its own catalog. The engine releases the
        lock at commit, at rollback and when the session dies. An engine without advisory locks is opened by one
        process at a time, and a conflict between two of its own connections fails as a transient error, so it
        waits for nothing here.
        """
        if (locks := self._advisory_locks()) is not None:
            locks._wait_for_transaction_lock(name)

    def claim(self, names: Sequence[str]) -> LockClaim:
        """What this connection holds through `exclusive(names)`, for `still_holds` to check from another connection."""
        locks = self._advisory_locks()
        return LockClaim(locks._lock_session() if locks is not None else None, tuple(sorted(set(names))))

    def still_holds(self, claim: LockClaim) -> bool:
        """Whether the claim's session is alive and holds all its locks; call it inside the transaction it guards.

        Across processes the engine answers. Where locks are only the process's own (`supports_advisory_locks`
        False), the claim has no session and there is nothing that could have dropped it: True.
        """
        locks = self._advisory_locks()
        if locks is None or claim.session is None:
            return True
        return locks._session_holds(claim.session, claim.names)

    def _release_all(self, held: list[str]) -> None:
        """Release in reverse order and forget them, so a second call releases nothing twice.

        Every one is released in this process even if the engine fails to release one (its first failure is
        raised afterwards): a name left taken here would refuse every later run of this process as busy."""
        failure: ShipshapeError | None = None
        while held:
            try:
                self._release(held.pop())
            except ShipshapeError as error:
                failure = failure or error
        if failure is not None:
            raise failure

    def _take(self, name: str) -> bool:
        with self._process_locks_guard:
            lock = self._process_locks.setdefault(name, threading.Lock())
        if not lock.acquire(blocking=False):
            return False
        if (locks := self._advisory_locks()) is not None and not locks._try_cross_process_lock(name):
            lock.release()
            return False
        return True

    def _release(self, name: str) -> None:
        try:
            if (locks := self._advisory_locks()) is not None:
                locks._release_cross_process_lock(name)
        finally:  # a failed release must not keep the name locked for every later run of this process
            self._process_locks[name].release()


class _FailureKeepingStream:
    """A reader over the same batches that remembers the first exception reading them raised."""

    def __init__(self, batches: pa.RecordBatchReader) -> None:
        self.failure: Exception | None = None
        self.reader = pa.RecordBatchReader.from_batches(batches.schema, self._batches(batches))

    def _batches(self, batches: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        try:
            yield from batches
        except Exception as error:  # GeneratorExit (the driver stopping early) is not a failure of the stream
            self.failure = error
            raise
