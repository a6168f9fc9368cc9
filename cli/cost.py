"""`shipshape cost` views of the monthly figures (`shipshape.cost.PipelineMonth`): one line per pipeline within 100
columns, and JSON for scripts. Red for a pipeline whose projection passes its budget, on a terminal only."""

from __future__ import annotations

import json
from collections.abc import Sequence

from cli.status import WIDTH
from shipshape.cost import GB, PipelineMonth

_RED, _RESET = "\033[31m", "\033[0m"
HEADER = ["pipeline", "vCPU-h", "storage", "cost", "projected", "budget", "reads", "per read"]


def summary(months: Sequence[PipelineMonth], colour: bool) -> str:
    """One line per pipeline; names are ≤ 30 characters and every other cell ≤ 11, so a line fits `WIDTH`."""
    rows = [_cells(month) for month in months]
    widths = [max(len(cells[i]) for cells in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = [_line(HEADER, widths), "-" * min(WIDTH, len(_line(HEADER, widths)))]
    for month, cells in zip(months, rows, strict=True):
        line = _line(cells, widths)
        lines.append(f"{_RED}{line}{_RESET}" if colour and month.over_budget else line)
    return "\n".join(lines)


def as_json(environment: str, month: str, months: Sequence[PipelineMonth]) -> str:
    return json.dumps(
        {"environment": environment, "month": month, "pipelines": [m.as_row() for m in months]}, indent=2
    )


def _cells(month: PipelineMonth) -> list[str]:
    stored = [gb for gb in month.storage_gb.values() if gb is not None]
    return [
        month.pipeline,
        f"{month.vcpu_hours:.3g}",
        _bytes(sum(stored) * GB) if stored else "unknown",
        _money(month.total_cost),
        _money(month.projected_cost),
        "-" if month.budget is None else _money(month.budget),
        "unknown" if month.reads is None else str(month.reads),
        "-" if month.cost_per_read is None else _money(month.cost_per_read),
    ]


def _money(amount: float) -> str:
    return f"{amount:.2f}" if amount >= 1 else f"{amount:.2g}"


def _bytes(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
