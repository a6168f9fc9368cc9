"""The publish part of `make bench`: today's DELETE + INSERT publish of one partition into a table already holding
`PARTITIONS` of them, against the publish that keeps history (`shipshape.publish.publish`) and a rollback of it
(`shipshape.rollback.rollback_partition`) — same table, same data, same run, alternated so a slow phase of the
machine hits all three. Also what history costs on disk for one retained partition (`Warehouse.table_bytes`).
`exchange_vs_delete_insert` is the new publish against the old one: on an engine with
`Capabilities.supports_partition_exchange` (PostgreSQL) the table is filled by publishes, so it is partitioned and
the publish moves tables; elsewhere it copies the replaced rows into history before deleting them. The DELETE +
INSERT baseline runs on that same table (on PostgreSQL a partitioned one, where the DELETE scans one partition
rather than all of them: a baseline no slower than today's).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from orders_data import COLUMN_TYPES, DAY

from shipshape.catalog import find_pipeline
from shipshape.declaration import Pipeline
from shipshape.history import find, stored_bytes
from shipshape.ledger import LedgerEntry, entries
from shipshape.partition_exchange import exchanging
from shipshape.partitions import Window, plan_windows
from shipshape.platform_schema import migrate
from shipshape.publish import StagedPartition, publish
from shipshape.rollback import rollback_partition
from shipshape.transform import window_bounds
from shipshape.warehouses import AUDIT_SCHEMA, Warehouse, open_warehouse

PARTITIONS = 10
"""The published table holds this many partitions of the benchmark's size before the timed publishes."""
SCHEMA, TABLE, OUT = "bench_publish", "fct_orders", "bench_publish__out"


@dataclass
class PublishResults:
    rows: int
    delete_insert: list[float] = field(default_factory=list)
    publish: list[float] = field(default_factory=list)
    rollback: list[float] = field(default_factory=list)
    history_bytes: int | None = None

    def ratios(self) -> dict[str, str]:
        baseline = statistics.median(self.delete_insert)
        return {
            "exchange_vs_delete_insert": f"{statistics.median(self.publish) / baseline:.2f}",
            "rollback_vs_delete_insert": f"{statistics.median(self.rollback) / baseline:.2f}",
        }

    def report(self) -> str:
        lines = [f"publish of one {self.rows:,}-row partition into {PARTITIONS * self.rows:,} rows (median seconds):"]
        for label, runs in (
            ("DELETE + INSERT (before history)", self.delete_insert),
            ("publish keeping history", self.publish),
            ("rollback to the previous version", self.rollback),
        ):
            lines.append(f"  {label:<34}{statistics.median(runs):>8.2f}   runs: {' '.join(f'{s:.2f}' for s in runs)}")
        if self.history_bytes is not None:
            per_row = self.history_bytes / self.rows
            lines.append(f"history kept per retained partition: {self.history_bytes:,} bytes ({per_row:.0f} B/row)")
        lines.append("publish: " + " ".join(f"{name}={value}" for name, value in self.ratios().items()))
        return "\n".join(lines)


def measure_publish(url: str, orders: pa.Table, repeat: int, progress: Callable[[str], None]) -> PublishResults:
    results = PublishResults(rows=len(orders))
    spec = _spec()
    with open_warehouse(url) as warehouse:
        _prepare(warehouse, spec, orders, progress)
        (window,) = plan_windows("day", DAY, DAY)
        for attempt in range(1, repeat + 1):
            _audited(warehouse, spec, orders, DAY)  # a publish by exchange made the last one a partition
            results.delete_insert.append(_timed(lambda: _delete_insert(warehouse, spec, window)))
            results.publish.append(_timed(lambda: publish(warehouse, spec, [_staged(window)], warehouse.claim([]))))
            results.rollback.append(_timed(lambda: rollback_partition(warehouse, spec, window.key, None)))
            progress(
                f"publish {attempt}/{repeat}: delete+insert {results.delete_insert[-1]:.2f} s, with history "
                f"{results.publish[-1]:.2f} s, rollback {results.rollback[-1]:.2f} s"
            )
        # The rollback kept the publish's rows: one retained partition (a publish's own kept table may have become
        # the partition again, by exchange).
        rollback = next(entry for entry in entries(warehouse, spec.name) if entry.status == "rolled_back")
        kept = find(warehouse, rollback.entry_id)
        results.history_bytes = stored_bytes(warehouse, kept) if kept else None
        warehouse.execute(f"DROP SCHEMA {warehouse.quote(SCHEMA)} CASCADE")  # its autovacuum would compete later
    return results


def _spec() -> Pipeline:
    """The example pipeline (daily `replace_partition` on order_date), publishing to the benchmark's table."""
    spec = find_pipeline("shop_orders").spec
    destination = spec.destination.model_copy(update={"schema_name": SCHEMA, "table": TABLE})
    return spec.model_copy(update={"destination": destination})


def _prepare(warehouse: Warehouse, spec: Pipeline, orders: pa.Table, progress: Callable[[str], None]) -> None:
    """`PARTITIONS` days of `orders` in the published table (the first is the one republished), each published as a
    run would, so the table has the shape this engine's publishes give it (partitioned where they exchange)."""
    progress(f"filling {SCHEMA}.{TABLE} with {PARTITIONS} partitions of {len(orders):,} rows")
    migrate(warehouse)
    for schema in (SCHEMA, AUDIT_SCHEMA):
        warehouse.ensure_schema(schema)
    for offset in range(PARTITIONS):
        day = DAY + timedelta(days=offset)
        _audited(warehouse, spec, orders, day, id_offset=offset * len(orders))
        (window,) = plan_windows("day", day, day)
        publish(warehouse, spec, [_staged(window)], warehouse.claim([]))
    warehouse.execute(f"ANALYZE {warehouse.qualified(SCHEMA, TABLE)}")


def _audited(warehouse: Warehouse, spec: Pipeline, orders: pa.Table, day: date, id_offset: int = 0) -> None:
    """The audited output of one day as the transform leaves it: `orders` moved to `day`, ids shifted by
    `id_offset`, and (where publishes exchange partitions) its bounds proved (`shipshape.transform`)."""
    dates = pa.repeat(pa.scalar(day, pa.date32()), len(orders))
    shifted = orders.set_column(orders.schema.get_field_index("order_date"), "order_date", dates)
    shifted = shifted.set_column(0, "order_id", pc.add(orders["order_id"], id_offset))
    warehouse.create_table(AUDIT_SCHEMA, OUT, COLUMN_TYPES)
    warehouse.append_arrow(AUDIT_SCHEMA, OUT, pa.RecordBatchReader.from_batches(shifted.schema, shifted.to_batches()))
    exchange = exchanging(warehouse, spec)
    if exchange is not None and spec.partition is not None:
        (window,) = plan_windows("day", day, day)
        exchange.bound_audited_table(AUDIT_SCHEMA, OUT, spec.partition.column, window_bounds(spec, window))


def _staged(window: Window) -> StagedPartition:
    entry = LedgerEntry(
        pipeline="shop_orders", partition_key=window.key, partition_start=window.start, partition_end=window.end,
        flow_run_id="bench", run_tag="bench", code_version="bench", contract_hash="", row_count=0, rejected_rows=0,
        status="published", check_results=[], message="", started_at=datetime.now(UTC), destination=f"{SCHEMA}.{TABLE}",
    )  # fmt: skip
    return StagedPartition(window, OUT, entry)


def _delete_insert(warehouse: Warehouse, spec: Pipeline, window: Window) -> None:
    """What publishing a partition did before history: one transaction, DELETE the day, INSERT the audited rows."""
    assert spec.partition is not None
    start, end = window_bounds(spec, window)
    with warehouse.transaction():
        warehouse.delete_range(SCHEMA, TABLE, spec.partition.column, start, end)
        warehouse.insert_from(SCHEMA, TABLE, AUDIT_SCHEMA, OUT, list(COLUMN_TYPES))


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started
