"""Prefect workers started from Python: by `make up` and by the deploy tests, and waited for the same way."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from infra.local.server import START_TIMEOUT_SECONDS, prefect_cli, spawn


def start_worker(pool: str, worker_type: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`prefect worker start` in its own process group (stop it with `stop_process_group`), logging to a file.

    This interpreter's directory comes first on the worker's PATH: a process pool's runs start `python -m
    prefect.engine` (`infra.work_pools.PROCESS_ENGINE_COMMAND`), which must be the worker's Python, with the
    project installed."""
    path = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    command = [prefect_cli(), "worker", "start", "--pool", pool, "--type", worker_type]
    return spawn(command, {**env, "PATH": path}, log_path)


def wait_for_worker(api_url: str, pool: str, log_path: Path, auth_string: str | None = None) -> None:
    """A worker is up once it has sent its first heartbeat for the pool; on a busy machine that takes as long as
    a server start, so both get the same limit."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    settings = {PREFECT_API_URL: api_url, PREFECT_API_AUTH_STRING: auth_string}
    with temporary_settings(settings), get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            if any(worker.status == "ONLINE" for worker in client.read_workers_for_work_pool(pool)):
                return
            time.sleep(0.5)
    raise SystemExit(f"no worker came online for {pool} within {START_TIMEOUT_SECONDS} s; see {log_path}")
