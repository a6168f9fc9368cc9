"""`shipshape status` views of the SLO reports: one line per pipeline within 100 columns, one pipeline in detail,
and JSON for scripts. Colour only for a terminal, and never with NO_COLOR (https://no-color.org)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TextIO

from shipshape.slo import SloReport, format_duration, format_percent

WIDTH = 100
_RED, _GREEN, _RESET = "\033[31m", "\033[32m", "\033[0m"


def use_colour(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR")


def state(report: SloReport) -> str:
    """The one word to act on: a freshness breach first, then a fast burn of the error budget."""
    if not report.fresh:
        return "BREACH"
    return "FAST BURN" if report.fast_burn else "ok"


def summary(reports: Sequence[SloReport], colour: bool) -> str:
    """One line per pipeline; every cell is bounded (names ≤ 30 characters), so a line fits `WIDTH`."""
    rows = [_summary_cells(report) for report in reports]
    header = ["pipeline", "stale / SLA", "success", "fresh", "budget", "burn", "state"]
    widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))]
    lines = [_line(header, widths), "-" * min(WIDTH, len(_line(header, widths)))]
    for report, cells in zip(reports, rows, strict=True):
        lines.append(_paint(_line(cells, widths), report, colour))
    return "\n".join(lines)


def detail(report: SloReport, colour: bool) -> str:
    """Every figure of one pipeline, one per line: the same cells the monitor's artifact shows."""
    row = report.as_row()
    width = max(len(label) for label in row)
    lines = [f"{label.ljust(width)}  {value}" for label, value in row.items() if label != "alert"]
    lines.append(_paint(f"{'state'.ljust(width)}  {state(report)}", report, colour))
    return "\n".join(lines)


def as_json(environment: str, reports: Sequence[SloReport]) -> str:
    return json.dumps({"environment": environment, "pipelines": [_json(report) for report in reports]}, indent=2)


def _summary_cells(report: SloReport) -> list[str]:
    staleness = "never" if report.staleness is None else format_duration(report.staleness)
    budgets = [b for b in (report.success_budget_remaining, report.freshness_budget_remaining) if b is not None]
    return [
        report.pipeline,
        f"{staleness} / {format_duration(report.sla)}",
        format_percent(report.success_rate),
        format_percent(report.freshness),
        format_percent(min(budgets)) if budgets else format_percent(None),
        f"{report.max_burn_rate:.3g}x",
        state(report),
    ]


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()


def _paint(text: str, report: SloReport, colour: bool) -> str:
    if not colour:
        return text
    return f"{_GREEN if state(report) == 'ok' else _RED}{text}{_RESET}"


def _json(report: SloReport) -> dict[str, object]:
    """Machine-readable: fractions (not percentages), seconds, ISO-8601 UTC times, null for no data."""
    return {
        "pipeline": report.pipeline,
        "table": report.tables,
        "state": state(report),
        "fresh": report.fresh,
        "fast_burn": report.fast_burn,
        "evaluated_at": report.evaluated_at.isoformat(),
        "last_published_at": report.last_published_at.isoformat() if report.last_published_at else None,
        "staleness_seconds": report.staleness.total_seconds() if report.staleness is not None else None,
        "sla_seconds": report.sla.total_seconds(),
        "window_seconds": report.window.total_seconds(),
        "fast_burn_window_seconds": report.fast_burn_window.total_seconds(),
        "runs": report.runs,
        "failed_runs": report.failed_runs,
        "success_rate": report.success_rate,
        "success_target": report.success_target,
        "success_budget_remaining": report.success_budget_remaining,
        "success_burn_rate": report.success_burn_rate,
        "freshness": report.freshness,
        "freshness_target": report.freshness_target,
        "freshness_budget_remaining": report.freshness_budget_remaining,
        "freshness_burn_rate": report.freshness_burn_rate,
        "fast_burn_rate": report.fast_burn_rate,
    }
