"""`make up` / `make down`: the dev platform starts, answers, runs the example, and stops exactly what it started.

`up` starts while another job keeps every core busy, as on a shared CI runner or a laptop mid-build: the
server's migrations and the worker's first heartbeat must fit their start limits even then.

Runs the same module `make up` runs, on a free port, a throwaway state folder and its own databases, so a
developer's own `make up` on :4200 is left alone.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import stat
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

from infra.local.server import free_port
from runtime.local_api import API_RECORD, recorded_api
from runtime.recorded_api import RecordedApi
from tests.support.browser import rendered_text
from tests.support.cpu_load import busy_cores
from tests.support.platform import cli, new_roles_dropped, run
from tests.support.postgres import ADMIN_URL, database_url, databases

# `up` creates cluster-wide roles: it goes to the tests' PostgreSQL server (run this on a private one), never to
# whatever serves 127.0.0.1:5432 by default.
PLATFORM_ENV = {"SHIPSHAPE_LOCAL_POSTGRES_ADMIN": urlsplit(ADMIN_URL)._replace(path="").geturl()}
FOREIGN_ORIGIN = "http://attacker.example"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _secrets(state: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (state / "secrets.env").read_text().splitlines())


def _api_status(url: str, auth: str | None = None, method: str = "GET") -> tuple[int, dict[str, str]]:
    """Status and headers of one API call, as a script or another page on this machine would send it."""
    headers = {"Origin": FOREIGN_ORIGIN}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    if method == "OPTIONS":  # a browser's CORS preflight for a cross-origin POST
        headers["Access-Control-Request-Method"] = "POST"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers, method=method), timeout=10) as reply:
            return reply.status, {name.lower(): value for name, value in reply.headers.items()}
    except urllib.error.HTTPError as refused:
        return refused.code, {name.lower(): value for name, value in refused.headers.items()}


def _assert_locked_down(api_url: str, state: Path, worker_pid: int, printed: str) -> str:
    """The attacks on a local platform: an unauthenticated or cross-origin caller, a reader of the state folder,
    a look at the worker's environment. Returns the auth string, read where the user is told to find it."""
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "secrets.env").stat().st_mode) == 0o600
    values = _secrets(state)
    auth = values["SHIPSHAPE_PREFECT_AUTH_STRING"]
    assert auth not in printed
    assert _api_status(f"{api_url}/admin/version")[0] == 401
    assert _api_status(f"{api_url}/admin/version", "wrong")[0] == 401
    status, headers = _api_status(f"{api_url}/admin/version", auth)
    assert status == 200
    # A page that has the password (a browser signed in) still cannot change anything without a CSRF token.
    assert _api_status(f"{api_url}/deployments/filter", auth, method="POST")[0] == 403
    _, preflight = _api_status(f"{api_url}/deployments/filter", method="OPTIONS")
    for reply in (headers, preflight):
        assert reply.get("access-control-allow-origin") in (None, f"http://{urlsplit(api_url).netloc}")
    environ = Path(f"/proc/{worker_pid}/environ").read_bytes().decode().split("\0")
    names = {entry.split("=", 1)[0] for entry in environ}
    assert "SHIPSHAPE_WAREHOUSE_ADMIN_URL" not in names
    for name in ("SHIPSHAPE_LOADER_PASSWORD", "SHIPSHAPE_PUBLISHER_PASSWORD", "SHIPSHAPE_CONSUMER_PASSWORD",
                 "SHIPSHAPE_MONITOR_PASSWORD", "SHIPSHAPE_SECRET_PII_HASH_KEY"):
        assert not any(values[name] in entry for entry in environ), f"the worker's environment holds {name}"
    return auth


def test_up_starts_on_a_busy_machine_serves_the_ui_runs_the_example_and_down_stops_exactly_its_processes(
    tmp_path: Path,
) -> None:
    port, prefix = free_port(), f"shipshape_test_up_{uuid.uuid4().hex[:8]}"
    state = tmp_path / "platform"  # created by `up`, as .platform is in a fresh checkout
    platform = [cli("python"), "-m", "infra.local.platform"]
    options = ["--state-dir", str(state), "--port", str(port), "--database-prefix", prefix]
    with new_roles_dropped(), databases([f"{prefix}_prefect", f"{prefix}_dev"]):
        with busy_cores():
            up = run([*platform, "up", *options], PLATFORM_ENV)
        pids = {path.stem: int(path.read_text()) for path in (state / "pids").glob("*.pid")}
        try:
            assert up.returncode == 0, up.stdout + up.stderr
            assert f"Up. Prefect UI: http://127.0.0.1:{port}" in up.stdout
            # Never silent: each step is printed when it starts and when it ends, with its time.
            assert re.findall(r"^\[(\d)/6\] ", up.stdout, re.MULTILINE) == list("123456"), up.stdout
            assert len(re.findall(r"^ +done in \d+\.\d s$", up.stdout, re.MULTILINE)) == 6, up.stdout
            assert set(pids) == {"server", "worker", "slack-sink"}
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
                assert "<!DOCTYPE html>" in page.read().decode()
            api_url = f"http://127.0.0.1:{port}/api"
            auth = _assert_locked_down(api_url, state, pids["worker"], up.stdout + up.stderr)
            # Recorded for `shipshape run` and `make demo`, readable by this user only (it holds the password).
            assert recorded_api(state) == RecordedApi(api_url, auth)
            assert stat.S_IMODE((state / API_RECORD).stat().st_mode) == 0o600
            with temporary_settings({PREFECT_API_URL: api_url, PREFECT_API_AUTH_STRING: auth}):
                with get_client(sync_client=True) as client:
                    deployments = {d.name: d.id for d in client.read_deployments()}
                assert set(deployments) == {"shop_orders-dev", "backfill-dev", "rollback-dev", "monitor-dev"}
                # Where `up` says to click: the UI (talking to this server's API) lists the deployments and
                # draws the Custom run form from the flow's typed, documented parameters.
                # Signed in with the password from secrets.env, as the UI's login form asks for it.
                listing = rendered_text(f"http://127.0.0.1:{port}/deployments", password=auth)
                assert "shop_orders-dev" in listing and "backfill-dev" in listing
                run_form = f"http://127.0.0.1:{port}/deployments/deployment/{deployments['shop_orders-dev']}/run"
                form = rendered_text(run_form, password=auth)
                assert "Work Pool shipshape-dev" in form
                assert "start_date (Optional) First partition day" in form
                flow_run = run_deployment("run-pipeline/shop_orders-dev", timeout=300, poll_interval=1)
            assert flow_run.state.is_completed(), flow_run.state.message
            with psycopg.connect(database_url(f"{prefix}_dev")) as warehouse:
                assert warehouse.execute("SELECT count(*) FROM analytics.fct_orders").fetchone()[0] > 1000
        finally:
            down = run([*platform, "down", *options], PLATFORM_ENV)
        assert down.stdout.strip() == "stopped: server, slack-sink, worker"
        assert [name for name, pid in pids.items() if _alive(pid)] == []
        assert list((state / "pids").glob("*.pid")) == []
        assert recorded_api(state) is None  # nothing left for a local run to try
        with pytest.raises(ConnectionRefusedError):  # nothing listens on the server's port any more
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
