"""A real Prefect server on PostgreSQL, and each environment's warehouse and values, for deploy tests.

Mirrors what a team runs: `python -m infra apply --env E` and `prefect deploy --all` as subprocesses
with the environment's values in their environment, against a server started with `prefect server start`.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args
from urllib.parse import urlsplit

import psycopg

from deployments.environments import ENVIRONMENTS
from infra.local.server import spawn_server, stop_process_group, wait_healthy
from infra.local.worker import start_worker, wait_for_worker
from shipshape.names import RolePurpose
from shipshape.settings import PACKAGE_ROOT
from tests.support.postgres import ADMIN_URL, as_role, database_url, databases


@dataclass(frozen=True)
class EnvironmentValues:
    """One environment's warehouse database and the secret values `make apply` reads for it."""

    name: str
    database: str
    values: dict[str, str] = field(default_factory=dict)

    def role_url(self, purpose: str) -> str:
        return as_role(database_url(self.database), ENVIRONMENTS[self.name].role(purpose))

    def secret_values(self) -> list[str]:
        return [value for name, value in self.values.items() if any(k in name for k in ("PASSWORD", "SECRET", "SLACK"))]


def environment_values(name: str, slack_url: str) -> EnvironmentValues:
    database = f"shipshape_test_{name}_{uuid.uuid4().hex[:8]}"
    values = {
        "SHIPSHAPE_WAREHOUSE_ADMIN_URL": database_url(database),
        "SHIPSHAPE_WAREHOUSE_HOST": urlsplit(ADMIN_URL).hostname or "127.0.0.1",
        "SHIPSHAPE_WAREHOUSE_PORT": str(urlsplit(ADMIN_URL).port or 5432),
        "SHIPSHAPE_WAREHOUSE_DATABASE": database,
        "SHIPSHAPE_LOADER_PASSWORD": f"loader-{secrets.token_hex(8)}",
        "SHIPSHAPE_PUBLISHER_PASSWORD": f"publisher-{secrets.token_hex(8)}",
        "SHIPSHAPE_CONSUMER_PASSWORD": f"consumer-{secrets.token_hex(8)}",
        "SHIPSHAPE_MONITOR_PASSWORD": f"monitor-{secrets.token_hex(8)}",
        "SHIPSHAPE_SLACK_WEBHOOK_URL": f"{slack_url}/{name}-{secrets.token_hex(8)}",
        "SHIPSHAPE_SECRET_PII_HASH_KEY": f"pii-{secrets.token_hex(16)}",
        # The private test engine has no bridge (--bridge=none): its containers can only use the host's network.
        "SHIPSHAPE_DOCKER_NETWORK": "host",
    }
    return EnvironmentValues(name, database, values)


@contextmanager
def new_roles_dropped() -> Iterator[None]:
    """Roles are cluster-wide: drop the environments' roles this block created, keep any that existed before.

    Use it outside the databases the roles hold privileges in, so those are gone when the roles are dropped.
    """
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        existing = {row[0] for row in admin.execute("SELECT rolname FROM pg_roles").fetchall()}
    try:
        yield
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            for env in ENVIRONMENTS.values():
                for purpose in get_args(RolePurpose):
                    if (role := env.role(purpose)) not in existing:
                        admin.execute(f'DROP ROLE IF EXISTS "{role}"')


@contextmanager
def real_prefect_server(home: Path) -> Iterator[str]:
    """`prefect server start` on its own PostgreSQL database (workers and automations need the real thing)."""
    with real_prefect_servers({"server": home}) as api_urls:
        yield api_urls["server"]


@contextmanager
def real_prefect_servers(homes: dict[str, Path]) -> Iterator[dict[str, str]]:
    """One server per key (an environment: each has its own Prefect API), each on its own database and home, its log
    at `<home>/server.log`. All are started before any is waited for, so they start side by side."""
    names = {key: f"shipshape_test_prefect_{uuid.uuid4().hex[:8]}" for key in homes}
    with databases(list(names.values())), ExitStack() as servers:
        started = {}
        for key, database in names.items():
            with psycopg.connect(database_url(database), autocommit=True) as connection:
                connection.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            url = database_url(database, driver="postgresql+asyncpg")
            process, api_url = spawn_server(homes[key], homes[key] / "server.log", database_url=url)
            servers.callback(process.wait)
            servers.callback(stop_process_group, process.pid)
            started[key] = (process, api_url)
        for key, (process, api_url) in started.items():
            wait_healthy(process, api_url, homes[key] / "server.log")
        yield {key: api_url for key, (_, api_url) in started.items()}


@contextmanager
def worker(api_url: str, home: Path, env_name: str, worker_type: str, extra: dict[str, str]) -> Iterator[Path]:
    """A worker for the environment's pool, as an operator starts it; yields its log file."""
    pool = ENVIRONMENTS[env_name].pool_name
    log_path = home / f"worker-{env_name}.log"
    # Only what any worker host has: the API to poll. Warehouse, secrets and blocks come from the Prefect API.
    local = ("SHIPSHAPE_WAREHOUSE_URL", "SHIPSHAPE_PUBLISHER_URL", "SHIPSHAPE_MONITOR_URL", "PII_HASH_KEY",
             "SHIPSHAPE_WAREHOUSE_BLOCK")
    env = {name: value for name, value in os.environ.items() if name not in local}
    env.update(PREFECT_API_URL=api_url, PREFECT_HOME=str(home), PREFECT_WORKER_QUERY_SECONDS="1")
    env.update(extra)
    process = start_worker(pool, worker_type, env, log_path)
    try:
        wait_for_worker(api_url, pool, log_path)
        yield log_path
    finally:
        stop_process_group(process.pid, grace_seconds=5)
        process.wait()


def run(command: list[str], env: dict[str, str], cwd: Path = PACKAGE_ROOT) -> subprocess.CompletedProcess[str]:
    """A CLI as a user runs it, from the project folder; output kept for assertions."""
    return subprocess.run(command, env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True, timeout=300)


def cli(name: str) -> str:
    return str(Path(sys.executable).with_name(name))
