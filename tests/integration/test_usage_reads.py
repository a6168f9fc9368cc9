"""Consumer reads counted from PostgreSQL's own statistics, with and without `pg_stat_statements`, and `shipshape
cost` after real runs: each case on a private server (`bench/private_postgres.py`, roles are cluster-wide) started
with the library preloaded or without it, roles and the extension made by `make apply`'s warehouse code.

The consumer role reads the published table a known number of times between two samples, and the platform
republishes a partition in between: exactly the consumer's reads are counted, the publish's scans are not. The
example's table is partitioned (partition exchange): without `pg_stat_statements` its reads are the largest scan
increase of a partition both samples have (`partition_scans`), which the republish (a new partition, the shrink count
reading only the one it replaces) does not touch, so `unused` opens and resolves there too.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from prefect import tags

from bench.private_postgres import PrivatePostgres, private_postgres
from cli.main import main
from deployments.environments import Environment
from flows.monitor import monitor
from flows.run_pipeline import run_pipeline
from infra.warehouse import reconcile
from runtime.cost_sources import consumers, pipeline_months
from shipshape.alerts import UNUSED
from shipshape.catalog import find_pipeline
from shipshape.cost import Month
from shipshape.ledger import INCIDENT_TABLE
from shipshape.names import run_tags
from shipshape.usage import measure, platform_scans, read_intervals, record, recorded
from shipshape.warehouses import PLATFORM_SCHEMA, open_warehouse
from tests.support.postgres import as_role
from tests.support.project import FIRST_DAY, make_project

pytestmark = [pytest.mark.postgres, pytest.mark.filterwarnings("ignore::DeprecationWarning:soda_.*")]

PASSWORDS = {"loader": "l-pw", "publisher": "p-pw", "consumer": "c-pw", "monitor": "m-pw"}
TABLE = "analytics.fct_orders"
CONSUMER_READS = 3
UNREAD_AFTER_SECONDS = 2
READ_METHOD = {"statements": "statements", "scans": "partition_scans"}
"""The read method the samples of the (partitioned) example table show on each server."""


@pytest.fixture(params=["statements", "scans"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[PrivatePostgres, str]]:
    """`statements`: pg_stat_statements preloaded (apply creates the extension); `scans`: a plain server."""
    settings = {"shared_preload_libraries": "pg_stat_statements"} if request.param == "statements" else {}
    with private_postgres(settings) as started:
        yield started, request.param


@pytest.fixture
def platform(
    server: tuple[PrivatePostgres, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_api: str
) -> tuple[str, str, Environment]:
    """The example project on the private server after apply, running as the loader, publisher and monitor; an
    environment name of its own, so the session's Prefect API holds no other test's runs under its tags."""
    started, method = server
    url = started.url
    env = Environment(f"t{uuid.uuid4().hex[:8]}", "process", False, 1)
    reconcile(url, env, PASSWORDS, dry_run=False)
    project = make_project(tmp_path, as_role(url, env.role("loader")), monkeypatch)
    project.edit_declaration(lambda declared: declared.update(value={"unread_after": f"{UNREAD_AFTER_SECONDS}s"}))
    monkeypatch.setenv("SHIPSHAPE_PUBLISHER_URL", as_role(url, env.role("publisher")))
    monkeypatch.setenv("SHIPSHAPE_MONITOR_URL", as_role(url, env.role("monitor")))
    monkeypatch.setenv("SHIPSHAPE_ENV", env.name)
    return url, method, env


def publish_days(env: Environment, url: str, last_day: date = FIRST_DAY) -> None:
    """Publish the partitions from FIRST_DAY to `last_day` in one run, and wait until the run's sessions have ended,
    so that their table statistics are on the server before the next sample (the bound the docs state for a sample
    taken moments after a publish is not what these tests measure)."""
    with tags(*run_tags("shop_orders", env.name)):  # as `shipshape run` and deployments tag runs
        state = run_pipeline("shop_orders", start_date=FIRST_DAY, end_date=last_day, return_state=True)
    assert state.is_completed(), state.message
    platform_roles = [env.role(purpose) for purpose in ("loader", "publisher")]
    with psycopg.connect(url, autocommit=True) as admin:
        for _ in range(600):  # a backend flushes its statistics as it exits, before it leaves pg_stat_activity
            if not admin.execute("SELECT 1 FROM pg_stat_activity WHERE usename = ANY(%s)", [platform_roles]).fetchone():
                return
            time.sleep(0.05)
    raise AssertionError(f"sessions of {platform_roles} still open 30 s after the run ended")


def sample(url: str, env: Environment) -> None:
    spec = find_pipeline("shop_orders").spec
    with open_warehouse(as_role(url, env.role("monitor"))) as monitor:
        record(monitor, measure(monitor, [spec], consumers(env.name), datetime.now(UTC)))


def read_as_consumer(url: str, env: Environment, times: int) -> None:
    with psycopg.connect(as_role(url, env.role("consumer")), autocommit=True) as consumer:
        for _ in range(times):
            consumer.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
        # The session's table statistics reach the shared counters when it goes idle after this (PostgreSQL 15+).
        consumer.execute("SELECT pg_stat_force_next_flush()")


def test_consumer_reads_are_counted_and_the_platforms_own_publishes_are_not(
    platform: tuple[str, str, Environment],
) -> None:
    url, method, env = platform
    publish_days(env, url, FIRST_DAY + timedelta(days=1))  # two partitions: the second stays through the republishes
    sample(url, env)
    publish_days(env, url)  # the platform republishes the first partition, nobody reads: its scans must not count
    sample(url, env)
    read_as_consumer(url, env, CONSUMER_READS)
    publish_days(env, url)  # again, between the consumer's reads and the next sample
    sample(url, env)

    spec = find_pipeline("shop_orders").spec
    with open_warehouse(as_role(url, env.role("monitor"))) as monitor:
        since = datetime.now(UTC) - timedelta(hours=1)
        samples = [s for s in recorded(monitor, "shop_orders", since) if s.table_name == TABLE]
        intervals = read_intervals(samples, platform_scans(monitor, spec, TABLE, since))
    assert all(s.bytes and s.bytes > 0 for s in samples), "the published table's size: its partitions'"
    now = datetime.now(UTC)
    [month] = pipeline_months(Month.of(now), env.name, now)
    assert month.runs == 3 and month.vcpu_hours > 0 and month.compute_cost > 0
    assert month.storage_gb["published"] and month.storage_gb["published"] > 0 and month.rows_published > 0
    assert {s.read_method for s in samples} == {READ_METHOD[method]}
    assert [interval.reads for interval in intervals] == [0, CONSUMER_READS]
    assert month.reads == CONSUMER_READS
    assert month.cost_per_read == pytest.approx(month.total_cost / CONSUMER_READS)
    print(f"{method}: {month.as_row()}")


def unused_is_open(url: str) -> bool:
    with open_warehouse(url) as admin:
        rows = admin.fetch_all(
            f"SELECT is_open FROM {admin.qualified(PLATFORM_SCHEMA, INCIDENT_TABLE)} WHERE pipeline = ? AND kind = ?",
            ["shop_orders", UNUSED],
        )
    return bool(rows and rows[0][0])


def test_a_table_nobody_reads_opens_unused_and_a_consumer_read_resolves_it(
    platform: tuple[str, str, Environment],
) -> None:
    """`value.unread_after` shortened to seconds: the monitor opens `unused` once the window passed without a consumer
    read and resolves it after one read, with either read method."""
    url, _, env = platform
    publish_days(env, url)
    monitor()  # the first sample: watched (unread) time starts here, at the latest when it returns
    time.sleep(UNREAD_AFTER_SECONDS)  # the declared window passing, not a wait for something to happen
    monitor()
    assert unused_is_open(url)

    read_as_consumer(url, env, 1)
    monitor()
    assert not unused_is_open(url)


def test_shipshape_cost_prints_the_months_figures_as_json(
    platform: tuple[str, str, Environment], capsys: pytest.CaptureFixture[str]
) -> None:
    url, method, env = platform
    publish_days(env, url)
    sample(url, env)
    read_as_consumer(url, env, 2)

    assert main(["cost", "--json"]) == 0

    report = json.loads(capsys.readouterr().out)
    [row] = report["pipelines"]
    assert (report["environment"], report["month"]) == (env.name, str(Month.of(datetime.now(UTC))))
    assert row["pipeline"] == "shop_orders" and row["runs"] == 1 and row["vcpu_hours"] > 0
    assert row["storage_gb_published"] > 0
    assert row["reads"] == 2, "measured now against the monitor's sample"
    assert row["read_method"] == READ_METHOD[method]
