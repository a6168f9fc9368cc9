"""Backfill planning from ledger rows: statuses, mode selection, markers, estimates, hourly days, batches."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shipshape.backfill_plan import (
    NO_ENTRY,
    NOT_RUN,
    Batch,
    PartitionPlan,
    batches,
    day_outcome,
    days_per_child,
    estimated_seconds,
    plan_backfill,
    runs_in_this_process,
)
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
        started_at=finished - timedelta(seconds=seconds), finished_at=finished, destination="analytics.t",
    )


def newest_first(*rows: LedgerEntry) -> list[LedgerEntry]:
    return sorted(rows, key=lambda row: row.finished_at, reverse=True)


LEDGER = newest_first(
    entry("2026-11-01", "published", 1, seconds=30, rows=2399, run="r1"),
    entry("2026-11-02", "published", 2, seconds=50, rows=2100, run="r2"),
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


def test_a_run_over_several_days_counts_its_duration_shared_by_its_days() -> None:
    """Every entry of a run starts when the run did: a 3-day run of 60 s is 20 s a day, not 60 s each."""
    batch = [entry(f"2026-11-0{day}", "published", 1, seconds=60, run="batch") for day in (1, 2, 3)]
    assert estimated_seconds(newest_first(*batch)) == 20.0
    assert estimated_seconds(newest_first(*batch, entry("2026-11-04", "published", 2, seconds=40, run="one"))) == 30.0
    assert estimated_seconds([entry("2026-11-01", "failed", 1)]) is None


@pytest.mark.parametrize(
    ("days", "limit", "seconds_per_day", "size"),
    [
        (14, 4, None, 4),  # no publish yet: fill the limit
        (14, 4, 5.0, 4),  # 4 days of 5 s are worth a 10 s start-up: fill the limit
        (14, 2, 0.6, 7),  # two children of 7 days of 0.6 s (4.2 s each) halve the wall time: fill the 2 slots
        (14, 4, 0.2, 13),  # days of 0.2 s: 13 days to take a quarter of the start-up, so only 2 children
        (90, 4, 0.7, 23),  # 23 days each are worth it: 4 children fill the limit
        (90, 16, 0.1, 25),  # filling 16 would make children of 6 days of 0.1 s, 0.6 s of work for a 10 s start-up
        (1, 4, 0.7, 1),
    ],
)
def test_automatic_batches_fill_the_limit_unless_a_child_would_not_be_worth_its_start_up(
    days: int, limit: int, seconds_per_day: float | None, size: int
) -> None:
    assert days_per_child(days, limit, seconds_per_day) == size


def plans(*days: date) -> list[PartitionPlan]:
    return [PartitionPlan(d, "missing", None, None, None, NO_ENTRY, True, False) for d in days]


def timed(days: int, seconds_per_day: float | None) -> list[PartitionPlan]:
    """`days` consecutive missing days from DAY1, each estimated at `seconds_per_day`."""
    return [PartitionPlan(DAY1 + timedelta(days=offset), "missing", None, None, seconds_per_day, NO_ENTRY, True, False)
            for offset in range(days)]


@pytest.mark.parametrize(
    ("days", "slots", "seconds_per_day", "here"),
    [
        (14, 2, 0.6, True),  # W = 8.4 s ≤ 10 + 4.2 s: one batch here ends before two children have started
        (90, 2, 0.6, False),  # W = 54 s > 10 + 27 s: two children halve the work for one start-up
        (33, 2, 0.6, True), (34, 2, 0.6, False),  # the boundary: W = S + W/k at 33.3 days
        (14, 4, 5.0, False),  # 70 s of work > 10 + 17.5 s
        (3, 1, 5.0, True),  # one slot: a child would run the same days after a start-up
        (90, 1, 5.0, False),  # but never more work than twice a start-up: the backfill's own loop waits meanwhile
        (14, 2, None, False),  # no publish yet, no estimate: children as before
    ],
)
def test_a_backfill_runs_its_days_itself_when_that_ends_no_later_than_children_started_side_by_side(
    days: int, slots: int, seconds_per_day: float | None, here: bool
) -> None:
    assert runs_in_this_process(timed(days, seconds_per_day), slots, days_per_run=0) is here


def test_a_chosen_days_per_run_a_gap_or_no_day_keeps_the_backfill_on_children() -> None:
    assert not runs_in_this_process(timed(14, 0.6), 2, days_per_run=7)
    gapped = timed(14, 0.6)[:5] + timed(14, 0.6)[6:]
    assert not runs_in_this_process(gapped, 2, days_per_run=0)
    assert not runs_in_this_process([], 2, days_per_run=0)


def test_batches_are_consecutive_days_split_evenly_and_a_gap_always_ends_one() -> None:
    ten = plans(*(date(2026, 11, d) for d in range(1, 11)))
    assert [len(b.plans) for b in batches(ten, 4)] == [4, 3, 3]  # never 4, 4, 2
    assert batches(ten, 4)[0].key == "2026-11-01..2026-11-04"
    gapped = plans(DAY1, DAY2, DAY4, date(2026, 11, 9))
    assert [b.key for b in batches(gapped, 10)] == ["2026-11-01..2026-11-02", "2026-11-04", "2026-11-09"]
    assert [b.key for b in batches(ten, 1)] == [d.key for d in ten]
    assert batches([], 3) == []


def test_a_batch_keeps_its_idempotency_marker_until_any_of_its_days_changes() -> None:
    one = PartitionPlan(DAY1, "failed", None, None, None, "m1", False, True)
    assert Batch((one,)).marker == "m1"  # one day: the day's own marker, as before batching
    two = Batch((one, PartitionPlan(DAY2, "failed", None, None, None, "m2", False, True)))
    same = Batch((one, PartitionPlan(DAY2, "failed", None, None, None, "m2", False, True)))
    changed = Batch((one, PartitionPlan(DAY2, "published", None, None, None, "m3", False, False)))
    assert two.marker == same.marker != changed.marker


def test_a_days_outcome_is_what_that_child_run_left_in_the_ledger() -> None:
    ledger = newest_first(
        entry("2026-11-01", "published", 1, rows=5, run="a"),
        entry("2026-11-02", "blocked", 2, run="a"),
        entry("2026-11-03", "published", 3, rows=7, run="other"),  # another run's publish is not this child's
    )
    assert day_outcome(ledger, "a", "day", DAY1) == ("published", 5)
    assert day_outcome(ledger, "a", "day", DAY2) == ("blocked", None)
    assert day_outcome(ledger, "a", "day", DAY3) == (NOT_RUN, None)
    hours = [entry(f"2026-11-01T{hour:02d}", "published", hour, rows=10, run="h") for hour in range(23)]
    assert day_outcome(newest_first(*hours), "h", "hour", DAY1) == (NOT_RUN, 230)  # 23:00 never written


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
