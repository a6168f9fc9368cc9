"""What the monitor concludes from an SLO report: per incident kind, breached or not, and the sentence to send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shipshape.alerts import COST, FAST_BURN, FRESHNESS_BREACH, UNUSED
from shipshape.cost import PipelineMonth
from shipshape.incidents import Kind
from shipshape.slo import SloReport, format_duration
from shipshape.usage import is_unused


@dataclass(frozen=True)
class Observation:
    kind: Kind
    breached: bool
    summary: str


def observations(report: SloReport) -> list[Observation]:
    return [_freshness(report), _burn(report)]


def _freshness(report: SloReport) -> Observation:
    sla = format_duration(report.sla)
    if report.last_published_at is None:
        return Observation(FRESHNESS_BREACH, True, f"never published (freshness SLA {sla})")
    last = report.last_published_at.strftime("%Y-%m-%d %H:%M UTC")
    age = format_duration(report.evaluated_at - report.last_published_at)
    if report.fresh:
        return Observation(FRESHNESS_BREACH, False, f"fresh again: last publish {last}, {age} ago (SLA {sla})")
    return Observation(FRESHNESS_BREACH, True, f"no publish for {age} (SLA {sla}); last publish {last}")


def _burn(report: SloReport) -> Observation:
    rate, window = report.max_burn_rate, format_duration(report.fast_burn_window)
    budgets = (
        f"success rate {_percent(report.success_rate)} (target {_percent(report.success_target)}), "
        f"freshness {_percent(report.freshness)} (target {_percent(report.freshness_target)}) "
        f"over {format_duration(report.window)}"
    )
    if not report.fast_burn:
        return Observation(FAST_BURN, False, f"burn rate back to {rate:.1f}x over {window}; {budgets}")
    exhausted = format_duration(report.window / rate)
    return Observation(
        FAST_BURN,
        True,
        f"error budget burning {rate:.1f}x over the last {window} (alert at {report.fast_burn_rate:g}x): "
        f"at this rate the {format_duration(report.window)} budget lasts {exhausted}; {budgets}",
    )


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def cost_observation(month: PipelineMonth) -> Observation:
    """Over budget when the month's projection passes `cost.budget_per_month`; no budget is never over."""
    money = f"{month.projected_cost:.4f} {month.currency}"
    so_far = f"{month.total_cost:.4f} {month.currency} so far in {month.month}"
    if month.budget is None:
        return Observation(COST, False, f"no budget declared; projected {money} ({so_far})")
    budget = f"budget {month.budget:g} {month.currency}"
    if month.over_budget:
        return Observation(COST, True, f"projected {money} this month passes the {budget} ({so_far})")
    return Observation(COST, False, f"projected {money} this month, within the {budget} ({so_far})")


def unused_observation(table: str, quiet_since: datetime, now: datetime, unread_after: timedelta) -> Observation:
    """Unused when no consumer read the table for `unread_after` since its first publish (or since reads were
    first sampled): suggest pausing or retiring; a read resolves it."""
    quiet = format_duration(now - quiet_since)
    if is_unused(quiet_since, now, unread_after):
        return Observation(
            UNUSED, True,
            f"no consumer read {table} for {quiet} (value.unread_after {format_duration(unread_after)}): "
            "pause the schedule or retire the pipeline if nobody needs it",
        )
    return Observation(UNUSED, False, f"{table} read by a consumer within {format_duration(unread_after)}")
