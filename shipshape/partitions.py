"""Partition windows: the unit the platform extracts, audits, publishes and records.

A window is half-open [start, end) in UTC. Its `key` is how the ledger, audit tables and
idempotency keys name it, so it must be stable and sortable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

Grain = Literal["day", "hour"]
FULL_KEY = "full"


@dataclass(frozen=True, order=True)
class Window:
    """One partition: `start`/`end` are None for a full refresh."""

    key: str
    start: datetime | None = None
    end: datetime | None = None

    @property
    def table_suffix(self) -> str:
        """The key as it can appear in a lower-case table name: its digits (2026110105), or `full`."""
        return "".join(ch for ch in self.key if ch.isdigit()) or self.key


FULL_REFRESH = Window(FULL_KEY)


def plan_windows(grain: Grain | None, start_date: date, end_date: date) -> list[Window]:
    """Every partition from `start_date` to `end_date`, both days included."""
    if end_date < start_date:
        raise ValueError(f"end_date {end_date} is before start_date {start_date}")
    if grain is None:
        return [FULL_REFRESH]
    step = timedelta(days=1) if grain == "day" else timedelta(hours=1)
    cursor = datetime.combine(start_date, time(), tzinfo=UTC)
    stop = datetime.combine(end_date + timedelta(days=1), time(), tzinfo=UTC)
    windows = []
    while cursor < stop:
        key = cursor.strftime("%Y-%m-%d") if grain == "day" else cursor.strftime("%Y-%m-%dT%H")
        windows.append(Window(key, cursor, cursor + step))
        cursor += step
    return windows


def partition_instant(scheduled_start: datetime | None, now: datetime) -> datetime:
    """The instant (UTC) whose latest complete partition a run without dates processes.

    A run's partition is fixed by when the run was *meant* to start, not by when a worker got to it: a daily run
    scheduled at 02:30 that starts after midnight (worker outage, long queue) still processes the day before its
    scheduled day, and the next night's run processes the next day; no day is processed twice or skipped. So the
    instant is `scheduled_start` when the run has one, else `now`. Explicit dates never get here: they always win.

    `scheduled_start` is Prefect's `prefect.runtime.flow_run.scheduled_start_time`, which is the flow run's
    `expected_start_time`. Prefect 3.8.8's server sets that field once, when the run's first state is recorded
    (`SetExpectedStartTime` in `prefect/server/orchestration/global_policy.py`), and never changes it after:

    - a run the scheduler created, or `run_deployment(..., scheduled_time=...)`, or a run from the UI: its first
      state is Scheduled, so the field is the scheduled time (the cron slot, however late the run starts);
    - a direct call (`run_pipeline(...)`, `shipshape run`): its first state is Pending, so the field is that
      state's timestamp, the moment the call created the run, which is now less the engine's start-up (a second
      or so); `run_deployment(...)` without a time likewise gets "now" when it was called.

    So an ad-hoc call needs no telling apart (no comparison with the run's creation, no check of the run's
    `auto_scheduled` flag or deployment): its scheduled start *is* the moment it was asked for, and it gets the
    latest complete partition relative to that moment, as before. Trusting only `auto_scheduled` runs would be
    wrong: a run scheduled by hand for a past slot (`run_deployment(..., scheduled_time=...)`, a custom run in
    the UI) would then process a partition relative to now. Because the field never changes, a retry of a run,
    even a day later, processes the same partition as its first attempt. `now` is used only when there is no
    flow run at all (`run_pipeline.fn(...)`; Prefect's runtime then answers now too) or the field is empty.

    A scheduled start in the future is taken as it is: Prefect does not let a run enter Running before its
    scheduled time on the API's clock (`WaitForScheduledTime`), and its name and its body must name the same
    partition.
    """
    instant = now if scheduled_start is None else scheduled_start
    if instant.tzinfo is None:
        raise ValueError(f"partition instant {instant.isoformat()} has no time zone; pass an aware datetime")
    return instant.astimezone(UTC)


def windows_for(grain: Grain | None, start_date: date | None, end_date: date | None, now: datetime) -> list[Window]:
    """The partitions a run covers: the given dates, or the latest complete partition at `now` when none are given.

    `now` is the run's `partition_instant`: a partition is complete at `now` when it ends at or before it.
    """
    if grain is None:
        return [FULL_REFRESH]
    given = start_date or end_date
    if given is None:
        if grain == "day":
            yesterday = (now.astimezone(UTC) - timedelta(days=1)).date()
            return plan_windows(grain, yesterday, yesterday)
        hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        return [Window(hour.strftime("%Y-%m-%dT%H"), hour, hour + timedelta(hours=1))]
    return plan_windows(grain, start_date or given, end_date or given)
