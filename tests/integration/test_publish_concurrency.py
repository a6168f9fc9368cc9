"""Publishes to one table on PostgreSQL, from real processes: serialised by the destination lock, and refused to
a run whose partition locks are gone.

Each publishing process does what a backfill child does: it holds its own partition lock on one connection and
publishes on another (`shipshape.publish.publish`, as the publish task calls it). The test makes the publishes
meet: it holds a lock they need, waits until both processes are blocked on the server, then lets go of it.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from typing import Any

import pytest

from shipshape.catalog import find_pipeline
from shipshape.declaration import Load, Pipeline
from shipshape.errors import PartitionLostError
from shipshape.ledger import LEDGER_TABLE, LedgerEntry
from shipshape.names import destination_lock, partition_lock
from shipshape.partitions import plan_windows
from shipshape.platform_schema import migrate
from shipshape.publish import StagedPartition, publish
from shipshape.warehouses import AUDIT_SCHEMA, PLATFORM_SCHEMA, Warehouse, open_warehouse
from tests.support.waiting import WAIT_SECONDS, wait_until

SCHEMA, TABLE = "analytics", "fct_orders"
DAYS = [date(2026, 11, 1), date(2026, 11, 2)]
SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter, as a separate worker process would be


def shop_orders(**load: Any) -> Pipeline:
    spec = find_pipeline("shop_orders").spec
    return spec.model_copy(update={"load": Load(**load)}) if load else spec


def staged(day: date, out_table: str, run_tag: str) -> StagedPartition:
    (window,) = plan_windows("day", day, day)
    entry = LedgerEntry(
        pipeline="shop_orders", partition_key=window.key, partition_start=window.start, partition_end=window.end,
        flow_run_id="", run_tag=run_tag, code_version="test", contract_hash="", row_count=0, rejected_rows=0,
        status="published", check_results=[], message="", started_at=datetime.now(UTC),
        destination="analytics.fct_orders",
    )
    return StagedPartition(window, out_table, entry)


def publish_as_a_run(url: str, spec: Pipeline, partition: StagedPartition, outcome: Queue[str]) -> None:
    """One run's publish in its own process: the partition lock on one connection, the publish on another."""
    lock = partition_lock(spec.name, partition.window.key + partition.ledger_entry.run_tag)
    try:
        with open_warehouse(url) as runner, runner.exclusive([lock]) as held, open_warehouse(url) as publisher:
            assert held
            publish(publisher, spec, [partition], runner.claim([lock]))
        outcome.put("published")
    except Exception as error:
        outcome.put(f"{type(error).__name__}: {error}")


def orders_table(warehouse: Warehouse, schema: str, table: str, rows: list[tuple[int, date, str]]) -> None:
    warehouse.ensure_schema(schema)
    columns = "order_id bigint, order_date date, note text"
    warehouse.execute(f"CREATE TABLE {warehouse.qualified(schema, table)} ({columns})")
    for row in rows:
        warehouse.execute(f"INSERT INTO {warehouse.qualified(schema, table)} VALUES (?, ?, ?)", list(row))


def waiting_on_locks(url: str) -> int:
    with open_warehouse(url) as warehouse:
        return int(warehouse.fetch_all(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )[0][0])


@contextmanager
def two_publishes_released_together(
    url: str, spec: Pipeline, partitions: list[StagedPartition], blocker: Warehouse
) -> Iterator[list[str]]:
    """Start one publishing process per partition while `blocker`'s open transaction holds a lock they need; once
    both wait on the server, commit it; yields each process's outcome (filled in once both have ended)."""
    outcome: Queue[str] = SPAWN.Queue()
    processes: list[BaseProcess] = [
        SPAWN.Process(target=publish_as_a_run, args=(url, spec, partition, outcome)) for partition in partitions
    ]
    outcomes: list[str] = []
    try:
        with blocker.transaction():
            yield outcomes
            for process in processes:
                process.start()
            wait_until(lambda: waiting_on_locks(url) == len(processes), "both publishes wait on a lock")
        outcomes.extend(sorted(outcome.get(timeout=WAIT_SECONDS) for _ in processes))
    finally:
        for process in processes:
            process.join(timeout=WAIT_SECONDS)
            if process.is_alive():
                process.kill()


@pytest.fixture
def warehouse(postgres_url: str) -> Iterator[Warehouse]:
    with open_warehouse(postgres_url) as warehouse:
        migrate(warehouse)
        yield warehouse


def published(warehouse: Warehouse) -> list[tuple[Any, ...]]:
    return warehouse.fetch_all(f"SELECT order_id, order_date, note FROM {SCHEMA}.{TABLE} ORDER BY order_id, note")


def ledger_run_tags(warehouse: Warehouse) -> list[str]:
    return [row[0] for row in warehouse.fetch_all(f"SELECT run_tag FROM {PLATFORM_SCHEMA}.{LEDGER_TABLE} ORDER BY 1")]


def test_concurrent_merges_of_overlapping_keys_leave_one_row_per_key(postgres_url: str, warehouse: Warehouse) -> None:
    """Both runs wait on the published table (the test holds it); released at once, each merge still sees the
    other's rows, because publishes to one table take turns before their first statement on it."""
    day = DAYS[0]
    orders_table(warehouse, SCHEMA, TABLE, [(key, day, "before") for key in range(1, 11)])
    orders_table(warehouse, AUDIT_SCHEMA, "first__out", [(key, day, "first") for key in range(5, 16)])
    orders_table(warehouse, AUDIT_SCHEMA, "second__out", [(key, day, "second") for key in range(10, 21)])
    partitions = [staged(day, "first__out", "first"), staged(day, "second__out", "second")]

    with two_publishes_released_together(postgres_url, shop_orders(mode="merge", key=["order_id"]), partitions,
                                         warehouse) as outcomes:
        warehouse.execute(f"LOCK TABLE {SCHEMA}.{TABLE} IN ACCESS EXCLUSIVE MODE")

    assert outcomes == ["published", "published"]
    rows = published(warehouse)
    assert [row[0] for row in rows] == list(range(1, 21)), "exactly one row per key"
    notes = {order_id: note for order_id, _, note in rows}
    assert [notes[key] for key in range(1, 5)] == ["before"] * 4
    assert [notes[key] for key in range(5, 10)] == ["first"] * 5
    assert [notes[key] for key in range(16, 21)] == ["second"] * 5
    assert len({notes[key] for key in range(10, 16)}) == 1, "the overlap is the last merge's, whole"
    assert ledger_run_tags(warehouse) == ["first", "second"]


def test_concurrent_first_publishes_of_a_new_table_both_succeed(postgres_url: str, warehouse: Warehouse) -> None:
    """Two backfill children of a new pipeline: neither may fail on the other's CREATE TABLE (PostgreSQL 23505)."""
    orders_table(warehouse, AUDIT_SCHEMA, "day1__out", [(key, DAYS[0], "day 1") for key in range(1, 6)])
    orders_table(warehouse, AUDIT_SCHEMA, "day2__out", [(key, DAYS[1], "day 2") for key in range(6, 11)])
    partitions = [staged(DAYS[0], "day1__out", "day1"), staged(DAYS[1], "day2__out", "day2")]
    assert not warehouse.table_exists(SCHEMA, TABLE)

    with two_publishes_released_together(postgres_url, shop_orders(), partitions, warehouse) as outcomes:
        warehouse.hold_until_commit(destination_lock(SCHEMA, TABLE))

    assert outcomes == ["published", "published"]
    assert published(warehouse) == [
        *[(key, DAYS[0], "day 1") for key in range(1, 6)],
        *[(key, DAYS[1], "day 2") for key in range(6, 11)],
    ]
    assert ledger_run_tags(warehouse) == ["day1", "day2"]


def test_a_run_whose_lock_session_was_terminated_publishes_nothing(postgres_url: str, warehouse: Warehouse) -> None:
    """The partition lock lives on an idle connection; if the server drops it, the run must not publish."""
    day = DAYS[0]
    orders_table(warehouse, SCHEMA, TABLE, [(key, day, "before") for key in range(1, 4)])
    orders_table(warehouse, AUDIT_SCHEMA, "run__out", [(key, day, "new") for key in range(1, 6)])
    before = published(warehouse)
    spec = shop_orders(mode="merge", key=["order_id"])
    lock = partition_lock(spec.name, day.isoformat())

    with open_warehouse(postgres_url) as runner, runner.exclusive([lock]) as held:
        assert held
        claim = runner.claim([lock])
        warehouse.execute("SELECT pg_terminate_backend(?, ?)", [claim.session, WAIT_SECONDS * 1000])
        with pytest.raises(PartitionLostError) as raised:
            publish(warehouse, spec, [staged(day, "run__out", "run")], claim)

    assert str(raised.value) == (
        f"pipeline shop_orders, partition(s) {day.isoformat()}: this run no longer holds its partition locks (the "
        "connection holding them ended), so another run may be processing them. Nothing was published; "
        f"{SCHEMA}.{TABLE} is unchanged. Re-run the partition(s)"
    )
    assert published(warehouse) == before
    assert ledger_run_tags(warehouse) == []


def test_concurrent_publishes_that_both_bring_a_new_column_add_it_once(
    postgres_url: str, warehouse: Warehouse
) -> None:
    """Two runs of a pipeline that just gained `coupon_code`, released together onto a table without it: the first
    adds the column in its transaction, the second (waiting on the destination lock) finds it there."""
    earlier = date(2026, 10, 31)
    orders_table(warehouse, SCHEMA, TABLE, [(1, earlier, "before the column")])
    for name, day, keys in (("day1__out", DAYS[0], range(2, 5)), ("day2__out", DAYS[1], range(5, 8))):
        orders_table(warehouse, AUDIT_SCHEMA, name, [(key, day, name) for key in keys])
        warehouse.execute(f"ALTER TABLE {AUDIT_SCHEMA}.{name} ADD COLUMN coupon_code text")
        warehouse.execute(f"UPDATE {AUDIT_SCHEMA}.{name} SET coupon_code = 'C' || order_id")
    partitions = [staged(DAYS[0], "day1__out", "day1"), staged(DAYS[1], "day2__out", "day2")]

    with two_publishes_released_together(postgres_url, shop_orders(), partitions, warehouse) as outcomes:
        warehouse.hold_until_commit(destination_lock(SCHEMA, TABLE))

    assert outcomes == ["published", "published"]
    assert warehouse.table_columns(SCHEMA, TABLE) == ["order_id", "order_date", "note", "coupon_code"]
    assert warehouse.fetch_all(f"SELECT order_id, coupon_code FROM {SCHEMA}.{TABLE} ORDER BY 1") == [
        (1, None), *[(key, f"C{key}") for key in range(2, 8)]
    ]
    messages = warehouse.fetch_all(f"SELECT message FROM {PLATFORM_SCHEMA}.{LEDGER_TABLE} ORDER BY message")
    assert messages == [("",), ("schema change: added coupon_code (text)",)], "recorded once, by the one that added it"
