"""History and rollback on both warehouses: every publish keeps what it replaced, `shipshape rollback` puts an
earlier version back in one transaction, the monitor's prune drops only expired history.

Publishes go through `shipshape.publish.publish` exactly as the publish task calls it (audited `__out` tables made
by hand), rollbacks through the `shipshape` command line (`cli.main.main`) or the engine function it calls.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from cli.main import main
from shipshape.catalog import find_pipeline
from shipshape.declaration import History, Load, Pipeline
from shipshape.errors import RollbackError
from shipshape.history import find, prune
from shipshape.ledger import LedgerEntry, PublishedTable, entries, published_times
from shipshape.names import destination_lock, history_table, partition_lock
from shipshape.partitions import plan_windows
from shipshape.platform_schema import migrate
from shipshape.publish import StagedPartition, publish
from shipshape.rollback import roll_back, rollback_partition, versions
from shipshape.warehouses import AUDIT_SCHEMA, HISTORY_SCHEMA, Warehouse, open_warehouse
from tests.support.waiting import WAIT_SECONDS, wait_until

SCHEMA, TABLE = "analytics", "fct_orders"
ORDERS = PublishedTable("shop_orders", f"{SCHEMA}.{TABLE}", f"{SCHEMA}.{TABLE}")
DAY1, DAY2 = date(2026, 11, 1), date(2026, 11, 2)
Row = tuple[int, date, float]


def shop_orders(**changes: Any) -> Pipeline:
    return find_pipeline("shop_orders").spec.model_copy(update=changes)


def good(day: date, count: int = 5) -> list[Row]:
    return [(day.day * 100 + n, day, 10.0 * n) for n in range(count)]


def wrong(day: date, count: int = 5) -> list[Row]:
    """Valid (same keys, same count, passes any contract) but wrong: every amount a hundred times too large."""
    return [(order_id, d, amount * 100) for order_id, d, amount in good(day, count)]


class Publisher:
    """Publishes like the publish task: an audited `__out` table per partition, one transaction per run."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        self.runs = 0

    def run(self, spec: Pipeline, days: dict[date, list[Row]], *, extra: dict[str, str] | None = None) -> str:
        """Publish `days` as one flow run; returns its flow run id. `extra`: more columns (name → SQL value)."""
        self.runs += 1
        flow_run_id = f"run-{self.runs}"
        staged = []
        for day, rows in days.items():
            out = f"shop_orders__{day:%Y%m%d}__r{self.runs}__out"
            columns = "order_id bigint, order_date date, amount float8" + "".join(
                f", {name} text" for name in (extra or {})
            )
            self.warehouse.execute(f"CREATE TABLE {AUDIT_SCHEMA}.{out} ({columns})")
            values = "".join(f", {value}" for value in (extra or {}).values())
            for row in rows:
                self.warehouse.execute(f"INSERT INTO {AUDIT_SCHEMA}.{out} VALUES (?, ?, ?{values})", list(row))
            (window,) = plan_windows("day", day, day)
            entry = LedgerEntry(
                pipeline="shop_orders", partition_key=window.key, partition_start=window.start,
                partition_end=window.end, flow_run_id=flow_run_id, run_tag=f"r{self.runs}",
                code_version=f"v{self.runs}", contract_hash="", row_count=len(rows), rejected_rows=0,
                status="published", check_results=[], message="", started_at=datetime.now(UTC),
                destination=PublishedTable.of(spec).destination,
            )  # fmt: skip
            staged.append(StagedPartition(window, out, entry))
        publish(self.warehouse, spec, staged, self.warehouse.claim([]))
        return flow_run_id


@pytest.fixture
def warehouse(warehouse_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Warehouse]:
    monkeypatch.setenv("SHIPSHAPE_WAREHOUSE_URL", warehouse_url)  # what `shipshape rollback` connects to
    monkeypatch.delenv("SHIPSHAPE_PUBLISHER_URL", raising=False)
    monkeypatch.delenv("SHIPSHAPE_WAREHOUSE_BLOCK", raising=False)
    with open_warehouse(warehouse_url) as opened:
        migrate(opened)
        opened.ensure_schema(AUDIT_SCHEMA)
        yield opened


def rows_of(warehouse: Warehouse, day: date, columns: str = "order_id, order_date, amount") -> list[tuple[Any, ...]]:
    return warehouse.fetch_all(f"SELECT {columns} FROM {SCHEMA}.{TABLE} WHERE order_date = ? ORDER BY order_id", [day])


def checksum(warehouse: Warehouse, day: date) -> str:
    return hashlib.sha256(repr(rows_of(warehouse, day)).encode()).hexdigest()


def latest(warehouse: Warehouse, day: date) -> LedgerEntry:
    return next(entry for entry in entries(warehouse, "shop_orders") if entry.partition_key == day.isoformat())


def test_after_a_version_bump_rollback_sees_only_the_new_tables_publishes(warehouse: Warehouse) -> None:
    """Version 1 published DAY1 twice; version 2 once. Rolling back version 2's DAY1 finds no earlier version of
    its own (version 1's publishes are another table's rows), and version 1's own rollback still works."""
    publisher, v1 = Publisher(warehouse), shop_orders()
    v2 = shop_orders(destination=v1.destination.model_copy(update={"version": 2, "previous_version_until": DAY2}))
    publisher.run(v1, {DAY1: good(DAY1)})
    before = checksum(warehouse, DAY1)
    publisher.run(v1, {DAY1: wrong(DAY1)})
    publisher.run(v2, {DAY1: good(DAY1, count=3)})

    with pytest.raises(RollbackError, match=r"published once \(\w+\), so there is no earlier version to restore"):
        rollback_partition(warehouse, v2, DAY1.isoformat(), None)
    assert [version.entry.destination for version in versions(warehouse, v2, DAY1.isoformat())] == [
        f"{SCHEMA}.{TABLE}_v2"
    ]

    rollback_partition(warehouse, v1, DAY1.isoformat(), None)
    assert checksum(warehouse, DAY1) == before
    assert len(warehouse.fetch_all(f"SELECT * FROM {SCHEMA}.{TABLE}_v2")) == 3


def test_a_wrong_but_valid_publish_is_rolled_back_to_the_previous_checksum_by_one_command(
    warehouse: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    publisher, spec = Publisher(warehouse), shop_orders()
    publisher.run(spec, {DAY1: good(DAY1), DAY2: good(DAY2)})
    before, day2 = checksum(warehouse, DAY1), checksum(warehouse, DAY2)
    first = latest(warehouse, DAY1)
    publisher.run(spec, {DAY1: wrong(DAY1)})
    bad = latest(warehouse, DAY1)
    assert checksum(warehouse, DAY1) != before
    kept = find(warehouse, bad.entry_id)
    assert kept is not None and kept.row_count == 5, "the bad publish kept the rows it replaced"

    assert main(["rollback", "shop_orders", "--partition", DAY1.isoformat()]) == 0

    assert checksum(warehouse, DAY1) == before
    assert checksum(warehouse, DAY2) == day2, "another partition is untouched"
    rollback = latest(warehouse, DAY1)
    assert (rollback.status, rollback.restored_entry_id, rollback.row_count) == ("rolled_back", first.entry_id, 5)
    assert rollback.code_version == first.code_version, "the table holds the restored publish's code's rows again"
    assert "rolled back 1 partition(s) of shop_orders" in capsys.readouterr().out
    # Freshness judges the restored publish: the undone publish's instant is gone, the rollback is none (the first
    # run's instant is its last ledger row's, DAY2's).
    first_run = max(e.finished_at for e in entries(warehouse, "shop_orders") if e.flow_run_id == first.flow_run_id)
    assert published_times(warehouse, ORDERS, datetime.now(UTC) - timedelta(days=1)) == [first_run]
    # The rollback kept what it replaced: rolling the rollback back brings the wrong rows again.
    assert main(["rollback", "shop_orders", "--partition", DAY1.isoformat()]) == 0
    assert rows_of(warehouse, DAY1) == [(order_id, day, amount) for order_id, day, amount in wrong(DAY1)]


def test_rollback_to_an_older_version_after_a_schema_change_restores_old_rows_with_new_columns_null(
    warehouse: Warehouse,
) -> None:
    publisher, spec = Publisher(warehouse), shop_orders()
    publisher.run(spec, {DAY1: good(DAY1, 3)})
    oldest = latest(warehouse, DAY1)
    publisher.run(spec, {DAY1: good(DAY1, 4)})
    # The published table gains a column (an additive migration); the next publish fills it.
    warehouse.execute(f"ALTER TABLE {SCHEMA}.{TABLE} ADD COLUMN channel text")
    publisher.run(spec, {DAY1: wrong(DAY1, 6)}, extra={"channel": "'web'"})

    restored = rollback_partition(warehouse, spec, DAY1.isoformat(), oldest.entry_id)

    assert restored.restored == oldest
    assert rows_of(warehouse, DAY1, "order_id, order_date, amount, channel") == [
        (*row, None) for row in good(DAY1, 3)
    ]
    listed = versions(warehouse, spec, DAY1.isoformat())
    assert [version.entry.status for version in listed] == ["rolled_back", "published", "published", "published"]
    # The oldest version's rows are the published ones again (by partition exchange its kept table is the partition).
    assert [version.current for version in listed] == [True, False, False, True]
    assert all(version.kept_until for version in listed[1:3])
    with pytest.raises(RollbackError, match=f"{oldest.entry_id} is already the published version"):
        rollback_partition(warehouse, spec, DAY1.isoformat(), oldest.entry_id)


def test_undoing_a_run_restores_every_partition_it_published_in_one_transaction(warehouse: Warehouse) -> None:
    publisher, spec = Publisher(warehouse), shop_orders()
    publisher.run(spec, {DAY1: good(DAY1), DAY2: good(DAY2)})
    before = [checksum(warehouse, DAY1), checksum(warehouse, DAY2)]
    bad_run = publisher.run(spec, {DAY1: wrong(DAY1), DAY2: wrong(DAY2, 7)})

    assert main(["rollback", "shop_orders", "--run", bad_run]) == 0

    assert [checksum(warehouse, DAY1), checksum(warehouse, DAY2)] == before
    assert [latest(warehouse, day).status for day in (DAY1, DAY2)] == ["rolled_back", "rolled_back"]


def test_undoing_a_run_whose_partition_changed_since_is_refused_and_changes_nothing(warehouse: Warehouse) -> None:
    publisher, spec = Publisher(warehouse), shop_orders()
    publisher.run(spec, {DAY1: good(DAY1), DAY2: good(DAY2)})
    bad_run = publisher.run(spec, {DAY1: wrong(DAY1), DAY2: wrong(DAY2)})
    publisher.run(spec, {DAY2: good(DAY2, 2)})
    before = [checksum(warehouse, DAY1), checksum(warehouse, DAY2)]

    with pytest.raises(RollbackError, match=f"partition {DAY2.isoformat()}: changed again after flow run {bad_run}"):
        roll_back(warehouse, spec, partition=None, to=None, run=bad_run)

    assert [checksum(warehouse, DAY1), checksum(warehouse, DAY2)] == before, "not even DAY1 was rolled back"
    assert latest(warehouse, DAY1).status == "published"


def test_bad_requests_get_one_clear_error_and_change_nothing(
    warehouse: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    publisher, spec = Publisher(warehouse), shop_orders()
    publisher.run(spec, {DAY1: good(DAY1)})
    publisher.run(spec, {DAY1: wrong(DAY1)})
    before, ledger = checksum(warehouse, DAY1), entries(warehouse, "shop_orders")

    cases = {
        ("--partition", DAY1.isoformat(), "--to", "no-such-id"): "no publish 'no-such-id' of this partition; its",
        ("--partition", "2026-10-01"): "partition '2026-10-01' was never published, so there is nothing to roll back",
        ("--run", "no-such-run"): "flow run 'no-such-run' published nothing",
        ("--partition", DAY1.isoformat(), "--to", ledger[0].entry_id): "is already the published version",
    }
    for arguments, message in cases.items():
        assert main(["rollback", "shop_orders", *arguments]) == 2
        error = capsys.readouterr().err
        assert error.startswith("error: pipeline shop_orders") and message in error, error
        assert len(error.strip().splitlines()) == 1, "one line, no traceback"

    merge = shop_orders(load=Load(mode="merge", key=["order_id"]))
    with pytest.raises(RollbackError, match=r"load\.mode 'merge' cannot be rolled back"):
        roll_back(warehouse, merge, partition=DAY1.isoformat(), to=None, run=None)
    assert (checksum(warehouse, DAY1), entries(warehouse, "shop_orders")) == (before, ledger)


def test_expired_history_is_refused_even_before_the_monitor_prunes_it(warehouse: Warehouse) -> None:
    publisher = Publisher(warehouse)
    publisher.run(shop_orders(), {DAY1: good(DAY1)})
    publisher.run(shop_orders(history=History(retention="0s")), {DAY1: wrong(DAY1)})
    before = checksum(warehouse, DAY1)

    expired = r"no longer kept \(history of \w+: expired .* UTC; history\.retention is 7d"
    with pytest.raises(RollbackError, match=expired):
        rollback_partition(warehouse, shop_orders(), DAY1.isoformat(), None)

    prune(warehouse, datetime.now(UTC))
    with pytest.raises(RollbackError, match=r"no longer kept \(history of \w+: pruned, or kept by no publish then"):
        rollback_partition(warehouse, shop_orders(), DAY1.isoformat(), None)
    assert checksum(warehouse, DAY1) == before


def test_prune_drops_only_history_past_its_retention(warehouse: Warehouse) -> None:
    publisher = Publisher(warehouse)
    short, long = shop_orders(history=History(retention="1h")), shop_orders(history=History(retention="7d"))
    publisher.run(short, {DAY1: good(DAY1)})
    publisher.run(short, {DAY1: wrong(DAY1)})
    publisher.run(long, {DAY2: good(DAY2)})
    publisher.run(long, {DAY2: wrong(DAY2)})
    ids = {day: [e.entry_id for e in entries(warehouse, "shop_orders") if e.partition_key == day.isoformat()]
           for day in (DAY1, DAY2)}  # fmt: skip
    assert sorted(warehouse.list_tables(HISTORY_SCHEMA)) == sorted(history_table(i) for i in ids[DAY1] + ids[DAY2])

    pruned = prune(warehouse, datetime.now(UTC) + timedelta(hours=2))

    assert sorted(kept.entry_id for kept in pruned) == sorted(ids[DAY1])
    assert sorted(warehouse.list_tables(HISTORY_SCHEMA)) == sorted(history_table(i) for i in ids[DAY2])
    assert prune(warehouse, datetime.now(UTC) + timedelta(hours=2)) == [], "a second prune finds nothing"
    rollback_partition(warehouse, long, DAY2.isoformat(), None)  # what is kept still restores
    assert rows_of(warehouse, DAY2) == good(DAY2)


def test_the_monitor_prunes_expired_history_and_keeps_the_rest(warehouse: Warehouse, prefect_api: str) -> None:
    from flows.monitor import monitor

    publisher = Publisher(warehouse)
    publisher.run(shop_orders(history=History(retention="0s")), {DAY1: good(DAY1)})
    publisher.run(shop_orders(), {DAY2: good(DAY2)})
    kept = history_table(latest(warehouse, DAY2).entry_id)

    monitor()

    assert warehouse.list_tables(HISTORY_SCHEMA) == [kept]


def test_a_run_holding_the_partition_makes_the_rollback_wait_for_nothing_and_refuse(
    warehouse: Warehouse, warehouse_url: str
) -> None:
    publisher, spec = Publisher(warehouse), shop_orders()
    publisher.run(spec, {DAY1: good(DAY1)})
    publisher.run(spec, {DAY1: wrong(DAY1)})
    with (
        open_warehouse(warehouse_url) as run,
        run.exclusive([partition_lock("shop_orders", DAY1.isoformat())]),
        pytest.raises(RollbackError, match="a run is processing them now; wait until it ends"),
    ):
        rollback_partition(warehouse, spec, DAY1.isoformat(), None)
    assert latest(warehouse, DAY1).status == "published"


@pytest.mark.postgres
def test_a_rollback_waiting_on_a_publish_rolls_back_what_that_publish_committed(postgres_url: str) -> None:
    """The rollback starts while a publish of the table is open: it waits on the destination lock, then reads the
    ledger, so it undoes the publish that just committed — not the version it would have seen before the wait."""
    with open_warehouse(postgres_url) as warehouse:
        migrate(warehouse)
        warehouse.ensure_schema(AUDIT_SCHEMA)
        publisher, spec = Publisher(warehouse), shop_orders()
        publisher.run(spec, {DAY1: good(DAY1)})
        publisher.run(spec, {DAY1: wrong(DAY1)})
        meanwhile = latest(warehouse, DAY1)
        outcome: list[object] = []

        def roll_back_now() -> None:
            try:
                with open_warehouse(postgres_url) as other:
                    outcome.append(rollback_partition(other, spec, DAY1.isoformat(), None))
            except Exception as error:
                outcome.append(error)

        rollback = threading.Thread(target=roll_back_now)
        with warehouse.transaction():
            warehouse.hold_until_commit(destination_lock(SCHEMA, TABLE))  # a publish of the table is under way
            rollback.start()
            wait_until(lambda: waiting_on_locks(postgres_url) == 1, "the rollback waits on the destination lock")
            publisher.run(spec, {DAY1: good(DAY1, 2)})  # that publish: inside the open transaction, commits below
        rollback.join(timeout=WAIT_SECONDS)
        newest_publish = next(e for e in entries(warehouse, "shop_orders") if e.status == "published")

        assert newest_publish.entry_id != meanwhile.entry_id
        [restored] = outcome
        assert not isinstance(restored, Exception), restored
        assert rows_of(warehouse, DAY1) == [(o, d, a) for o, d, a in wrong(DAY1)], "the version before the publish"
        assert latest(warehouse, DAY1).restored_entry_id == meanwhile.entry_id


def waiting_on_locks(url: str) -> int:
    with open_warehouse(url) as warehouse:
        return int(warehouse.fetch_all(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )[0][0])  # fmt: skip
