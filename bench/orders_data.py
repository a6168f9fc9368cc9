"""The benchmark's orders: deterministic, generated column-wise with numpy so that even 5M rows take seconds.

Every load method and the pipeline read the same rows; a fixed seed makes runs comparable across machines.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from shipshape.column_types import ColumnType

DAY = date(2026, 11, 1)
"""All rows fall on this day: one daily partition."""

STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled")
COLUMNS: dict[str, str] = {
    "order_id": "bigint",
    "customer_id": "bigint",
    "amount": "decimal(12,2)",
    "status": "text",
    "order_date": "date",
    "updated_at": "timestamptz",
    "email": "text",
}
"""Portable types as a declaration spells them; the Arrow and PostgreSQL types derive from these."""

COLUMN_TYPES = {name: ColumnType.parse(text) for name, text in COLUMNS.items()}
SCHEMA = pa.schema([(name, kind.arrow) for name, kind in COLUMN_TYPES.items()])
_SEED = 20261101
_MICROS_PER_DAY = 86_400 * 1_000_000


def orders(rows: int, *, first_order_id: int = 1) -> pa.Table:
    """`rows` orders with ids from `first_order_id`; the seed includes it, so consecutive chunks differ."""
    rng = np.random.default_rng([_SEED, first_order_id])
    customer_id = pa.array(rng.integers(1, 200_000, rows, dtype=np.int64))
    day_start_us = int(datetime.combine(DAY, time(), UTC).timestamp()) * 1_000_000
    updated_at_us = day_start_us + rng.integers(0, _MICROS_PER_DAY, rows, dtype=np.int64)
    return pa.table(
        {
            "order_id": pa.array(np.arange(first_order_id, first_order_id + rows, dtype=np.int64)),
            "customer_id": customer_id,
            "amount": _cents_to_decimal(rng.integers(0, 5_000_000, rows, dtype=np.int64)),
            "status": pa.array(STATUSES).take(pa.array(rng.integers(0, len(STATUSES), rows))),
            "order_date": pa.repeat(pa.scalar(DAY, pa.date32()), rows),
            "updated_at": pa.array(updated_at_us, SCHEMA.field("updated_at").type),
            "email": pc.binary_join_element_wise("customer", pc.cast(customer_id, pa.string()), "@example.com", ""),
        },
        schema=SCHEMA,
    )


def _cents_to_decimal(cents: np.ndarray) -> pa.Array:
    """Exact decimal(12,2) from integer cents (a float detour could round 0.29 to 0.28)."""
    whole = pa.array(cents).cast(pa.decimal128(19, 0))
    return pc.multiply(whole, pa.scalar(Decimal("0.01"), pa.decimal128(3, 2))).cast(SCHEMA.field("amount").type)


def write_csv(table: pa.Table, path: Path) -> None:
    """The file `psql \\copy` reads: header, ISO dates, timestamps with a `Z` suffix."""
    pa_csv.write_csv(table, path)


def write_parquet(chunks: Iterable[pa.Table], path: Path) -> None:
    """One file from chunks of equal size, so a 5M file has the same row-group size as a 1M one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path, SCHEMA) as writer:
        for chunk in chunks:
            writer.write_table(chunk)
