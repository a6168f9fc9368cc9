"""Backfill planning and the run timeout's history read the real publish ledger on DuckDB and PostgreSQL
(timestamps and counts round-trip)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from shipshape.backfill_plan import plan_backfill
from shipshape.ledger import LedgerEntry, entries, recent_successful_runs, record
from shipshape.platform_schema import migrate
from shipshape.run_timeout import PastRun
from shipshape.warehouses import open_warehouse

T0 = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


def ledger_entry(day: str, status: str, minutes: int, rows: int = 0) -> LedgerEntry:
    finished = T0 + timedelta(minutes=minutes)
    return LedgerEntry(
        pipeline="shop_orders", partition_key=day, partition_start=None, partition_end=None,
        flow_run_id=f"run-{day}-{minutes}", run_tag="tag", code_version="test", contract_hash="x", row_count=rows,
        rejected_rows=0, status=status,
        check_results=[], message="", started_at=finished - timedelta(seconds=20 + minutes), finished_at=finished,
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
        history = recent_successful_runs(warehouse, "shop_orders", limit=20)
        latest_only = recent_successful_runs(warehouse, "shop_orders", limit=1)
    assert history == [PastRun(timedelta(minutes=3), 1), PastRun(timedelta(minutes=10), 2)]
    assert latest_only == [PastRun(timedelta(minutes=3), 1)]
