"""Backfill planning and the run timeout's history read the real publish ledger on DuckDB and PostgreSQL
(timestamps and counts round-trip)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from shipshape.backfill_plan import plan_backfill
from shipshape.ledger import (
    LedgerEntry,
    PublishedTable,
    entries,
    published_row_counts_before,
    recent_successful_runs,
    record,
)
from shipshape.platform_schema import migrate
from shipshape.run_timeout import PastRun
from shipshape.warehouses import open_warehouse

T0 = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
ORDERS = PublishedTable("shop_orders", "analytics.fct_orders", "analytics.fct_orders")


def ledger_entry(day: str, status: str, minutes: int, rows: int = 0) -> LedgerEntry:
    finished = T0 + timedelta(minutes=minutes)
    return LedgerEntry(
        pipeline="shop_orders", partition_key=day, partition_start=None, partition_end=None,
        flow_run_id=f"run-{day}-{minutes}", run_tag="tag", code_version="test", contract_hash="x", row_count=rows,
        rejected_rows=0, status=status,
        check_results=[], message="", started_at=finished - timedelta(seconds=20 + minutes), finished_at=finished,
        destination="analytics.fct_orders",
    )


def test_the_plan_comes_from_the_warehouse_ledger(warehouse_url: str) -> None:
    recorded = [
        ledger_entry("2026-11-01", "published", 1, rows=2399),
        ledger_entry("2026-11-02", "published", 3, rows=2100),
        ledger_entry("2026-11-02", "blocked", 5),
        ledger_entry("2026-11-03", "failed", 4),
        replace(ledger_entry("2026-11-01", "published", 9, rows=1), pipeline="other_pipeline"),
    ]
    with open_warehouse(warehouse_url) as warehouse:
        migrate(warehouse)
        for item in recorded:
            record(warehouse, item)
        plans = plan_backfill(entries(warehouse, "shop_orders"), "day", date(2026, 11, 1), date(2026, 11, 4))
    assert [(p.key, p.status, p.rows, p.last_published) for p in plans] == [
        ("2026-11-01", "published", 2399, T0 + timedelta(minutes=1)),
        ("2026-11-02", "blocked", 2100, T0 + timedelta(minutes=3)),
        ("2026-11-03", "failed", None, None),
        ("2026-11-04", "missing", None, None),
    ]
    assert plans[0].estimated_seconds == 22.0  # median of 21 s and 23 s; the other pipeline's row is not read
    assert [p.marker for p in plans] == [recorded[0].entry_id, recorded[2].entry_id, recorded[3].entry_id, "none"]
    assert [p.key for p in plans if p.selected_by("failed")] == ["2026-11-02", "2026-11-03"]


def test_run_history_for_the_default_timeout_is_each_publishing_runs_duration_and_partitions(
    warehouse_url: str,
) -> None:
    def row(run: str, day: str, status: str, started_minute: int, finished_minute: int) -> LedgerEntry:
        return replace(
            ledger_entry(day, status, finished_minute), flow_run_id=run,
            started_at=T0 + timedelta(minutes=started_minute),
        )

    recorded = [
        row("two-days", "2026-11-01", "published", 0, 10),  # one run, two partitions: 10 minutes
        row("two-days", "2026-11-02", "published", 0, 10),
        row("later", "2026-11-03", "published", 20, 23),
        row("failed", "2026-11-04", "failed", 30, 90),  # not a success: not history
        replace(row("elsewhere", "2026-11-01", "published", 40, 41), pipeline="other_pipeline"),
    ]
    with open_warehouse(warehouse_url) as warehouse:
        migrate(warehouse)
        for item in recorded:
            record(warehouse, item)
        history = recent_successful_runs(warehouse, ORDERS, limit=20)
        latest_only = recent_successful_runs(warehouse, ORDERS, limit=1)
    assert history == [PastRun(timedelta(minutes=3), 1), PastRun(timedelta(minutes=10), 2)]
    assert latest_only == [PastRun(timedelta(minutes=3), 1)]


def test_after_a_version_bump_planning_the_baseline_and_the_run_history_read_only_the_new_tables_rows(
    warehouse_url: str,
) -> None:
    """Version 1's publishes (written before ledger destinations, and after) do not make version 2's days published,
    its failures are not version 2's, its row counts are not version 2's baseline and its runs not its history."""
    v2 = PublishedTable("shop_orders", "analytics.fct_orders_v2", "analytics.fct_orders")
    start = datetime(2026, 11, 1, tzinfo=UTC)

    def row(day: str, status: str, minutes: int, rows: int, destination: str | None) -> LedgerEntry:
        partition_start = start + timedelta(days=int(day[-2:]) - 1)
        return replace(
            ledger_entry(day, status, minutes, rows), destination=destination, partition_start=partition_start
        )

    recorded = [
        row("2026-11-01", "published", 1, 5000, None),  # before migration 4: about version 1
        row("2026-11-02", "published", 2, 5000, "analytics.fct_orders"),
        row("2026-11-03", "failed", 3, 0, "analytics.fct_orders"),  # version 1's failure
        row("2026-11-02", "failed", 4, 0, "analytics.fct_orders_v2"),
        row("2026-11-01", "published", 5, 40, "analytics.fct_orders_v2"),
    ]
    with open_warehouse(warehouse_url) as warehouse:
        migrate(warehouse)
        for item in recorded:
            record(warehouse, item)
        plans = plan_backfill(entries(warehouse, v2), "day", date(2026, 11, 1), date(2026, 11, 3))
        baseline = published_row_counts_before(warehouse, v2, start + timedelta(days=5), 14)
        history = recent_successful_runs(warehouse, v2, limit=20)
        v1_baseline = published_row_counts_before(warehouse, ORDERS, start + timedelta(days=5), 14)
        every_row = entries(warehouse, "shop_orders")

    assert [(p.key, p.status) for p in plans] == [
        ("2026-11-01", "published"),
        ("2026-11-02", "failed"),
        ("2026-11-03", "missing"),
    ]
    assert [p.key for p in plans if p.selected_by("missing")] == ["2026-11-02", "2026-11-03"]
    assert [p.key for p in plans if p.selected_by("failed")] == ["2026-11-02"]  # not version 1's 11-03
    assert plans[0].rows == 40
    assert baseline == [40]
    assert history == [PastRun(timedelta(seconds=25), 1)]
    assert v1_baseline == [5000, 5000]  # version 1 reads its own rows, the ones from before migration 4 too
    assert len(every_row) == len(recorded)
