"""Faults on real PostgreSQL with real processes: SIGKILL mid-publish and mid-load, concurrent runs.

Runs are separate `shipshape run` processes against the session's Prefect API. To stop a run at an
exact point, the test holds a lock on `platform.dead_letters`, which a publish touches after
replacing the partition's rows and before writing its ledger row; PostgreSQL tells us (through
pg_stat_activity) the moment the run is waiting there — no sleeps.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from shipshape.platform_schema import migrate
from shipshape.warehouses import open_warehouse
from tests.support.postgres import backend_waiting_on
from tests.support.project import FIRST_DAY, Project, make_project
from tests.support.waiting import WAIT_SECONDS, wait_until

DAY = FIRST_DAY.isoformat()
HELD_STATEMENT = 'DELETE FROM "platform"."dead_letters"'


@pytest.fixture
def project(tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch, prefect_api: str) -> Project:
    return make_project(tmp_path, postgres_url, monkeypatch)


def start_run(project: Project, prefect_api: str) -> subprocess.Popen[str]:
    env = {**os.environ, **project.env(), "PREFECT_API_URL": prefect_api}
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "run", "shop_orders", "--start-date", DAY, "--end-date", DAY],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=WAIT_SECONDS)
    return process.returncode, stderr


def published(url: str) -> list[tuple]:
    """The published rows of the partition; none if nothing was ever published."""
    with psycopg.connect(url) as connection:
        if connection.execute("SELECT to_regclass('analytics.fct_orders')").fetchone()[0] is None:
            return []
        return connection.execute(
            "SELECT order_id, status, amount FROM analytics.fct_orders WHERE order_date = %s ORDER BY order_id", [DAY]
        ).fetchall()


def ledger_statuses(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT status FROM platform.publish_ledger WHERE partition_key = %s ORDER BY finished_at", [DAY]
        ).fetchall()
    return [row[0] for row in rows]


def no_partition_locks_held(url: str) -> bool:
    """A killed client's backend ends (and drops its advisory locks) once it next talks to the client."""
    with psycopg.connect(url, autocommit=True) as connection:
        return not connection.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]


@contextmanager
def publish_held_at_the_end(url: str) -> Iterator[None]:
    """Block every publish after its data changes and before its ledger row, until the block exits."""
    with psycopg.connect(url) as holder:
        holder.execute("LOCK TABLE platform.dead_letters IN ACCESS EXCLUSIVE MODE")
        yield
        holder.rollback()


def change_source_statuses(project: Project) -> None:
    """A valid new version of the partition, so old and new published rows can be told apart."""
    with sqlite3.connect(project.shop_db) as connection:
        connection.execute("UPDATE orders SET status = 'delivered' WHERE status = 'shipped'")


def test_sigkill_mid_publish_leaves_the_previous_version(project: Project, prefect_api: str) -> None:
    url = project.warehouse_url
    assert finish(start_run(project, prefect_api))[0] == 0
    before = published(url)
    change_source_statuses(project)

    with publish_held_at_the_end(url):
        run = start_run(project, prefect_api)
        wait_until(lambda: backend_waiting_on(url, HELD_STATEMENT), "publish is mid-way", run)
        assert published(url) == before, "readers must see the old partition while a publish is in flight"
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=WAIT_SECONDS)

    assert published(url) == before
    assert ledger_statuses(url) == ["published"]
    wait_until(lambda: no_partition_locks_held(url), "the killed run's session is gone")
    assert finish(start_run(project, prefect_api))[0] == 0
    after = published(url)
    assert len(after) == len(before) and after != before
    assert not any(status == "shipped" for _, status, _ in after)


def test_sigkill_mid_load_then_rerun_publishes_each_row_once(project: Project, prefect_api: str) -> None:
    url = project.warehouse_url
    project.edit_declaration(lambda d: d.pop("volume"))
    with sqlite3.connect(project.shop_db) as connection:  # a day big enough for the load to be caught mid-way
        connection.execute(
            "INSERT INTO orders (order_id, customer_id, email, amount, status, created_at, updated_at) "
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400000) "
            "SELECT 5000000 + i, i % 5000, 'bulk' || i || '@example.com', '12.50', 'paid', "
            "?, ? FROM n",
            [f"{DAY} 10:00:00", f"{DAY} 11:00:00"],
        )
        expected = connection.execute("SELECT count(*) FROM orders WHERE created_at LIKE ?", [f"{DAY}%"]).fetchone()[0]

    run = start_run(project, prefect_api)
    wait_until(lambda: copy_in_progress(url), "the bulk load is running", run)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=WAIT_SECONDS)
    assert published(url) == []
    wait_until(lambda: no_partition_locks_held(url), "the killed run's session is gone")

    assert finish(start_run(project, prefect_api))[0] == 0
    rows = published(url)
    assert len(rows) == expected == len({order_id for order_id, _, _ in rows})
    with psycopg.connect(url) as connection:
        audit_tables = [row[0] for row in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'audit'"
        ).fetchall()]
    assert len(audit_tables) == 1 and audit_tables[0].endswith("__raw"), "the killed run's tables are cleaned up"


def copy_in_progress(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as connection:
        return bool(connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY%'"
        ).fetchone()[0])


def test_concurrent_runs_of_one_partition_publish_once(project: Project, prefect_api: str) -> None:
    url = project.warehouse_url
    with open_warehouse(url) as warehouse:
        migrate(warehouse)
    with publish_held_at_the_end(url):
        first = start_run(project, prefect_api)
        wait_until(lambda: backend_waiting_on(url, HELD_STATEMENT), "first run publishes", first)
        code, stderr = finish(start_run(project, prefect_api))
        assert code == 2
        assert "another run is processing one of partitions" in stderr and "changed nothing" in stderr
    assert finish(first)[0] == 0

    assert ledger_statuses(url) == ["published"]
    rows = published(url)
    assert len(rows) == len({order_id for order_id, _, _ in rows}) > 0
