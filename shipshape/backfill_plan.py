"""Backfill planning: which days of a pipeline to (re)run, read from the publish ledger alone.

The ledger is the only record of what was published, blocked or failed, so the plan never asks Prefect.
A backfill child runs one day (`run-pipeline` with start_date = end_date), whatever the grain: an hourly
pipeline's day is planned from its 24 hour partitions. Each planned day carries a `marker` — the id of its
newest ledger entry — so idempotency keys stay the same while nothing changed and differ once a run wrote
the ledger.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from shipshape.ledger import PUBLISHED, LedgerEntry
from shipshape.partitions import Grain, plan_windows

Mode = Literal["missing", "failed", "all"]
PlanStatus = Literal["published", "rolled_back", "blocked", "failed", "missing"]
NO_ENTRY = "none"
RECENT_PUBLISHES = 20  # how many recent publishes the duration estimate looks at
# A day shows its worst; a rolled-back day holds an earlier publish's rows again (re-run it with mode `all`).
_PRECEDENCE: tuple[PlanStatus, ...] = ("failed", "blocked", "missing", "rolled_back", "published")


@dataclass(frozen=True)
class PartitionPlan:
    """One day of a backfill as the ledger sees it before anything runs."""

    day: date
    status: PlanStatus
    last_published: datetime | None
    rows: int | None
    estimated_seconds: float | None
    marker: str
    never_published: bool
    latest_unsuccessful: bool

    @property
    def key(self) -> str:
        return self.day.isoformat()

    def selected_by(self, mode: Mode) -> bool:
        """`missing`: never published; `failed`: its newest attempt failed or was blocked; `all`: every day."""
        if mode == "missing":
            return self.never_published
        if mode == "failed":
            return self.latest_unsuccessful
        return True

    def as_row(self, mode: Mode) -> dict[str, object]:
        """The plan artifact's row: what an operator checks before launching."""
        return {
            "partition": self.key,
            "status": self.status,
            "action": "run" if self.selected_by(mode) else "skip",
            "last published": self.last_published.isoformat(timespec="seconds") if self.last_published else "",
            "rows": "" if self.rows is None else self.rows,
            "estimated duration (s)": "" if self.estimated_seconds is None else round(self.estimated_seconds, 1),
        }


def plan_backfill(
    entries: list[LedgerEntry], grain: Grain | None, start_date: date, end_date: date
) -> list[PartitionPlan]:
    """Every day from `start_date` to `end_date` (both included) with its ledger status.

    `entries` are the pipeline's ledger rows newest first (`shipshape.ledger.entries`).
    """
    if grain is None:
        raise ValueError("the pipeline is a full refresh without partitions: run its deployment instead of a backfill")
    if end_date < start_date:
        raise ValueError(f"end_date {end_date} is before start_date {start_date}: a backfill needs start ≤ end")
    by_key: dict[str, list[LedgerEntry]] = {}
    for entry in entries:
        by_key.setdefault(entry.partition_key, []).append(entry)
    estimate = estimated_seconds(entries)
    days = (end_date - start_date).days + 1
    return [
        _plan_day(day, [by_key.get(window.key, []) for window in plan_windows(grain, day, day)], estimate)
        for day in (start_date + timedelta(days=offset) for offset in range(days))
    ]


def estimated_seconds(entries: list[LedgerEntry]) -> float | None:
    """Median duration of the pipeline's recent publishes; None before its first publish."""
    published = [entry for entry in entries if entry.status == "published"][:RECENT_PUBLISHES]
    durations = [(entry.finished_at - entry.started_at).total_seconds() for entry in published]
    return statistics.median(durations) if durations else None


def _plan_day(day: date, windows: list[list[LedgerEntry]], estimate: float | None) -> PartitionPlan:
    """A day from its windows' entries (one window for daily pipelines, 24 for hourly ones), each newest first."""
    statuses = [window[0].status if window else "missing" for window in windows]
    publishes = [next((e for e in window if e.status in PUBLISHED), None) for window in windows]
    newest = [window[0] for window in windows if window]
    found = [entry for entry in publishes if entry is not None]
    return PartitionPlan(
        day=day,
        status=next(status for status in _PRECEDENCE if status in statuses),
        last_published=max((entry.finished_at for entry in found), default=None),
        rows=sum(entry.row_count for entry in found) if found else None,
        estimated_seconds=estimate,
        marker=max(newest, key=lambda entry: entry.finished_at).entry_id if newest else NO_ENTRY,
        never_published=any(entry is None for entry in publishes),
        latest_unsuccessful=any(status in ("failed", "blocked") for status in statuses),
    )


def rows_published_by(entries: list[LedgerEntry], flow_run_id: str) -> int | None:
    """Rows a given flow run published according to the ledger; None when it published nothing."""
    published = [e for e in entries if e.flow_run_id == flow_run_id and e.status == "published"]
    return sum(entry.row_count for entry in published) if published else None
