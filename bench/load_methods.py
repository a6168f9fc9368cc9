"""Three ways to load the in-memory orders into PostgreSQL, each timed from in-memory data to commit.

Every method gets a fresh table with the same DDL (the project's `create_table` plus a primary key on
order_id) and starts after a CHECKPOINT, so no method pays for the dirty pages another one left behind.
Each includes opening its own connection, as a user running it once would. Tables are prepared and checked
through the generic `Warehouse` interface (`open_warehouse` picks the adapter from the URL), outside the timing.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import sqlalchemy
from orders_data import COLUMN_TYPES

from shipshape.warehouses import Warehouse, open_warehouse

SCHEMA = "bench"
BATCH_ROWS = 100_000
TO_SQL_CHUNK_ROWS = 10_000
"""pandas' usual setting; `method=None` is one INSERT per row, sent by executemany."""


@contextmanager
def _fresh_table(url: str, table: str, rows: int) -> Iterator[Warehouse]:
    """An empty `SCHEMA.table` for the block to load; afterwards, a check that it holds exactly `rows` rows."""
    with open_warehouse(url) as warehouse:
        warehouse.ensure_schema(SCHEMA)
        warehouse.create_table(SCHEMA, table, COLUMN_TYPES)
        warehouse.execute(f"ALTER TABLE {warehouse.qualified(SCHEMA, table)} ADD PRIMARY KEY (order_id)")
        warehouse.execute("CHECKPOINT")
        yield warehouse
        # A fast load that lost rows would be a wrong result, not a good one.
        loaded = warehouse.row_count(SCHEMA, table)
        if loaded != rows:
            raise AssertionError(f"{SCHEMA}.{table}: {loaded} rows loaded, expected {rows}")


def load_project(url: str, orders: pa.Table) -> float:
    """The project's load path: `append_arrow` over a RecordBatchReader of 100k-row batches."""
    table = "orders_project"
    with _fresh_table(url, table, orders.num_rows) as warehouse:
        started = time.perf_counter()
        reader = pa.RecordBatchReader.from_batches(orders.schema, orders.to_batches(max_chunksize=BATCH_ROWS))
        warehouse.append_arrow(SCHEMA, table, reader)
        return time.perf_counter() - started


def load_psql_copy(url: str, csv_path: Path, rows: int) -> float:
    """`psql \\copy` from a CSV written beforehand: the practical ceiling, psql startup and connect included."""
    table = "orders_copy"
    command = f"\\copy {SCHEMA}.{table} FROM '{csv_path}' WITH (FORMAT csv, HEADER)"
    with _fresh_table(url, table, rows):
        started = time.perf_counter()
        subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", command],
            check=True, capture_output=True, text=True,
        )
        return time.perf_counter() - started


def load_to_sql(url: str, frame: pd.DataFrame) -> float:
    """pandas `to_sql` through SQLAlchemy + psycopg, starting from a DataFrame (its conversion is not timed)."""
    table = "orders_to_sql"
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with _fresh_table(url, table, len(frame)):
            started = time.perf_counter()
            frame.to_sql(
                table, engine, schema=SCHEMA, if_exists="append", index=False, method=None,
                chunksize=TO_SQL_CHUNK_ROWS,
                # Decimal objects would otherwise be bound as VARCHAR, which PostgreSQL refuses for a numeric column.
                dtype={"amount": sqlalchemy.Numeric(12, 2)},
            )
            return time.perf_counter() - started
    finally:
        engine.dispose()
