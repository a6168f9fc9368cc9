"""SLO arithmetic against numbers computed by hand: freshness with gaps, never published, budgets, burn rates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shipshape.catalog import load_all
from shipshape.declaration import Destination, Freshness, Pipeline, Slo
from shipshape.settings import PACKAGE_ROOT
from shipshape.slo import RunOutcome, evaluate, format_duration

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
EXAMPLE = load_all(PACKAGE_ROOT)[0].spec
ALWAYS_FRESH = [NOW - timedelta(hours=hours) for hours in range(0, 30 * 24, 12)]  # every 12h, SLA 26h


def spec(sla: str = "26h", **slo: object) -> Pipeline:
    return EXAMPLE.model_copy(update={"freshness": Freshness(sla=sla), "slo": Slo(**slo)})


def hours_ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


def run(hours: float, succeeded: bool) -> RunOutcome:
    return RunOutcome(f"run-{hours}", hours_ago(hours), succeeded, "Completed" if succeeded else "Failed")


def test_freshness_counts_the_fresh_part_of_the_window_with_gaps_and_overlaps() -> None:
    # Window [now-100h, now], SLA 10h. Fresh: a publish 5h before the window covers its first 5h; publishes at
    # 80h and 75h ago overlap (80h..65h ago, 15h); one 5h ago covers the last 5h. 25h of 100h are fresh.
    report = evaluate(
        spec(sla="10h", window="100h", freshness=0.9, fast_burn_window="10h"),
        publishes=[hours_ago(105), hours_ago(80), hours_ago(75), hours_ago(5), hours_ago(120)],
        runs=[],
        now=NOW,
    )
    assert report.freshness == pytest.approx(0.25)
    assert report.freshness_budget_remaining == pytest.approx(1 - 0.75 / 0.1)  # -6.5: overspent
    assert report.freshness_burn_rate == pytest.approx(0.5 / 0.1)  # last 10h: 5h fresh
    assert report.last_published_at == hours_ago(5) and report.staleness == timedelta(hours=5)
    assert report.fresh
    assert report.success_rate is None and report.success_budget_remaining is None and report.success_burn_rate is None


def test_a_publish_before_the_window_keeps_its_start_fresh() -> None:
    report = evaluate(spec(sla="10h", window="100h"), publishes=[hours_ago(104)], runs=[], now=NOW)
    assert report.freshness == pytest.approx(0.06)
    assert not report.fresh and report.staleness == timedelta(hours=104)


def test_never_published_is_never_fresh() -> None:
    report = evaluate(spec(freshness=0.99), publishes=[], runs=[run(1, True)], now=NOW)
    assert report.last_published_at is None and report.staleness is None and not report.fresh
    assert report.freshness == 0
    assert report.freshness_budget_remaining == pytest.approx(1 - 1 / 0.01)
    assert report.freshness_burn_rate == pytest.approx(100)
    row = report.as_row()
    assert row["last publish"] == "never" and row["staleness / SLA"] == "never / 1d2h" and row["fresh"] == "NO"


def test_a_new_pipeline_is_measured_from_its_first_run_not_the_whole_window() -> None:
    # Deployed 10h ago: one run failed then, one published 4h ago (SLA 10h). Fresh: 4h of the 10h seen.
    report = evaluate(spec(sla="10h", window="100h"), publishes=[hours_ago(4)], runs=[run(10, False)], now=NOW)
    assert report.freshness == pytest.approx(0.4)


def test_no_publish_and_no_run_means_no_freshness_sli_and_no_burn() -> None:
    report = evaluate(spec(), publishes=[], runs=[], now=NOW)
    assert report.freshness is None and report.freshness_burn_rate is None and report.freshness_budget_remaining is None
    assert report.max_burn_rate == 0 and not report.fast_burn and not report.fresh


def test_failed_runs_spend_the_success_budget() -> None:
    runs = [run(24 * day + 30, True) for day in range(16)]  # one a day, all older than the last day
    runs += [run(24 * 5, False), run(24 * 9, False)]
    runs += [run(1, True), run(2, True), run(3, True), run(4, False)]  # the last day: 3 of 4 succeeded
    runs.append(run(24 * 30, False))  # outside the 28d window: ignored
    report = evaluate(spec(success_rate=0.95, fast_burn_rate=10), ALWAYS_FRESH, runs, NOW)
    assert (report.runs, report.failed_runs) == (22, 3)
    assert report.success_rate == pytest.approx(19 / 22)
    assert report.success_budget_remaining == pytest.approx(1 - (3 / 22) / 0.05)
    assert report.success_burn_rate == pytest.approx(0.25 / 0.05)  # 5x
    assert report.freshness == pytest.approx(1) and report.freshness_burn_rate == pytest.approx(0)
    assert not report.fast_burn


@pytest.mark.parametrize(
    ("last_day", "fast"),
    [
        ([True, False], True),  # 50% over the last day: burn (1 - 0.5) / (1 - 0.95) = 10x, the threshold itself
        ([True, True, True, False], False),  # 5x
        ([False], True),  # 20x
    ],
)
def test_fast_burn_alerts_at_the_declared_rate(last_day: list[bool], fast: bool) -> None:
    runs = [run(hours + 1, succeeded) for hours, succeeded in enumerate(last_day)]
    report = evaluate(spec(success_rate=0.95, fast_burn_rate=10), ALWAYS_FRESH, runs, NOW)
    assert report.fast_burn is fast
    assert (report.as_row()["alert"] == "FAST BURN (≥10x)") is fast


def test_row_is_human_readable() -> None:
    report = evaluate(
        spec(sla="26h"), [NOW - timedelta(hours=3, minutes=12)], [run(1, True), run(2, False)], NOW
    )
    row = report.as_row()
    assert row["last publish"] == "2026-11-20 08:48 UTC"
    assert row["staleness / SLA"] == "3h12m / 1d2h" and row["fresh"] == "yes"
    assert row["success / target"] == "50% / 95%" and row["runs (failed)"] == "2 (1)"
    assert row["budget left: success"] == "-900%"  # 1 - 0.5 / 0.05
    assert row["burn rate: success"] == "10.0x/1d"


@pytest.mark.parametrize(
    ("duration", "text"),
    [(timedelta(seconds=45), "45s"), (timedelta(minutes=12), "12m"), (timedelta(hours=3, minutes=12), "3h12m"),
     (timedelta(days=2, hours=3, minutes=5), "2d3h"), (timedelta(0), "0s")],
)
def test_durations(duration: timedelta, text: str) -> None:
    assert format_duration(duration) == text


def test_row_shows_the_published_table_and_the_previous_version_while_it_is_kept() -> None:
    assert evaluate(spec(), [], [], NOW).as_row()["table"] == "analytics.fct_orders"
    versioned = EXAMPLE.model_copy(
        update={"destination": Destination(table="fct_orders", version=2, previous_version_until=date(2026, 11, 20))}
    )
    assert evaluate(versioned, [], [], NOW).as_row()["table"] == (
        "analytics.fct_orders_v2; v1 analytics.fct_orders kept until 2026-11-20"
    )
    later = NOW + timedelta(days=1)
    assert evaluate(versioned, [], [], later).as_row()["table"] == (
        "analytics.fct_orders_v2; v1 analytics.fct_orders retired 2026-11-20 (make apply drops it)"
    )
