"""What `shipshape report` draws, as typed values: gathered once (`runtime.report_sources`), then turned into
figures by pure functions (`shipshape.report_figures`), so a unit test can check a chart's data without a server.

Cost and reads per month are an input, the cost attribution's rows (`shipshape.cost.PipelineMonth`), not computed
here; an empty list renders as "no cost data".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shipshape.cost import PipelineMonth
from shipshape.declaration import Pipeline
from shipshape.lineage import Lineage
from shipshape.slo import RunOutcome, SloReport, evaluate
from shipshape.volume import VolumeVerdict


@dataclass(frozen=True)
class VolumePoint:
    """A published partition's row count and the monitor's verdict on it (None: too little history for a band)."""

    partition: str
    start: datetime
    rows: int
    verdict: VolumeVerdict | None


@dataclass(frozen=True)
class PipelineHistory:
    """One pipeline's inputs: publish instants (`ledger.published_times`, since two SLO windows back so the first
    day of the window is judged on a full window), finished runs (`runtime.slo_sources.run_outcomes`) and its
    latest published partitions."""

    spec: Pipeline
    publishes: list[datetime]
    runs: list[RunOutcome]
    volume: list[VolumePoint]

    def slo(self, now: datetime) -> SloReport:
        """The same report `shipshape status` prints, from the same inputs."""
        return evaluate(self.spec, self.publishes, self.runs, now)


@dataclass(frozen=True)
class EnvironmentHistory:
    environment: str
    generated_at: datetime
    pipelines: list[PipelineHistory]
    lineage: Lineage
    costs: Sequence[PipelineMonth] = field(default_factory=list)
