"""A backfill's progress in the UI: one progress artifact, updated as each child run ends, and a log line per child.

Counts are per day, read from the ledger by the caller, so a child that published 6 of its 7 days shows as 6 done
and 1 blocked, not as one failed child.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact
from prefect.client.schemas.objects import FlowRun

from shipshape.backfill_plan import Batch


@dataclass
class BackfillProgress:
    """Days done / blocked / failed of the backfill's `total`, as children end."""

    pipeline: str
    total: int
    outcomes: dict[date, tuple[str, int | None]] = field(default_factory=dict)
    _artifact: UUID | None = None

    def describe(self) -> str:
        counts = Counter(status for status, _ in self.outcomes.values())
        failed = len(self.outcomes) - counts["published"] - counts["blocked"]
        return (
            f"{self.pipeline}: {counts['published']} done, {counts['blocked']} blocked, {failed} failed "
            f"of {self.total} day(s)"
        )

    @property
    def percent(self) -> float:
        return 100.0 * len(self.outcomes) / self.total if self.total else 100.0

    async def start(self) -> None:
        key = f"backfill-{self.pipeline}-progress".replace("_", "-")
        self._artifact = await acreate_progress_artifact(self.percent, key=key, description=self.describe())

    async def child_ended(self, batch: Batch, child: FlowRun, outcomes: dict[date, tuple[str, int | None]]) -> None:
        """Count the child's days, update the artifact, and log how the child ended."""
        self.outcomes.update(outcomes)
        if self._artifact is not None:
            await aupdate_progress_artifact(self._artifact, self.percent, description=self.describe())
        ended = ", ".join(f"{day}: {status}" for day, (status, _) in sorted(outcomes.items()))
        state = child.state.name if child.state else "unknown"
        get_run_logger().info("Child %s (%s) ended %s — %s. %s", child.name, batch.key, state, ended, self.describe())
