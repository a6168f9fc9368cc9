"""SLOs from real sources: ledger rows in PostgreSQL (and DuckDB via `shipshape run`), flow runs in a real Prefect API.

Each test uses its own environment name, so runs of other tests on the session's Prefect API never count.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from prefect import flow, tags
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.states import Cancelled, Failed, State
from pydantic import SecretStr

from cli.main import main
from deployments.environments import ENVIRONMENTS
from runtime.blocks import WarehouseConnection
from runtime.connections import connect
from runtime.slo_sources import slo_reports
from shipshape.ledger import LedgerEntry, record
from shipshape.platform_schema import migrate
from tests.support.project import FIRST_DAY, make_project

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:soda_.*")


@flow(name="slo-probe")
def probe(outcome: str) -> State | str:
    """Ends the way a pipeline run can: completed, failed, blocked by the audit (a named failed state), cancelled."""
    if outcome == "fail":
        raise ValueError("the source refused the connection")
    if outcome == "audit":
        return Failed(name="AuditFailed", message="contract blocked partition 2026-11-05")
    if outcome == "cancel":
        return Cancelled(message="stopped by hand")
    return "ok"


def run_probes(outcomes: list[str], *run_tags: str) -> None:
    with tags(*run_tags):
        for outcome in outcomes:
            probe(outcome, return_state=True)


def publish(pipeline: str, flow_run_id: str, finished_at: datetime, status: str = "published") -> None:
    entry = LedgerEntry(
        pipeline=pipeline, partition_key=finished_at.date().isoformat(), partition_start=None, partition_end=None,
        flow_run_id=flow_run_id, run_tag=flow_run_id[:8], code_version="test", contract_hash="test", row_count=10,
        rejected_rows=0, status=status, check_results=[], message="", started_at=finished_at, finished_at=finished_at,
        destination=None,  # as a row from before ledger destinations: about the version-1 table
    )  # fmt: skip
    with connect() as warehouse:
        migrate(warehouse)
        record(warehouse, entry)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"slo-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("SHIPSHAPE_ENV", name)
    return name


def test_status_counts_the_pipelines_runs_and_publishes(
    prefect_api: str, postgres_url: str, environment: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("SHIPSHAPE_WAREHOUSE_URL", postgres_url)
    run_probes(["ok", "fail", "audit", "cancel"], "pipeline:shop_orders", f"env:{environment}")
    run_probes(["ok", "ok"], "pipeline:shop_orders", "env:another")  # another environment: not counted
    run_probes(["fail"], f"env:{environment}")  # not this pipeline's: not counted
    now = datetime.now(UTC)
    # Run a published two partitions 30h ago (one instant), run b 2h ago; a blocked attempt is no publish.
    publish("shop_orders", "a" * 32, now - timedelta(hours=30, seconds=1))
    publish("shop_orders", "a" * 32, now - timedelta(hours=30))
    publish("shop_orders", "b" * 32, now - timedelta(hours=2))
    publish("shop_orders", "c" * 32, now - timedelta(hours=1), status="blocked")
    publish("other_pipeline", "d" * 32, now - timedelta(minutes=1))

    [report] = slo_reports(now)

    assert (report.pipeline, report.runs, report.failed_runs) == ("shop_orders", 3, 2)
    assert report.success_rate == pytest.approx(1 / 3)
    assert report.success_budget_remaining == pytest.approx(1 - (2 / 3) / 0.05)
    assert report.last_published_at == now - timedelta(hours=2) and report.fresh
    # SLA 26h, measured since the first publish 30h ago (not the whole 28d window): fresh from 30h ago to 4h
    # ago, and for the last 2h.
    assert report.freshness == pytest.approx(28 / 30)
    assert report.fast_burn  # success over the last day: (1 - 1/3) / (1 - 0.95) = 13.3x ≥ 10x

    capsys.readouterr()
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"environment {environment}" in out
    assert max(len(line) for line in out.splitlines()) <= 100, out
    row = next(line for line in out.splitlines() if line.startswith("shop_orders"))
    assert re.search(r" 2h(\d{1,2}s)? / 1d2h ", row), row  # the command's own clock is a few seconds later
    assert row.split()[-2:] == ["FAST", "BURN"] and "33.33%" in row and "-1233%" in row and "13.3x" in row, row

    assert main(["status", "--pipeline", "shop_orders"]) == 0
    detail = capsys.readouterr().out
    for cell in ["33.33% / 95%", "3 (2)", "93.33% / 99%", "-1233%", "13.3x/1d", "FAST BURN"]:
        assert cell in detail, (cell, detail)

    assert main(["status", "--json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    [pipeline] = parsed["pipelines"]
    assert parsed["environment"] == environment and pipeline["state"] == "FAST BURN"
    assert (pipeline["runs"], pipeline["failed_runs"]) == (3, 2) and pipeline["success_rate"] == pytest.approx(1 / 3)


def test_status_env_reads_that_environments_warehouse_block_and_runs(
    prefect_api: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--env staging` instead of SHIPSHAPE_ENV and SHIPSHAPE_WAREHOUSE_BLOCK: its block, its runs, nothing else."""
    monkeypatch.setenv("SHIPSHAPE_ENV", "local")  # replaced by --env; restored after the test
    monkeypatch.setenv("SHIPSHAPE_WAREHOUSE_BLOCK", "")
    monkeypatch.setenv("SHIPSHAPE_WAREHOUSE_URL", "postgresql://nobody@127.0.0.1:9/not_this_one")
    url = urlsplit(postgres_url)
    WarehouseConnection(
        host=url.hostname or "127.0.0.1", port=url.port or 5432, database=url.path.lstrip("/"),
        loader_user=url.username or "postgres", loader_password=SecretStr(url.password or "-"),
        publisher_user=url.username or "postgres", publisher_password=SecretStr(url.password or "-"),
        monitor_user=url.username or "postgres", monitor_password=SecretStr(url.password or "-"),
    ).save(ENVIRONMENTS["staging"].warehouse_block, overwrite=True)  # fmt: skip
    with monkeypatch.context() as inside:
        inside.setenv("SHIPSHAPE_WAREHOUSE_URL", postgres_url)
        publish("shop_orders", "e" * 32, datetime.now(UTC) - timedelta(hours=3))
    run_probes(["ok", "fail"], "pipeline:shop_orders", "env:staging")
    run_probes(["fail"], "pipeline:shop_orders", "env:local")

    assert main(["status", "--env", "staging", "--json"]) == 0

    [pipeline] = json.loads(capsys.readouterr().out)["pipelines"]
    assert pipeline["last_published_at"] is not None and pipeline["fresh"]
    assert pipeline["runs"] >= 2 and pipeline["failed_runs"] >= 1  # staging's runs (other tests may add some)
    assert pipeline["runs"] - pipeline["failed_runs"] >= 1


def test_status_env_rejects_an_unknown_environment(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["status", "--env", "qa"])
    assert "invalid choice: 'qa'" in capsys.readouterr().err


def test_shipshape_run_tags_its_flow_run_so_status_counts_it(
    prefect_api: str, tmp_path: Path, environment: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    make_project(tmp_path, f"duckdb:///{tmp_path / 'warehouse.duckdb'}", monkeypatch)

    assert main(["run", "shop_orders", "--start-date", FIRST_DAY.isoformat()]) == 0

    wanted = FlowRunFilter(tags=FlowRunFilterTags(all_=["pipeline:shop_orders", f"env:{environment}"]))
    with get_client(sync_client=True) as client:
        [flow_run] = client.read_flow_runs(flow_run_filter=wanted)
    assert flow_run.state.is_completed()
    capsys.readouterr()
    assert main(["status", "--pipeline", "shop_orders"]) == 0
    detail = capsys.readouterr().out
    assert "100% / 95%" in detail and "1 (0)" in detail and datetime.now(UTC).strftime("%Y-%m-%d") in detail


def test_status_against_an_unreachable_prefect_api_says_so_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api", "SHIPSHAPE_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "cli", "status"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot read flow runs from the Prefect API at http://127.0.0.1:9/api/")
    assert "set PREFECT_API_URL" in result.stderr and "Traceback" not in result.stderr


def test_status_of_a_deployed_environment_never_reads_a_temporary_api(tmp_path: Path) -> None:
    """No PREFECT_API_URL and no local platform: prod's history is nowhere here, said in one line (no server)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("PREFECT_", "SHIPSHAPE_"))}
    env.update(SHIPSHAPE_DATA_DIR=str(tmp_path), SHIPSHAPE_PLATFORM_DIR=str(tmp_path / "no-platform"))
    result = subprocess.run(
        [sys.executable, "-m", "cli", "status", "--env", "prod"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: no Prefect API to read: PREFECT_API_URL is not set"), result.stderr
    assert "set PREFECT_API_URL to that environment's Prefect API" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
