"""The inputs of `shipshape report`, read the way the SLOs and the volume monitor read them: publish instants and
partitions from the ledger (`shipshape.ledger`), run outcomes from Prefect (`runtime.slo_sources.run_outcomes`),
each partition's band from `shipshape.volume.judge_published`, cost and reads per month from the cost attribution
(`runtime.cost_sources.recent_months`, given by the caller: the monitor prices this month from the same rows).
Reading Prefect's history is why this is runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from prefect.client.orchestration import SyncPrefectClient, get_client

from runtime.connections import connect
from runtime.slo_sources import run_outcomes
from shipshape.catalog import load_all
from shipshape.cost import PipelineMonth
from shipshape.declaration import Pipeline
from shipshape.ledger import LEDGER_TABLE, PUBLISHED, PublishedTable, entries, missing_platform_tables, published_times
from shipshape.lineage import lineage
from shipshape.report_data import EnvironmentHistory, PipelineHistory, VolumePoint
from shipshape.volume import judge_published
from shipshape.warehouses import Warehouse

VOLUME_PARTITIONS = 60
"""The latest published partitions the volume chart shows (two months of days, two and a half days of hours)."""
COST_MONTHS = 3
"""The months the cost and reads chart shows (`recent_months`): this one (so far) and the two before it."""


def environment_history(now: datetime, environment: str, costs: Sequence[PipelineMonth]) -> EnvironmentHistory:
    """Every declared pipeline's history in `environment` up to `now`, and the lineage of them all.

    Runs and publishes go back two SLO windows, so the burn-down's first instant is judged on a whole window. A
    warehouse where nothing ran yet (no ledger) has no publishes; it is not created here (the monitor role reads).
    """
    declared = load_all()
    with connect("monitor") as warehouse, get_client(sync_client=True) as client:
        has_ledger = LEDGER_TABLE not in missing_platform_tables(warehouse)
        pipelines = [_history(warehouse, client, item.spec, environment, now, has_ledger) for item in declared]
    return EnvironmentHistory(environment, now, pipelines, lineage(declared, now.date()), list(costs))


def _history(
    warehouse: Warehouse, client: SyncPrefectClient, spec: Pipeline, environment: str, now: datetime, ledger: bool
) -> PipelineHistory:
    since = now - 2 * spec.slo.window_delta
    publishes = published_times(warehouse, PublishedTable.of(spec), since) if ledger else []
    volume = volume_history(warehouse, spec) if ledger else []
    return PipelineHistory(spec, publishes, run_outcomes(spec.name, environment, since, client), volume)


def volume_history(warehouse: Warehouse, spec: Pipeline, limit: int = VOLUME_PARTITIONS) -> list[VolumePoint]:
    """The `limit` latest partitions of the current table, oldest first, each with its latest publish's rows (or
    the rollback's that restored an earlier one) and the verdict the monitor gives it; full refreshes have none."""
    latest: dict[str, VolumePoint] = {}
    for entry in entries(warehouse, PublishedTable.of(spec)):  # newest first: the first row per partition wins
        if entry.status in PUBLISHED and entry.partition_start is not None and entry.partition_key not in latest:
            latest[entry.partition_key] = VolumePoint(entry.partition_key, entry.partition_start, entry.row_count, None)
    shown = sorted(latest.values(), key=lambda point: point.start)[-limit:]
    return [
        VolumePoint(point.partition, point.start, point.rows,
                    judge_published(warehouse, spec, point.partition, point.start, point.rows))
        for point in shown
    ]  # fmt: skip
