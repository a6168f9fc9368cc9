"""How far a partition's extract has come: rows, rows per second, and a percentage against what is expected.

A source rarely knows its row count before it is read, so the percentage compares with the partition's usual
size (the median of its latest publishes) and never says 100 before the load has finished; without history it
stays at 0 and the rows and rate tell the story. Pure arithmetic on given times, so it is tested without a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

ALMOST_DONE = 99.0
"""The most a running load shows: a partition larger than usual must not read 100% while it still loads."""


def expected_rows(previous_row_counts: list[int]) -> int | None:
    """The usual size of a partition: the median of earlier publishes' row counts; None without any (or all 0)."""
    usual = median(previous_row_counts) if previous_row_counts else 0
    return int(usual) or None


@dataclass
class LoadProgress:
    pipeline: str
    partition: str
    expected: int | None
    started: float  # a monotonic clock reading
    now: float = 0.0
    rows: int = 0
    chunks: int = 0
    done: bool = False

    def add_chunk(self, rows: int, now: float) -> None:
        self.rows += rows
        self.chunks += 1
        self.now = now

    def finish(self, now: float) -> None:
        self.now = now
        self.done = True

    @property
    def rows_per_second(self) -> float:
        elapsed = self.now - self.started
        return self.rows / elapsed if elapsed > 0 else 0.0

    @property
    def percent(self) -> float:
        if self.done:
            return 100.0
        if not self.expected:
            return 0.0
        return min(ALMOST_DONE, 100.0 * self.rows / self.expected)

    def describe(self) -> str:
        """`shop_orders 2026-11-02: 2,318 rows (of ~2,400 usual) in 3 chunks, 45,210 rows/s`."""
        usual = f" (of ~{self.expected:,} usual)" if self.expected else ""
        state = "loaded" if self.done else "loading"
        return (
            f"{self.pipeline} {self.partition}: {state} {self.rows:,} rows{usual} in {self.chunks} chunk(s), "
            f"{self.rows_per_second:,.0f} rows/s"
        )
