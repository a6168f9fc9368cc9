"""How long one run of a pipeline may take before it ends TimedOut, and the deadline that enforces it.

A run that never ends is worse than one that fails: it holds its partition locks and a concurrency slot and no
alert fires. So every run has a timeout: the declared `timeout` if the owner gave one, otherwise a generous
multiple of how long recent successful runs took per partition (a run of a slow day is not a hang), never less
than a floor (a pipeline with no history, or very fast history, still gets time to start up).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from shipshape.slo import format_duration

FLOOR = timedelta(minutes=15)
HISTORY_MULTIPLE = 3  # a run may take 3x the slowest recent per-partition time before it counts as hung
HISTORY_RUNS = 20  # how many recent successful runs the default looks at


@dataclass(frozen=True)
class PastRun:
    """One successful run from the ledger: how long it took and how many partitions it published."""

    duration: timedelta
    partitions: int

    @property
    def per_partition(self) -> timedelta:
        return self.duration / max(self.partitions, 1)


def run_timeout(declared: timedelta | None, history: Sequence[PastRun], partitions: int) -> timedelta:
    """The timeout of a run of `partitions` partitions: the declared one, else derived from `history`."""
    if declared is not None:
        return declared
    if not history:
        return FLOOR
    slowest = max(past.per_partition for past in history)
    return max(FLOOR, HISTORY_MULTIPLE * slowest * max(partitions, 1))


@dataclass(frozen=True)
class Deadline:
    """The moment a run must have ended, on the monotonic clock (a wall-clock change cannot stretch it)."""

    timeout: timedelta
    started: float = field(default_factory=time.monotonic)

    def remaining_seconds(self) -> float:
        """Seconds left, never negative; 0 means the run is out of time."""
        return max(0.0, self.started + self.timeout.total_seconds() - time.monotonic())

    @property
    def passed(self) -> bool:
        return self.remaining_seconds() == 0.0


def timed_out_message(pipeline: str, partition_key: str, timeout: timedelta, declared: bool, step: str) -> str:
    """What the ledger row, the run's state and the alert say: what stopped, what the data is now, what to do."""
    floor = format_duration(FLOOR)
    origin = "declared `timeout`" if declared else f"default: {HISTORY_MULTIPLE}x recent runs, at least {floor}"
    return (
        f"pipeline {pipeline}: partition {partition_key} timed out in {step} after the run's timeout of "
        f"{format_duration(timeout)} ({origin}); nothing was published and the partition lock is released. "
        f"Check the source for a hang; if runs are legitimately this slow, raise `timeout` in pipelines/{pipeline}.yaml"
    )
