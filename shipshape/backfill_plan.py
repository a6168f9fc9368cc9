"""Backfill planning: which days of a pipeline to (re)run, read from the publish ledger alone.

The ledger is the only record of what was published, blocked or failed, so the plan never asks Prefect.
Days are planned one by one, whatever the grain: an hourly pipeline's day is planned from its 24 hour partitions.
Each planned day carries a `marker` — the id of its newest ledger entry — so idempotency keys stay the same while
nothing changed and differ once a run wrote the ledger.

A child run pays a process start, imports and Prefect's engine before its first row (~8-10 s on a process
worker), which outweighs a small day's work many times: children run `Batch`es of consecutive days
(`run-pipeline` over the batch's range, publishing day by day), sized by `days_per_child`.

When even that start-up is not worth paying, `runs_in_this_process` says so: the backfill's own process (already
started) runs the days as one batch. With W the estimated work of the selected days, S = `CHILD_START_SECONDS`
and k slots, k children started side by side end after about S + W/k, one batch here after W: here wins when
W ≤ S + W/k (for 0.6 s days and 2 slots, up to 33 days).
"""

from __future__ import annotations

import hashlib
import math
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
CHILD_START_SECONDS = 10.0
"""What a backfill child pays before its first row on a process worker (process start, imports, Prefect's
engine: 8-10 s measured, notes/prefect.md, while Prefect 3.8's process worker started two interpreters per run).
Since the pool starts one (`infra.work_pools.PROCESS_ENGINE_COMMAND`), two children side by side went from Scheduled
to Running in 3.3 s on a 45-day bench backfill. Kept at 10 until re-measured over the rule's decisions: at 14 days
of ~0.45 s, one batch in the backfill's process ended 9.0-10.7 s after submit, two children of 7 days 9.0-11.9 s
(three runs each)."""
MIN_WORK_PER_START = 0.25
"""A child's days take at least this fraction of its start-up. Children start side by side, so another child costs
no waiting, only compute (one more start-up); it halves the work's wall time. Measured on `make bench-ops`' 14 days
(0.6 s each, 2 slots): one child of 14 days 18.7-19.7 s, two of 7 17.0-18.9 s."""
IN_PROCESS_MAX_SECONDS = 2 * CHILD_START_SECONDS
"""The most work a backfill runs in its own process (`runs_in_this_process`): its event loop, which renews its
concurrency slot, waits meanwhile."""
NOT_RUN = "not run"  # a day of a child run that wrote nothing for it (crashed, or stopped before it)
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
    """Median time one partition took in the pipeline's recent publishing runs; None before its first publish.

    Every entry of a run starts when the run started, so a run over several partitions counts as its whole
    duration shared by its partitions, not as each partition taking the whole run."""
    by_run: dict[str, list[LedgerEntry]] = {}
    for entry in [entry for entry in entries if entry.status == "published"][:RECENT_PUBLISHES]:
        by_run.setdefault(entry.flow_run_id, []).append(entry)
    durations = [
        (max(e.finished_at for e in run) - min(e.started_at for e in run)).total_seconds() / len(run)
        for run in by_run.values()
    ]
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


@dataclass(frozen=True)
class Batch:
    """Consecutive selected days that one child run processes (`run-pipeline` from `first` to `last`)."""

    plans: tuple[PartitionPlan, ...]

    @property
    def first(self) -> date:
        return self.plans[0].day

    @property
    def last(self) -> date:
        return self.plans[-1].day

    @property
    def key(self) -> str:
        return self.plans[0].key if len(self.plans) == 1 else f"{self.plans[0].key}..{self.plans[-1].key}"

    @property
    def marker(self) -> str:
        """The day's marker for one day; for several, a digest of theirs: it changes when any day's ledger does."""
        if len(self.plans) == 1:
            return self.plans[0].marker
        return hashlib.sha256(":".join(plan.marker for plan in self.plans).encode()).hexdigest()[:16]


def days_per_child(days: int, max_concurrent: int, seconds_per_day: float | None) -> int:
    """How many days each child runs when the form leaves it automatic.

    Enough children to fill `max_concurrent`, no more (each child pays `CHILD_START_SECONDS`); but a child's
    days must take at least `MIN_WORK_PER_START` of its start-up, so very short days make bigger (and then fewer)
    children. Without a publish in the ledger there is no duration to go by: the limit is filled.
    """
    filling = math.ceil(days / max_concurrent)
    if not seconds_per_day:
        return max(1, filling)
    worth_a_start = math.ceil(CHILD_START_SECONDS * MIN_WORK_PER_START / seconds_per_day)
    return max(1, min(days, max(filling, worth_a_start)))


def runs_in_this_process(selected: list[PartitionPlan], slots: int, days_per_run: int) -> bool:
    """Whether the backfill runs `selected` itself, as one batch, instead of in child runs.

    Only when the form leaves `days_per_run` automatic (0), the days are consecutive (one batch covers them) and
    their estimated work W is at most `CHILD_START_SECONDS` + W / `slots`: running here ends no later than
    `slots` children started side by side. And never more than `IN_PROCESS_MAX_SECONDS` of work, whatever the
    slots (with one slot the first rule always holds): the backfill's own process is busy with it meanwhile.
    Without a publish in the ledger the work is unknown: children.
    """
    if days_per_run or not selected or selected[0].estimated_seconds is None:
        return False
    if len(batches(selected, len(selected))) > 1:  # a gap: the days are not one range
        return False
    work = selected[0].estimated_seconds * len(selected)
    return work <= min(CHILD_START_SECONDS + work / slots, IN_PROCESS_MAX_SECONDS)


def batches(plans: list[PartitionPlan], size: int) -> list[Batch]:
    """Selected days split into runs of consecutive days, each cut into batches of at most `size`, evenly.

    A child's range covers every day in it, so a gap (a day the mode skips) always ends a batch."""
    segments: list[list[PartitionPlan]] = []
    for plan in plans:
        if segments and plan.day - segments[-1][-1].day == timedelta(days=1):
            segments[-1].append(plan)
        else:
            segments.append([plan])
    result: list[Batch] = []
    for segment in segments:
        count = math.ceil(len(segment) / size)
        base, extra = divmod(len(segment), count)
        start = 0
        for index in range(count):
            end = start + base + (1 if index < extra else 0)
            result.append(Batch(tuple(segment[start:end])))
            start = end
    return result


def day_outcome(entries: list[LedgerEntry], flow_run_id: str, grain: Grain, day: date) -> tuple[str, int | None]:
    """How a child run ended one of its days, per the ledger: the worst status of the day's partitions as that
    run left them (`NOT_RUN` when it wrote none of them) and the rows it published that day (None: none)."""
    keys = [window.key for window in plan_windows(grain, day, day)]
    newest: dict[str, LedgerEntry] = {}
    for entry in entries:  # newest first
        if entry.flow_run_id == flow_run_id and entry.partition_key in keys:
            newest.setdefault(entry.partition_key, entry)
    statuses = [newest[key].status if key in newest else "missing" for key in keys]
    status = next(status for status in _PRECEDENCE if status in statuses)
    published = [entry.row_count for entry in newest.values() if entry.status == "published"]
    return (NOT_RUN if status == "missing" else status), (sum(published) if published else None)
