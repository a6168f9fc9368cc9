"""A deterministically generated shop application database — the example pipeline's source.

Same seed, same rows: the demo and the tests can assert exact counts. Timestamps are stored as
ISO text in UTC, the way an application on SQLite would store them.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled")
SEED = 20261101


def orders_per_day(day: date) -> int:
    """A weekly rhythm around 2,500 orders a day, reproducible from the date alone."""
    return 2_000 + (day.toordinal() * 7919) % 1_000


def generate(path: Path, first_day: date, days: int) -> int:
    """(Re)create the shop database with `days` days of orders; returns the number of orders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    rng = random.Random(SEED)
    rows = []
    order_id = 1_000_000
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for _ in range(orders_per_day(day)):
            order_id += 1
            created = start + timedelta(seconds=rng.randrange(86_400))
            customer = rng.randrange(1, 5_000)
            rows.append(
                (
                    order_id,
                    customer,
                    f"customer{customer}@example.com",
                    f"{rng.randrange(500, 50_000) / 100:.2f}",
                    rng.choice(STATUSES),
                    created.strftime("%Y-%m-%d %H:%M:%S"),
                    (created + timedelta(minutes=rng.randrange(0, 600))).strftime("%Y-%m-%d %H:%M:%S"),
                )
            )
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, email TEXT, "
            "amount NUMERIC NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, "
            "coupon_code TEXT)"
        )
        connection.executemany(
            "INSERT INTO orders (order_id, customer_id, email, amount, status, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return len(rows)


def inject_bad_orders(path: Path, day: date, count: int = 25) -> None:
    """Orders a buggy release might write: negative amounts and an unknown status, on one day."""
    add_orders(path, day, count, amount="-9.99", status="lost")


def add_orders(path: Path, day: date, count: int, *, amount: str, status: str) -> None:
    """`count` more orders at noon of `day`, all alike (a bug's output, or a flash sale)."""
    stamp = f"{day.isoformat()} 12:00:00"
    with sqlite3.connect(path) as connection:
        first = connection.execute("SELECT max(order_id) FROM orders").fetchone()[0] + 1
        connection.executemany(
            "INSERT INTO orders (order_id, customer_id, email, amount, status, created_at, updated_at) "
            "VALUES (?, 1, 'orders@example.com', ?, ?, ?, ?)",
            [(first + index, amount, status, stamp, stamp) for index in range(count)],
        )
