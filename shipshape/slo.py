"""Service level indicators, error budgets and burn rates of a pipeline: pure arithmetic, no I/O.

Two SLIs over the declared rolling window (`slo.window`):
- success rate: the fraction of finished flow runs that succeeded (Cancelled runs are not counted);
- freshness: the fraction of the window during which the latest publish was at most `freshness.sla` old.

An SLO's error budget is what the target allows to go wrong (1 - target). Budget remaining is
1 - (1 - SLI) / (1 - target): 1 untouched, 0 used up, negative overspent. The burn rate is the same ratio over
the short `slo.fast_burn_window`: 1 spends the budget exactly over the window, `slo.fast_burn_rate` or more is
a fast burn that alerts (the budget would be gone in window / rate). Callers fetch the inputs
(`runtime.slo_sources`); keeping the math here makes it testable with hand-computed numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shipshape.declaration import Pipeline


@dataclass(frozen=True)
class RunOutcome:
    """One finished flow run of a pipeline: succeeded (Completed) or failed (any failed-type state)."""

    flow_run_id: str
    finished_at: datetime
    succeeded: bool
    state_name: str


@dataclass(frozen=True)
class SloReport:
    """Where a pipeline stands against its SLOs at `evaluated_at`; ratios are fractions (0.95, not 95)."""

    pipeline: str
    evaluated_at: datetime
    window: timedelta
    fast_burn_window: timedelta
    sla: timedelta
    last_published_at: datetime | None
    runs: int
    failed_runs: int
    success_rate: float | None  # None: no finished run in the window
    freshness: float | None  # None: no publish and no run yet
    success_target: float
    freshness_target: float
    success_budget_remaining: float | None
    freshness_budget_remaining: float | None
    success_burn_rate: float | None  # None: no finished run in the fast-burn window
    freshness_burn_rate: float | None
    fast_burn_rate: float  # the declared threshold
    tables: str  # the published table, and the previous version's while it is kept (`destination.version`)

    @property
    def staleness(self) -> timedelta | None:
        """Time since the latest publish; None when the pipeline never published."""
        return None if self.last_published_at is None else self.evaluated_at - self.last_published_at

    @property
    def fresh(self) -> bool:
        """Within the freshness SLA now; a pipeline that never published is not fresh."""
        return self.staleness is not None and self.staleness <= self.sla

    @property
    def max_burn_rate(self) -> float:
        """The faster of the two burns; 0 while neither SLI has data."""
        rates = (self.success_burn_rate, self.freshness_burn_rate)
        return max((rate for rate in rates if rate is not None), default=0.0)

    @property
    def fast_burn(self) -> bool:
        """Burning at the declared rate or faster; the tolerance keeps 0.5 / (1 - 0.95) = 9.999… at 10x."""
        return self.max_burn_rate >= self.fast_burn_rate * (1 - 1e-9)

    def as_row(self) -> dict[str, object]:
        """Human-readable cells for the `status` table and the monitor's artifact."""
        last, staleness = self.last_published_at, self.staleness
        return {
            "pipeline": self.pipeline,
            "table": self.tables,
            "window": format_duration(self.window),
            "last publish": last.strftime("%Y-%m-%d %H:%M UTC") if last else "never",
            "staleness / SLA": f"{'never' if staleness is None else format_duration(staleness)} / "
            f"{format_duration(self.sla)}",
            "fresh": "yes" if self.fresh else "NO",
            "success / target": f"{format_percent(self.success_rate)} / {format_percent(self.success_target)}",
            "runs (failed)": f"{self.runs} ({self.failed_runs})",
            "freshness / target": f"{format_percent(self.freshness)} / {format_percent(self.freshness_target)}",
            "budget left: success": format_percent(self.success_budget_remaining),
            "budget left: freshness": format_percent(self.freshness_budget_remaining),
            "burn rate: success": self._burn(self.success_burn_rate),
            "burn rate: freshness": self._burn(self.freshness_burn_rate),
            "alert": f"FAST BURN (≥{self.fast_burn_rate:g}x)" if self.fast_burn else "",
        }

    def _burn(self, rate: float | None) -> str:
        """A burn rate with the window it is measured over: `12.0x/1d`."""
        return "—" if rate is None else f"{rate:.1f}x/{format_duration(self.fast_burn_window)}"


def evaluate(spec: Pipeline, publishes: list[datetime], runs: list[RunOutcome], now: datetime) -> SloReport:
    """The SLO report of `spec` at `now`.

    `publishes` are publish instants (one per publishing flow run); those before the window still count, since
    the latest of them decides whether the window starts fresh. `runs` outside the window are ignored.
    Freshness is measured from the pipeline's first publish or run at the earliest: a pipeline deployed an
    hour ago has not been stale for the 27 days before (no history at all: no freshness SLI).
    """
    slo, sla = spec.slo, spec.freshness.sla_delta
    published = sorted(instant for instant in publishes if instant <= now)
    in_window = _runs_since(runs, now - slo.window_delta, now)
    success = _success_rate(in_window)
    first_seen = min([*published, *(run.finished_at for run in runs)], default=None)
    freshness = _fresh_since(published, sla, now - slo.window_delta, first_seen, now)
    fast_success = _success_rate(_runs_since(runs, now - slo.fast_burn_delta, now))
    fast_freshness = _fresh_since(published, sla, now - slo.fast_burn_delta, first_seen, now)
    return SloReport(
        pipeline=spec.name,
        evaluated_at=now,
        window=slo.window_delta,
        fast_burn_window=slo.fast_burn_delta,
        sla=sla,
        last_published_at=published[-1] if published else None,
        runs=len(in_window),
        failed_runs=sum(not run.succeeded for run in in_window),
        success_rate=success,
        freshness=freshness,
        success_target=slo.success_rate,
        freshness_target=slo.freshness,
        success_budget_remaining=None if success is None else 1 - burn_rate(success, slo.success_rate),
        freshness_budget_remaining=None if freshness is None else 1 - burn_rate(freshness, slo.freshness),
        success_burn_rate=None if fast_success is None else burn_rate(fast_success, slo.success_rate),
        freshness_burn_rate=None if fast_freshness is None else burn_rate(fast_freshness, slo.freshness),
        fast_burn_rate=slo.fast_burn_rate,
        tables=spec.destination.versions_note(now.date()),
    )


def _fresh_since(
    published: list[datetime], sla: timedelta, start: datetime, first_seen: datetime | None, now: datetime
) -> float | None:
    if first_seen is None or first_seen >= now:
        return None
    return fresh_fraction(published, sla, max(start, first_seen), now)


def burn_rate(sli: float, target: float) -> float:
    """The share of the error budget an SLI spends: (1 - SLI) / (1 - target); 1 spends exactly the budget."""
    return (1 - sli) / (1 - target)


def fresh_fraction(publishes: list[datetime], sla: timedelta, start: datetime, end: datetime) -> float:
    """The fraction of [start, end] during which the latest publish (sorted `publishes`) was at most `sla` old.

    Each publish keeps the data fresh for `sla` after it, so the fresh time is the union of [p, p + sla]
    clipped to the window; merging the sorted intervals counts an overlap once.
    """
    fresh = timedelta(0)
    covered_until = start
    for instant in publishes:
        begin, until = max(instant, covered_until), min(instant + sla, end)
        if until > begin:
            fresh += until - begin
            covered_until = until
    return fresh / (end - start)


def format_duration(duration: timedelta) -> str:
    """A duration in its two largest units: 45s, 12m, 3h12m, 2d3h."""
    seconds = int(duration.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [f"{value}{unit}" for value, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if value]
    return "".join(parts[:2]) or "0s"


def format_percent(value: float | None) -> str:
    """A fraction as a percentage with four significant digits (0.95 → 95%, 0.041667 → 4.167%); None → —."""
    return "—" if value is None else f"{value * 100:.4g}%"


def _runs_since(runs: list[RunOutcome], start: datetime, end: datetime) -> list[RunOutcome]:
    return [run for run in runs if start <= run.finished_at <= end]


def _success_rate(runs: list[RunOutcome]) -> float | None:
    return sum(run.succeeded for run in runs) / len(runs) if runs else None
