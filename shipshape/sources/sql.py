"""Reads a declared table from any SQLAlchemy database, one window at a time, through a server-side cursor.

The query names the declared columns explicitly (a column added upstream never leaks in) and the
rows stream in chunks of at most `chunk_rows`, so memory does not grow with the table. Each call
opens its own engine and disposes it, so no connection outlives the task that read the source.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pyarrow as pa
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import Connection, Engine

from shipshape.declaration_base import SecretRef
from shipshape.errors import ShipshapeError, SourceError, TransientError
from shipshape.partitions import Window
from shipshape.redact import mask_credentials, redact_driver_error
from shipshape.secrets import SecretResolver
from shipshape.sources.base import CHUNK_ROWS, rows_to_batch
from shipshape.sources.kind import SourceBase, SourceKind

# Ordered: the first matching SQLAlchemy type wins (Boolean before Integer, Float is a Numeric).
_TYPE_FAMILIES: list[tuple[type[sa.types.TypeEngine[Any]], str]] = [
    (sa.Boolean, "boolean"),
    (sa.Integer, "integer"),
    (sa.Numeric, "number"),
    (sa.DateTime, "timestamp"),
    (sa.Date, "date"),
    (sa.String, "text"),
]
_SQLITE_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
_SQLITE_RETRYABLE = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


class SqlSource(SourceBase):
    """`kind: sql` in a declaration: one table of a database SQLAlchemy can reach."""

    kind: Literal["sql"]
    url: str | SecretRef = Field(
        description="SQLAlchemy URL; `{data_dir}` is replaced. Use a SecretRef when it holds a password."
    )
    table: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")]
    cursor_column: str | None = Field(None, description="Column the query is windowed on for each partition.")

    def describe(self) -> str:
        cursor = f", windowed on `{self.cursor_column}`" if self.cursor_column else ""
        return f"SQL table `{self.table}`{cursor}"

    def read_tables(self) -> list[str]:
        return [self.table.lower()]

    def check_in_pipeline(self, partitioned: bool) -> None:
        """Each partition reads only its window of the table, which needs a declared column to window on."""
        if partitioned and self.cursor_column is None:
            raise ValueError("a partitioned sql source needs 'source.cursor_column' to window the query")
        if self.cursor_column not in (None, *self.columns):
            raise ValueError(f"source.cursor_column {self.cursor_column!r} is not a declared column")


class SqlTableSource:
    """A `Source` over one table: `spec.cursor_column` windows the rows, `spec.columns` picks the columns."""

    def __init__(
        self, spec: SqlSource, data_dir: Path, secrets: SecretResolver, *, chunk_rows: int = CHUNK_ROWS
    ) -> None:
        self._spec = spec
        self._url = _engine_url(spec, data_dir, secrets)
        self._chunk_rows = chunk_rows
        self._schema, _, self._table = spec.table.rpartition(".")

    def observed_columns(self, window: Window) -> dict[str, str | None]:
        """The live table's columns, reflected (the window does not matter for a table's shape)."""
        with self._connect() as connection:
            inspector = sa.inspect(connection)
            try:
                reflected = inspector.get_columns(self._table, schema=self._schema or None)
            except sa.exc.NoSuchTableError:
                found = ", ".join(inspector.get_table_names(schema=self._schema or None)) or "(none)"
                raise SourceError(
                    f"sql source: table {self._spec.table!r} does not exist at {self._url}; "
                    f"tables found: {found}. Check source.table in the declaration."
                ) from None
            sqlite = connection.dialect.name == "sqlite"
            return {column["name"]: _family(column["type"], sqlite) for column in reflected}

    def batches(self, window: Window) -> Iterator[pa.RecordBatch]:
        """The window's rows as RecordBatches of at most `chunk_rows` rows, declared columns in declared order."""
        names = list(self._spec.columns)
        with self._connect() as connection:
            query, params = self._query(window, connection.dialect.name)
            streaming = connection.execution_options(stream_results=True, yield_per=self._chunk_rows)
            for rows in streaming.execute(query, params).partitions():
                yield rows_to_batch(names, rows)

    def _query(self, window: Window, dialect: str) -> tuple[sa.Select[Any], dict[str, Any]]:
        """SELECT <declared columns> FROM <table> [WHERE cursor >= :start AND cursor < :end], with bound values."""
        table = sa.table(self._table, *(sa.column(name) for name in self._spec.columns), schema=self._schema or None)
        query = sa.select(*table.c)
        if window.start is None or window.end is None or self._spec.cursor_column is None:
            return query, {}
        cursor: sa.ColumnClause[Any] = sa.column(self._spec.cursor_column)
        query = query.where(cursor >= sa.bindparam("start"), cursor < sa.bindparam("end"))
        return query, {"start": _bound(window.start, dialect), "end": _bound(window.end, dialect)}

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        """A connection on a fresh engine that is disposed afterwards, whatever happens.

        Database errors, whether connecting or in the `with` body, come out as platform errors:
        retryable faults as `TransientError`, the rest as `SourceError`.
        """
        engine = _create_engine(self._url)
        try:
            with engine.connect() as connection:
                yield connection
        except sa.exc.DBAPIError as error:
            raise _translate(error, self._spec.table, self._url) from error
        finally:
            engine.dispose()


def _engine_url(spec: SqlSource, data_dir: Path, secrets: SecretResolver) -> sa.URL:
    """The URL with `{data_dir}` filled in and `postgresql://` pointed at psycopg 3 (the installed driver).

    A `sqlalchemy.URL` prints with its password masked, so it is safe to put in error messages.
    """
    if isinstance(spec.url, str):
        text = spec.url.replace("{data_dir}", str(data_dir))
    else:
        text = secrets(spec.url, f"sql source {spec.table!r} url")
    try:
        url = sa.make_url(text)
    except sa.exc.ArgumentError:
        raise SourceError(
            f"sql source {spec.table!r}: {mask_credentials(text, text)!r} is not a SQLAlchemy URL; "
            "expected e.g. postgresql://user@host:5432/db (check source.url)"
        ) from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def _create_engine(url: sa.URL) -> Engine:
    """PostgreSQL sessions run in UTC so naive `timestamp` columns compare with the window as UTC."""
    if url.get_backend_name() == "postgresql":
        return sa.create_engine(url, connect_args={"options": "-c TimeZone=UTC", "connect_timeout": 10})
    return sa.create_engine(url)


def _bound(moment: datetime, dialect: str) -> datetime | str:
    """A window bound as the database compares it: SQLite stores timestamps as 'YYYY-MM-DD HH:MM:SS' UTC text."""
    if dialect == "sqlite":
        return moment.astimezone(UTC).strftime(_SQLITE_TIMESTAMP_FORMAT)
    return moment


def _family(column_type: sa.types.TypeEngine[Any], sqlite: bool) -> str | None:
    """The `ColumnType.family` of a reflected type; SQLite text is untyped because SQLite keeps dates as text."""
    family = next((name for kind, name in _TYPE_FAMILIES if isinstance(column_type, kind)), None)
    return None if sqlite and family == "text" else family


def _translate(error: sa.exc.DBAPIError, table: str, url: sa.URL) -> ShipshapeError:
    """Lost connections, lock waits and timeouts may pass; missing tables/columns and bad SQL will not."""
    detail = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
    detail = redact_driver_error(detail, connected_with=url.render_as_string(hide_password=False))
    sqlite_code = getattr(error.orig, "sqlite_errorcode", None)
    if sqlite_code is not None:
        retryable = sqlite_code in _SQLITE_RETRYABLE
    else:
        retryable = error.connection_invalidated or isinstance(error, sa.exc.OperationalError)
    where = f"sql source: table {table!r} at {url}"
    if retryable:
        return TransientError(
            f"{where}: {detail} (transient, retried within the pipeline's retries.attempts; "
            "check the database is reachable)"
        )
    return SourceError(f"{where}: {detail}. Check source.table and source.columns against the database.")


SQL = SourceKind(SqlSource, SqlTableSource)
