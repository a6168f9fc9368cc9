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


def windows_for(grain: Grain | None, start_date: date | None, end_date: date | None, now: datetime) -> list[Window]:
    """The partitions a run covers: the given dates, or the latest complete partition when none are given."""
    if grain is None:
        return [FULL_REFRESH]
    given = start_date or end_date
    if given is None:
        if grain == "day":
            yesterday = (now - timedelta(days=1)).date()
            return plan_windows(grain, yesterday, yesterday)
        hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        return [Window(hour.strftime("%Y-%m-%dT%H"), hour, hour + timedelta(hours=1))]
    return plan_windows(grain, start_date or given, end_date or given)
