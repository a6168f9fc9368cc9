"""Volume anomalies: is a published partition's row count inside the band of its trailing baseline?

An anomaly is a warning, never a block. The band is robust so that one odd day in the baseline does not hide
the next one: the median and the median absolute deviation (robust z-score), or percentiles of the baseline.
The hard bounds `volume.min_rows/max_rows` are decided here too (`bound_checks`): they join the contract's
checks at the audit gate, and they do block.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from shipshape.audit import CheckOutcome
from shipshape.declaration import Volume, VolumeAnomaly

# Scales the MAD to the standard deviation of a normal distribution, so thresholds read like z-scores.
_MAD_TO_SIGMA = 0.6745


@dataclass(frozen=True)
class VolumeVerdict:
    partition: str
    rows: int
    low: float
    high: float
    baseline_size: int

    @property
    def anomalous(self) -> bool:
        return not self.low <= self.rows <= self.high

    def describe(self) -> str:
        where = "below" if self.rows < self.low else "above" if self.rows > self.high else "inside"
        return (
            f"partition {self.partition}: {self.rows:,} rows, {where} the expected band "
            f"{self.low:,.0f}..{self.high:,.0f} (trailing {self.baseline_size} partitions)"
        )


def judge(partition: str, rows: int, baseline: list[int], config: VolumeAnomaly) -> VolumeVerdict | None:
    """The verdict for `rows` against `baseline` (older partitions' row counts); None while history is too short."""
    if len(baseline) < config.min_history:
        return None
    low, high = _band(baseline, config)
    return VolumeVerdict(partition, rows, low, high, len(baseline))


def _band(baseline: list[int], config: VolumeAnomaly) -> tuple[float, float]:
    if config.method == "percentile":
        cuts = statistics.quantiles(baseline, n=100, method="inclusive")  # the 1st..99th percentiles
        lower, upper = config.percentiles
        return cuts[lower - 1], cuts[upper - 1]
    median = statistics.median(baseline)
    mad = statistics.median(abs(value - median) for value in baseline)
    # A perfectly steady baseline (MAD 0) would flag any change of one row: allow 1% of the median instead.
    spread = max(mad, 0.01 * median) * config.threshold / _MAD_TO_SIGMA
    return max(0.0, median - spread), median + spread


def bound_checks(volume: Volume, row_count: int) -> list[CheckOutcome]:
    """Declared volume bounds, reported like contract checks so one list gates the publish."""
    if volume.min_rows is None and volume.max_rows is None:
        return []
    low = volume.min_rows if volume.min_rows is not None else 0
    high = volume.max_rows if volume.max_rows is not None else float("inf")
    inside = low <= row_count <= high
    return [
        CheckOutcome(
            name="volume: row_count within declared bounds",
            column=None,
            check_type="volume",
            outcome="passed" if inside else "failed",
            blocking=not inside,
            measured=row_count,
            detail=f"expected between {low} and {high} rows",
        )
    ]
