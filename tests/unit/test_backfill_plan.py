"""Backfill planning from ledger rows: statuses, mode selection, markers, estimates, hourly days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shipshape.backfill_plan import NO_ENTRY, plan_backfill, rows_published_by
from shipshape.ledger import LedgerEntry, Status

DAY1, DAY2, DAY3, DAY4 = (date(2026, 11, day) for day in range(1, 5))
T0 = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


def entry(key: str, status: Status, minutes: int, *, seconds: int = 60, rows: int = 0, run: str = "r") -> LedgerEntry:
    """A ledger row finishing `minutes` after T0, having taken `seconds`."""
    finished = T0 + timedelta(minutes=minutes)
    return LedgerEntry(
        entry_id=f"{key}-{status}-{minutes}", pipeline="p", partition_key=key, partition_start=None,
        partition_end=None, flow_run_id=run, run_tag="t", code_version="v", contract_hash="h", row_count=rows,
        rejected_rows=0, status=status, check_results=[], message="",
        started_at=finished - timedelta(seconds=seconds), finished_at=finished,
    )


def newest_first(*rows: LedgerEntry) -> list[LedgerEntry]:
    return sorted(rows, key=lambda row: row.finished_at, reverse=True)


LEDGER = newest_first(
    entry("2026-11-01", "published", 1, seconds=30, rows=2399),
    entry("2026-11-02", "published", 2, seconds=50, rows=2100),
    entry("2026-11-02", "blocked", 5),  # published once, its latest attempt blocked
    entry("2026-11-03", "failed", 3),  # never published
)


def test_each_day_gets_its_latest_status_last_publish_rows_and_the_median_duration() -> None:
    plans = plan_backfill(LEDGER, "day", DAY1, DAY4)
    assert [(p.key, p.status, p.rows) for p in plans] == [
        ("2026-11-01", "published", 2399), ("2026-11-02", "blocked", 2100),
        ("2026-11-03", "failed", None), ("2026-11-04", "missing", None),
    ]
    assert plans[1].last_published == T0 + timedelta(minutes=2)
    assert {p.estimated_seconds for p in plans} == {40.0}  # median of the two publishes: 30 s and 50 s
    assert [p.marker for p in plans] == ["2026-11-01-published-1", "2026-11-02-blocked-5", "2026-11-03-failed-3",
                                         NO_ENTRY]


@pytest.mark.parametrize(
    ("mode", "days"),
    [("missing", ["2026-11-03", "2026-11-04"]), ("failed", ["2026-11-02", "2026-11-03"]),
     ("all", ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"])],
)
def test_modes_select_never_published_latest_unsuccessful_or_every_day(mode: str, days: list[str]) -> None:
    assert [p.key for p in plan_backfill(LEDGER, "day", DAY1, DAY4) if p.selected_by(mode)] == days


def test_the_plan_row_says_what_an_operator_checks_before_launching() -> None:
    published, _, _, missing = plan_backfill(LEDGER, "day", DAY1, DAY4)
    assert published.as_row("missing") == {
        "partition": "2026-11-01", "status": "published", "action": "skip",
        "last published": "2026-11-20T03:01:00+00:00", "rows": 2399, "estimated duration (s)": 40.0,
    }
    assert plan_backfill([], "day", DAY4, DAY4)[0].as_row("missing") == {
        "partition": "2026-11-04", "status": "missing", "action": "run", "last published": "", "rows": "",
        "estimated duration (s)": "",
    }
    assert missing.as_row("failed")["action"] == "skip"


def test_an_hourly_day_is_planned_from_its_24_hours() -> None:
    hours = [entry(f"2026-11-01T{hour:02d}", "published", hour, rows=10) for hour in range(24)]
    complete = plan_backfill(newest_first(*hours), "hour", DAY1, DAY1)[0]
    assert (complete.status, complete.rows, complete.marker) == ("published", 240, "2026-11-01T23-published-23")
    one_blocked = plan_backfill(newest_first(*hours, entry("2026-11-01T07", "blocked", 30)), "hour", DAY1, DAY1)[0]
    assert one_blocked.status == "blocked" and one_blocked.selected_by("failed")
    assert not one_blocked.selected_by("missing")
    assert plan_backfill(newest_first(*hours[1:]), "hour", DAY1, DAY1)[0].selected_by("missing")  # 00:00 never ran


def test_rows_published_by_a_run_come_from_its_published_entries_only() -> None:
    ledger = [entry("2026-11-01", "published", 1, rows=5, run="a"), entry("2026-11-02", "blocked", 2, run="b")]
    assert (rows_published_by(ledger, "a"), rows_published_by(ledger, "b")) == (5, None)


def test_a_reversed_range_and_a_full_refresh_pipeline_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="end_date 2026-11-01 is before start_date 2026-11-02"):
        plan_backfill([], "day", DAY2, DAY1)
    with pytest.raises(ValueError, match="full refresh without partitions: run its deployment"):
        plan_backfill([], None, DAY1, DAY1)


def test_a_rolled_back_day_shows_it_with_the_restored_rows_and_is_neither_missing_nor_failed() -> None:
    ledger = newest_first(
        entry("2026-11-01", "published", 1, rows=2399),
        entry("2026-11-01", "published", 2, rows=9999),  # the wrong publish
        entry("2026-11-01", "rolled_back", 3, rows=2399),
    )

    (plan,) = plan_backfill(ledger, "day", DAY1, DAY1)

    assert (plan.status, plan.rows, plan.marker) == ("rolled_back", 2399, "2026-11-01-rolled_back-3")
    assert [plan.selected_by(mode) for mode in ("missing", "failed", "all")] == [False, False, True]
