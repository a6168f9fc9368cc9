"""Which version of the platform tables a warehouse holds, and bringing it to the one this code needs.

The platform's own tables outlive every release, so each change to them is a migration (`platform_migrations`)
and the warehouse records the ones it ran in `platform.schema_version`. Each migration runs once, in its own
transaction together with its version row, under one lock (`names.PLATFORM_SCHEMA_LOCK`): two runs starting at
once on a fresh warehouse do not both create the tables; the second waits, then finds the work done.

Who migrates: `make apply` (infra.warehouse, as the tables' owner), and a run when the platform has no separate
roles (embedded DuckDB, one URL for everything). A least-privilege run cannot alter tables it does not own: it
stops with the command that would (`ensure_current`). A warehouse newer than the code (code rolled back) is refused
by everyone: old code would write rows the newer tables may no longer accept, or read columns that moved.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shipshape.column_types import ColumnType
from shipshape.errors import PlatformSchemaError
from shipshape.names import PLATFORM_SCHEMA_LOCK, SCHEMA_VERSION_TABLE
from shipshape.platform_migrations import MIGRATIONS, RELEASE_1_TABLES, Migration
from shipshape.warehouses import PLATFORM_SCHEMA, Warehouse

_VERSION_COLUMNS = {"version": "bigint", "description": "text", "applied_at": "timestamptz"}


def required_version() -> int:
    """The version this code reads and writes: its last migration's."""
    return MIGRATIONS[-1].version


def installed_version(warehouse: Warehouse) -> int:
    """The last migration the warehouse ran; 0 for an empty one.

    A warehouse from before schema versions has the release-1 tables and no version table: it is version 1 as it
    stands, so an existing warehouse needs no change to be recognised.
    """
    tables = set(warehouse.list_tables(PLATFORM_SCHEMA))
    if SCHEMA_VERSION_TABLE in tables:
        table = warehouse.qualified(PLATFORM_SCHEMA, SCHEMA_VERSION_TABLE)
        return int(warehouse.fetch_all(f"SELECT coalesce(max(version), 0) FROM {table}")[0][0])
    return 1 if tables.issuperset(RELEASE_1_TABLES) else 0


def pending(warehouse: Warehouse) -> list[Migration]:
    """The migrations the warehouse has not run, in order; refuses a warehouse newer than this code."""
    installed = installed_version(warehouse)
    _refuse_newer(installed)
    return [migration for migration in MIGRATIONS if migration.version > installed]


def migrate(warehouse: Warehouse) -> list[int]:
    """Run every pending migration, each in its own transaction; returns the versions this call ran.

    A version another process ran while this one waited for the lock is skipped, not run twice.
    """
    ran = []
    for migration in pending(warehouse):
        with warehouse.transaction():
            if apply_migration(warehouse, migration):
                ran.append(migration.version)
    return ran


def apply_migration(warehouse: Warehouse, migration: Migration) -> bool:
    """Run one migration and record it, inside the caller's open transaction; False if it had already run.

    The lock is taken before anything is read, and the version read again under it: whoever waited finds the
    work of whoever held it. The schema and version table are created here too, under the same lock, since two
    sessions creating one table at once make PostgreSQL fail the second on its own catalog.
    """
    warehouse.hold_until_commit(PLATFORM_SCHEMA_LOCK)
    installed = installed_version(warehouse)
    _refuse_newer(installed)
    if installed >= migration.version:
        return False
    warehouse.ensure_schema(PLATFORM_SCHEMA)
    if not warehouse.table_exists(PLATFORM_SCHEMA, SCHEMA_VERSION_TABLE):
        columns = {name: ColumnType.parse(kind) for name, kind in _VERSION_COLUMNS.items()}
        warehouse.create_table(PLATFORM_SCHEMA, SCHEMA_VERSION_TABLE, columns)
    migration.apply(warehouse)
    warehouse.execute(
        f"INSERT INTO {warehouse.qualified(PLATFORM_SCHEMA, SCHEMA_VERSION_TABLE)} ({', '.join(_VERSION_COLUMNS)}) "
        "VALUES (?, ?, ?)",
        [migration.version, migration.description, datetime.now(UTC)],
    )
    return True


def ensure_current(warehouse: Warehouse, *, may_migrate: bool, apply_command: str) -> None:
    """Before a run touches the platform tables: they are at this code's version, migrated here if `may_migrate`.

    One catalog query and one read when they are current, so every run can afford it.
    """
    installed, required = installed_version(warehouse), required_version()
    _refuse_newer(installed)
    if installed == required:
        return
    if not may_migrate:
        raise PlatformSchemaError(
            f"platform schema is at version {installed}, this code needs {required}: run {apply_command} "
            "(this run's warehouse roles may not change the platform tables); nothing was changed"
        )
    migrate(warehouse)


def _refuse_newer(installed: int) -> None:
    required = required_version()
    if installed > required:
        raise PlatformSchemaError(
            f"platform schema is at version {installed}, newer than this code's {required} (the code was rolled "
            "back?): deploy the release that migrated it or a later one; older code would misread the platform "
            "tables, so nothing was changed"
        )
