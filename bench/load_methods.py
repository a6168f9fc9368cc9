"""Three ways to load the in-memory orders into PostgreSQL, each timed from in-memory data to commit.

Every method gets a fresh table with the same DDL (the project's `create_table` plus a primary key on
order_id) and starts after a CHECKPOINT, so no method pays for the dirty pages another one left behind.
Each includes opening its own connection, as a user running it once would.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import sqlalchemy
from orders_data import COLUMN_TYPES

from shipshape.warehouses.postgres import PostgresWarehouse

SCHEMA = "bench"
BATCH_ROWS = 100_000
TO_SQL_CHUNK_ROWS = 10_000
"""pandas' usual setting; `method=None` is one INSERT per row, sent by executemany."""


def _fresh_table(warehouse: PostgresWarehouse, table: str) -> None:
    warehouse.ensure_schema(SCHEMA)
    warehouse.create_table(SCHEMA, table, COLUMN_TYPES)
    warehouse.execute(f"ALTER TABLE {warehouse.qualified(SCHEMA, table)} ADD PRIMARY KEY (order_id)")
    warehouse.execute("CHECKPOINT")


def load_project(warehouse: PostgresWarehouse, orders: pa.Table) -> float:
    """The project's load path: `append_arrow` over a RecordBatchReader of 100k-row batches."""
    table = "orders_project"
    _fresh_table(warehouse, table)
    started = time.perf_counter()
    reader = pa.RecordBatchReader.from_batches(orders.schema, orders.to_batches(max_chunksize=BATCH_ROWS))
    warehouse.append_arrow(SCHEMA, table, reader)
    seconds = time.perf_counter() - started
    _check_loaded(warehouse, table, orders.num_rows)
    return seconds


def load_psql_copy(warehouse: PostgresWarehouse, csv_path: Path, rows: int) -> float:
    """`psql \\copy` from a CSV written beforehand: the practical ceiling, psql startup and connect included."""
    table = "orders_copy"
    _fresh_table(warehouse, table)
    command = f"\\copy {SCHEMA}.{table} FROM '{csv_path}' WITH (FORMAT csv, HEADER)"
    started = time.perf_counter()
    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", warehouse.url, "-c", command],
        check=True, capture_output=True, text=True,
    )
    seconds = time.perf_counter() - started
    _check_loaded(warehouse, table, rows)
    return seconds


def load_to_sql(warehouse: PostgresWarehouse, frame: pd.DataFrame) -> float:
    """pandas `to_sql` through SQLAlchemy + psycopg, starting from a DataFrame (its conversion is not timed)."""
    table = "orders_to_sql"
    _fresh_table(warehouse, table)
    engine = sqlalchemy.create_engine(warehouse.url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        started = time.perf_counter()
        frame.to_sql(
            table, engine, schema=SCHEMA, if_exists="append", index=False, method=None, chunksize=TO_SQL_CHUNK_ROWS,
            # Decimal objects would otherwise be bound as VARCHAR, which PostgreSQL refuses for a numeric column.
            dtype={"amount": sqlalchemy.Numeric(12, 2)},
        )
        seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    _check_loaded(warehouse, table, len(frame))
    return seconds


def _check_loaded(warehouse: PostgresWarehouse, table: str, rows: int) -> None:
    """A fast load that lost rows would be a wrong result, not a good one."""
    loaded = warehouse.row_count(SCHEMA, table)
    if loaded != rows:
        raise AssertionError(f"{SCHEMA}.{table}: {loaded} rows loaded, expected {rows}")
