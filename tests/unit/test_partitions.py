"""Partition planning: half-open UTC windows, both range ends included, sensible defaults."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from shipshape.partitions import FULL_REFRESH, plan_windows, windows_for

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
