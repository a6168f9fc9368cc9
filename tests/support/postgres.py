"""The PostgreSQL server the tests use: where it is, URLs on it, and a clear failure when it is not there.

PostgreSQL is a required part of the suite, never skipped: `.ci/run` starts it when it is down, and a
laptop without it gets one failure saying how to start or point at one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

ADMIN_URL = os.environ.get("SHIPSHAPE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def database_url(database: str, *, driver: str = "postgresql") -> str:
    """The admin URL pointed at another database (`driver` e.g. `postgresql+asyncpg` for a Prefect server)."""
    parts = urlsplit(ADMIN_URL)
    return parts._replace(scheme=driver, path=f"/{database}").geturl()


def as_role(url: str, role: str) -> str:
    """`url` logging in as `role` instead (the server here trusts local logins, so no password)."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}").geturl()


def require_postgres() -> None:
    try:
        psycopg.connect(ADMIN_URL, connect_timeout=3).close()
    except psycopg.OperationalError as error:
        pytest.fail(
            f"PostgreSQL is not reachable at {ADMIN_URL}: {str(error).strip()} — start it (`bash .ci/run` does) "
            "or set SHIPSHAPE_TEST_POSTGRES_URL to a server where this user may create databases and roles",
            pytrace=False,
        )


@contextmanager
def databases(names: list[str]) -> Iterator[None]:
    """Create the databases; drop them (and everything in them) afterwards."""
    require_postgres()
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_roles(url: str, roles: list[str]) -> None:
    """Drop these roles if they exist, with everything they own or were granted in the database at `url`."""
    with psycopg.connect(url, autocommit=True) as admin:
        found = admin.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", [roles])
        existing = [row[0] for row in found]
        # One role per DROP OWNED: several at once trip over the default ACLs that name two of them.
        for role in existing:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        for role in existing:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def backend_waiting_on(url: str, statement_prefix: str) -> bool:
    """Whether a session of the database at `url` waits for a lock in a statement starting with `statement_prefix`."""
    with psycopg.connect(url, autocommit=True) as connection:
        return bool(connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            [statement_prefix + "%"],
        ).fetchone()[0])
