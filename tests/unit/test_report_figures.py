"""The report's figures carry the numbers the platform decides elsewhere: freshness breaches from the same
publishes as the SLO, the burn-down from `slo.evaluate`, volume bands from `volume.judge`; and the page inlines
plotly.js once and draws only charts with data."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from plotly.offline import get_plotlyjs

from shipshape.catalog import load_all
from shipshape.cost import PipelineMonth
from shipshape.declaration import Freshness, Slo
from shipshape.lineage import lineage
from shipshape.report_data import EnvironmentHistory, PipelineHistory, VolumePoint
from shipshape.report_figures import (
    budget_figure,
    budget_series,
    cost_figure,
    freshness_figure,
    freshness_series,
    lineage_figure,
    volume_figure,
)
from shipshape.report_page import render, write
from shipshape.settings import PACKAGE_ROOT
from shipshape.slo import RunOutcome, evaluate, fresh_fraction
from shipshape.volume import judge

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DECLARED = load_all(PACKAGE_ROOT)
SPEC = DECLARED[0].spec.model_copy(
    update={"freshness": Freshness(sla="10h"), "slo": Slo(window="100h", fast_burn_window="10h")}
)


def hours_ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


def history(publishes: list[datetime], runs: list[RunOutcome] | None = None, volume: list[VolumePoint] | None = None):
    return PipelineHistory(SPEC, publishes, runs or [], volume or [])


PUBLISHES = [hours_ago(105), hours_ago(80), hours_ago(75), hours_ago(5)]  # SLA 10h, window 100h


def history_of_shop() -> PipelineHistory:
    return history(PUBLISHES, volume=[VolumePoint("2026-11-19", hours_ago(36), 2000, None)])


def test_freshness_breaches_are_the_windows_unfresh_time() -> None:
    series = freshness_series(PUBLISHES, timedelta(hours=10), hours_ago(100), NOW)
    # 105h ago keeps it fresh until 95h ago; 75h ago until 65h ago; 5h ago until now.
    assert series.breaches == [(hours_ago(95), hours_ago(80)), (hours_ago(65), hours_ago(5))]
    unfresh = sum((until - begin for begin, until in series.breaches), timedelta(0))
    fresh = fresh_fraction(PUBLISHES, timedelta(hours=10), hours_ago(100), NOW)
    assert unfresh / timedelta(hours=100) == pytest.approx(1 - fresh)
    # The sawtooth: 5h old at the window's start, 25h just before the publish 80h ago, then 0.
    assert (series.times[1], series.age_hours[1]) == (hours_ago(100), 5.0)
    assert (hours_ago(80), 25.0) in zip(series.times, series.age_hours, strict=True)
    assert (series.times[-1], series.age_hours[-1]) == (NOW, 5.0)


def test_the_freshness_chart_marks_each_breach_and_draws_the_sla() -> None:
    figure = freshness_figure(history(PUBLISHES), NOW)
    assert figure is not None
    age, sla, breach = figure.data
    assert age.y[-1] == 5.0  # the latest publish is 5h old now
    assert list(sla.y) == [10.0, 10.0]
    naive = [hours_ago(hours).replace(tzinfo=None) for hours in (95, 80, 65, 5)]  # plotly.js reads no offsets
    assert [x for x in breach.x if x is not None] == naive
    assert [y for y in breach.y if y is not None] == [10.0, 25.0, 10.0, 70.0]  # from the SLA up to the age reached
    assert len(figure.layout.shapes) == 2 and breach.name == "SLA breached (2)"
    assert freshness_figure(history([]), NOW) is None  # never published: nothing to draw


def test_the_burn_down_is_the_status_figure_at_every_instant() -> None:
    runs = [RunOutcome(f"r{h}", hours_ago(h), h != 30, "Completed" if h != 30 else "Failed") for h in range(2, 90, 4)]
    pipeline = history(PUBLISHES, runs)
    series = budget_series(pipeline, NOW, samples=11)
    assert series.times[0] == hours_ago(100) and series.times[-1] == NOW
    now_report = evaluate(SPEC, PUBLISHES, runs, NOW)
    assert series.success[-1] == pytest.approx(now_report.success_budget_remaining)
    assert series.freshness[-1] == pytest.approx(now_report.freshness_budget_remaining)
    middle = evaluate(SPEC, PUBLISHES, runs, series.times[5])
    assert series.success[5] == middle.success_budget_remaining
    figure = budget_figure(pipeline, NOW)
    assert figure is not None and figure.data[0].y[-1] == pytest.approx(now_report.success_budget_remaining * 100)
    assert budget_figure(history([]), NOW) is None


def test_the_volume_band_is_the_one_the_monitor_judges_with() -> None:
    config = SPEC.volume.anomaly
    assert config is not None
    counts = [2000, 2100, 1950, 2050, 2020, 1980, 2010, 2060, 500]  # the last day collapses
    points = []
    for day, rows in enumerate(counts, start=1):
        baseline = list(reversed(counts[: day - 1]))[: config.baseline_partitions]
        verdict = judge(f"2026-11-{day:02d}", rows, baseline, config)
        points.append(VolumePoint(f"2026-11-{day:02d}", datetime(2026, 11, day, tzinfo=UTC), rows, verdict))
    figure = volume_figure(points)
    assert figure is not None
    low, high, rows, anomalies = figure.data
    judged = [point.verdict for point in points if point.verdict is not None]
    assert len(judged) == 2  # min_history 7: the 8th and 9th partitions have a band
    assert list(low.y) == [verdict.low for verdict in judged] and list(high.y) == [verdict.high for verdict in judged]
    assert list(rows.y) == counts
    assert list(anomalies.x) == [datetime(2026, 11, 9)] and list(anomalies.text) == ["2026-11-09"]
    assert anomalies.name == "anomaly (1)"
    assert volume_figure([]) is None


def pipeline_month(month: str, compute: float, storage: float, reads: int | None) -> PipelineMonth:
    """The cost attribution's row for one month, only the figures the chart draws set."""
    return PipelineMonth(
        pipeline="shop_orders", environment="dev", month=month, currency="USD", runs=1, vcpu_hours=1.0,
        memory_gb_hours=2.0, storage_gb={}, rows_published=1, reads=reads, compute_cost=compute, memory_cost=0.0,
        storage_cost=storage, budget=None, projected_cost=compute + storage, elapsed_fraction=1.0,
    )  # fmt: skip


def test_cost_is_drawn_from_the_rows_given_and_says_so_when_there_are_none() -> None:
    figure = cost_figure([pipeline_month("2026-11", 12.0, 0.5, 40), pipeline_month("2026-10", 9.0, 1.0, 31)])
    assert figure is not None
    cost, reads = figure.data
    assert (list(cost.x), list(cost.y), list(reads.y)) == (["2026-10", "2026-11"], [10.0, 12.5], [31, 40])
    assert cost_figure([]) is None


def test_reads_unknown_to_the_engine_draw_no_reads_line() -> None:
    figure = cost_figure([pipeline_month("2026-11", 1.0, 0.0, None), pipeline_month("2026-12", 2.0, 0.0, None)])
    assert figure is not None and [trace.name for trace in figure.data] == ["cost"]


def test_the_lineage_chart_has_every_node_and_edge() -> None:
    graph = lineage(DECLARED, date(2026, 11, 20))
    figure = lineage_figure(graph)
    assert figure is not None
    (sankey,) = figure.data
    assert list(sankey.node.label) == [node.label for node in graph.nodes]
    assert len(sankey.link.source) == len(graph.edges) and len(graph.edges) >= 3


def test_the_page_inlines_plotly_once_and_notes_what_has_no_data() -> None:
    never = PipelineHistory(SPEC.model_copy(update={"name": "never_ran"}), [], [], [])
    page = render(
        EnvironmentHistory(
            "dev", NOW, [history_of_shop(), never],
            lineage(DECLARED, NOW.date()),
            [pipeline_month("2026-11", 12.0, 0.5, 40)],
        )
    )  # fmt: skip
    assert page.count(get_plotlyjs()[:2000]) == 1 and "<script src=" not in page
    assert page.count('class="plotly-graph-div"') == 1 + 4 + 0  # lineage; shop_orders' four; nothing for never_ran
    for note in ("never published: no freshness to draw", "no published partition", "no cost data"):
        assert note in page
    assert len(page.encode()) < 6_000_000


def test_the_page_is_written_whole_and_readable_by_others(tmp_path) -> None:
    history = EnvironmentHistory("dev", NOW, [history_of_shop()], lineage(DECLARED, NOW.date()))
    path = write(history, tmp_path / "reports" / "report-dev.html")
    assert path.read_text().endswith("</html>\n") and path.stat().st_mode & 0o777 == 0o644
    assert [item.name for item in path.parent.iterdir()] == ["report-dev.html"]  # no partial file left
