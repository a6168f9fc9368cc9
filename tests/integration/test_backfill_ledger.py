"""Backfill planning reads the real publish ledger on DuckDB and PostgreSQL (timestamps and counts round-trip)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from shipshape.backfill_plan import plan_backfill
from shipshape.ledger import LedgerEntry, ensure_platform_tables, entries, record
from shipshape.warehouses import open_warehouse

T0 = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


def ledger_entry(day: str, status: str, minutes: int, rows: int = 0) -> LedgerEntry:
    finished = T0 + timedelta(minutes=minutes)
    return LedgerEntry(
        pipeline="shop_orders", partition_key=day, partition_start=None, partition_end=None, flow_run_id="run",
        run_tag="tag", code_version="test", contract_hash="x", row_count=rows, rejected_rows=0, status=status,
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
        ensure_platform_tables(warehouse)
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
