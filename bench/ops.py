"""`make bench-ops`: how long a user waits for the platform's operations, each against its direct baseline.

On `make up`'s platform (infra/local: a Prefect server on PostgreSQL, the dev environment, a process worker),
started on a private PostgreSQL server (`up` creates cluster-wide roles) and a free port: a backfill of the
short range (14 days) and of the long range (90 days) through the `backfill-dev` deployment, as the UI's Run
button starts it (mode=all, the form's defaults otherwise), each timed from submit to its final state, versus
one `shipshape run` over the same range against the same server with the deployment's own settings. Then a
one-day `shipshape run` on the embedded default (no API, DuckDB): cold on a fresh PREFECT_HOME (it starts the
local API), warm on the same home again (it reuses the local API the cold run kept).

The last line is `ops: backfill14_vs_range=<x> backfill90_vs_range=<x> day_run_warm_s=<x> day_run_cold_s=<x>`
(the names keep 14 and 90 whatever --short-days and --long-days say, so the format never changes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from arguments import positive
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import arun_deployment
from prefect.flow_runs import wait_for_flow_run
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings
from private_postgres import private_postgres

from demo.shop_app import generate
from infra.local.server import free_port
from runtime.kept_api import stop_recorded
from shipshape.names import PII_KEY_VARIABLE
from shipshape.settings import PACKAGE_ROOT

PIPELINE = "shop_orders"
RUN_TIMEOUT_SECONDS = 1800


class OpsBenchError(Exception):
    """A run failed: a finding about the platform, reported instead of its figures."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short-days", type=positive, default=14, help="days of the short backfill (14)")
    parser.add_argument("--long-days", type=positive, default=90, help="days of the long backfill (90)")
    arguments = parser.parse_args()
    last_day = datetime.now(UTC).date() - timedelta(days=1)
    with tempfile.TemporaryDirectory(prefix="shipshape-ops-") as work:
        ratios = backfill_vs_range(Path(work), last_day, (arguments.short_days, arguments.long_days))
        cold, warm = day_runs(Path(work), last_day)
    print(
        f"ops: backfill14_vs_range={ratios[0]:.2f} backfill90_vs_range={ratios[1]:.2f} "
        f"day_run_warm_s={warm:.1f} day_run_cold_s={cold:.1f}"
    )


def backfill_vs_range(work: Path, last_day: date, sizes: tuple[int, ...]) -> list[float]:
    """Each size: the range run, then the backfill of the same days; returns backfill time / range time."""
    state, port = work / "platform", free_port()
    with private_postgres() as postgres:
        admin = postgres.url.rsplit("/", 1)[0]
        platform = [sys.executable, "-m", "infra.local.platform"]
        options = ["--state-dir", str(state), "--port", str(port), "--database-prefix", "shipshape_ops"]
        env = {**os.environ, "SHIPSHAPE_LOCAL_POSTGRES_ADMIN": admin}
        try:
            _check(subprocess.run([*platform, "up", *options], env=env, capture_output=True, text=True), "make up")
            generate(state / "data" / "shop.db", last_day - timedelta(days=max(sizes) - 1), max(sizes))
            auth = _secrets(state)["SHIPSHAPE_PREFECT_AUTH_STRING"]
            api_url = f"http://127.0.0.1:{port}/api"
            with temporary_settings({PREFECT_API_URL: api_url, PREFECT_API_AUTH_STRING: auth}):
                run_env = _deployment_env(state) | {"PREFECT_API_URL": api_url, "PREFECT_API_AUTH_STRING": auth}
                return [_compare(run_env, last_day - timedelta(days=days - 1), last_day) for days in sizes]
        finally:
            subprocess.run([*platform, "down", *options], env=env, capture_output=True, text=True)


def _compare(run_env: dict[str, str], start: date, end: date) -> float:
    days = (end - start).days + 1
    range_seconds = _timed_cli(run_env, start, end)
    parameters = {"pipeline": PIPELINE, "start_date": start, "end_date": end, "mode": "all"}
    began = time.monotonic()
    parent = asyncio.run(_backfill_to_its_end(parameters))
    backfill_seconds = time.monotonic() - began
    if parent.state is None or not parent.state.is_completed():
        raise OpsBenchError(f"the backfill of {days} days ended {parent.state}")
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id])))
    print(f"{days} days: range run {range_seconds:.1f} s; backfill {backfill_seconds:.1f} s in {len(children)} "
          f"child run(s) of {sorted(str(c.parameters['start_date'])[5:] for c in children)}", flush=True)
    return backfill_seconds / range_seconds


async def _backfill_to_its_end(parameters: dict[str, object]) -> FlowRun:
    """Submit as the UI's Run button does, then wait for the final state's event (a poll would add up to its
    interval to the figure)."""
    submitted = await arun_deployment("backfill/backfill-dev", parameters=parameters, timeout=0)
    return await wait_for_flow_run(submitted.id, timeout=RUN_TIMEOUT_SECONDS)


def _deployment_env(state: Path) -> dict[str, str]:
    """What the worker gives the pipeline's deployment runs: the deployment's env, the checkout, the shop data."""
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(f"run-pipeline/{PIPELINE}-dev")
    deployed = {name: str(value) for name, value in (deployment.job_variables or {}).get("env", {}).items()}
    return {
        **_newcomer(), "PREFECT_HOME": str(state / "prefect"), **deployed,
        "SHIPSHAPE_PROJECT_DIR": str(PACKAGE_ROOT), "SHIPSHAPE_DATA_DIR": str(state / "data"),
    }


def day_runs(work: Path, day: date) -> tuple[float, float]:
    """A one-day run on the embedded default: on a fresh PREFECT_HOME, then on the same home again."""
    data = work / "embedded-data"
    generate(data / "shop.db", day, 1)
    env = {
        **_newcomer(), "PREFECT_HOME": str(work / "embedded-home"), "SHIPSHAPE_DATA_DIR": str(data),
        PII_KEY_VARIABLE: secrets.token_urlsafe(24),
    }
    try:
        cold = _timed_cli(env, day, day)
        warm = _timed_cli(env, day, day)  # on the local API the cold run kept
    finally:
        stop_recorded(work / "embedded-home")
    print(f"one-day run on the embedded default: cold {cold:.1f} s, warm {warm:.1f} s", flush=True)
    return cold, warm


def _timed_cli(env: dict[str, str], start: date, end: date) -> float:
    command = [str(Path(sys.executable).with_name("shipshape")), "run", PIPELINE,
               "--start-date", start.isoformat(), "--end-date", end.isoformat()]
    began = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS)
    seconds = time.monotonic() - began
    _check(result, f"shipshape run {start}..{end}")
    return seconds


def _newcomer() -> dict[str, str]:
    """This environment without Prefect or shipshape settings: the runs get only what they are given."""
    return {name: value for name, value in os.environ.items() if not name.startswith(("PREFECT_", "SHIPSHAPE_"))}


def _secrets(state: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (state / "secrets.env").read_text().splitlines())


def _check(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        raise OpsBenchError(f"{what} exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")


if __name__ == "__main__":
    main()
