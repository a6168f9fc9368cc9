"""After a publish: compare each partition's rows with its trailing baseline; anomalies warn, never block."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from runtime.connections import connect
from runtime.incidents import announce
from shipshape.alerts import VOLUME_ANOMALY
from shipshape.catalog import DeclaredPipeline
from shipshape.incidents import transition
from shipshape.partitions import Window
from shipshape.volume import VolumeVerdict, judge_published


@task(name="check-volume", cache_policy=NO_CACHE)
def check_volume(declared: DeclaredPipeline, published: list[tuple[Window, int]]) -> dict[str, VolumeVerdict]:
    """Partition key → verdict, for partitions with enough history; opens or resolves the volume incident.

    Full-refresh pipelines have one partition, so no trailing baseline: they are not judged.
    """
    config = declared.spec.volume.anomaly
    if config is None:
        return {}
    logger = get_run_logger()
    with connect("monitor") as warehouse:  # the only role that may write incidents
        verdicts: dict[str, VolumeVerdict] = {}
        for window, rows in published:
            if window.start is None:
                continue
            if (verdict := judge_published(warehouse, declared.spec, window.key, window.start, rows)) is not None:
                verdicts[window.key] = verdict
        anomalies = [verdict for verdict in verdicts.values() if verdict.anomalous]
        for verdict in anomalies:
            logger.warning("Volume anomaly in %s: %s", declared.name, verdict.describe())
        if not verdicts:
            return verdicts
        latest = (anomalies or list(verdicts.values()))[-1]
        change = transition(warehouse, declared.name, VOLUME_ANOMALY, bool(anomalies), latest.describe())
    if change is not None:
        announce(declared, VOLUME_ANOMALY, change, latest.describe())
    return verdicts
