"""Volume anomalies: is a published partition's row count inside the band of its trailing baseline?

An anomaly is a warning, never a block. The band is robust so that one odd day in the baseline does not hide
the next one: the median and the median absolute deviation (robust z-score), or percentiles of the baseline.

The rules that do block are decided here too, and join the contract's checks at the audit gate as
`CheckOutcome`s: the hard bounds `volume.min_rows/max_rows` (`bound_checks`), and the two that keep a source
that answered nothing, or far too little, from wiping published data (`loss_checks`): no rows at all unless
`volume.allow_empty`, and no publish that leaves what it replaces with fewer than (1 - `volume.max_shrink`) of
the rows it holds now (measured by `shipshape.publish.replaced_rows` before the gate).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from shipshape.audit import CheckOutcome
from shipshape.declaration import Pipeline, Volume, VolumeAnomaly
from shipshape.ledger import PublishedTable, published_row_counts_before
from shipshape.warehouses import Warehouse

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


def judge_published(
    warehouse: Warehouse, spec: Pipeline, partition: str, start: datetime, rows: int
) -> VolumeVerdict | None:
    """The verdict on a partition of the current table against the ledger's baseline: the partitions published
    before it (`volume.anomaly.baseline_partitions` of them). The monitor alerts on it and the report draws it.
    None: no anomaly rule, or too little history."""
    config = spec.volume.anomaly
    if config is None:
        return None
    baseline = published_row_counts_before(warehouse, PublishedTable.of(spec), start, config.baseline_partitions)
    return judge(partition, rows, baseline, config)


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


@dataclass(frozen=True)
class Replaced:
    """What a publish would do to the rows it replaces: `before` rows in `scope` now, `after` once published.

    The scope is what the publish deletes: the partition's range (`replace_partition`), or the whole table
    (`full_replace`; `merge`, whose `after` counts the table's rows whose keys the new rows do not replace).
    """

    scope: str  # "analytics.fct_orders" or "partition 2026-11-05 of analytics.fct_orders"
    before: int
    after: int


EMPTY_CHECK = "volume: not empty"
SHRINK_CHECK = "volume: shrink within max_shrink"


def loss_checks(volume: Volume, row_count: int, replaced: Replaced) -> list[CheckOutcome]:
    """The empty and shrink rules for a partition of `row_count` rows, reported like contract checks."""
    return [empty_check(volume, row_count), shrink_check(volume, replaced)]


def empty_check(volume: Volume, row_count: int) -> CheckOutcome:
    """No rows at all blocks unless the declaration says an empty partition is legitimate (`allow_empty`)."""
    if row_count > 0:
        outcome, detail = "passed", f"{row_count} rows"
    elif volume.allow_empty:
        outcome, detail = "passed", "no rows; allowed by volume.allow_empty"
    else:
        outcome, detail = "failed", (
            "the source gave no rows for this partition; if that can be right, declare volume.allow_empty: true"
        )
    return CheckOutcome(
        name=EMPTY_CHECK,
        column=None,
        check_type="volume",
        outcome=outcome,
        blocking=outcome == "failed",
        measured=row_count,
        detail=detail,
        threshold="" if volume.allow_empty else "must be greater than 0; volume.allow_empty: true allows 0",
    )


def shrink_check(volume: Volume, replaced: Replaced) -> CheckOutcome:
    """Block a publish leaving its scope with fewer than (1 - max_shrink) of its rows; `max_shrink: 1` allows any.

    Exact arithmetic: with max_shrink 0.7, 3 rows out of 10 is allowed (a float 0.3 * 10 would refuse it).
    """
    allowed = Fraction(str(volume.max_shrink))
    minimum = math.ceil((1 - allowed) * replaced.before)
    blocking = replaced.after < minimum
    if replaced.before == 0:
        detail = f"{replaced.scope} holds no rows yet: nothing to shrink"
    else:
        fewer = max(0, replaced.before - replaced.after) / replaced.before
        detail = (
            f"{replaced.scope} holds {replaced.before} rows; this publish leaves {replaced.after} "
            f"({fewer:.0%} fewer); volume.max_shrink {volume.max_shrink} allows {float(allowed):.0%} fewer"
        )
    return CheckOutcome(
        name=SHRINK_CHECK,
        column=None,
        check_type="volume",
        outcome="failed" if blocking else "passed",
        blocking=blocking,
        measured=replaced.after,
        detail=detail,
        threshold=(
            f"must be at least {minimum} of the {replaced.before} rows now in {replaced.scope} "
            f"(volume.max_shrink {volume.max_shrink})"
            if replaced.before
            else ""
        ),
    )
