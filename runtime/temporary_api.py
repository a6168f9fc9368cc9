"""The Prefect API a local command runs its flows on when none is configured: started early, and started fast.

Prefect starts its own temporary API only when the first flow needs it, i.e. after the command has imported
Prefect and the flows, and each fresh `PREFECT_HOME` migrates a new SQLite database first. Measured on the
2-core machine (load ~5): client imports 3-6.5 s, then the server's own imports 4.5 s, migrations 9 s on a fresh
home (0.2 s after), block registration 1-2 s, stop 2-3 s. So here:

- the server process is spawned before the command imports Prefect, and both import side by side (two cores);
- a fresh home's database is a copy of one migrated before by this installation (`database_template`), so a
  cold run skips the 9 s of migrations that only the first run of an installation still pays;
- the server lives as long as the command (stopped at exit, after Prefect has sent its last logs) and is told
  the command ended by its stdin closing, so it also goes when the command is killed.

Run as `python -m runtime.temporary_api`: the server side. It binds its port before importing anything heavy
and prints it, so the command knows the URL at once; requests wait in the socket's backlog until it answers.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from runtime import kept_api

TEMPORARY_API_START_SECONDS = 300
"""How long a run without `PREFECT_API_URL` waits for the temporary Prefect API it starts.

Prefect's own limit (20 s) is shorter than the first start on a fresh `PREFECT_HOME` takes: migrating the new
SQLite database took 25-32 s on an idle 2-core machine and 124 s with both cores oversubscribed (load average ~9),
so a newcomer's first `make demo` or `shipshape run` failed with "Timed out while attempting to connect to
ephemeral Prefect API server". A broken start (the server exits) is noticed at once; a hung one waits this long:
generous, not unbounded.
"""
_TEMPORARY_API_START_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
STOP_SECONDS = 5
"""What Prefect's own temporary server gets to stop before it is killed."""
_SQLITE_URL_PREFIX = "sqlite+aiosqlite:///"


def allow_slow_temporary_api_start() -> None:
    """Give the temporary API `TEMPORARY_API_START_SECONDS` to start, unless the user chose a limit.

    A limit set in the environment, a Prefect profile or a settings file is kept. Prefect reads its settings once,
    when imported, so they are re-read after the change (which also reaches child processes through the
    environment, and Prefect's own temporary API if something starts one).
    """
    from prefect.context import refresh_global_settings_context
    from prefect.settings import get_current_settings

    if "startup_timeout_seconds" in get_current_settings().server.ephemeral.model_fields_set:
        return
    os.environ[_TEMPORARY_API_START_SETTING] = str(TEMPORARY_API_START_SECONDS)
    refresh_global_settings_context()


class TemporaryApi:
    """A private Prefect API server process; `url` is known at once, `wait_ready` blocks.

    It serves one command and stops with it, or, `kept` (its environment, `runtime.kept_api`), outlives it: then
    it runs in a session of its own, writes its record, logs to `local-api.log` in the Prefect home and stops when
    idle.
    """

    def __init__(self, kept: dict[str, str] | None = None, log: Path | None = None) -> None:
        base = kept or dict(os.environ)
        env = {**base, "PREFECT_SERVER_ANALYTICS_ENABLED": base.get("PREFECT_SERVER_ANALYTICS_ENABLED", "false")}
        self._errors_at = f"in {log}" if log else "above"
        errors = open(log, "ab") if log else None  # noqa: SIM115 -- the server's, closed here once it has it
        # -P: this installation's module, never a `runtime` package in whatever folder the command runs from.
        self._process = subprocess.Popen(
            [sys.executable, "-P", "-m", __name__], stdout=subprocess.PIPE, env=env, stderr=errors,
            stdin=subprocess.DEVNULL if kept else subprocess.PIPE, start_new_session=bool(kept),
        )  # fmt: skip
        if errors:
            errors.close()
        if not kept:
            # Registered before Prefect is imported, so it runs after Prefect's own exit handlers have sent the
            # last logs and events to this server (exit handlers run last-registered first).
            atexit.register(self.stop)
        self.port = _first_line(self._process.stdout)
        if not self.port.isdigit():
            self.stop()
            raise RuntimeError(f"the temporary Prefect API did not start (exit code {self._process.returncode})")
        self.url = f"http://127.0.0.1:{self.port}/api"

    def wait_ready(self, limit_seconds: float) -> None:
        """Block until the server answers /health: one request, queued in its backlog until it can answer."""
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=limit_seconds) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError) as error:
            reason = f"{type(error).__name__}: {error}"
        else:
            reason = f"/health answered {answer.status}"
        self.stop()
        raise RuntimeError(
            f"the temporary Prefect API at {self.url} did not start within {limit_seconds:g} s ({reason}; exit code "
            f"{self._process.returncode}); its errors are {self._errors_at}. Set {_TEMPORARY_API_START_SETTING} for "
            "a longer limit, or PREFECT_API_URL to use a running Prefect server"
        )

    def stop(self) -> None:
        """Closing stdin asks the server to stop (as a killed command would); killed if it takes too long."""
        if self._process.stdin is None:  # kept: it stops by itself
            self._process.terminate()
        elif not self._process.stdin.closed:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _first_line(stream: IO[bytes] | None) -> str:
    return stream.readline().decode().strip() if stream else ""


def database_template() -> Path:
    """Where this installation keeps a freshly migrated Prefect database, one per Prefect version."""
    from prefect import __version__

    return Path(sys.prefix) / "var" / "shipshape" / f"prefect-{__version__}.db"


def seed_database(database: Path, template: Path) -> bool:
    """Give a fresh home's database the template's migrated schema; False when there is no template to copy.

    Through SQLite's backup API, so a template being written by another process is read consistently.
    """
    if database.exists() or not template.exists():
        return False
    database.parent.mkdir(parents=True, exist_ok=True)
    _copy_database(template, database)
    return True


def keep_as_template(database: Path, template: Path) -> None:
    """Keep a just-migrated database (no runs yet) as the template; skipped where the installation is read-only."""
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        partial = template.with_name(f".{template.name}.{os.getpid()}")
        _copy_database(database, partial)
        os.replace(partial, template)  # whole or not at all, for a run reading it at the same moment
    except OSError:
        return


def _copy_database(source: Path, target: Path) -> None:
    origin, copy = sqlite3.connect(source), sqlite3.connect(target)
    try:
        origin.backup(copy)
    finally:
        origin.close()
        copy.close()


def _serve() -> None:
    """The server side: port first, then the database, then Prefect's API app (as its own temporary server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    if record := kept_api.record_of_this_server():
        kept_api.write_record(record, port)  # before the port: the command opens it next
        threading.Thread(target=kept_api.stop_when_idle, args=(record,), daemon=True).start()
        print(port, flush=True)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the command stops reading after the port
    else:
        print(port, flush=True)
        threading.Thread(target=_stop_when_stdin_closes, daemon=True).start()

    import uvicorn
    from prefect.server.api.server import create_app

    _prepare_database()
    # What Prefect's own temporary server runs: no UI, only the services a temporary API needs.
    config = uvicorn.Config(create_app(ephemeral=True, final=True), log_level="error", lifespan="on")
    uvicorn.Server(config).run(sockets=[listener])


def _prepare_database() -> None:
    """A fresh home's SQLite database: a copy of the template, else migrated here and then kept as the template."""
    import asyncio

    from prefect.server.database import provide_database_interface
    from prefect.settings import get_current_settings

    url = get_current_settings().server.database.connection_url
    path = Path((url.get_secret_value() if url else "").removeprefix(_SQLITE_URL_PREFIX))
    if not path.is_absolute() or path.exists() or seed_database(path, database_template()):
        return  # PostgreSQL or in memory, a home used before, or a fresh one just given the template
    asyncio.run(provide_database_interface().create_db())
    keep_as_template(path, database_template())


def _stop_when_stdin_closes() -> None:
    sys.stdin.buffer.read()
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful shutdown


if __name__ == "__main__":
    _serve()
