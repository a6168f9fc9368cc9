"""`make up` / `make down`: the dev platform starts, answers, runs the example, and stops exactly what it started.

`up` starts while another job keeps every core busy, as on a shared CI runner or a laptop mid-build: the
server's migrations and the worker's first heartbeat must fit their start limits even then.

Runs the same module `make up` runs, on a free port, a throwaway state folder and its own databases, so a
developer's own `make up` on :4200 is left alone.
"""

from __future__ import annotations

import os
import socket
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from infra.local.server import free_port
from tests.support.browser import rendered_text
from tests.support.cpu_load import busy_cores
from tests.support.platform import cli, new_roles_dropped, run
from tests.support.postgres import database_url, databases


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_up_starts_on_a_busy_machine_serves_the_ui_runs_the_example_and_down_stops_exactly_its_processes(
    tmp_path: Path,
) -> None:
    port, prefix = free_port(), f"shipshape_test_up_{uuid.uuid4().hex[:8]}"
    platform = [cli("python"), "-m", "infra.local.platform"]
    options = ["--state-dir", str(tmp_path), "--port", str(port), "--database-prefix", prefix]
    with new_roles_dropped(), databases([f"{prefix}_prefect", f"{prefix}_dev"]):
        with busy_cores():
            up = run([*platform, "up", *options], {})
        pids = {path.stem: int(path.read_text()) for path in (tmp_path / "pids").glob("*.pid")}
        try:
            assert up.returncode == 0, up.stdout + up.stderr
            assert f"Up. Prefect UI: http://127.0.0.1:{port}" in up.stdout
            assert set(pids) == {"server", "worker", "slack-sink"}
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
                assert "<!DOCTYPE html>" in page.read().decode()
            api_url = f"http://127.0.0.1:{port}/api"
            with temporary_settings({PREFECT_API_URL: api_url}):
                with get_client(sync_client=True) as client:
                    deployments = {d.name: d.id for d in client.read_deployments()}
                assert set(deployments) == {"shop_orders-dev", "backfill-dev", "monitor-dev"}
                # Where `up` says to click: the UI (talking to this server's API) lists the deployments and
                # draws the Custom run form from the flow's typed, documented parameters.
                listing = rendered_text(f"http://127.0.0.1:{port}/deployments")
                assert "shop_orders-dev" in listing and "backfill-dev" in listing
                form = rendered_text(f"http://127.0.0.1:{port}/deployments/deployment/{deployments['shop_orders-dev']}/run")
                assert "Work Pool shipshape-dev" in form
                assert "start_date (Optional) First partition day" in form
                flow_run = run_deployment("run-pipeline/shop_orders-dev", timeout=300, poll_interval=1)
            assert flow_run.state.is_completed(), flow_run.state.message
            with psycopg.connect(database_url(f"{prefix}_dev")) as warehouse:
                assert warehouse.execute("SELECT count(*) FROM analytics.fct_orders").fetchone()[0] > 1000
        finally:
            down = run([*platform, "down", *options], {})
        assert down.stdout.strip() == "stopped: server, slack-sink, worker"
        assert [name for name, pid in pids.items() if _alive(pid)] == []
        assert list((tmp_path / "pids").glob("*.pid")) == []
        with pytest.raises(ConnectionRefusedError):  # nothing listens on the server's port any more
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
