"""DuckDB: the embedded default — a file in the data folder, nothing to install or run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from shipshape.column_types import ColumnType
from shipshape.errors import TransientError, WarehouseError
from shipshape.warehouses.base import Capabilities, Warehouse


class DuckDBWarehouse(Warehouse):
    capabilities = Capabilities(supports_unlogged_tables=False)

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._connection = duckdb.connect(str(path))
        except duckdb.IOException as error:
            raise TransientError(
                f"DuckDB warehouse {path} is in use by another process ({error}). DuckDB allows one process "
                "at a time: wait for that run to finish, or use PostgreSQL for concurrent runs"
            ) from error
        self.execute("SET TimeZone = 'UTC'")
        self.path = path

    def close(self) -> None:
        self._connection.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with _translated(sql):
            self._connection.execute(sql, list(params) or None)

    def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with _translated(sql):
            return self._connection.execute(sql, list(params) or None).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def append_arrow(self, schema: str, table: str, batches: pa.RecordBatchReader) -> None:
        view = "_shipshape_batches"  # one connection is never shared between threads
        with _translated(f"bulk load into {schema}.{table}"):
            self._connection.register(view, batches)
            try:
                self._connection.execute(f"INSERT INTO {self.qualified(schema, table)} SELECT * FROM {view}")
            finally:
                self._connection.unregister(view)

    def ddl_type(self, column_type: ColumnType) -> str:
        return str(column_type).upper()

    def soda_target(self) -> Any:
        from shipshape.audit import DuckDBTarget

        return DuckDBTarget(self._connection)

    def _try_cross_process_lock(self, name: str) -> bool:
        """Nothing to do: DuckDB locks the database file itself, so no other process can write to it."""
        return True

    def _release_cross_process_lock(self, name: str) -> None:
        """Nothing to release: see `_try_cross_process_lock`."""


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except (duckdb.TransactionException, duckdb.IOException) as error:
        raise TransientError(f"DuckDB: {error} (while running: {what.strip()[:200]})") from error
    except duckdb.Error as error:
        raise WarehouseError(f"DuckDB: {error} (while running: {what.strip()[:200]})") from error
