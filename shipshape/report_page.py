"""The report as one self-contained HTML file: plotly.js inlined once in the head, each chart a div that draws
itself with it, so the page opens from a file or an artifact link with no network (~5 MB, almost all plotly.js).

Text a declaration wrote (descriptions, owners) is escaped; every figure comes from `shipshape.report_figures`.
"""

from __future__ import annotations

import html
import tempfile
from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from shipshape.cost import PipelineMonth
from shipshape.names import REPORTS_FOLDER, report_file
from shipshape.report_data import EnvironmentHistory, PipelineHistory
from shipshape.report_figures import budget_figure, cost_figure, freshness_figure, lineage_figure, volume_figure
from shipshape.settings import load_settings

_CONFIG = {"displaylogo": False, "responsive": True}
# Two fixed columns: each chart is drawn as its div is parsed, at its column's width then; a grid whose columns
# depended on how many charts it holds so far would leave the first ones drawn wider than their column.
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fafafa; }
h1 { margin-bottom: 4px; } .meta { color: #666; margin-top: 0; }
section { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 12px 16px; margin: 16px 0; }
.charts { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 8px; }
.empty { color: #777; font-style: italic; padding: 16px; border: 1px dashed #ccc; }
table.status { border-collapse: collapse; font-size: 13px; } table.status td { padding: 2px 10px 2px 0; }
"""


def render(history: EnvironmentHistory) -> str:
    """The whole page for one environment."""
    now = history.generated_at
    sections = [_section("lineage", "Lineage", [_chart(lineage_figure(history.lineage), "lineage", "no pipelines")])]
    sections += [_pipeline_section(pipeline, history) for pipeline in history.pipelines]
    title = f"shipshape report — {history.environment}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f'<p class="meta">generated {now:%Y-%m-%d %H:%M} UTC · {len(history.pipelines)} pipeline(s)</p>'
        f"{''.join(sections)}</body></html>\n"
    )


def default_path(environment: str) -> Path:
    """`<data folder>/reports/report-<env>.html`: where the monitor writes, and `shipshape report` by default."""
    return load_settings().data_dir / REPORTS_FOLDER / report_file(environment)


def write(history: EnvironmentHistory, path: Path) -> Path:
    """Write the page to `path` (folders made as needed) through a temporary file, so a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page = render(history)
    # A name of its own, so two writers (a monitor run and `shipshape report`) never replace each other's half.
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                     suffix=".partial", delete=False) as partial:  # fmt: skip
        partial.write(page)
    Path(partial.name).chmod(0o644)  # a temporary file is private; the report is for anyone who may open the folder
    Path(partial.name).replace(path)
    return path


def _pipeline_section(pipeline: PipelineHistory, history: EnvironmentHistory) -> str:
    spec, now = pipeline.spec, history.generated_at
    name = spec.name
    costs: Sequence[PipelineMonth] = [row for row in history.costs if row.pipeline == name]
    charts = [
        _chart(freshness_figure(pipeline, now), f"{name}-freshness", "never published: no freshness to draw"),
        _chart(budget_figure(pipeline, now), f"{name}-budget", "no finished run or publish in the SLO window"),
        _chart(volume_figure(pipeline.volume), f"{name}-volume",
               "no published partition" if spec.partition else "a full refresh: no partitions to compare"),
        _chart(cost_figure(costs), f"{name}-cost", "no cost data"),
    ]
    status = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{html.escape(str(value))}</td></tr>"
        for label, value in pipeline.slo(now).as_row().items()
        if label != "pipeline"
    )
    intro = (
        f"<p>{html.escape(spec.description)} — owner {html.escape(spec.owner.team)} "
        f"({html.escape(spec.owner.slack_channel)})</p><table class=\"status\">{status}</table>"
    )
    return _section(f"pipeline-{name}", name, [intro, '<div class="charts">', *charts, "</div>"])


def _section(anchor: str, title: str, parts: list[str]) -> str:
    return f'<section id="{html.escape(anchor)}"><h2>{html.escape(title)}</h2>{"".join(parts)}</section>'


def _chart(figure: go.Figure | None, div_id: str, empty: str) -> str:
    """The figure's div and the script drawing it with the page's plotly.js; a note where there is nothing to draw."""
    div_id = f"chart-{div_id}"  # apart from the sections' ids: plotly draws into the first element of its id
    if figure is None:
        return f'<div class="empty" id="{html.escape(div_id)}">{html.escape(empty)}</div>'
    fragment: str = pio.to_html(
        figure, full_html=False, include_plotlyjs=False, div_id=div_id, config=_CONFIG, default_width="100%"
    )
    return fragment
