"""The run timeout policy: declared wins; else a multiple of recent runs per partition, never below the floor."""

from __future__ import annotations

from datetime import timedelta

from shipshape.run_timeout import FLOOR, HISTORY_MULTIPLE, Deadline, PastRun, run_timeout, timed_out_message

MINUTE = timedelta(minutes=1)


def test_a_declared_timeout_wins_over_history() -> None:
    history = [PastRun(duration=60 * MINUTE, partitions=1)]
    assert run_timeout(2 * MINUTE, history, partitions=1) == 2 * MINUTE


def test_without_history_the_floor_applies() -> None:
    assert run_timeout(None, [], partitions=30) == FLOOR


def test_the_default_is_a_multiple_of_the_slowest_recent_run_per_partition_times_the_partitions() -> None:
    history = [PastRun(duration=40 * MINUTE, partitions=4), PastRun(duration=8 * MINUTE, partitions=1)]
    # per partition: 10m and 8m; slowest 10m → 3 x 10m x 2 partitions
    assert run_timeout(None, history, partitions=2) == HISTORY_MULTIPLE * 10 * MINUTE * 2


def test_fast_history_never_takes_the_timeout_below_the_floor() -> None:
    assert run_timeout(None, [PastRun(duration=timedelta(seconds=5), partitions=1)], partitions=1) == FLOOR


def test_a_deadline_counts_down_and_passes() -> None:
    assert 0 < Deadline(MINUTE).remaining_seconds() <= 60
    spent = Deadline(MINUTE, started=Deadline(MINUTE).started - 61)
    assert spent.remaining_seconds() == 0.0 and spent.passed


def test_the_timed_out_message_says_what_stopped_the_state_of_the_data_and_the_fix() -> None:
    message = timed_out_message("shop_orders", "2026-11-05", timedelta(seconds=90), declared=False, step="extract")
    assert message == (
        "pipeline shop_orders: partition 2026-11-05 timed out in extract after the run's timeout of 1m30s "
        f"(default: {HISTORY_MULTIPLE}x recent runs, at least 15m); nothing was published and the partition lock "
        "is released. Check the source for a hang; if runs are legitimately this slow, raise `timeout` in "
        "pipelines/shop_orders.yaml"
    )
