"""Partition planning: half-open UTC windows, both range ends included, sensible defaults."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from shipshape.partitions import FULL_REFRESH, Grain, partition_instant, plan_windows, windows_for

NOW = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


def test_daily_range_includes_both_ends() -> None:
    windows = plan_windows("day", date(2026, 11, 1), date(2026, 11, 3))
    assert [w.key for w in windows] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert windows[0].start == datetime(2026, 11, 1, tzinfo=UTC)
    assert windows[0].end == windows[1].start


def test_hourly_range_has_24_windows_per_day() -> None:
    windows = plan_windows("hour", date(2026, 11, 1), date(2026, 11, 2))
    assert len(windows) == 48
    assert windows[5].key == "2026-11-01T05" and windows[5].table_suffix == "2026110105"


def test_reversed_range_is_an_error() -> None:
    with pytest.raises(ValueError, match="end_date 2026-11-01 is before start_date 2026-11-02"):
        plan_windows("day", date(2026, 11, 2), date(2026, 11, 1))


def test_without_dates_the_latest_complete_partition_runs() -> None:
    assert [w.key for w in windows_for("day", None, None, NOW)] == ["2026-11-20"]
    assert [w.key for w in windows_for("hour", None, None, NOW)] == ["2026-11-21T08"]


def test_one_date_means_that_day() -> None:
    assert [w.key for w in windows_for("day", date(2026, 11, 4), None, NOW)] == ["2026-11-04"]
    assert [w.key for w in windows_for("day", None, date(2026, 11, 4), NOW)] == ["2026-11-04"]


def test_unpartitioned_pipelines_refresh_fully() -> None:
    assert windows_for(None, date(2026, 11, 1), date(2026, 11, 9), NOW) == [FULL_REFRESH]


# --- which instant a run without dates is computed from ---------------------------------------------------------


def latest(grain: Grain, scheduled_start: datetime | None, now: datetime) -> str:
    """The key of the partition a run without dates processes."""
    (window,) = windows_for(grain, None, None, partition_instant(scheduled_start, now))
    return window.key


def test_a_scheduled_daily_run_that_starts_hours_late_after_midnight_processes_its_scheduled_day() -> None:
    scheduled = datetime(2026, 11, 20, 2, 30, tzinfo=UTC)
    late = datetime(2026, 11, 21, 3, 15, tzinfo=UTC)  # the worker was down for a day

    assert latest("day", scheduled, late) == "2026-11-19"
    assert latest("day", None, late) == "2026-11-20"  # what the clock alone would have picked


def test_a_daily_run_late_by_hours_within_its_day_processes_the_same_partition() -> None:
    scheduled = datetime(2026, 11, 20, 2, 30, tzinfo=UTC)

    for hours_late in (0, 1, 5, 21):
        assert latest("day", scheduled, scheduled + timedelta(hours=hours_late)) == "2026-11-19"


def test_a_scheduled_hourly_run_that_starts_hours_late_processes_the_hour_before_its_slot() -> None:
    scheduled = datetime(2026, 11, 20, 23, 5, tzinfo=UTC)
    late = scheduled + timedelta(hours=3)

    assert latest("hour", scheduled, late) == "2026-11-20T22"
    assert latest("hour", None, late) == "2026-11-21T01"


def test_a_run_scheduled_exactly_at_midnight_processes_the_day_that_just_ended() -> None:
    midnight = datetime(2026, 11, 21, tzinfo=UTC)

    assert latest("day", midnight, midnight + timedelta(hours=2)) == "2026-11-20"
    assert latest("day", midnight - timedelta(microseconds=1), midnight) == "2026-11-19"
    assert latest("hour", midnight, midnight + timedelta(hours=2)) == "2026-11-20T23"


def test_an_exact_hour_slot_processes_the_hour_that_just_ended() -> None:
    slot = datetime(2026, 11, 21, 10, tzinfo=UTC)

    assert latest("hour", slot, slot + timedelta(minutes=40)) == "2026-11-21T09"


def test_without_a_scheduled_start_the_latest_complete_partition_is_relative_to_now() -> None:
    assert partition_instant(None, NOW) == NOW
    assert latest("day", None, NOW) == "2026-11-20"
    assert latest("hour", None, NOW) == "2026-11-21T08"


def test_an_ad_hoc_run_whose_scheduled_start_is_its_creation_gets_the_partition_of_now() -> None:
    """A direct call's scheduled start is the moment it created its run, a second or so before now."""
    created = NOW - timedelta(seconds=1)

    assert latest("day", created, NOW) == latest("day", None, NOW)
    assert latest("hour", created, NOW) == latest("hour", None, NOW)


def test_the_instant_is_in_utc_whatever_zone_the_scheduled_start_is_given_in() -> None:
    new_york = timezone(timedelta(hours=-5))
    scheduled = datetime(2026, 11, 20, 21, 30, tzinfo=new_york)  # 02:30 UTC on the 21st

    assert partition_instant(scheduled, NOW) == datetime(2026, 11, 21, 2, 30, tzinfo=UTC)
    assert partition_instant(scheduled, NOW).tzinfo is UTC
    assert latest("day", scheduled, NOW) == "2026-11-20"


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        partition_instant(datetime(2026, 11, 21, 2, 30), NOW)


def test_explicit_dates_win_over_the_scheduled_start() -> None:
    instant = partition_instant(datetime(2026, 11, 20, 2, 30, tzinfo=UTC), NOW)

    assert [w.key for w in windows_for("day", date(2026, 11, 4), date(2026, 11, 5), instant)] == [
        "2026-11-04",
        "2026-11-05",
    ]
