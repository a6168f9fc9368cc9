"""What each pipeline's tables take on disk and how often consumers read them, sampled by the monitor.

Every monitor pass writes one row per published table (every version: bytes and the engine's read counter) and one
per other area of the pipeline (the audit area's tables, its share of the dead letters, its kept history) into
`platform.usage_samples`. Counters are cumulative, so reads between two passes are the difference; cost per month
(`shipshape.cost`) and the `unused` incident come from these rows.

Reads, by the engine's method (`warehouses.usage_stats`):
- `statements` (PostgreSQL with `pg_stat_statements`): queries by the consumer roles naming the table. Exact per
  role: the platform's roles are never counted.
- `scans` (PostgreSQL without it, a plain table): every table scan, minus the platform's own, which are counted
  from the ledger: each publish between two samples scans its table `PUBLISH_SCANS[load mode]` times (the audit's
  shrink count, the history copy, the delete; a merge also counts the table), a blocked attempt once (the shrink
  count), a rollback three times. The error bound: a publish whose audit ran before a sample and its publish after
  shifts up to 2 scans between two intervals (never across more); a first publish (no table yet) scans 2 fewer,
  which the count clamps at zero; and a consumer query scanning the table twice (a self-join, a subquery) counts
  twice. So a month's reads are within ±2 per publish of the consumers' scans, and "unread" (0) is exact once no
  publish falls in the window. The counts are read from `shipshape.publish` (a `replace_partition` table is plain
  only when made before partition exchange). Every method sees a session's reads once it goes idle (PostgreSQL
  flushes a backend's statistics at most ~10 s later, at once when it disconnects).
- `partition_scans` (PostgreSQL without it, a partitioned table: partition exchange): each sample keeps every
  partition's scan counter by oid; reads between two samples are the largest increase over the partitions both
  samples have (same oid). A query of the whole table scans each partition once (a sum would count it once per
  partition), a query of one day scans one. The platform's own scans never reach a partition that stays: a publish
  exchanges its partition for a new relation (new oid, the audit's scans in its counters) and its shrink count
  reads only the partition it replaces. The error bound: a lower bound of the consumers' queries, exact when every
  query between two samples reads a partition that both samples have (true of whole-table queries while the table
  has a partition not republished in between); queries that read disjoint partitions count as the busiest
  partition's; reads of a partition exchanged between two samples are lost (a table whose only partitions were all
  republished in the interval counts 0 for it); a query scanning a partition twice (a self-join) counts twice; and
  the audit's scans of a new partition count as reads if they reach the server's statistics after a sample that
  already sees it attached (a sample within moments of a publish, while the run's sessions end).
- DuckDB keeps no read statistics: reads are unknown (None), never 0; no `unused` incident is opened there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Literal

from shipshape.declaration import Pipeline
from shipshape.ledger import (
    DEAD_LETTER_TABLE,
    HISTORY_INDEX_TABLE,
    LEDGER_TABLE,
    USAGE_SAMPLE_COLUMNS,
    USAGE_SAMPLE_TABLE,
    PublishedTable,
)
from shipshape.names import AUDIT_SCHEMA, HISTORY_SCHEMA, PLATFORM_SCHEMA, history_table, versioned_table
from shipshape.warehouses import Warehouse

Area = Literal["published", "audit", "dead_letters", "history"]
AREAS: tuple[Area, ...] = ("published", "audit", "dead_letters", "history")

PUBLISH_SCANS = {"replace_partition": 3, "full_replace": 3, "merge": 4}
"""Scans of the published table one publish of a partition makes, per load mode (see the module's docstring)."""
BLOCKED_SCANS = 1
ROLLBACK_SCANS = 3
SAMPLE_LOOKBACK = timedelta(days=1)
"""How far before a window samples are read, so its first interval has the sample before it: monitors run every few
minutes, far more often."""


PlatformScans = Callable[[datetime, datetime], int]
"""How many times the platform itself scanned a table between two instants (`platform_scans`)."""


@dataclass(frozen=True)
class Sample:
    pipeline: str
    area: Area
    table_name: str
    sampled_at: datetime
    bytes: int | None
    read_counter: int | None = None
    read_method: str | None = None
    partition_counters: Mapping[int, int] | None = None  # `partition_scans`: each partition's scans by its oid

    def as_row(self) -> list[object]:
        values = {
            "pipeline": self.pipeline, "area": self.area, "table_name": self.table_name,
            "sampled_at": self.sampled_at, "bytes": self.bytes, "read_counter": self.read_counter,
            "read_method": self.read_method, "partition_read_counters": _partitions_text(self.partition_counters),
        }
        return [values[column] for column in USAGE_SAMPLE_COLUMNS]


@dataclass(frozen=True)
class ReadInterval:
    """Consumer reads of one table between two samples (`end` the later one)."""

    start: datetime
    end: datetime
    reads: int


def published_tables(spec: Pipeline) -> list[tuple[str, str]]:
    """Every version's table of the pipeline, `(schema, table)`, oldest first: each costs storage until dropped."""
    target = spec.destination
    return [(target.schema_name, versioned_table(target.table, version)) for version in range(1, target.version + 1)]


def measure(warehouse: Warehouse, specs: Sequence[Pipeline], readers: Sequence[str], now: datetime) -> list[Sample]:
    """Samples of every pipeline's areas as they are `now`; `readers` are the roles whose reads count."""
    sizes: dict[str, dict[str, int]] = {}

    def size_of(schema: str) -> dict[str, int]:
        if schema not in sizes:
            sizes[schema] = warehouse.table_sizes(schema)
        return sizes[schema]

    kept = _history_entries(warehouse)
    dead_letter_shares = _dead_letter_shares(warehouse)
    dead_letter_bytes = size_of(PLATFORM_SCHEMA).get(DEAD_LETTER_TABLE)
    samples = []
    for spec in specs:
        for schema, table in published_tables(spec):
            if table not in size_of(schema):
                continue
            counter = warehouse.read_counters(schema, [table], readers).get(table)
            samples.append(Sample(
                spec.name, "published", f"{schema}.{table}", now, size_of(schema)[table],
                counter.value if counter else None, counter.method if counter else None,
                counter.partitions if counter else None,
            ))
        audit = [size for name, size in size_of(AUDIT_SCHEMA).items() if name.startswith(f"{spec.name}__")]
        samples.append(Sample(spec.name, "audit", f"{AUDIT_SCHEMA}.{spec.name}__*", now, sum(audit)))
        share = dead_letter_shares.get(spec.name, 0.0)
        samples.append(Sample(
            spec.name, "dead_letters", f"{PLATFORM_SCHEMA}.{DEAD_LETTER_TABLE} ({share:.0%})", now,
            None if dead_letter_bytes is None else round(dead_letter_bytes * share),
        ))
        history = [size_of(HISTORY_SCHEMA).get(history_table(entry), 0) for entry in kept.get(spec.name, [])]
        samples.append(Sample(spec.name, "history", f"{HISTORY_SCHEMA}.h_* ({len(history)})", now, sum(history)))
    return samples


def record(warehouse: Warehouse, samples: Iterable[Sample]) -> None:
    table = warehouse.qualified(PLATFORM_SCHEMA, USAGE_SAMPLE_TABLE)
    placeholders = ", ".join("?" for _ in USAGE_SAMPLE_COLUMNS)
    with warehouse.transaction():
        for sample in samples:
            warehouse.execute(
                f"INSERT INTO {table} ({', '.join(USAGE_SAMPLE_COLUMNS)}) VALUES ({placeholders})", sample.as_row()
            )


def recorded(warehouse: Warehouse, pipeline: str, since: datetime, until: datetime | None = None) -> list[Sample]:
    """The pipeline's samples from `since` up to (not including) `until`, oldest first."""
    rows = warehouse.fetch_all(
        f"SELECT {', '.join(USAGE_SAMPLE_COLUMNS)} FROM {warehouse.qualified(PLATFORM_SCHEMA, USAGE_SAMPLE_TABLE)} "
        "WHERE pipeline = ? AND sampled_at >= ? AND sampled_at < ? ORDER BY sampled_at",
        [pipeline, since, until or datetime.max.replace(tzinfo=UTC)],
    )
    return [
        Sample(pipeline, area, table, at, None if size is None else int(size),
               None if counter is None else int(counter), method, _partitions_of(partitions))
        for pipeline, area, table, at, size, counter, method, partitions in rows
    ]


def read_intervals(
    samples: Sequence[Sample], platform_scans: PlatformScans
) -> list[ReadInterval]:
    """Consumer reads between consecutive samples of one table that both have a counter, oldest first.

    A counter lower than the one before was reset (statistics reset, crash): the reads are its new value. Scan
    counts lose the platform's own scans between the two (`platform_scans(start, end)`), never below zero; partition
    scans are the largest increase of a partition both samples have (`partition_reads`).
    """
    counted = [sample for sample in samples if sample.read_counter is not None]
    intervals = []
    for before, after in pairwise(counted):
        assert before.read_counter is not None and after.read_counter is not None
        if after.read_method == "partition_scans":
            reads = partition_reads(before.partition_counters or {}, after.partition_counters or {})
        else:
            reads = _increase(before.read_counter, after.read_counter)
        if after.read_method == "scans":
            reads = max(0, reads - platform_scans(before.sampled_at, after.sampled_at))
        intervals.append(ReadInterval(before.sampled_at, after.sampled_at, reads))
    return intervals


def partition_reads(before: Mapping[int, int], after: Mapping[int, int]) -> int:
    """Reads of a partitioned table between two samples of its partitions' scans (by oid): the largest increase of a
    partition in both, 0 when they share none. Max, not sum: a whole-table query scans every partition once."""
    return max((_increase(before[oid], after[oid]) for oid in before.keys() & after.keys()), default=0)


def _increase(before: int, after: int) -> int:
    """How much a cumulative counter grew; lower than before, it was reset (statistics reset, crash) and counted
    its new value since."""
    return after if after < before else after - before


def platform_scans(warehouse: Warehouse, spec: Pipeline, table_name: str, since: datetime) -> PlatformScans:
    """How many times the platform scanned `table_name` (`schema.table`) in (start, end] (start ≥ `since`), from
    the ledger."""
    about = PublishedTable(spec.name, table_name, f"{spec.destination.schema_name}.{spec.destination.table}")
    rows = warehouse.fetch_all(
        f"SELECT status, finished_at FROM {warehouse.qualified(PLATFORM_SCHEMA, LEDGER_TABLE)} "
        "WHERE pipeline = ? AND COALESCE(destination, ?) = ? AND finished_at > ?",
        [about.pipeline, about.first_version, about.destination, since],
    )
    per_status = {"published": PUBLISH_SCANS[spec.load.mode], "blocked": BLOCKED_SCANS, "rolled_back": ROLLBACK_SCANS}

    def scans(start: datetime, end: datetime) -> int:
        return sum(per_status.get(status, 0) for status, finished in rows if start < finished <= end)

    return scans


def first_publish(warehouse: Warehouse, spec: Pipeline, table_name: str) -> datetime | None:
    about = PublishedTable(spec.name, table_name, f"{spec.destination.schema_name}.{spec.destination.table}")
    rows = warehouse.fetch_all(
        f"SELECT min(finished_at) FROM {warehouse.qualified(PLATFORM_SCHEMA, LEDGER_TABLE)} "
        "WHERE pipeline = ? AND COALESCE(destination, ?) = ? AND status = 'published'",
        [about.pipeline, about.first_version, about.destination],
    )
    return rows[0][0] if rows and rows[0][0] is not None else None


def unread_since(
    first_published: datetime | None, intervals: Sequence[ReadInterval], first_sampled: datetime | None
) -> datetime | None:
    """Since when the table has had no consumer read that the samples saw: the end of the last interval with reads,
    else the later of its first publish and the first sample (only watched time counts). None: nothing to judge
    (never published, or no counter)."""
    if first_published is None or first_sampled is None:
        return None
    read = [interval.end for interval in intervals if interval.reads > 0]
    return max(read) if read else max(first_published, first_sampled)


def quiet_since(warehouse: Warehouse, spec: Pipeline, now: datetime) -> datetime | None:
    """Since when the current version's table has had no consumer read (`unread_since`), from the samples of the
    last `value.unread_after` (and `SAMPLE_LOOKBACK` before it) and the ledger; None when there is nothing to judge
    (never published, or its reads are unknown). Unread over that whole stretch, it says the stretch's start: the
    last read may be older, which changes nothing about being unused."""
    table_name = f"{spec.destination.schema_name}.{spec.destination.published_table}"
    since = now - spec.value.unread_after_delta - SAMPLE_LOOKBACK
    samples = [
        s for s in recorded(warehouse, spec.name, since) if s.table_name == table_name and s.read_counter is not None
    ]
    if not samples:
        return None
    intervals = read_intervals(samples, platform_scans(warehouse, spec, table_name, since))
    return unread_since(first_publish(warehouse, spec, table_name), intervals, samples[0].sampled_at)


def is_unused(quiet_since: datetime | None, now: datetime, unread_after: timedelta) -> bool:
    return quiet_since is not None and now - quiet_since >= unread_after


def _partitions_text(partitions: Mapping[int, int] | None) -> str | None:
    """`partition_read_counters` as stored: a JSON object (oids as keys, which JSON keeps as text)."""
    return None if partitions is None else json.dumps({str(oid): scans for oid, scans in sorted(partitions.items())})


def _partitions_of(text: str | None) -> dict[int, int] | None:
    return None if text is None else {int(oid): int(scans) for oid, scans in json.loads(text).items()}


def _history_entries(warehouse: Warehouse) -> dict[str, list[str]]:
    rows = warehouse.fetch_all(
        f"SELECT pipeline, entry_id FROM {warehouse.qualified(PLATFORM_SCHEMA, HISTORY_INDEX_TABLE)}"
    )
    entries: dict[str, list[str]] = {}
    for pipeline, entry_id in rows:
        entries.setdefault(pipeline, []).append(entry_id)
    return entries


def _dead_letter_shares(warehouse: Warehouse) -> dict[str, float]:
    """Each pipeline's share of the dead letters, by the rejected rows its latest publish of each partition kept (a
    publish replaces the partition's earlier dead letters); the monitor may not read the dead letters themselves."""
    rows = warehouse.fetch_all(
        f"SELECT pipeline, partition_key, rejected_rows, finished_at FROM "
        f"{warehouse.qualified(PLATFORM_SCHEMA, LEDGER_TABLE)} WHERE status = 'published' AND finished_at IS NOT NULL"
    )
    latest: dict[tuple[str, str], tuple[datetime, int]] = {}
    for pipeline, partition, rejected, finished in rows:
        key = (pipeline, partition)
        if key not in latest or finished > latest[key][0]:
            latest[key] = (finished, int(rejected or 0))
    per_pipeline: dict[str, int] = {}
    for (pipeline, _), (_, rejected) in latest.items():
        per_pipeline[pipeline] = per_pipeline.get(pipeline, 0) + rejected
    total = sum(per_pipeline.values())
    return {pipeline: rejected / total for pipeline, rejected in per_pipeline.items()} if total else {}
