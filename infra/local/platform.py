"""`make up` / `make down`: the dev platform on this machine, without Docker.

Up: a Prefect server on PostgreSQL (127.0.0.1:4200, with its UI), the dev infrastructure applied
(roles, schemas, work pool, blocks, automation), the example pipelines deployed, example shop data up
to yesterday, a process worker and a local Slack stand-in. Every process it starts is recorded by PID
in the state folder; down stops exactly those, and nothing else.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from infra.local.server import free_port, prefect_cli, server_environment, spawn, start_server, stop_process_group
from infra.local.worker import start_worker, wait_for_worker
from runtime.local_api import forget_api, platform_dir, record_api
from runtime.recorded_api import RecordedApi
from shipshape.errors import TransientError
from shipshape.settings import PACKAGE_ROOT
from shipshape.warehouses import open_warehouse

EXAMPLE_DAYS = 14
WORKER_QUERY_SECONDS = 1
# Values the dev environment needs; generated once per machine, kept out of the repo (.platform is ignored).
_GENERATED_SECRETS = (
    "SHIPSHAPE_LOADER_PASSWORD", "SHIPSHAPE_PUBLISHER_PASSWORD", "SHIPSHAPE_CONSUMER_PASSWORD",
    "SHIPSHAPE_MONITOR_PASSWORD",
    "SHIPSHAPE_SECRET_PII_HASH_KEY", "SHIPSHAPE_PREFECT_AUTH_STRING",
)
# Where `make up` finds a PostgreSQL superuser: the machine's server unless told otherwise (the tests point it
# at a private server, since `up` creates cluster-wide roles).
POSTGRES_ADMIN = os.environ.get("SHIPSHAPE_LOCAL_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432")


@dataclass(frozen=True)
class LocalPlatform:
    state_dir: Path
    port: int = 4200
    database_prefix: str = "shipshape"

    @property
    def pids(self) -> Path:
        return self.state_dir / "pids"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def secrets_file(self) -> Path:
        return self.state_dir / "secrets.env"

    @property
    def data_dir(self) -> Path:
        """Example shop data for dev runs, apart from `make demo`'s data/ folder."""
        return self.state_dir / "data"

    def up(self) -> None:
        if running := self._running():
            print(f"already up ({', '.join(running)}); `make down` first to restart")
            return
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)  # it holds secrets.env and the server's home: this user's only
        self.pids.mkdir(exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        try:
            warehouse_db, worker = self._start()
        except BaseException:
            self.down()  # never leave half a platform running
            raise
        print(
            f"\nUp. Prefect UI: http://127.0.0.1:{self.port}\n"
            f"  The UI and API ask for the password kept as SHIPSHAPE_PREFECT_AUTH_STRING in {self.secrets_file};\n"
            f"  for a shell: export PREFECT_API_URL=http://127.0.0.1:{self.port}/api "
            f"PREFECT_API_AUTH_STRING=\"$(sed -n 's/^SHIPSHAPE_PREFECT_AUTH_STRING=//p' {self.secrets_file})\"\n"
            f"  Run the example: Deployments → run-pipeline / shop_orders-dev → Run → Custom run (pick dates)\n"
            f"  Backfill:        Deployments → backfill / backfill-dev → Custom run (pipeline, dates, mode)\n"
            f"  Published data:  psql {POSTGRES_ADMIN}/{warehouse_db} -c 'select * from analytics.fct_orders limit 5'\n"
            f"  Alerts (Slack stand-in): tail -f {self.logs / 'slack.log'}\n"
            f"  Worker log: {self.logs / 'worker.log'} (pid {worker})\n"
            f"Stop with `make down`."
        )

    def _start(self) -> tuple[str, int]:
        """Server, dev infra, deployments, example data, worker; returns the warehouse database and worker PID.

        Each step is printed as it starts and when it ends, with its time: the whole takes one to two minutes.
        """
        steps = _Steps(6)
        prefect_db, warehouse_db = f"{self.database_prefix}_prefect", f"{self.database_prefix}_dev"
        with steps.step(f"PostgreSQL databases {prefect_db}, {warehouse_db} at {_host(POSTGRES_ADMIN)}"):
            _ensure_database(prefect_db, extension="pg_trgm")
            _ensure_database(warehouse_db)
            dev_values = self._dev_values(warehouse_db)
        auth = dev_values.pop("SHIPSHAPE_PREFECT_AUTH_STRING")
        with steps.step(f"Prefect server on http://127.0.0.1:{self.port} (migrates its database the first time)"):
            server, api_url = start_server(
                self.state_dir / "prefect", self.logs / "server.log", port=self.port,
                database_url=_async_url(f"{POSTGRES_ADMIN}/{prefect_db}"), auth_string=auth,
            )
            self._record("server", server.pid)
            record_api(self.state_dir, RecordedApi(api_url, auth))  # `shipshape run` and `make demo` use it
        prefect_env = server_environment(self.state_dir / "prefect", self.port, auth_string=auth)
        env = {**prefect_env, **dev_values}
        with steps.step("dev infrastructure: roles, schemas, work pool, blocks, automations (infra apply)"):
            self._run([sys.executable, "-m", "infra", "apply", "--env", "dev"], env)
        with steps.step("dev deployments (prefect deploy --all)"):
            self._run([prefect_cli(), "--no-prompt", "deploy", "--all"], {**env, "DEPLOY_ENV": "dev"})
        with steps.step(f"example shop data, the last {EXAMPLE_DAYS} days"):
            _example_data(self.data_dir / "shop.db")
        # Only what a run needs: the API (its deployment names the warehouse, Slack and PII-key blocks there) and
        # the checkout; not the admin URL, the role passwords or the PII key, which the blocks hold.
        # The worker asks for new runs every WORKER_QUERY_SECONDS instead of Prefect's 10: each backfill (and each
        # of its children) otherwise waits up to 10 s to be picked up, on a server that is this machine's own.
        worker_env = {
            **prefect_env, "SHIPSHAPE_PROJECT_DIR": str(PACKAGE_ROOT), "SHIPSHAPE_DATA_DIR": str(self.data_dir),
            "PREFECT_WORKER_QUERY_SECONDS": str(WORKER_QUERY_SECONDS),
        }
        with steps.step("process worker for pool shipshape-dev (ready at its first poll)"):
            worker = start_worker("shipshape-dev", "process", worker_env, self.logs / "worker.log").pid
            self._record("worker", worker)
            wait_for_worker(api_url, "shipshape-dev", self.logs / "worker.log", auth)
        return warehouse_db, worker

    def down(self) -> None:
        forget_api(self.state_dir)
        stopped = []
        for pid_file in sorted(self.pids.glob("*.pid")) if self.pids.exists() else []:
            stop_process_group(int(pid_file.read_text()))
            stopped.append(pid_file.stem)
            pid_file.unlink()
        print(f"stopped: {', '.join(stopped)}" if stopped else "nothing to stop")

    def _dev_values(self, warehouse_db: str) -> dict[str, str]:
        """What `infra apply --env dev` reads: given values win, the rest is generated once and kept locally."""
        stored = self.secrets_file
        values = dict(line.split("=", 1) for line in stored.read_text().splitlines()) if stored.exists() else {}
        for name in _GENERATED_SECRETS:
            values.setdefault(name, secrets.token_urlsafe(24))
        _write_private(stored, "".join(f"{name}={value}\n" for name, value in values.items()))
        env = {**values, **{name: os.environ[name] for name in _GENERATED_SECRETS if os.environ.get(name)}}
        env.update(
            SHIPSHAPE_WAREHOUSE_ADMIN_URL=f"{POSTGRES_ADMIN}/{warehouse_db}",
            SHIPSHAPE_WAREHOUSE_HOST=urlsplit(POSTGRES_ADMIN).hostname or "127.0.0.1",
            SHIPSHAPE_WAREHOUSE_PORT=str(urlsplit(POSTGRES_ADMIN).port or 5432),
            SHIPSHAPE_WAREHOUSE_DATABASE=warehouse_db,
            SHIPSHAPE_SLACK_WEBHOOK_URL=os.environ.get("SHIPSHAPE_SLACK_WEBHOOK_URL") or self._webhook_sink(),
        )
        return env

    def _webhook_sink(self) -> str:
        port = free_port()
        command = [sys.executable, "-m", "infra.local.webhook_sink", "--port", str(port),
                   "--log", str(self.logs / "slack.log")]
        self._record("slack-sink", spawn(command, dict(os.environ), self.logs / "slack-sink.log").pid)
        return f"http://127.0.0.1:{port}/slack"

    def _run(self, command: list[str], env: dict[str, str]) -> None:
        result = subprocess.run(command, env={**os.environ, **env}, cwd=PACKAGE_ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"`{' '.join(command[1:])}` failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")

    def _record(self, name: str, pid: int) -> None:
        (self.pids / f"{name}.pid").write_text(str(pid))

    def _running(self) -> list[str]:
        alive = []
        for pid_file in self.pids.glob("*.pid") if self.pids.exists() else []:
            try:
                os.kill(int(pid_file.read_text()), 0)
                alive.append(pid_file.stem)
            except ProcessLookupError:
                pid_file.unlink()
        return alive


class _Steps:
    """`[2/6] Prefect server on ... ` when a step starts, `done in 8.1 s` when it ends: `make up` is never silent."""

    def __init__(self, total: int) -> None:
        self._total, self._done = total, 0

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        self._done += 1
        print(f"[{self._done}/{self._total}] {what} ...", flush=True)
        started = time.monotonic()
        yield
        print(f"      done in {time.monotonic() - started:.1f} s", flush=True)


def _host(url: str) -> str:
    """host:port of a URL, never its user or password."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}"


def _write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, readable by this user only from the first byte: a temporary file created 0600
    (never world-readable, not even between write and chmod), then renamed over the old one."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    os.replace(temporary, path)


def _async_url(url: str) -> str:
    """The Prefect server reaches PostgreSQL through asyncpg."""
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


def _ensure_database(name: str, extension: str | None = None) -> None:
    """Through the warehouse adapter (statements run outside a transaction, as CREATE DATABASE needs)."""
    try:
        with open_warehouse(f"{POSTGRES_ADMIN}/postgres?connect_timeout=5") as admin:
            if not admin.fetch_all("SELECT 1 FROM pg_database WHERE datname = ?", [name]):
                admin.execute(f"CREATE DATABASE {admin.quote(name)}")
    except TransientError as error:
        raise SystemExit(f"PostgreSQL is not reachable at {POSTGRES_ADMIN} ({error}); start it and retry") from None
    if extension:
        with open_warehouse(f"{POSTGRES_ADMIN}/{name}") as database:
            database.execute(f"CREATE EXTENSION IF NOT EXISTS {extension}")


def _example_data(shop_db: Path) -> None:
    """Shop orders for the last EXAMPLE_DAYS days, so a run with no dates (yesterday) finds data."""
    from demo.shop_app import generate

    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    generate(shop_db, yesterday - timedelta(days=EXAMPLE_DAYS - 1), EXAMPLE_DAYS)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local.platform", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--state-dir", type=Path, default=platform_dir())
    parser.add_argument("--port", type=int, default=4200)
    parser.add_argument("--database-prefix", default="shipshape")
    args = parser.parse_args(argv)
    platform = LocalPlatform(args.state_dir.resolve(), args.port, args.database_prefix)
    platform.up() if args.command == "up" else platform.down()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
