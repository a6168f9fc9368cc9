"""The report's charts: pure functions from typed inputs (`shipshape.report_data`) to Plotly figures.

Each number comes from the code that decides it elsewhere, so a chart never disagrees with an alert: error
budgets from `slo.evaluate` (the one `shipshape status` and the monitor use), volume bands from the verdicts
`volume.judge` gave (the monitor's), freshness breaches from the publish instants the SLO reads. A chart with no
data is not drawn (the page says why instead), so every drawn chart has points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from shipshape.cost import PipelineMonth
from shipshape.lineage import Lineage
from shipshape.report_data import PipelineHistory, VolumePoint
from shipshape.slo import evaluate

BUDGET_SAMPLES = 200
"""Points of the burn-down: one `slo.evaluate` each, so the curve is the status figure at each instant."""
_HOUR = timedelta(hours=1)
_BREACH_COLOUR = "#d62728"
_LAYOUT = {"height": 320, "margin": {"l": 60, "r": 20, "t": 50, "b": 40}, "template": "plotly_white"}
_NODE_COLOURS = {"source": "#1f77b4", "raw": "#9467bd", "step": "#ff7f0e", "table": "#2ca02c", "external": "#7f7f7f"}


@dataclass(frozen=True)
class FreshnessSeries:
    """Age of the latest publish over [start, end] (hours; None before the first publish) and the SLA breaches."""

    times: list[datetime]
    age_hours: list[float | None]
    breaches: list[tuple[datetime, datetime]]


def freshness_series(publishes: Sequence[datetime], sla: timedelta, start: datetime, end: datetime) -> FreshnessSeries:
    """The sawtooth of staleness: it grows from each publish and drops to 0 at the next one.

    A breach is where the age passes `sla`: from the first publish on, the breaches are exactly the window's
    unfresh time as `slo.fresh_fraction` counts it. Before the first publish there is no age to draw (the SLI
    counts that time as unfresh once a run was seen: the status table beside the chart has that figure).
    """
    instants = sorted(instant for instant in publishes if instant <= end)
    times: list[datetime] = [start]
    ages: list[float | None] = [None]
    breaches: list[tuple[datetime, datetime]] = []
    for position, published in enumerate(instants):
        until = instants[position + 1] if position + 1 < len(instants) else end
        begin = max(published, start)
        if until <= begin:
            continue
        times += [begin, until]
        ages += [(begin - published) / _HOUR, (until - published) / _HOUR]
        if until - published > sla:
            breaches.append((max(published + sla, start), until))
        if until < end:
            times.append(until)
            ages.append(0.0)
    return FreshnessSeries(times, ages, breaches)


def freshness_figure(history: PipelineHistory, now: datetime) -> go.Figure | None:
    """Age since the last publish over the SLO window against the SLA line; breaches in red. None: never published."""
    spec = history.spec
    if not history.publishes:
        return None
    start, sla = now - spec.slo.window_delta, spec.freshness.sla_delta
    series = freshness_series(history.publishes, sla, start, now)
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(x=_utc(series.times), y=series.age_hours, name="age of the latest publish", mode="lines")
    )
    figure.add_trace(
        go.Scatter(x=_utc([start, now]), y=[sla / _HOUR] * 2, name=f"SLA {spec.freshness.sla}", mode="lines",
                   line={"dash": "dash", "color": "#333"})
    )  # fmt: skip
    breach_x: list[datetime | None] = []
    breach_y: list[float | None] = []
    for begin, until in series.breaches:
        published = max(instant for instant in history.publishes if instant < until)
        breach_x += [*_utc([begin, until]), None]
        breach_y += [(begin - published) / _HOUR, (until - published) / _HOUR, None]
        x0, x1 = _utc([begin, until])
        figure.add_vrect(x0=x0, x1=x1, fillcolor=_BREACH_COLOUR, opacity=0.12, line_width=0)
    figure.add_trace(
        go.Scatter(x=breach_x, y=breach_y, name=f"SLA breached ({len(series.breaches)})", mode="lines",
                   line={"color": _BREACH_COLOUR, "width": 4}, visible=True if series.breaches else "legendonly")
    )  # fmt: skip
    figure.update_layout(
        title="Freshness: hours since the latest publish", yaxis_title="hours", xaxis_title="UTC", **_LAYOUT
    )
    return figure


@dataclass(frozen=True)
class BudgetSeries:
    """Error budget remaining (fractions: 1 untouched, 0 spent) of the rolling SLO window ending at each time."""

    times: list[datetime]
    success: list[float | None]
    freshness: list[float | None]


def budget_series(history: PipelineHistory, now: datetime, samples: int = BUDGET_SAMPLES) -> BudgetSeries:
    """`slo.evaluate` at `samples` instants over the last SLO window: the last point is `shipshape status`'s."""
    window = history.spec.slo.window_delta
    times = [now - window + window * index / (samples - 1) for index in range(samples)]
    reports = [evaluate(history.spec, history.publishes, history.runs, instant) for instant in times]
    return BudgetSeries(
        times,
        [report.success_budget_remaining for report in reports],
        [report.freshness_budget_remaining for report in reports],
    )


def budget_figure(history: PipelineHistory, now: datetime) -> go.Figure | None:
    """Burn-down of both error budgets over the SLO window, now's value marked; None while neither SLI has data."""
    series = budget_series(history, now)
    if all(value is None for value in [*series.success, *series.freshness]):
        return None
    slo = history.spec.slo
    figure = go.Figure()
    for name, values in ((f"success rate (target {slo.success_rate:g})", series.success),
                         (f"freshness (target {slo.freshness:g})", series.freshness)):  # fmt: skip
        figure.add_trace(
            go.Scatter(x=_utc(series.times), y=[None if v is None else v * 100 for v in values], name=name,
                       mode="lines+markers", marker={"size": [0] * (len(values) - 1) + [9]})
        )  # fmt: skip
    figure.add_hline(y=0, line={"color": _BREACH_COLOUR, "dash": "dot"}, annotation_text="budget spent")
    figure.update_layout(
        title=f"Error budget left over the rolling {slo.window} window", yaxis_title="% of budget left",
        xaxis_title="UTC", **_LAYOUT,
    )  # fmt: skip
    return figure


def volume_figure(points: Sequence[VolumePoint]) -> go.Figure | None:
    """Rows per published partition inside the band the monitor judged it against; anomalies marked. None: none."""
    if not points:
        return None
    judged = [point for point in points if point.verdict is not None]
    figure = go.Figure()
    if judged:
        x = _utc([point.start for point in judged])
        figure.add_trace(go.Scatter(x=x, y=[p.verdict.low for p in judged if p.verdict], name="band low",
                                    mode="lines", line={"width": 0}, showlegend=False))  # fmt: skip
        figure.add_trace(go.Scatter(x=x, y=[p.verdict.high for p in judged if p.verdict], name="expected band",
                                    mode="lines", line={"width": 0}, fill="tonexty",
                                    fillcolor="rgba(44,160,44,0.2)"))  # fmt: skip
    figure.add_trace(
        go.Scatter(x=_utc([point.start for point in points]), y=[point.rows for point in points], name="rows",
                   mode="lines+markers", line={"color": "#1f77b4"}, text=[point.partition for point in points])
    )  # fmt: skip
    anomalies = [point for point in judged if point.verdict and point.verdict.anomalous]
    figure.add_trace(
        go.Scatter(x=_utc([point.start for point in anomalies]), y=[point.rows for point in anomalies],
                   text=[point.partition for point in anomalies],
                   name=f"anomaly ({len(anomalies)})", mode="markers",
                   marker={"color": _BREACH_COLOUR, "size": 12, "symbol": "x"},
                   visible=True if anomalies else "legendonly")
    )  # fmt: skip
    figure.update_layout(
        title="Rows per partition and the anomaly band", yaxis_title="rows", xaxis_title="partition start (UTC)",
        **_LAYOUT,
    )  # fmt: skip
    return figure


def cost_figure(rows: Sequence[PipelineMonth]) -> go.Figure | None:
    """Cost (bars) and consumer reads (line, right axis) per month for one pipeline's rows; None: no cost data."""
    if not rows:
        return None
    ordered = sorted(rows, key=lambda row: row.month)
    months = [row.month for row in ordered]
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_trace(go.Bar(x=months, y=[row.total_cost for row in ordered], name="cost"), secondary_y=False)
    if any(row.reads is not None for row in ordered):  # unknown on an engine without read statistics (DuckDB)
        figure.add_trace(
            go.Scatter(x=months, y=[row.reads for row in ordered], name="consumer reads", mode="lines+markers"),
            secondary_y=True,
        )
    figure.update_layout(title="Cost and consumer reads per month", **_LAYOUT)
    figure.update_yaxes(title_text=f"cost ({ordered[0].currency})", secondary_y=False)
    figure.update_yaxes(title_text="reads", secondary_y=True)
    figure.update_xaxes(type="category")
    return figure


def lineage_figure(graph: Lineage) -> go.Figure | None:
    """The environment's lineage as a Sankey: sources on the left, tables and their readers to the right."""
    if not graph.nodes:
        return None
    index = {node.id: position for position, node in enumerate(graph.nodes)}
    figure = go.Figure(
        go.Sankey(
            arrangement="snap",
            textfont={"size": 11},
            node={"label": [node.label for node in graph.nodes],
                  "color": [_NODE_COLOURS[node.kind] for node in graph.nodes],
                  "customdata": [node.kind for node in graph.nodes], "pad": 18, "thickness": 16,
                  "hovertemplate": "%{label}<br>%{customdata}<extra></extra>"},
            link={"source": [index[edge.source] for edge in graph.edges],
                  "target": [index[edge.target] for edge in graph.edges],
                  "value": [1] * len(graph.edges), "customdata": [edge.kind for edge in graph.edges],
                  "hovertemplate": "%{source.label} → %{target.label}<br>%{customdata}<extra></extra>"},
        )
    )  # fmt: skip
    figure.update_layout(
        title="Lineage: source → raw → transform steps → published tables → their readers",
        height=160 + 90 * sum(node.kind in ("source", "external") for node in graph.nodes),  # rows of the chart
        margin={"l": 20, "r": 20, "t": 50, "b": 20},
    )
    return figure


def _utc(instants: Sequence[datetime]) -> list[datetime]:
    """Naive UTC: plotly.js drops a time zone offset from a date string, so a chart's axis is UTC, labelled so."""
    return [instant.astimezone(UTC).replace(tzinfo=None) for instant in instants]
