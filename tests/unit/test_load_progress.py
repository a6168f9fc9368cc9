"""Extract progress arithmetic: the usual size, a percentage that never claims done early, rows per second."""

from __future__ import annotations

import pytest

from shipshape.load_progress import ALMOST_DONE, LoadProgress, expected_rows


def test_the_usual_size_is_the_median_of_earlier_publishes() -> None:
    assert expected_rows([2400, 100, 2300, 2500, 90_000]) == 2400  # one odd day moves nothing
    assert expected_rows([]) is None
    assert expected_rows([0, 0]) is None  # empty partitions published on purpose: no size to compare with


def test_percent_follows_rows_against_the_usual_size_and_reaches_100_only_when_done() -> None:
    progress = LoadProgress("shop_orders", "2026-11-02", expected=1000, started=10.0)
    assert progress.percent == 0.0
    progress.add_chunk(250, now=11.0)
    assert progress.percent == pytest.approx(25.0)
    progress.add_chunk(5000, now=12.0)  # a partition far larger than usual: still loading, so not 100
    assert progress.percent == ALMOST_DONE
    progress.finish(now=12.5)
    assert progress.percent == 100.0


def test_without_history_the_percentage_stays_at_zero_until_done() -> None:
    progress = LoadProgress("shop_orders", "2026-11-02", expected=None, started=0.0)
    progress.add_chunk(100_000, now=2.0)
    assert progress.percent == 0.0
    assert "(of ~" not in progress.describe()
    progress.finish(now=2.0)
    assert progress.percent == 100.0


def test_rows_per_second_over_the_time_since_the_extract_started() -> None:
    progress = LoadProgress("shop_orders", "2026-11-02", expected=2400, started=100.0)
    assert progress.rows_per_second == 0.0  # no time passed: no division by zero
    progress.add_chunk(100_000, now=102.0)
    progress.add_chunk(50_000, now=103.0)
    assert progress.rows_per_second == pytest.approx(50_000)
    assert progress.describe() == (
        "shop_orders 2026-11-02: loading 150,000 rows (of ~2,400 usual) in 2 chunk(s), 50,000 rows/s"
    )
