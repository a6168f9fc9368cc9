"""SQL source against real SQLite files and real PostgreSQL databases: windowing, columns, chunks, errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest

from runtime.secrets import prefect_secret
from shipshape.declaration_base import SecretRef
from shipshape.errors import SourceError, TransientError
from shipshape.partitions import FULL_REFRESH, Window
from shipshape.sources.base import CHUNK_ROWS
from shipshape.sources.sql import SqlSource, SqlTableSource

JAN_2 = Window("2024-01-02", datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC))
COLUMNS = {"id": "bigint", "created_at": "timestamptz", "amount": "decimal(12,2)", "discount": "double"}
# (id, created_at UTC, amount): ids 2-4 fall in JAN_2, 1 and 5 sit just outside its bounds.
ROWS = [
    (1, datetime(2024, 1, 1, 23, 59, 59), Decimal("10.00")),
    (2, datetime(2024, 1, 2, 0, 0, 0), Decimal("20.50")),
    (3, datetime(2024, 1, 2, 12, 30, 0), Decimal("30.25")),
    (4, datetime(2024, 1, 2, 23, 59, 59, 500000), Decimal("40.00")),
    (5, datetime(2024, 1, 3, 0, 0, 0), Decimal("50.00")),
]
SQLITE_DDL = "CREATE TABLE orders (id INTEGER, created_at TEXT, amount NUMERIC, discount REAL, internal_note TEXT)"
POSTGRES_DDL = (
    "CREATE TABLE orders (id bigint, created_at timestamptz, amount numeric(12,2), discount double precision, "
    "internal_note text)"
)

Database = tuple[str | SecretRef, Path]
"""A source URL (possibly with `{data_dir}`) and the data_dir to pass with it."""


def _sqlite_orders(data_dir: Path, rows: list[tuple]) -> str:
    """SQLite keeps timestamps as naive UTC text 'YYYY-MM-DD HH:MM:SS[.ffffff]', as SQLAlchemy writes them."""
    with _sqlite(data_dir) as connection:
        connection.execute(SQLITE_DDL)
        connection.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, NULL, 'secret')",
            [(id_, str(created_at), str(amount)) for id_, created_at, amount in rows],
        )
    return "sqlite:///{data_dir}/source.db"


@contextmanager
def _sqlite(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the test's SQLite source that commits and closes (sqlite3's own `with` only commits)."""
    with closing(sqlite3.connect(data_dir / "source.db")) as connection, connection:
        yield connection


def _postgres_orders(url: str, rows: list[tuple]) -> str:
    with psycopg.connect(url) as connection:
        connection.execute(POSTGRES_DDL)
        connection.cursor().executemany(
            "INSERT INTO orders VALUES (%s, %s, %s, NULL, 'secret')",
            [(id_, created_at.replace(tzinfo=UTC), amount) for id_, created_at, amount in rows],
        )
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def make_orders(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[list[tuple]], Database]:
    """Creates the `orders` table with the given rows in the parametrized backend."""
    if request.param == "sqlite":
        return lambda rows: (_sqlite_orders(tmp_path, rows), tmp_path)
    postgres_url = request.getfixturevalue("postgres_url")
    return lambda rows: (_postgres_orders(postgres_url, rows), tmp_path)


@pytest.fixture
def orders(make_orders: Callable[[list[tuple]], Database]) -> Database:
    return make_orders(ROWS)


def _source(
    database: Database, columns: dict[str, str] = COLUMNS, *, table: str = "orders", chunk_rows: int = CHUNK_ROWS
) -> SqlTableSource:
    url, data_dir = database
    spec = SqlSource(kind="sql", url=url, table=table, cursor_column="created_at", columns=columns)
    return SqlTableSource(spec, data_dir, prefect_secret, chunk_rows=chunk_rows)


def _read(source: SqlTableSource, window: Window) -> pa.Table:
    return pa.Table.from_batches(list(source.batches(window)))


def test_window_reads_only_rows_in_half_open_range(orders: Database) -> None:
    table = _read(_source(orders), JAN_2)

    assert sorted(table.column("id").to_pylist()) == [2, 3, 4]


def test_full_refresh_reads_every_row(orders: Database) -> None:
    table = _read(_source(orders), FULL_REFRESH)

    assert sorted(table.column("id").to_pylist()) == [1, 2, 3, 4, 5]


def test_only_declared_columns_are_selected_in_declared_order(orders: Database) -> None:
    source = _source(orders, {"amount": "decimal(12,2)", "id": "bigint", "created_at": "timestamptz"})

    for batch in source.batches(FULL_REFRESH):
        assert batch.schema.names == ["amount", "id", "created_at"]


def test_batches_never_exceed_chunk_rows(make_orders: Callable[[list[tuple]], Database]) -> None:
    rows = [(i, datetime(2024, 1, 2, i // 60, i % 60), Decimal(i)) for i in range(25)]
    source = _source(make_orders(rows), chunk_rows=10)

    assert [batch.num_rows for batch in source.batches(JAN_2)] == [10, 10, 5]


def test_all_null_column_arrives_as_nulls(orders: Database) -> None:
    table = _read(_source(orders), JAN_2)

    assert table.column("discount").to_pylist() == [None, None, None]


def test_missing_table_is_a_source_error_naming_it(orders: Database) -> None:
    source = _source(orders, table="order_lines")

    with pytest.raises(SourceError, match=r"'order_lines' does not exist.*tables found: orders"):
        source.observed_columns(JAN_2)
    with pytest.raises(SourceError, match="'order_lines'"):
        list(source.batches(JAN_2))


def test_undeclared_source_column_is_a_source_error_naming_the_table(orders: Database) -> None:
    source = _source(orders, {**COLUMNS, "coupon": "text"})

    with pytest.raises(SourceError, match=r"table 'orders'.*coupon"):
        list(source.batches(JAN_2))


def test_unreachable_database_is_transient(tmp_path: Path) -> None:
    source = _source(("postgresql://postgres@127.0.0.1:1/nothing", tmp_path))

    with pytest.raises(TransientError, match=r"table 'orders'.*127\.0\.0\.1:1"):
        list(source.batches(JAN_2))


def test_locked_sqlite_database_is_transient(tmp_path: Path) -> None:
    url = _sqlite_orders(tmp_path, ROWS) + "?timeout=0"
    with _sqlite(tmp_path) as locker:
        locker.execute("BEGIN EXCLUSIVE")

        with pytest.raises(TransientError, match="database is locked"):
            list(_source((url, tmp_path)).batches(JAN_2))


def test_sqlite_values_of_mixed_types_arrive_as_text(tmp_path: Path) -> None:
    url = _sqlite_orders(tmp_path, ROWS[2:3])
    with _sqlite(tmp_path) as connection:
        connection.execute("INSERT INTO orders VALUES (6, '2024-01-01 10:00:00', 'n/a', NULL, NULL)")

    table = _read(_source((url, tmp_path)), FULL_REFRESH)

    assert table.column("amount").to_pylist() == ["30.25", "n/a"]


def test_sqlite_observed_columns_leave_text_untyped(tmp_path: Path) -> None:
    source = _source((_sqlite_orders(tmp_path, ROWS), tmp_path))

    assert source.observed_columns(JAN_2) == {
        "id": "integer", "created_at": None, "amount": "number", "discount": "number", "internal_note": None,
    }


@pytest.mark.postgres
def test_postgres_observed_columns_and_typed_values(postgres_url: str, tmp_path: Path) -> None:
    source = _source((_postgres_orders(postgres_url, ROWS), tmp_path))

    assert source.observed_columns(JAN_2) == {
        "id": "integer", "created_at": "timestamp", "amount": "number", "discount": "number", "internal_note": "text",
    }
    table = _read(source, JAN_2)
    assert table.column("amount").to_pylist() == [Decimal("20.50"), Decimal("30.25"), Decimal("40.00")]
    assert table.column("created_at")[0].as_py() == datetime(2024, 1, 2, tzinfo=UTC)


@pytest.mark.postgres
def test_postgres_naive_timestamps_are_windowed_as_utc_whatever_the_server_timezone(
    postgres_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"ALTER DATABASE {postgres_url.rsplit('/', 1)[1]} SET timezone TO 'Asia/Tokyo'")
        connection.execute("CREATE TABLE orders (id bigint, created_at timestamp)")
        connection.cursor().executemany("INSERT INTO orders VALUES (%s, %s)", [(id_, at) for id_, at, _ in ROWS])

    source = _source((postgres_url, tmp_path), {"id": "bigint", "created_at": "timestamp"})

    assert sorted(_read(source, JAN_2).column("id").to_pylist()) == [2, 3, 4]


@pytest.mark.postgres
def test_url_from_secret_with_plain_postgresql_scheme(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPSHAPE_SECRET_ORDERS_DB_URL", _postgres_orders(postgres_url, ROWS))

    source = _source((SecretRef(env="SHIPSHAPE_SECRET_ORDERS_DB_URL"), tmp_path))

    assert sorted(_read(source, JAN_2).column("id").to_pylist()) == [2, 3, 4]
