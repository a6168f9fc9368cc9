"""The platform tables' versions on real DuckDB and PostgreSQL: a fresh warehouse and one left by release 1 (the
frozen fixture, with data) both reach the code's version through `make apply`'s path and a run's; each migration
runs once, also when two processes start at once; a run that may not migrate, or meets a newer warehouse, stops
with one clear error. (That PostgreSQL's planner picks migration 2's indexes for the ledger's reads: `make
bench-ledger`, run small by `tests/integration/test_bench.py`.)

PostgreSQL tests that apply roles create cluster-wide roles: this module is in SHARING_THE_MACHINE.
"""

from __future__ import annotations

import multiprocessing
import uuid
from ast import literal_eval
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import pytest

from deployments.environments import Environment
from flows.run_pipeline import run_pipeline
from infra.warehouse import PASSWORD_VARIABLES, reconcile
from runtime.connections import connect, ensure_platform_schema
from shipshape import platform_schema
from shipshape.errors import PlatformSchemaError, WarehouseError
from shipshape.ledger import (
    DEAD_LETTER_TABLE,
    HISTORY_INDEX_TABLE,
    INCIDENT_TABLE,
    LEDGER_TABLE,
    PLATFORM_TABLES,
    USAGE_SAMPLE_TABLE,
    PublishedTable,
    entries,
    published_row_counts_before,
    published_times,
    record,
)
from shipshape.names import PLATFORM_SCHEMA_LOCK, SCHEMA_VERSION_TABLE
from shipshape.platform_migrations import MIGRATIONS, RELEASE_1_TABLES, Migration
from shipshape.platform_schema import apply_migration, ensure_current, installed_version, migrate, required_version
from shipshape.warehouses import PLATFORM_SCHEMA, Warehouse, open_warehouse
from tests.support.postgres import as_role, database_url, databases, drop_roles
from tests.support.project import FIRST_DAY, make_project
from tests.support.waiting import WAIT_SECONDS, wait_until

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:soda_.*")

FIXTURE = Path(__file__).parents[1] / "fixtures" / "platform_schema_release_1"
INDEXES = {
    LEDGER_TABLE: ["publish_ledger_pipeline_finished_at", "publish_ledger_pipeline_partition"],
    DEAD_LETTER_TABLE: ["dead_letters_pipeline_partition"],
    INCIDENT_TABLE: [],
    HISTORY_INDEX_TABLE: ["publish_history_entry", "publish_history_expires_at"],
    USAGE_SAMPLE_TABLE: ["usage_samples_pipeline_sampled_at"],
}
VERSIONS = [migration.version for migration in MIGRATIONS]
LAST, NEXT = VERSIONS[-1], VERSIONS[-1] + 1
PASSWORDS = {purpose: f"{purpose}-test-password" for purpose in PASSWORD_VARIABLES}
SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter, as a second worker's run would be


def every_role(env: Environment) -> list[str]:
    """The roles `make apply` creates for an environment: loader, publisher, consumer and the tables' owner."""
    return [*(env.role(purpose) for purpose in PASSWORD_VARIABLES), env.role("owner")]


def create_release_1(warehouse: Warehouse, url: str) -> None:
    """The warehouse as release 1 left it: its DDL for this engine, then its rows."""
    engine = "duckdb" if url.startswith("duckdb") else "postgres"
    warehouse.execute((FIXTURE / f"{engine}.sql").read_text())
    warehouse.execute((FIXTURE / "data.sql").read_text())


def platform_rows(warehouse: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    """Release 1's rows, read by release 1's columns (later migrations add columns and tables)."""
    return {
        table: sorted(
            warehouse.fetch_all(
                f"SELECT {', '.join(columns)} FROM {warehouse.qualified(PLATFORM_SCHEMA, table)}"
            ),
            key=repr,
        )
        for table, columns in RELEASE_1_TABLES.items()
    }


def platform_columns(warehouse: Warehouse) -> list[tuple[Any, ...]]:
    """Every platform table's columns with their types, in order (the version table aside)."""
    return warehouse.fetch_all(
        "SELECT table_name, ordinal_position, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name <> ? ORDER BY 1, 2",
        [PLATFORM_SCHEMA, SCHEMA_VERSION_TABLE],
    )


def recorded_versions(warehouse: Warehouse) -> list[int]:
    table = warehouse.qualified(PLATFORM_SCHEMA, SCHEMA_VERSION_TABLE)
    return [row[0] for row in warehouse.fetch_all(f"SELECT version FROM {table} ORDER BY version")]


def indexes(warehouse: Warehouse) -> dict[str, list[str]]:
    return {table: warehouse.index_names(PLATFORM_SCHEMA, table) for table in PLATFORM_TABLES}


@pytest.fixture
def other_url(warehouse_url: str, tmp_path: Path) -> Iterator[str]:
    """A second empty warehouse of the same engine."""
    if warehouse_url.startswith("duckdb"):
        yield f"duckdb:///{tmp_path / 'other.duckdb'}"
        return
    name = f"shipshape_test_{uuid.uuid4().hex[:10]}"
    with databases([name]):
        yield database_url(name)


@pytest.fixture
def env(warehouse_url: str) -> Iterator[Environment]:
    """A fresh environment name; on PostgreSQL its roles are dropped afterwards."""
    environment = Environment(f"t{uuid.uuid4().hex[:8]}", "process", False, 1)
    yield environment
    if not warehouse_url.startswith("duckdb"):
        drop_roles(warehouse_url, every_role(environment))


# --- versions --------------------------------------------------------------------------------------------------------


def test_a_fresh_warehouse_runs_every_migration_once_and_holds_exactly_the_columns_the_code_writes(
    warehouse_url: str,
) -> None:
    with open_warehouse(warehouse_url) as warehouse:
        assert installed_version(warehouse) == 0

        assert migrate(warehouse) == VERSIONS
        assert migrate(warehouse) == []

        assert installed_version(warehouse) == required_version() == LAST
        assert recorded_versions(warehouse) == VERSIONS
        for table, columns in PLATFORM_TABLES.items():
            assert warehouse.table_columns(PLATFORM_SCHEMA, table) == list(columns), table
        assert indexes(warehouse) == INDEXES


def test_release_1_is_recognised_as_version_1_unchanged_and_migration_1_builds_exactly_its_tables(
    warehouse_url: str, other_url: str
) -> None:
    with open_warehouse(warehouse_url) as release_1, open_warehouse(other_url) as migrated:
        create_release_1(release_1, warehouse_url)
        with migrated.transaction():
            assert apply_migration(migrated, MIGRATIONS[0])

        assert installed_version(release_1) == 1
        assert not release_1.table_exists(PLATFORM_SCHEMA, SCHEMA_VERSION_TABLE)  # recognised without a change
        assert [migration.version for migration in platform_schema.pending(release_1)] == VERSIONS[1:]
        assert platform_columns(migrated) == platform_columns(release_1)
        assert len(platform_columns(release_1)) == sum(len(columns) for columns in RELEASE_1_TABLES.values())


# --- upgrading a warehouse release 1 left, with its data -------------------------------------------------------------


@pytest.mark.parametrize("path", ["apply", "run"])
def test_upgrading_release_1_keeps_its_data_records_the_version_adds_the_indexes_and_runs_publish_after(
    warehouse_url: str,
    path: str,
    env: Environment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    prefect_api: str,
) -> None:
    make_project(tmp_path, warehouse_url, monkeypatch)
    with open_warehouse(warehouse_url) as warehouse:
        create_release_1(warehouse, warehouse_url)
        before = platform_rows(warehouse)
    assert [len(rows) for rows in before.values()] == [3, 2, 1]

    if path == "apply":  # `make apply`: the admin migrates; on PostgreSQL the run then goes as loader and publisher
        changes = reconcile(warehouse_url, env, PASSWORDS, dry_run=False)
        assert [str(change) for change in changes if change.kind == "migration"] == [
            f"+ migration platform version {migration.version} ({migration.description})"
            for migration in MIGRATIONS[1:]
        ]
        if not warehouse_url.startswith("duckdb"):
            monkeypatch.setenv("SHIPSHAPE_WAREHOUSE_URL", as_role(warehouse_url, env.role("loader")))
            monkeypatch.setenv("SHIPSHAPE_PUBLISHER_URL", as_role(warehouse_url, env.role("publisher")))
            monkeypatch.setenv("SHIPSHAPE_MONITOR_URL", as_role(warehouse_url, env.role("monitor")))
    state = run_pipeline("shop_orders", start_date=FIRST_DAY, end_date=FIRST_DAY, return_state=True)  # run: migrates

    assert state.is_completed(), state.message
    with open_warehouse(warehouse_url) as warehouse:
        assert installed_version(warehouse) == LAST
        assert recorded_versions(warehouse) == VERSIONS[1:]  # 1 was recognised, not run
        assert indexes(warehouse) == INDEXES
        after = platform_rows(warehouse)
        assert after[DEAD_LETTER_TABLE] == before[DEAD_LETTER_TABLE]
        assert after[INCIDENT_TABLE] == before[INCIDENT_TABLE]
        assert set(before[LEDGER_TABLE]) < set(after[LEDGER_TABLE])
        recorded = entries(warehouse, "shop_orders")  # release 1's rows read back by this code, newest first
    assert [(entry.partition_key, entry.status) for entry in recorded] == [
        (FIRST_DAY.isoformat(), "published"),
        ("2026-10-31", "failed"),
        ("2026-10-30", "published"),
        ("2026-10-29", "published"),
    ]
    assert recorded[2].finished_at == datetime(2026, 10, 31, 3, 1, 30, tzinfo=UTC)


def test_upgrading_version_3_keeps_its_ledger_rows_as_the_version_1_tables_and_new_rows_name_their_table(
    warehouse_url: str,
) -> None:
    """Migration 4 adds the ledger's destination: rows already there stay, with none, read as the pipeline's
    version-1 table (its backfill plan, baseline and freshness keep them) and as nothing of version 2's."""
    v1 = PublishedTable("shop_orders", "analytics.fct_orders", "analytics.fct_orders")
    v2 = PublishedTable("shop_orders", "analytics.fct_orders_v2", "analytics.fct_orders")
    day = datetime(2026, 10, 30, tzinfo=UTC)
    with open_warehouse(warehouse_url) as warehouse:
        for migration in MIGRATIONS[:3]:
            with warehouse.transaction():
                assert apply_migration(warehouse, migration)
        ledger = warehouse.qualified(PLATFORM_SCHEMA, LEDGER_TABLE)
        for number, status in enumerate(["published", "failed", "published"]):  # as version 3's code wrote them
            warehouse.execute(
                f"INSERT INTO {ledger} (entry_id, pipeline, partition_key, partition_start, flow_run_id, run_tag, "
                "row_count, status, check_results, message, started_at, finished_at) "
                "VALUES (?, 'shop_orders', ?, ?, ?, 't', 100, ?, '[]', '', ?, ?)",
                [f"e{number}", f"2026-10-3{number}", day, f"r{number}", status, day, day + timedelta(minutes=number)],
            )
        before = platform_rows(warehouse)

        assert migrate(warehouse) == VERSIONS[3:]  # 4 (the destination) and every later one

        assert platform_rows(warehouse) == before
        assert warehouse.fetch_all(f"SELECT restored_entry_id, destination FROM {ledger}") == [(None, None)] * 3
        assert [entry.entry_id for entry in entries(warehouse, v1)] == ["e2", "e1", "e0"]
        assert entries(warehouse, v2) == []
        assert published_row_counts_before(warehouse, v1, datetime(2026, 11, 1, tzinfo=UTC), 14) == [100, 100]
        later = day + timedelta(hours=1)
        assert published_times(warehouse, v2, later) == []  # the new version has not published: stale, honestly
        assert published_times(warehouse, v1, later) == [day + timedelta(minutes=2)]

        record(warehouse, replace(entries(warehouse, v1)[0], entry_id="new", destination=v2.destination))
        assert [entry.entry_id for entry in entries(warehouse, v2)] == ["new"]
        assert len(entries(warehouse, v1)) == 3


# --- who may migrate, and what is refused ----------------------------------------------------------------------------


def test_a_run_that_may_not_migrate_an_older_warehouse_stops_naming_the_apply_and_changes_nothing(
    warehouse_url: str,
) -> None:
    with open_warehouse(warehouse_url) as warehouse:
        create_release_1(warehouse, warehouse_url)
        with pytest.raises(PlatformSchemaError) as refused:
            ensure_current(warehouse, may_migrate=False, apply_command="`make apply ENV=staging`")

        assert str(refused.value) == (
            f"platform schema is at version 1, this code needs {LAST}: run `make apply ENV=staging` "
            "(this run's warehouse roles may not change the platform tables); nothing was changed"
        )
        assert installed_version(warehouse) == 1
        assert not warehouse.table_exists(PLATFORM_SCHEMA, SCHEMA_VERSION_TABLE)
        assert indexes(warehouse)[LEDGER_TABLE] == []


def test_a_warehouse_newer_than_the_code_is_refused_by_runs_and_by_apply(
    warehouse_url: str, env: Environment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a rollback of the code meets: the warehouse was migrated by a later release."""
    make_project(tmp_path, warehouse_url, monkeypatch)
    with open_warehouse(warehouse_url) as warehouse:
        migrate(warehouse)
        warehouse.execute(
            f"INSERT INTO {warehouse.qualified(PLATFORM_SCHEMA, SCHEMA_VERSION_TABLE)} "
            "VALUES (?, 'later release', ?)",
            [NEXT, datetime.now(UTC)],
        )
        newer = (
            f"platform schema is at version {NEXT}, newer than this code's {LAST} (the code was rolled back?): "
            "deploy the "
            "release that migrated it or a later one; older code would misread the platform tables, so nothing was "
            "changed"
        )
        for may_migrate in (True, False):
            with pytest.raises(PlatformSchemaError) as refused:
                ensure_current(warehouse, may_migrate=may_migrate, apply_command="`make apply ENV=dev`")
            assert str(refused.value) == newer
        with pytest.raises(PlatformSchemaError, match=rf"^platform schema is at version {NEXT}, newer"):
            migrate(warehouse)
    with pytest.raises(PlatformSchemaError, match=rf"^platform schema is at version {NEXT}, newer"):
        reconcile(warehouse_url, env, PASSWORDS, dry_run=True)
    with pytest.raises(PlatformSchemaError, match=rf"^platform schema is at version {NEXT}, newer"):
        reconcile(warehouse_url, env, PASSWORDS, dry_run=False)


@pytest.mark.postgres
def test_least_privilege_runs_wait_for_apply_to_bring_a_later_releases_migration(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_api: str
) -> None:
    """A later release adds a ledger column (a third migration): its runs as loader stop until `make apply` ran it,
    which the loader could not do itself; after apply they go on."""
    env = Environment(f"t{uuid.uuid4().hex[:8]}", "process", False, 1)
    make_project(tmp_path, postgres_url, monkeypatch)
    try:
        reconcile(postgres_url, env, PASSWORDS, dry_run=False)
        monkeypatch.setenv("SHIPSHAPE_WAREHOUSE_URL", as_role(postgres_url, env.role("loader")))
        monkeypatch.setenv("SHIPSHAPE_PUBLISHER_URL", as_role(postgres_url, env.role("publisher")))
        monkeypatch.setenv("SHIPSHAPE_MONITOR_URL", as_role(postgres_url, env.role("monitor")))
        for role in ("loader", "monitor"):
            with connect(role) as warehouse:
                ensure_platform_schema(warehouse)  # current: nothing to do, and each role may read the version

        add_column = Migration(
            NEXT, "a ledger note", lambda warehouse: warehouse.add_column(PLATFORM_SCHEMA, LEDGER_TABLE, "note", "text")
        )
        monkeypatch.setattr(platform_schema, "MIGRATIONS", (*MIGRATIONS, add_column))
        with connect() as loader:
            with pytest.raises(PlatformSchemaError) as refused:
                ensure_platform_schema(loader)
            with pytest.raises(WarehouseError, match="must be owner of table publish_ledger"), loader.transaction():
                apply_migration(loader, add_column)  # what the run would have to do, refused by the server
        assert str(refused.value).startswith(
            f"platform schema is at version {LAST}, this code needs {NEXT}: "
            "run `make apply ENV=<the roles' environment>`"
        )
        state = run_pipeline("shop_orders", start_date=FIRST_DAY, end_date=FIRST_DAY, return_state=True)
        assert state.is_failed() and state.message and str(refused.value) in state.message, state.message
        with connect() as loader:
            assert loader.row_count(PLATFORM_SCHEMA, LEDGER_TABLE) == 0  # the run stopped before anything

        changes = reconcile(postgres_url, env, PASSWORDS, dry_run=False)

        assert [str(change) for change in changes] == [f"+ migration platform version {NEXT} (a ledger note)"]
        with connect() as loader:
            ensure_platform_schema(loader)
            assert "note" in loader.table_columns(PLATFORM_SCHEMA, LEDGER_TABLE)
    finally:
        drop_roles(postgres_url, every_role(env))


# --- two processes at once -------------------------------------------------------------------------------------------


def migrate_in_a_process(url: str, outcome: Queue[str]) -> None:
    try:
        with open_warehouse(url) as warehouse:
            outcome.put(f"ran {migrate(warehouse)}")
    except Exception as error:
        outcome.put(f"{type(error).__name__}: {error}")


def waiting_on_advisory_locks(url: str) -> int:
    with open_warehouse(url) as warehouse:
        waiting = warehouse.fetch_all(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    return int(waiting[0][0])


@pytest.mark.postgres
def test_two_runs_starting_at_once_on_a_fresh_warehouse_run_each_migration_exactly_once(postgres_url: str) -> None:
    """The test holds the platform schema lock until both processes wait for it, so they start migrating together.
    (Without the lock they never wait, and the test fails waiting for them to.)"""
    outcome: Queue[str] = SPAWN.Queue()
    processes = [SPAWN.Process(target=migrate_in_a_process, args=(postgres_url, outcome)) for _ in range(2)]
    try:
        with open_warehouse(postgres_url) as blocker:
            with blocker.transaction():
                blocker.hold_until_commit(PLATFORM_SCHEMA_LOCK)
                for process in processes:
                    process.start()
                wait_until(lambda: waiting_on_advisory_locks(postgres_url) == 2, "both processes wait for the lock")
            outcomes = [outcome.get(timeout=WAIT_SECONDS) for _ in processes]
            assert all(ran.startswith("ran [") for ran in outcomes), outcomes  # neither failed
            assert sorted(version for ran in outcomes for version in literal_eval(ran.removeprefix("ran "))) == VERSIONS
            assert recorded_versions(blocker) == VERSIONS
            assert indexes(blocker) == INDEXES
    finally:
        for process in processes:
            process.join(timeout=WAIT_SECONDS)
            if process.is_alive():
                process.kill()


def test_versions_are_consecutive_from_1() -> None:
    """Each migration runs after the one before it: a gap or a repeat would skip one or run one twice."""
    assert [migration.version for migration in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
