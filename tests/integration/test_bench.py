"""`make bench`, `make chaos` and `make bench-ops` at a small size: every part of each benchmark runs against a
real PostgreSQL.

Nothing else exercises the benchmark, so without this it rots unnoticed (it once exited 2 before printing
anything when pipeline declarations started to require an owner). The figures at this size mean nothing;
only that each part ran and the last line keeps the format the targets are read from.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from tests.support.make import make, newcomer_environment

BENCH_TIMEOUT_SECONDS = 900
"""A hung benchmark fails the test instead of the whole CI job; at this size it takes about a minute."""
SMALL = "--rows 20000 --repeat 1"
CHAOS_TIMEOUT_SECONDS = 600
"""At this size about a minute: a private PostgreSQL and a Prefect server start, then 2 clean and 8 faulty/re-runs."""
CHAOS_SMALL = "--rows 20000 --kills 3 --restarts 1"
CHAOS_LAST_LINE = re.compile(
    r"chaos: kills=(\d+) restarts=(\d+) identical=(\d+) lost_rows=(\d+) duplicated_rows=(\d+) orphans=(\d+)"
)
OPS_TIMEOUT_SECONDS = 900
"""At this size a few minutes: a private PostgreSQL, `make up`'s platform, two backfills, four `shipshape run`s."""
OPS_SMALL = "--short-days 2 --long-days 3"
OPS_LAST_LINE = re.compile(
    r"ops: backfill14_vs_range=(\S+) backfill90_vs_range=(\S+) day_run_warm_s=(\S+) day_run_cold_s=(\S+)"
)
LAST_LINE = re.compile(r"bench: load_vs_copy=(\S+) load_vs_to_sql=(\S+) wap_vs_copy=(\S+) rss_5m_vs_1m=(\S+)")
PUBLISH_LINE = re.compile(r"publish: exchange_vs_delete_insert=(\S+) rollback_vs_delete_insert=(\S+)", re.MULTILINE)
HISTORY_LINE = re.compile(r"history kept per retained partition: ([\d,]+) bytes")


def test_bench_runs_every_part_and_prints_its_ratios(postgres_url: str, tmp_path: Path) -> None:
    env = newcomer_environment(PREFECT_HOME=str(tmp_path / "prefect-home"))
    bench = make("bench", f"BENCH_ARGS={SMALL} --database-url {postgres_url}", env=env, timeout=BENCH_TIMEOUT_SECONDS)
    assert bench.returncode == 0, bench.stdout[-6000:]
    last_line = bench.stdout.splitlines()[-1]
    ratios = LAST_LINE.fullmatch(last_line)
    assert ratios, f"unexpected last line: {last_line!r}"
    for value in map(as_number, ratios.groups()):
        assert math.isfinite(value) and value > 0, last_line
    publish = PUBLISH_LINE.search(bench.stdout)
    history = HISTORY_LINE.search(bench.stdout)
    assert publish and history, bench.stdout[-3000:]
    assert all(math.isfinite(as_number(value)) and as_number(value) > 0 for value in publish.groups()), publish[0]
    assert int(history[1].replace(",", "")) > 0


def as_number(text: str) -> float:
    """The ratio as printed; NaN for the bench's "n/a" (a part skipped or failed), so the check above names it."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def test_chaos_recovers_every_killed_or_crashed_run_to_the_clean_result(tmp_path: Path) -> None:
    env = newcomer_environment(PREFECT_HOME=str(tmp_path / "prefect-home"))
    chaos = make("chaos", f"CHAOS_ARGS={CHAOS_SMALL}", env=env, timeout=CHAOS_TIMEOUT_SECONDS)
    last_line = chaos.stdout.splitlines()[-1] if chaos.stdout else ""
    tally = CHAOS_LAST_LINE.fullmatch(last_line)
    assert tally, f"unexpected last line: {last_line!r}\n{chaos.stdout[-6000:]}"
    kills, restarts, identical, lost, duplicated, orphans = map(int, tally.groups())
    assert (kills, restarts) == (3, 1), last_line
    assert (identical, lost, duplicated, orphans) == (kills + restarts, 0, 0, 0), chaos.stdout[-6000:]
    assert chaos.returncode == 0, chaos.stdout[-6000:]


def test_bench_ops_times_backfills_against_range_runs_and_a_day_run_cold_and_warm(tmp_path: Path) -> None:
    """On its own private PostgreSQL (`make up` creates cluster-wide roles there, never on the shared server)."""
    env = newcomer_environment(PREFECT_HOME=str(tmp_path / "prefect-home"))
    ops = make("bench-ops", f"BENCH_OPS_ARGS={OPS_SMALL}", env=env, timeout=OPS_TIMEOUT_SECONDS)
    assert ops.returncode == 0, ops.stdout[-6000:]
    last_line = ops.stdout.splitlines()[-1]
    figures = OPS_LAST_LINE.fullmatch(last_line)
    assert figures, f"unexpected last line: {last_line!r}"
    for value in map(as_number, figures.groups()):
        assert math.isfinite(value) and value > 0, last_line
    assert re.search(r"^2 days: range run [0-9.]+ s; backfill [0-9.]+ s in \d+ child run", ops.stdout, re.MULTILINE)

LEDGER_READ = re.compile(r"(\w+): \S+ ms -> \S+ ms \((\S+)x\); before (.+); after (.+)")
MIGRATION_2_INDEXES = {
    "publish_ledger_pipeline_finished_at", "publish_ledger_pipeline_partition", "dead_letters_pipeline_partition"
}


def test_bench_ledger_reads_scan_before_migration_2_and_use_its_indexes_after(postgres_url: str) -> None:
    """At the small size too (20,000 rows over 200 pipelines), PostgreSQL's planner picks the new indexes."""
    bench = make("bench-ledger", f"LEDGER_ARGS=--rows 20000 --repeat 1 --database-url {postgres_url}",
                 env=newcomer_environment(), timeout=BENCH_TIMEOUT_SECONDS)
    assert bench.returncode == 0, bench.stdout[-6000:]
    *reads, last_line = bench.stdout.strip().splitlines()[-7:]
    assert re.fullmatch(r"ledger_reads: rows=20000 scan_vs_index=\S+", last_line), last_line
    parsed = [LEDGER_READ.fullmatch(line) for line in reads]
    assert all(parsed), reads
    assert [match.group(1) for match in parsed if match] == [
        "entries", "published_times", "recent_successful_runs", "recorded_run_tags", "published_row_counts_before",
        "forget_superseded_dead_letters",
    ]
    for match in filter(None, parsed):
        assert match.group(3) == "Seq Scan", match.group(0)  # release 1: each read scans the whole table
        assert set(match.group(4).split(" + ")) <= MIGRATION_2_INDEXES, match.group(0)  # now: only new indexes
