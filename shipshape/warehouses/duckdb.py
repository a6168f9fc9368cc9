"""DuckDB: the embedded default — a file in the data folder, nothing to install or run.

No session timeouts (`SessionTimeouts` is PostgreSQL's): DuckDB has no statement or lock timeout and no network
to wait on; locks are in-process. A long statement relies on the task's timeout, which takes effect once it returns.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from shipshape.column_types import ColumnType
from shipshape.errors import TransientError, WarehouseError
from shipshape.redact import redact_driver_error
from shipshape.warehouses.base import Warehouse
from shipshape.warehouses.capabilities import Capabilities
from shipshape.warehouses.duckdb_soda import DuckDBTarget

URL_PREFIX = "duckdb:///"

# Where DuckDB quotes a row's value: a failed cast (`Could not convert string '…' to INT64`,
# `invalid date field format: "…"`, `with value … can't be cast`) or a key (`Duplicate key "id: …"`).
_VALUE_ECHOES = (
    re.compile(r"Could not convert string (?P<quote>['\"])(?P<value>.*?)(?P=quote) to"),
    re.compile(r'field format: "(?P<value>[^"\n]*)"'),
    re.compile(r"with value (?P<value>.+?) can't be cast"),
    re.compile(r'Duplicate key "(?P<value>[^"\n]*)"'),
)

# Transform SQL runs on this connection with the platform's rights over the whole machine: without these it could
# read or write any file the worker can (`read_csv('/etc/passwd')`, COPY … TO, ATTACH) or fetch and load extensions.
# The platform itself only reads and writes tables of this file and hands over Arrow batches, which need none of it.
# Once off, DuckDB refuses to turn external access back on while the database is open. `lock_configuration` is not
# set: every connection of this process to the file shares one database, and a later one could not then set its
# time zone; a transform cannot issue SET anyway (`shipshape.user_sql`).
_CONFINED = (
    "SET enable_external_access = false",
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
)


class DuckDBWarehouse(Warehouse):
    capabilities = Capabilities(
        supports_unlogged_tables=False,
        supports_transactional_ddl=True,
        # One process per file (the file lock), so threads of that process are all there is to exclude.
        supports_advisory_locks=False,
        supports_roles=False,
        supports_returning=True,
        supports_merge=True,
        supports_partition_exchange=False,
        sql_dialect="duckdb",
    )

    @classmethod
    def from_url(cls, url: str) -> DuckDBWarehouse:
        """`duckdb:///<path to the file>`: relative after the third slash, absolute with a fourth."""
        return cls(Path(url.removeprefix(URL_PREFIX)))

    @classmethod
    def connection_url(cls, host: str, port: int, database: str, user: str, password: str) -> str:
        """DuckDB is a file, so `database` is its path; it has no server and no logins, so the rest is unused."""
        return f"{URL_PREFIX}{database}"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._connection = duckdb.connect(str(path))
        except duckdb.IOException as error:
            raise TransientError(
                redact_driver_error(
                    f"DuckDB warehouse {path} is in use by another process ({error}). DuckDB allows one process "
                    "at a time: wait for that run to finish, or use PostgreSQL for concurrent runs"
                )
            ) from error
        self.execute("SET TimeZone = 'UTC'")
        for setting in _CONFINED:
            self.execute(setting)
        self.path = path

    def close(self) -> None:
        self._connection.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with _translated(sql):
            self._connection.execute(sql, list(params) or None)

    def execute_one(self, sql: str) -> None:
        """DuckDB's `execute` runs every `;`-separated statement, so its own parser counts them first."""
        with _translated(sql):
            count = len(duckdb.extract_statements(sql))
        if count != 1:
            raise WarehouseError(f"DuckDB: expected exactly one statement, got {count} (while running: {sql[:200]})")
        self.execute(sql)

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

    def index_names(self, schema: str, table: str) -> list[str]:
        rows = self.fetch_all(
            "SELECT index_name FROM duckdb_indexes() WHERE schema_name = ? AND table_name = ? ORDER BY index_name",
            [schema, table],
        )
        return [row[0] for row in rows]

    def table_sizes(self, schema: str) -> dict[str, int]:
        """The blocks each table's column segments occupy in the file times the block size (`pragma_storage_info`).

        What DuckDB can say per table, and approximate: rows not yet checkpointed (still in the write-ahead log)
        count nothing, and small tables share blocks, so each of them counts a shared block in full. The file's
        size (`pragma_database_size`) is the exact total. DuckDB keeps no read statistics: reads stay unknown.
        """
        block_size = int(self.fetch_all("SELECT block_size FROM pragma_database_size()")[0][0])
        sizes = {}
        for table in self.list_tables(schema):
            qualified = self.qualified(schema, table).replace("'", "''")
            blocks = self.fetch_all(
                f"SELECT count(DISTINCT block_id) FROM pragma_storage_info('{qualified}') WHERE block_id >= 0"
            )
            sizes[table] = int(blocks[0][0]) * block_size
        return sizes

    def _load_batches(self, schema: str, table: str, batches: pa.RecordBatchReader) -> None:
        view = "_shipshape_batches"  # one connection is never shared between threads
        with _translated(f"bulk load into {schema}.{table}"):
            self._connection.register(view, batches)
            try:
                self._connection.execute(f"INSERT INTO {self.qualified(schema, table)} SELECT * FROM {view}")
            finally:
                self._connection.unregister(view)

    def ddl_type(self, column_type: ColumnType) -> str:
        return str(column_type).upper()

    def soda_target(self) -> DuckDBTarget:
        return DuckDBTarget(self._connection)


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except (duckdb.TransactionException, duckdb.IOException) as error:
        raise TransientError(_message(error, what)) from error
    except duckdb.Error as error:
        raise WarehouseError(_message(error, what)) from error


def _message(error: duckdb.Error, what: str) -> str:
    text = f"DuckDB: {error} (while running: {what.strip()[:200]})"
    return redact_driver_error(text, value_echoes=_VALUE_ECHOES)
