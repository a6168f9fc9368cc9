"""PostgreSQL: psycopg 3 for statements, ADBC (Arrow → binary COPY) for bulk loads; roles in `postgres_roles`,
published-table DDL in `postgres_ddl`.

ADBC was the fastest client-side load path measured here (about 1.1x `psql \\copy`), and it streams
a RecordBatchReader in one COPY, so memory stays bounded by the batch size.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import adbc_driver_postgresql.dbapi as adbc
import psycopg
import pyarrow as pa

from shipshape.column_types import ColumnType
from shipshape.errors import TransientError, WarehouseError
from shipshape.redact import redact_driver_error
from shipshape.settings import SessionTimeouts, session_timeouts
from shipshape.warehouses.capabilities import Capabilities
from shipshape.warehouses.locks import AdvisoryLocks
from shipshape.warehouses.postgres_ddl import PostgresPublishedTables
from shipshape.warehouses.postgres_roles import PostgresRoles
from shipshape.warehouses.postgres_soda import PostgresTarget
from shipshape.warehouses.postgres_usage import PostgresUsage

# SQLSTATE classes worth retrying: connection, resources, operator intervention (57014: statement_timeout),
# serialization/deadlock; and 55P03, lock_timeout: the lock's holder may be done by the next attempt.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "53", "57", "40", "55P03")
# libpq reports a refused login without a SQLSTATE; these refusals are settings to fix, not outages to retry.
_REFUSED_LOGIN = re.compile(
    r"FATAL:\s+(role .* does not exist|database .* does not exist|password authentication failed)"
)

# Where PostgreSQL quotes a row's value: a failed cast (`invalid input syntax for type bigint: "…"`,
# `… out of range: "…"`), a key (`Key (id)=(…) already exists`), a whole row (`Failing row contains (…)`).
_VALUE_ECHOES = (
    re.compile(r'(?:for type [^:\n]+|out of range): "(?P<value>[^"\n]*)"'),
    re.compile(r"Key \([^)\n]*\)=\((?P<value>.*)\) (?:already exists|is not present|conflicts)"),
    re.compile(r"Failing row contains \((?P<value>.*)\)\."),
)

# pg_class.relkind values a transform output could be instead of a plain table ('r').
_RELATION_KINDS = {
    "v": "view",
    "m": "materialized view",
    "f": "foreign table",
    "p": "partitioned table",
    "S": "sequence",
    "i": "index",
}


class PostgresWarehouse(PostgresPublishedTables, PostgresRoles, PostgresUsage, AdvisoryLocks):
    capabilities = Capabilities(
        supports_unlogged_tables=True,
        supports_transactional_ddl=True,
        supports_advisory_locks=True,
        supports_roles=True,
        supports_returning=True,
        supports_merge=True,  # MERGE since PostgreSQL 15 (CI and compose run 16)
        supports_partition_exchange=True,  # declaratively partitioned published tables
        sql_dialect="postgres",
    )

    @classmethod
    def from_url(cls, url: str) -> PostgresWarehouse:
        return cls(url, session_timeouts())

    @classmethod
    def connection_url(cls, host: str, port: int, database: str, user: str, password: str) -> str:
        """A libpq URL, every part percent-encoded (a password may hold `@`, `:` or `/`)."""
        credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return f"postgresql://{credentials}@{host}:{port}/{quote(database, safe='')}"

    def __init__(self, url: str, timeouts: SessionTimeouts) -> None:
        self.url = url
        self._session_url = _with_session_settings(url, timeouts)
        with _translated("connect to PostgreSQL", self._session_url):
            self._connection = psycopg.connect(self._session_url, autocommit=True)

    def close(self) -> None:
        self._connection.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with _translated(sql):
            self._connection.execute(_pyformat(sql, params), params or None)

    def execute_one(self, sql: str) -> None:
        """Sent with the extended protocol, which takes exactly one statement: PostgreSQL refuses a `;` and more.

        Without parameters psycopg would use the simple protocol, which runs every `;`-separated statement;
        asking for binary results is psycopg's public way to send through the extended one instead.
        """
        with _translated(sql):
            self._connection.execute(sql, binary=True)

    def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with _translated(sql):
            return self._connection.execute(_pyformat(sql, params), params or None).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with _translated("transaction"), self._connection.transaction():
            yield

    def plain_table_problem(self, schema: str, table: str) -> str | None:
        """Also refuses row-level security and column types outside pg_catalog (a domain's CHECK calls functions).

        The ACCESS SHARE lock, held until the publish commits, keeps the owner from turning the table into a
        view, enabling row-level security or dropping it between this check and the publisher's read.
        """
        self.execute(f"LOCK TABLE {self.qualified(schema, table)} IN ACCESS SHARE MODE")
        rows = self.fetch_all(
            "SELECT c.relkind, c.relrowsecurity, pg_get_userbyid(c.relowner), "
            "array_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) "
            "FILTER (WHERE t.typnamespace <> 'pg_catalog'::regnamespace) "
            "FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "LEFT JOIN pg_type AS t ON t.oid = a.atttypid "
            "WHERE n.nspname = ? AND c.relname = ? GROUP BY c.relkind, c.relrowsecurity, c.relowner",
            [schema, table],
        )
        if not rows:
            return "does not exist"
        kind, row_security, owner, foreign_types = rows[0]
        if kind != "r":
            return f"is a {_RELATION_KINDS.get(kind, kind)} owned by {owner}, not a plain table"
        if row_security:
            return f"has row-level security enabled by its owner {owner}; its policies would run as the publisher"
        if foreign_types:
            return (
                f"has columns of types defined outside pg_catalog ({', '.join(foreign_types)}, owner {owner}); "
                "their checks would run as the publisher"
            )
        return None

    def index_names(self, schema: str, table: str) -> list[str]:
        rows = self.fetch_all(
            "SELECT indexname FROM pg_indexes WHERE schemaname = ? AND tablename = ? ORDER BY indexname",
            [schema, table],
        )
        return [row[0] for row in rows]

    def table_bytes(self, schema: str, table: str) -> int | None:
        return int(self.fetch_all("SELECT pg_total_relation_size(?::regclass)", [self.qualified(schema, table)])[0][0])

    def _load_batches(self, schema: str, table: str, batches: pa.RecordBatchReader) -> None:
        with (
            _translated(f"bulk load into {schema}.{table}", self._session_url),
            adbc.connect(self._session_url) as connection,
        ):
            with connection.cursor() as cursor:
                cursor.adbc_ingest(table, batches, mode="append", db_schema_name=schema)
            connection.commit()

    def ddl_type(self, column_type: ColumnType) -> str:
        if column_type.name == "decimal":
            return f"numeric({column_type.precision},{column_type.scale})"
        return {"double": "double precision"}.get(column_type.name, column_type.name)

    def soda_target(self) -> PostgresTarget:
        return PostgresTarget.from_url(self.url)

    def _try_cross_process_lock(self, name: str) -> bool:
        """A session advisory lock: PostgreSQL releases it when this connection ends, even on SIGKILL."""
        return bool(self.fetch_all("SELECT pg_try_advisory_lock(?)", [_lock_key(name)])[0][0])

    def _release_cross_process_lock(self, name: str) -> None:
        try:
            self.execute("SELECT pg_advisory_unlock(?)", [_lock_key(name)])
        except TransientError:
            if not self._connection.closed:
                raise
            # The session is gone (dropped, terminated): the server released its locks with it.

    def _wait_for_transaction_lock(self, name: str) -> None:
        """A transaction advisory lock: released by COMMIT or ROLLBACK, or by the server when the session dies.

        Waiting here means another publish of the table is running, which may rightly take longer than
        `lock_timeout`: this one wait is bounded by `statement_timeout` only, then `lock_timeout` applies again.
        (`pg_try_advisory_lock`, the partition lock, never waits, so no timeout touches it.)
        """
        self.execute("SET LOCAL lock_timeout = 0")
        self.execute("SELECT pg_advisory_xact_lock(?)", [_lock_key(name)])
        self.execute("RESET lock_timeout")

    def _lock_session(self) -> int:
        return int(self.fetch_all("SELECT pg_backend_pid()")[0][0])

    def _session_holds(self, session: int, names: Sequence[str]) -> bool:
        """pg_locks (readable by every role) lists a bigint advisory lock as classid = high, objid = low 32 bits.

        The session is named by its backend pid (its start time is hidden from other roles in pg_stat_activity).
        A pid is reused only after its session ended; a new session that got the same pid and took these very
        locks (another run of the same partitions) is not told apart: an accepted, vanishingly rare gap.
        """
        held = self.fetch_all(
            "SELECT classid::bigint, objid::bigint FROM pg_locks "
            "WHERE locktype = 'advisory' AND objsubid = 1 AND granted AND pid = ?",
            [session],
        )
        held_keys = {(high << 32) | low for high, low in held}
        return all(_lock_key(name) & 0xFFFF_FFFF_FFFF_FFFF in held_keys for name in names)


def _with_session_settings(url: str, timeouts: SessionTimeouts) -> str:
    """The URL with libpq's connect_timeout and the session settings every connection (psycopg and ADBC) gets."""
    parts = urlsplit(url)
    options = (
        f"-c TimeZone=UTC -c statement_timeout={timeouts.statement * 1000} -c lock_timeout={timeouts.lock * 1000}"
    )
    query = [*parse_qsl(parts.query), ("connect_timeout", str(timeouts.connect)), ("options", options)]
    return parts._replace(query=urlencode(query, quote_via=quote)).geturl()


def _pyformat(sql: str, params: Sequence[Any]) -> str:
    """psycopg wants %s; platform SQL uses ? (user SQL runs without params, so its % signs stay)."""
    return sql.replace("%", "%%").replace("?", "%s") if params else sql


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def _translated(what: str, url: str = "") -> Iterator[None]:
    """Driver errors become the platform's transient/terminal errors, so tasks never catch psycopg's.

    Where the driver was handed the `url` (connecting, bulk loading) its text may quote the password: masked.
    """
    try:
        yield
    except psycopg.Error as error:
        state = getattr(error, "sqlstate", None) or ""
        message = redact_driver_error(
            f"PostgreSQL: {str(error).strip()} (while running: {what.strip()[:200]})",
            connected_with=url,
            value_echoes=_VALUE_ECHOES,
        )
        refused_login = _REFUSED_LOGIN.search(str(error)) is not None
        if (isinstance(error, psycopg.OperationalError) and not state and not refused_login) or state.startswith(
            _TRANSIENT_SQLSTATE_PREFIXES
        ):
            raise TransientError(message) from error
        raise WarehouseError(message) from error
    except adbc.Error as error:
        raise WarehouseError(
            redact_driver_error(
                f"PostgreSQL bulk load: {str(error).strip()} (while running: {what})",
                connected_with=url,
                value_echoes=_VALUE_ECHOES,
            )
        ) from error
