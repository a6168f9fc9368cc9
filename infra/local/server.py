"""A local Prefect server process: for `make up`, the tests and the benchmark.

On PostgreSQL when given a database URL (SQLite answers "database is locked" once workers and
backfills run concurrently), on SQLite in its home folder otherwise. Started in its own process group
so stopping the group stops everything it started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from shipshape.settings import PACKAGE_ROOT

START_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 20


def server_environment(
    prefect_home: Path, port: int, database_url: str | None = None, auth_string: str | None = None
) -> dict[str, str]:
    """Settings for the server process and for every client of it (workers, `prefect deploy`, scripts).

    With `auth_string`, the API is locked down for a server other processes and browser pages on this machine
    can reach: every API call needs the string (Basic auth; /health stays open for probes), state-changing calls
    need a CSRF token, and only the server's own UI origin may call it cross-origin.
    """
    env = {
        **os.environ,
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_UI_URL": f"http://127.0.0.1:{port}",
        "DO_NOT_TRACK": "1",
    }
    if database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    if auth_string:
        env.update(
            PREFECT_SERVER_API_AUTH_STRING=auth_string,
            PREFECT_API_AUTH_STRING=auth_string,
            PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED="true",
            PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS=env["PREFECT_UI_URL"],
        )
    return env


def start_server(
    prefect_home: Path, log_path: Path, port: int | None = None, database_url: str | None = None,
    auth_string: str | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `prefect server start` and wait until it is healthy; returns the process and its API URL."""
    server, api_url = spawn_server(prefect_home, log_path, port, database_url, auth_string)
    try:
        wait_healthy(server, api_url, log_path)
    except BaseException:
        stop_process_group(server.pid)
        raise
    return server, api_url


def spawn_server(
    prefect_home: Path, log_path: Path, port: int | None = None, database_url: str | None = None,
    auth_string: str | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """`prefect server start` without waiting for it, so several servers can start side by side (`wait_healthy`)."""
    port = port or free_port()
    env = server_environment(prefect_home, port, database_url, auth_string)
    command = [prefect_cli(), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    return spawn(command, env, log_path), env["PREFECT_API_URL"]


@contextmanager
def prefect_server(prefect_home: Path, log_path: Path, database_url: str | None = None) -> Iterator[str]:
    """A server on a free port for the duration of the block; yields its API URL."""
    server, api_url = start_server(prefect_home, log_path, database_url=database_url)
    try:
        yield api_url
    finally:
        stop_process_group(server.pid)
        server.wait()


def spawn(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start `command` from the project folder in its own process group, appending its output to `log_path`.

    Its own group, so `stop_process_group` also stops whatever it starts in turn.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command, env=env, cwd=PACKAGE_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(server: subprocess.Popen[bytes], api_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"prefect server exited with {server.returncode}; its log:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"prefect server not healthy after {START_TIMEOUT_SECONDS} s; its log:\n{log_path.read_text()}")


def stop_process_group(pid: int, grace_seconds: float = STOP_TIMEOUT_SECONDS) -> None:
    """SIGTERM to the process group, then SIGKILL to whatever of it is left after the grace period."""
    with suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and _group_alive(pid):
        time.sleep(0.2)
    with suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie leader still counts until reaped; our own child is reaped by its Popen's wait().
    with suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    return True


def prefect_cli() -> str:
    """The `prefect` command of this interpreter's environment."""
    return str(Path(sys.executable).with_name("prefect"))
