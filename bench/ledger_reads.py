"""`make bench-ledger`: the ledger's per-pipeline reads on PostgreSQL before and after platform migration 2's indexes.

In an empty database: the platform tables as every migration but 2 makes them, `--rows` ledger rows and as many
dead letters spread over `--pipelines` pipelines, analyzed. Each read the runs, backfill planning and the monitor
make (`shipshape.ledger`'s functions, as they send it) is timed (median of `--repeat`) and its plan taken (EXPLAIN);
then migration 2's indexes are made, and the same again. The reads filter on the current destination version
(`ledger.PublishedTable`), as the runs send them. One line per read:

    entries: 41.20 ms -> 0.35 ms (117.7x); before Seq Scan; after publish_ledger_pipeline_finished_at

and last `ledger_reads: rows=<rows> scan_vs_index=<geometric mean of the ratios>`. `--rows 20000 --repeat 1` runs
in seconds (the tests do, and check each plan after uses one of the new indexes and none reads a whole table).
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from arguments import positive

from shipshape import ledger
from shipshape.platform_migrations import MIGRATIONS
from shipshape.platform_schema import apply_migration
from shipshape.warehouses import Warehouse, open_warehouse

_INDEX_USE = re.compile(r"Index (?:Only )?Scan (?:Backward )?(?:using|on) (\w+)")
SINCE = datetime(2026, 11, 1, tzinfo=UTC)
# The filled rows predate migration 4 (no destination): they are about p7's version-1 table.
P7 = ledger.PublishedTable("p7", "analytics.p7", "analytics.p7")
START = datetime(2026, 1, 1, tzinfo=UTC)
READS: dict[str, Callable[[Warehouse], object]] = {
    "entries": lambda warehouse: ledger.entries(warehouse, P7),
    "published_times": lambda warehouse: ledger.published_times(warehouse, P7, SINCE),
    "recent_successful_runs": lambda warehouse: ledger.recent_successful_runs(warehouse, P7, 20),
    "recorded_run_tags": lambda warehouse: ledger.recorded_run_tags(warehouse, "p7", "k3"),
    "published_row_counts_before": lambda warehouse: ledger.published_row_counts_before(warehouse, P7, SINCE, 14),
    # The first call (the one explained) deletes p7's one dead letter of k3; the timed calls find none to delete.
    "forget_superseded_dead_letters": lambda warehouse: ledger.forget_superseded_dead_letters(
        warehouse, "p7", "k3", "t0"
    ),
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with open_warehouse(args.database_url) as warehouse:
        with warehouse.transaction():
            apply_migration(warehouse, MIGRATIONS[0])
            for later in MIGRATIONS[2:]:  # the columns the reads select now, without migration 2's indexes
                later.apply(warehouse)
        _fill(warehouse, args.rows, args.pipelines)
        before = {name: _measure(warehouse, read, args.repeat) for name, read in READS.items()}
        with warehouse.transaction():
            MIGRATIONS[1].apply(warehouse)
        _analyze(warehouse)
        after = {name: _measure(warehouse, read, args.repeat) for name, read in READS.items()}
    ratios = []
    for name in READS:
        (scan, scan_plan), (indexed, indexed_plan) = before[name], after[name]
        ratios.append(scan / indexed)
        print(
            f"{name}: {scan * 1000:.2f} ms -> {indexed * 1000:.2f} ms ({scan / indexed:.1f}x); "
            f"before {_access(scan_plan)}; after {_access(indexed_plan)}"
        )
    print(f"ledger_reads: rows={args.rows} scan_vs_index={math.exp(statistics.fmean(map(math.log, ratios))):.1f}")
    return 0


def _fill(warehouse: Warehouse, rows: int, pipelines: int) -> None:
    """`rows` ledger rows (one in ten failed) and `rows` dead letters, round-robin over `pipelines` pipelines."""
    warehouse.execute(
        "INSERT INTO platform.publish_ledger (entry_id, pipeline, partition_key, partition_start, flow_run_id, "
        "run_tag, row_count, status, check_results, started_at, finished_at) "
        "SELECT n::text, 'p' || n % ?, 'k' || n / ?, ?::timestamptz + n * interval '1 minute', 'r' || n, 't' || n, "
        "n, CASE WHEN n % 10 = 0 THEN 'failed' ELSE 'published' END, '[]', "
        "?::timestamptz + n * interval '1 minute', ?::timestamptz + n * interval '1 minute' "
        "FROM generate_series(1, ?) AS n",
        [pipelines, pipelines, START, START, START, rows],
    )
    warehouse.execute(
        "INSERT INTO platform.dead_letters (pipeline, partition_key, run_tag, row_number, reason) "
        "SELECT 'p' || n % ?, 'k' || n / ?, 't' || n, n, 'bad' FROM generate_series(1, ?) AS n",
        [pipelines, pipelines, rows],
    )
    _analyze(warehouse)


def _analyze(warehouse: Warehouse) -> None:
    for table in (ledger.LEDGER_TABLE, ledger.DEAD_LETTER_TABLE):
        warehouse.execute(f"ANALYZE {warehouse.qualified('platform', table)}")


def _measure(warehouse: Warehouse, read: Callable[[Warehouse], object], repeat: int) -> tuple[float, str]:
    """Median seconds of `read`, and the plans of the statements it sends (EXPLAIN, sent before each statement)."""
    plans: list[str] = []
    fetch_all, execute = warehouse.fetch_all, warehouse.execute

    def explained(statement: Callable[..., Any]) -> Callable[..., Any]:
        def run(sql: str, params: Any = ()) -> Any:
            plans.append("\n".join(row[0] for row in fetch_all(f"EXPLAIN {sql}", params)))
            return statement(sql, params)

        return run

    warehouse.fetch_all, warehouse.execute = explained(fetch_all), explained(execute)  # type: ignore[method-assign]
    try:
        read(warehouse)
    finally:
        warehouse.fetch_all, warehouse.execute = fetch_all, execute  # type: ignore[method-assign]
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        read(warehouse)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), "\n".join(plans)


def _access(plan: str) -> str:
    """How the plan reaches the platform tables: `Seq Scan` (the whole table) and the indexes it uses."""
    indexes = sorted(set(_INDEX_USE.findall(plan)))
    return " + ".join((["Seq Scan"] if "Seq Scan" in plan else []) + indexes)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=positive, default=1_000_000, help="ledger rows, and dead letters (1,000,000)")
    parser.add_argument("--pipelines", type=positive, default=200, help="pipelines the rows are spread over (200)")
    parser.add_argument("--repeat", type=positive, default=5, help="timed runs per read (median taken)")
    parser.add_argument("--database-url", required=True, help="an existing, empty PostgreSQL database")
    return parser


if __name__ == "__main__":
    sys.exit(main())
