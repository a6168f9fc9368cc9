"""`make bench`: how the project's load path and a full write-audit-publish run compare with the usual ways.

On one deterministic 1M-row orders table, in a database of its own on the local PostgreSQL, it times
  - the project's load path (`Warehouse.append_arrow`: ADBC on PostgreSQL), `psql \\copy` (the practical ceiling) and
    pandas `to_sql` (the common default), each from in-memory data to commit;
  - `shipshape run` of a one-day Parquet pipeline (extract, load, audit with a 7-check contract, publish),
    against a Prefect server started once, so the timing excludes a temporary server's start;
  - the peak RSS of that run over 1M and 5M rows (memory should not grow with the partition's size);
  - publishing one partition of those rows into a table holding ten: DELETE + INSERT as before history, the
    publish that keeps history, and a rollback (`publish_history.py`), printed as the `publish: ...` line.
The last line of output is `bench: ...` with the ratios the targets are stated in.

`--rows 20000 --repeat 1` runs every part at a small size in well under a minute (the tests do, so the benchmark
cannot rot unnoticed); `--database-url` points it at an existing empty database instead of its own.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from arguments import positive
from load_methods import SCHEMA, load_project, load_psql_copy, load_to_sql
from orders_data import orders, write_csv, write_parquet
from publish_history import PublishResults, measure_publish
from wap_run import (
    DESTINATION_SCHEMA,
    DESTINATION_TABLE,
    CliRun,
    WapRunError,
    landing_path,
    run_cli,
    run_environment,
    write_project,
)

from infra.local.server import prefect_server
from shipshape.warehouses import open_warehouse

DATABASE = "shipshape_bench"
RSS_SCALE = 5
"""The memory run uses this many times the rows."""


@dataclass
class Results:
    """Figures as they are measured; None where a part was skipped or failed."""

    rows: int
    copy_runs: list[float] = field(default_factory=list)
    project_runs: list[float] = field(default_factory=list)
    to_sql_seconds: float | None = None
    wap_first: CliRun | None = None
    wap_rerun: CliRun | None = None
    wap_scaled: CliRun | None = None
    wap_error: str | None = None
    publish: PublishResults | None = None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    results = Results(rows=args.rows)
    with ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="shipshape-bench-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        url = args.database_url or _own_database(args.server, cleanup)

        _progress(f"generating {args.rows:,} orders, writing CSV and Parquet once")
        table = orders(args.rows)
        csv_path = workdir / "orders.csv"
        write_csv(table, csv_path)
        data_dir = workdir / "data"
        write_parquet([table], landing_path(data_dir))

        _measure_loads(results, url, table, csv_path, args.repeat, with_others=args.only not in ("wap", "publish"))
        with open_warehouse(url) as warehouse:
            # Left in place, these tables' autovacuum would compete with the pipeline runs for the CPUs.
            warehouse.execute(f"DROP SCHEMA {warehouse.quote(SCHEMA)} CASCADE")
        if args.only in (None, "publish"):
            results.publish = measure_publish(url, table, args.repeat, _progress)
        if args.only not in ("load", "publish"):
            try:
                _measure_wap(results, workdir, data_dir, url)
            except WapRunError as error:
                results.wap_error = str(error)
    _report(results, args.repeat)
    return 1 if results.wap_error else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=positive, default=3, help="timed runs per fast load method (median taken)")
    parser.add_argument("--rows", type=positive, default=1_000_000, help="rows of the table (default 1,000,000)")
    parser.add_argument(
        "--only", choices=["load", "wap", "publish"],
        help="load: the three load methods only; wap: the pipeline runs and memory (with \\copy as the baseline); "
        "publish: DELETE + INSERT vs the publish keeping history vs a rollback",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--server",
        default="postgresql://postgres@127.0.0.1:5432",
        help=f"PostgreSQL server URL, without a database: the benchmark creates {DATABASE} there and drops it after",
    )
    where.add_argument(
        "--database-url", help="an existing, empty PostgreSQL database to use (and leave in place) instead"
    )
    return parser


def _own_database(server: str, cleanup: ExitStack) -> str:
    """(Re)create the benchmark's database (a crashed earlier run may have left it), dropped on the way out."""
    _drop_database(server)
    with open_warehouse(f"{server}/postgres") as admin:
        admin.execute(f"CREATE DATABASE {admin.quote(DATABASE)}")
    cleanup.callback(_drop_database, server)
    return f"{server}/{DATABASE}"


def _drop_database(server: str) -> None:
    with open_warehouse(f"{server}/postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {admin.quote(DATABASE)} WITH (FORCE)")


def _measure_loads(
    results: Results, url: str, table: pa.Table, csv_path: Path, repeat: int, *, with_others: bool
) -> None:
    """Project and \\copy alternate, so a slow phase of the machine hits both; to_sql (~15 s) runs once."""
    for attempt in range(1, repeat + 1):
        if with_others:
            results.project_runs.append(_logged(f"project load {attempt}/{repeat}", load_project(url, table)))
        copy_seconds = load_psql_copy(url, csv_path, len(table))
        results.copy_runs.append(_logged(f"psql \\copy {attempt}/{repeat}", copy_seconds))
    if with_others:
        results.to_sql_seconds = _logged("pandas to_sql (one run)", load_to_sql(url, table.to_pandas()))


def _measure_wap(results: Results, workdir: Path, data_dir: Path, url: str) -> None:
    """Two runs of the same partition at 1M rows (the second replaces what the first published), then one at 5M."""
    project_dir = workdir / "project"
    write_project(project_dir)
    prefect_home = workdir / "prefect"
    _progress("starting a Prefect server for the pipeline runs")
    with prefect_server(prefect_home, workdir / "prefect-server.log") as api_url:
        env = run_environment(project_dir, data_dir, url, prefect_home, api_url)
        rows = results.rows
        results.wap_first = _pipeline_run("pipeline run 1 (creates the table)", env, api_url, workdir, url, rows)
        results.wap_rerun = _pipeline_run("pipeline run 2 (re-run)", env, api_url, workdir, url, rows)
        _progress(f"writing a {RSS_SCALE * rows:,}-row Parquet file for the same day")
        chunks = (orders(rows, first_order_id=1 + index * rows) for index in range(RSS_SCALE))
        write_parquet(chunks, landing_path(data_dir))
        label = f"pipeline run at {RSS_SCALE}x rows"
        results.wap_scaled = _pipeline_run(label, env, api_url, workdir, url, RSS_SCALE * rows)


def _pipeline_run(label: str, env: dict[str, str], api_url: str, workdir: Path, url: str, rows: int) -> CliRun:
    """One `shipshape run`, then a check that exactly `rows` rows are published (a re-run must not append)."""
    run = run_cli(env, api_url, workdir / f"{label.replace(' ', '-')}.log")
    seconds = f"run {run.run_seconds:.2f} s, process {run.wall_seconds:.2f} s, in flow {run.flow_seconds:.2f} s"
    _progress(f"{label}: {seconds}, peak RSS {run.peak_rss_mib:.0f} MiB")
    with open_warehouse(url) as warehouse:
        published = warehouse.row_count(DESTINATION_SCHEMA, DESTINATION_TABLE)
    if published != rows:
        target = f"{DESTINATION_SCHEMA}.{DESTINATION_TABLE}"
        raise WapRunError(f"{target} holds {published:,} rows after {label}; expected {rows:,}")
    return run


def _logged(label: str, seconds: float) -> float:
    _progress(f"{label}: {seconds:.2f} s")
    return seconds


def _progress(message: str) -> None:
    print(f"  {message}", flush=True)


def _report(results: Results, repeat: int) -> None:
    copy_seconds = statistics.median(results.copy_runs)
    project_seconds = statistics.median(results.project_runs) if results.project_runs else None
    first, rerun, scaled = results.wap_first, results.wap_rerun, results.wap_scaled
    _print_table(
        [
            (f"project append_arrow (ADBC), median of {repeat}", results.rows, project_seconds),
            (f"psql \\copy from CSV, median of {repeat}", results.rows, copy_seconds),
            ("pandas to_sql (chunksize 10k), 1 run", results.rows, results.to_sql_seconds),
            ("WAP run 1, creates the table: run", results.rows, first.run_seconds if first else None),
            ("WAP run 2, re-run (headline): run", results.rows, rerun.run_seconds if rerun else None),
            ("WAP run 2, whole process (+start, imports)", results.rows, rerun.wall_seconds if rerun else None),
            ("WAP run 2, Prefect's flow run time", results.rows, rerun.flow_seconds if rerun else None),
            (f"WAP re-run at {RSS_SCALE}x rows: run", RSS_SCALE * results.rows, scaled.run_seconds if scaled else None),
        ],
        copy_rate=results.rows / copy_seconds,
    )
    for label, run in (("re-run", rerun), (f"{RSS_SCALE}x run", scaled)):
        if run is not None:
            steps = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in run.task_seconds.items())
            print(f"tasks of the {label}: {steps}")
    for label, runs in (("project", results.project_runs), ("\\copy", results.copy_runs)):
        if runs:
            print(f"single runs of {label} (s): " + " ".join(f"{seconds:.2f}" for seconds in runs))
    rss = rerun.peak_rss_mib if rerun else None
    rss_scaled = scaled.peak_rss_mib if scaled else None
    if rss is not None:
        shown = "n/a" if rss_scaled is None else f"{rss_scaled:.0f} MiB"
        print(f"peak RSS of `shipshape run`: {results.rows:,} rows {rss:.0f} MiB, {RSS_SCALE}x rows {shown}")
    if results.wap_error:
        print(f"\nWAP/RSS part FAILED: {results.wap_error}\n")
    ratios = {
        "load_vs_copy": _ratio(copy_seconds, project_seconds),
        "load_vs_to_sql": _ratio(results.to_sql_seconds, project_seconds),
        "wap_vs_copy": _ratio(rerun.run_seconds if rerun else None, copy_seconds),
        "rss_5m_vs_1m": _ratio(rss_scaled, rss),
    }
    if results.publish is not None:
        print(results.publish.report())
    print("targets: load_vs_copy >= 0.90, load_vs_to_sql >= 8, wap_vs_copy <= 3, rss_5m_vs_1m <= 1.2")
    print("bench: " + " ".join(f"{name}={value}" for name, value in ratios.items()))


def _print_table(rows: list[tuple[str, int, float | None]], copy_rate: float) -> None:
    print(f"\n{'method':<44}{'rows':>11}{'seconds':>10}{'rows/s':>12}{'x copy':>9}")
    for label, row_count, seconds in rows:
        if seconds is None:
            print(f"{label:<44}{row_count:>11,}{'n/a':>10}")
            continue
        rate = row_count / seconds
        print(f"{label:<44}{row_count:>11,}{seconds:>10.2f}{rate:>12,.0f}{copy_rate / rate:>9.2f}")
    print("x copy = time per row / \\copy's time per row (lower is better); \\copy's time includes psql's start,")
    print("not the CSV writing. WAP runs are `shipshape run` subprocesses against an already running Prefect server;")
    print("'run' is the flow call as the command times it (extract to publish, with Prefect's orchestration),")
    print("'whole process' adds the interpreter start and ~1.8 s of imports (Prefect alone is ~1.2 s).")


def _ratio(numerator: float | None, denominator: float | None) -> str:
    """Two decimals, or n/a when a part was skipped or failed."""
    return "n/a" if numerator is None or denominator is None else f"{numerator / denominator:.2f}"


if __name__ == "__main__":
    sys.exit(main())
