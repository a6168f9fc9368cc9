"""`shipshape status` views: one line per pipeline within 100 columns, colour only on a terminal without NO_COLOR,
and JSON a script can read back."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta

import pytest

from cli.status import WIDTH, as_json, detail, state, summary, use_colour
from shipshape.slo import SloReport

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ANSI = re.compile(r"\033\[[0-9;]*m")


def report(name: str = "shop_orders", **changes: object) -> SloReport:
    values: dict[str, object] = dict(
        pipeline=name, evaluated_at=NOW, window=timedelta(days=28), fast_burn_window=timedelta(days=1),
        sla=timedelta(hours=26), last_published_at=NOW - timedelta(hours=2), runs=30, failed_runs=1,
        success_rate=29 / 30, freshness=1.0, success_target=0.95, freshness_target=0.99,
        success_budget_remaining=0.33, freshness_budget_remaining=1.0, success_burn_rate=0.5,
        freshness_burn_rate=0.0, fast_burn_rate=10.0,
        tables="analytics.fct_orders_v2; v1 analytics.fct_orders kept until 2027-01-31",
    )  # fmt: skip
    values.update(changes)
    return SloReport(**values)  # type: ignore[arg-type]


def worst_case(name: str) -> SloReport:
    """Every cell at its widest: never published, budgets overspent by orders of magnitude, a huge burn."""
    return report(
        name, last_published_at=None, freshness=0.0, success_rate=0.000123, success_budget_remaining=-12345.678,
        freshness_budget_remaining=-99999.9, success_burn_rate=123456.7, sla=timedelta(days=6, hours=23, minutes=59),
    )  # fmt: skip


def test_one_line_per_pipeline_fits_100_columns_even_at_the_widest() -> None:
    longest_name = "a" * 30  # the declaration's limit
    text = summary([report(), worst_case(longest_name), report("b", success_burn_rate=12.0)], colour=False)
    lines = text.splitlines()
    assert len(lines) == 2 + 3  # header, rule, one per pipeline
    assert max(len(line) for line in lines) <= WIDTH, text
    assert lines[2].startswith("shop_orders") and lines[2].endswith("ok")
    assert lines[3].startswith(longest_name) and lines[3].endswith("BREACH")
    assert lines[4].endswith("FAST BURN")


def test_a_breach_comes_before_a_fast_burn() -> None:
    assert state(report(last_published_at=NOW - timedelta(hours=27), success_burn_rate=50.0)) == "BREACH"
    assert state(report(success_burn_rate=10.0)) == "FAST BURN"
    assert state(report(last_published_at=None)) == "BREACH"  # never published is not fresh


def test_colour_marks_breaches_and_fast_burns_red_and_nothing_else_changes() -> None:
    reports = [report(), worst_case("late"), report("burning", success_burn_rate=11.0)]
    coloured = summary(reports, colour=True)
    assert ANSI.sub("", coloured) == summary(reports, colour=False)
    lines = coloured.splitlines()
    assert lines[2].startswith("\033[32m")
    assert lines[3].startswith("\033[31m") and lines[4].startswith("\033[31m")
    assert "\033[31m" in detail(worst_case("late"), colour=True)


def test_colour_only_for_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    leader, follower = os.openpty()
    with open(follower, "w") as terminal, open(os.devnull, "w") as pipe_like:
        monkeypatch.delenv("NO_COLOR", raising=False)
        assert use_colour(terminal) and not use_colour(pipe_like)
        monkeypatch.setenv("NO_COLOR", "1")
        assert not use_colour(terminal)
    os.close(leader)


def test_the_detail_view_shows_every_figure_of_one_pipeline() -> None:
    text = detail(report(), colour=False)
    lines = {line.split("  ", 1)[0]: line.split("  ", 1)[1].strip() for line in text.splitlines()}
    assert lines["success / target"] == "96.67% / 95%" and lines["runs (failed)"] == "30 (1)"
    assert lines["last publish"] == "2026-11-20 10:00 UTC" and lines["state"] == "ok"


def test_json_reads_back_with_fractions_seconds_and_nulls() -> None:
    parsed = json.loads(as_json("prod", [report(), worst_case("late")]))
    assert parsed["environment"] == "prod"
    first, late = parsed["pipelines"]
    assert first["pipeline"] == "shop_orders" and first["state"] == "ok" and first["fresh"] is True
    assert first["table"] == "analytics.fct_orders_v2; v1 analytics.fct_orders kept until 2027-01-31"
    assert first["success_rate"] == pytest.approx(29 / 30)
    assert first["staleness_seconds"] == 7200.0 and first["sla_seconds"] == 26 * 3600.0
    assert datetime.fromisoformat(first["last_published_at"]) == NOW - timedelta(hours=2)
    assert late["last_published_at"] is None and late["staleness_seconds"] is None and late["state"] == "BREACH"
