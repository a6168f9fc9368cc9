"""Alerts end to end: a real Prefect server runs the automations `make apply` creates, a process worker runs
the pipelines, and a local Slack receiver (Slack's incoming-webhook wire format) gets the messages.

The module deploys a copy of the example project with four pipelines, all reading the shop's orders:
`shop_orders` (owner channel #commerce-data, volume baseline of 3 partitions, burn alert at 2x),
`late_orders` (#commerce-data, freshness SLA 20 s, so the proactive trigger fires during the test),
`never_orders` (#growth-data, never run: only the ledger-based monitor can tell it is not fresh) and
`api_orders` (#commerce-data, from the shop's JSON API, a local server that can be told to hang; timeout 25 s).
Each test is a scenario on that shared platform; they run in file order, as an incident timeline.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from demo.shop_app import add_orders, generate, inject_bad_orders
from deployments.runbooks import runbook_url
from shipshape.ledger import entries
from shipshape.names import partition_lock
from shipshape.settings import PACKAGE_ROOT
from shipshape.warehouses import open_warehouse
from tests.support.http_api import JsonApi, serve_json_api
from tests.support.platform import (
    cli,
    environment_values,
    new_roles_dropped,
    real_prefect_server,
    run,
    worker,
)
from tests.support.postgres import databases
from tests.support.slack import Message, SlackReceiver

FIRST_DAY = date(2026, 11, 1)
DAYS = 8
OWNERS = "commerce-data"
GROWTH = "growth-data"
PLATFORM_CHANNEL = "dev-platform"
API_TIMEOUT_SECONDS = 25
API_DAY = 6  # a day no other scenario runs


@dataclass(frozen=True)
class Ops:
    api_url: str
    home: Path
    project: Path
    data_dir: Path
    slack: SlackReceiver
    environment: dict[str, str]
    api: JsonApi

    def run(self, deployment: str, **parameters: Any) -> FlowRun:
        with temporary_settings({PREFECT_API_URL: self.api_url}):
            flow_run = run_deployment(deployment, parameters=parameters, timeout=600, poll_interval=1)
        assert flow_run.state is not None and flow_run.state.is_final(), f"{deployment}: {flow_run.state}"
        return flow_run

    def run_pipeline(self, pipeline: str, day: date, last_day: date | None = None, **options: Any) -> FlowRun:
        return self.run(f"run-pipeline/{pipeline}-dev", start_date=day, end_date=last_day or day, **options)


def _declare(project: Path, name: str, change: dict[str, Any], replace: dict[str, Any] | None = None) -> None:
    """A copy of the example declaration under another name, with `change` merged in at the top level and the
    keys of `replace` replaced whole."""
    document = yaml.safe_load((PACKAGE_ROOT / "pipelines" / "shop_orders.yaml").read_text())
    for key, value in change.items():
        document[key] = {**document.get(key, {}), **value} if isinstance(value, dict) else value
    document.update(replace or {})
    document["name"] = name
    # A pipeline reads only its own folder: each copy gets its own transform file.
    (project / "pipelines" / name).mkdir(parents=True)
    shutil.copy(PACKAGE_ROOT / "pipelines/shop_orders/fct_orders.sql", project / "pipelines" / name / "fct_orders.sql")
    document["transform"] = [f"pipelines/{name}/fct_orders.sql"]
    (project / "pipelines" / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def _make_project(root: Path, api: JsonApi) -> Path:
    """The example project's files, four declarations and the platform's flows (the entrypoints)."""
    project = root / "project"
    (project / "checks").mkdir(parents=True)
    shutil.copy(PACKAGE_ROOT / "checks/fct_orders.yaml", project / "checks/fct_orders.yaml")
    (project / "flows").symlink_to(PACKAGE_ROOT / "flows")
    anomaly = {"anomaly": {"baseline_partitions": 5, "min_history": 3}}
    _declare(project, "shop_orders", {"volume": anomaly, "slo": {"fast_burn_rate": 2}})
    _declare(project, "late_orders", {"destination": {"table": "late_orders"}, "freshness": {"sla": "20s"}})
    _declare(project, "never_orders", {
        "destination": {"table": "never_orders"}, "owner": {"team": "growth", "slack_channel": "#growth-data"},
    })
    example_columns = yaml.safe_load((PACKAGE_ROOT / "pipelines" / "shop_orders.yaml").read_text())["source"]["columns"]
    _declare(
        project, "api_orders", {"destination": {"table": "api_orders"}, "timeout": f"{API_TIMEOUT_SECONDS}s"},
        replace={"source": {"kind": "http", "url": api.url("/records"), "columns": example_columns}},
    )
    return project


def _orders_of(shop_db: Path, day: date) -> list[dict[str, Any]]:
    """One day of the shop's orders as its JSON API hands them out (timestamps as UTC text)."""
    with closing(sqlite3.connect(shop_db)) as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute(
            "SELECT order_id, customer_id, email, amount, status, created_at, updated_at FROM orders "
            "WHERE created_at >= ? AND created_at < ? ORDER BY order_id",
            [f"{day} 00:00:00", f"{day + timedelta(days=1)} 00:00:00"],
        ).fetchall()
    return [dict(row) for row in rows]


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    root = tmp_path_factory.mktemp("alerts")
    home, data_dir = root / "prefect-home", root / "data"
    home.mkdir()
    generate(data_dir / "shop.db", FIRST_DAY, DAYS)
    slack = SlackReceiver()
    values = environment_values("dev", slack.base_url)
    with (
        serve_json_api(_orders_of(data_dir / "shop.db", day(API_DAY))) as api,
        slack.serving(),
        new_roles_dropped(),
        databases([values.database]),
        real_prefect_server(home) as api_url,
    ):
        project = _make_project(root, api)
        env = {
            **values.values,
            "SHIPSHAPE_SLACK_WEBHOOK_URL": slack.url(PLATFORM_CHANNEL),
            "SHIPSHAPE_SLACK_WEBHOOK_COMMERCE_DATA": slack.url(OWNERS),
            "SHIPSHAPE_SLACK_WEBHOOK_GROWTH_DATA": slack.url(GROWTH),
            "SHIPSHAPE_PROJECT_DIR": str(project),
            "SHIPSHAPE_DATA_DIR": str(data_dir),
            "PREFECT_API_URL": api_url,
            "PREFECT_HOME": str(home),
        }
        for command in (
            [cli("python"), "-m", "deployments.generate"],
            [cli("python"), "-m", "infra", "apply", "--env", "dev"],
            [cli("prefect"), "--no-prompt", "deploy", "--all"],
        ):
            result = run(command, {**env, "DEPLOY_ENV": "dev"}, cwd=project)
            assert result.returncode == 0, f"{command}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
        extra = {"SHIPSHAPE_PROJECT_DIR": str(project), "SHIPSHAPE_DATA_DIR": str(data_dir)}
        with worker(api_url, home, "dev", "process", extra):
            yield Ops(api_url, home, project, data_dir, slack, env, api)
    slack.save(PACKAGE_ROOT / "test-artifacts" / "slack-payloads-alerts.json")


def day(offset: int) -> date:
    return FIRST_DAY + timedelta(days=offset)


def only(messages: list[Message]) -> Message:
    assert len(messages) == 1, [message.text for message in messages]
    return messages[0]


def test_a_failing_pipeline_alerts_its_owner_once_and_again_when_it_recovers(ops: Ops) -> None:
    assert ops.run_pipeline("shop_orders", day(0)).state.is_completed()  # a success arms the alert
    failures = [ops.run_pipeline("shop_orders", day(1), reuse_raw=True) for _ in range(2)]  # nothing to reuse
    assert all(flow_run.state.is_failed() for flow_run in failures)
    recovery = ops.run_pipeline("shop_orders", day(1))
    assert recovery.state.is_completed()

    ops.slack.wait_for(OWNERS, "[shipshape dev] shop_orders: recovered")
    alert = only(ops.slack.received(OWNERS, "shop_orders: run Failed"))  # two failed runs, one incident
    first = failures[0]
    assert alert.payload == {"text": (
        "[shipshape dev] shop_orders: run Failed\n"
        "Pipeline shop_orders, partition 2026-11-02: the run ended Failed.\n"
        f"Error: {first.state.message}\n"
        f"Run: {ops.api_url.removesuffix('/api')}/runs/flow-run/{first.id}\n"
        "Owner: commerce (ana.lima@example.com) · #commerce-data\n"
        f"Runbook: {runbook_url('shop_orders', 'run-failed')}"
    )}
    assert "no raw data is kept for it; run without reuse_raw" in alert.text
    print(f"failed run → Slack: {(alert.received_at - first.state.timestamp).total_seconds():.2f} s")
    recovered = only(ops.slack.received(OWNERS, "shop_orders: recovered"))
    assert f"/runs/flow-run/{recovery.id}" in recovered.text
    assert runbook_url("shop_orders", "recovered") in recovered.text
    assert ops.slack.received(PLATFORM_CHANNEL) == []  # pipeline alerts go to the owners, not the platform


def test_an_audit_gate_failure_is_reported_apart_from_crashes_with_the_failed_checks(ops: Ops) -> None:
    inject_bad_orders(ops.data_dir / "shop.db", day(2))
    blocked = ops.run_pipeline("shop_orders", day(2))
    assert blocked.state.is_failed() and blocked.state.name == "AuditFailed"

    alert = only(ops.slack.wait_for(OWNERS, "audit gate blocked the publish"))
    assert alert.text.startswith(
        "[shipshape dev] shop_orders: audit gate blocked the publish\n"
        "Pipeline shop_orders, partition 2026-11-03: the contract failed, nothing was published.\n"
        "Failed checks: pipeline shop_orders: contract checks/fct_orders.yaml blocked 1 of 1 partition(s) — "
        "2026-11-03: amount invalid=25 (must be 0); status invalid=25 (must be 0)"
    )
    assert runbook_url("shop_orders", "audit-blocked") in alert.text
    # Not reported as a failed run as well: the only failed-run message is the one incident before.
    assert len(ops.slack.received(OWNERS, "shop_orders: run Failed")) == 1


def test_a_volume_anomaly_warns_once_and_says_when_volume_is_back_to_normal(ops: Ops) -> None:
    assert ops.run_pipeline("shop_orders", day(0), day(1)).state.is_completed()  # baseline: days 1-2 (+ 3 below)
    with sqlite3.connect(ops.data_dir / "shop.db") as connection:  # undo the previous test's bad orders
        connection.execute("DELETE FROM orders WHERE status = 'lost'")
    assert ops.run_pipeline("shop_orders", day(2)).state.is_completed()
    for sale_day in (day(3), day(4)):  # a flash sale: valid orders, far more than usual
        add_orders(ops.data_dir / "shop.db", sale_day, 5_000, amount="19.99", status="paid")
    sale = ops.run_pipeline("shop_orders", day(3))
    assert sale.state.is_completed()  # a warning, not a block: the partition is published
    assert ops.run_pipeline("shop_orders", day(4)).state.is_completed()  # still anomalous: same incident
    assert ops.run_pipeline("shop_orders", day(5)).state.is_completed()

    resolved = only(ops.slack.wait_for(OWNERS, "shop_orders: Volume back to normal"))
    warning = only(ops.slack.received(OWNERS, "Volume anomaly (warning)"))
    assert warning.text.startswith(
        "[shipshape dev] shop_orders: Volume anomaly (warning)\npartition 2026-11-04: "
    )
    assert "rows, above the expected band" in warning.text and "(trailing 3 partitions)" in warning.text
    assert f"Runbook: {runbook_url('shop_orders')}#volume-anomaly" in warning.text
    assert "partition 2026-11-06: " in resolved.text and "inside the expected band" in resolved.text
    assert f"Runbook: {runbook_url('shop_orders')}#recovered" in resolved.text


def test_a_freshness_breach_is_caught_by_the_proactive_trigger_and_resolved_by_the_next_publish(ops: Ops) -> None:
    published = ops.run_pipeline("late_orders", day(0))
    assert published.state.is_completed()
    # Nothing else runs late_orders: 20 s later its freshness trigger starts the monitor for it.
    breach = only(ops.slack.wait_for(OWNERS, "late_orders: Freshness SLA breached", timeout_seconds=120))
    lapse = published.state.timestamp + timedelta(seconds=20)
    print(f"SLA lapse → Slack (trigger, monitor run, automation): {(breach.received_at - lapse).total_seconds():.1f} s")
    assert "no publish for" in breach.text and "(SLA 20s); last publish" in breach.text
    assert f"Runbook: {runbook_url('late_orders')}#freshness-breach" in breach.text

    assert ops.run_pipeline("late_orders", day(1)).state.is_completed()
    monitor = ops.run("monitor/monitor-dev", pipeline="late_orders")
    assert monitor.state.is_completed(), monitor.state.message
    resolved = only(ops.slack.wait_for(OWNERS, "late_orders: Fresh again"))
    assert "fresh again: last publish" in resolved.text


def test_the_monitor_reports_never_published_pipelines_and_fast_burns_once_and_shows_the_slos(ops: Ops) -> None:
    monitors = [ops.run("monitor/monitor-dev") for _ in range(2)]  # the second finds the incidents open: silent
    assert all(monitor.state.is_completed() for monitor in monitors)

    never = only(ops.slack.wait_for(GROWTH, "never_orders: Freshness SLA breached"))
    assert never.text == (
        "[shipshape dev] never_orders: Freshness SLA breached\n"
        "never published (freshness SLA 1d2h)\n"
        "Owner: growth (ana.lima@example.com) · #growth-data\n"
        f"Runbook: {runbook_url('never_orders')}#freshness-breach"
    )
    burn = only(ops.slack.wait_for(OWNERS, "shop_orders: Error budget burning fast"))
    assert "error budget burning" in burn.text and "over the last 1d (alert at 2x)" in burn.text
    assert ops.slack.received(GROWTH, "shop_orders") == []  # routed by owner

    with temporary_settings({PREFECT_API_URL: ops.api_url}), get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["slo-dev"]), flow_run_id=ArtifactFilterFlowRunId(any_=[monitors[-1].id])
        ))
    rows = {row["pipeline"]: row for row in json.loads(artifact.data)}
    assert set(rows) == {"shop_orders", "late_orders", "never_orders", "api_orders"}
    assert rows["never_orders"]["last publish"] == "never"
    assert rows["shop_orders"]["alert"].startswith("FAST BURN")


def test_a_hung_source_ends_the_run_timed_out_releases_its_lock_and_alerts_the_owner(ops: Ops) -> None:
    assert ops.run_pipeline("api_orders", day(API_DAY)).state.is_completed()  # a success arms the alert
    answered = len(ops.api.requests)
    ops.api.fail_next(1, "hang")  # the next request is never answered

    hung = ops.run_pipeline("api_orders", day(API_DAY))
    assert hung.state.is_failed() and hung.state.name == "TimedOut", hung.state
    assert len(ops.api.requests) == answered + 1  # it reached the hanging request, and did not retry it
    assert hung.start_time is not None and hung.end_time is not None
    took = (hung.end_time - hung.start_time).total_seconds()
    print(f"hung run: TimedOut {took:.1f} s after it started (timeout {API_TIMEOUT_SECONDS} s)")
    assert API_TIMEOUT_SECONDS <= took < API_TIMEOUT_SECONDS + 20  # the deadline starts once the warehouse answers

    with open_warehouse(ops.environment["SHIPSHAPE_WAREHOUSE_ADMIN_URL"]) as warehouse:
        with warehouse.exclusive([partition_lock("api_orders", str(day(API_DAY)))]) as free:
            assert free  # released: a new run can take the partition
        ledger = entries(warehouse, "api_orders")
    [failed] = [entry for entry in ledger if entry.flow_run_id == str(hung.id)]
    assert failed.status == "failed" and "timed out in extract" in failed.message
    assert failed.message == hung.state.message
    assert [entry.status for entry in ledger].count("published") == 1  # the first run's; nothing from the hung one

    alert = only(ops.slack.wait_for(OWNERS, "api_orders: run TimedOut"))
    assert alert.text.startswith(
        "[shipshape dev] api_orders: run TimedOut\n"
        f"Pipeline api_orders, partition {day(API_DAY)}: the run ended TimedOut.\n"
        f"Error: pipeline api_orders: partition {day(API_DAY)} timed out in extract after the run's timeout of "
        f"{API_TIMEOUT_SECONDS}s (declared `timeout`)"
    )
    print(f"timed-out run → Slack: {(alert.received_at - hung.state.timestamp).total_seconds():.2f} s")


def _edit(ops: Ops, pipeline: str, key: str, value: dict[str, Any]) -> None:
    """Change one section of a declaration the worker reads: the monitor's next run sees it."""
    path = ops.project / "pipelines" / f"{pipeline}.yaml"
    document = yaml.safe_load(path.read_text())
    document[key] = value
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def test_a_budget_below_the_projection_alerts_the_owner_and_raising_it_resolves_it(ops: Ops) -> None:
    _edit(ops, "shop_orders", "cost", {"budget_per_month": 0.0001})  # the runs above cost more than that already
    over = ops.run("monitor/monitor-dev")
    opened = only(ops.slack.wait_for(OWNERS, "shop_orders: Projected cost over budget"))
    assert "this month passes the budget 0.0001 USD" in opened.text
    assert f"Runbook: {runbook_url('shop_orders')}#cost" in opened.text

    _edit(ops, "shop_orders", "cost", {"budget_per_month": 1000})
    ops.run("monitor/monitor-dev")
    resolved = only(ops.slack.wait_for(OWNERS, "shop_orders: Projected cost within budget"))
    assert "within the budget 1000 USD" in resolved.text

    with temporary_settings({PREFECT_API_URL: ops.api_url}), get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["cost-dev"]), flow_run_id=ArtifactFilterFlowRunId(any_=[over.id])
        ))
    row = {row["pipeline"]: row for row in json.loads(artifact.data)}["shop_orders"]
    assert row["runs"] > 0 and row["vcpu_hours"] > 0 and row["storage_gb_published"] > 0
    assert row["budget"] == 0.0001 and row["over_budget"] is True
    # A partitioned table on a server without pg_stat_statements: its partitions' scans, which the publishes here
    # never raise (each replaces its partition by a new one) and no consumer reads: 0, counted over the monitor's
    # samples (the two runs of the never-published test and this one's).
    assert (row["read_method"], row["reads"]) == ("partition_scans", 0)
    print(f"cost artifact, shop_orders this month: {row}")


def test_slack_urls_never_reach_logs_or_runs(ops: Ops) -> None:
    with temporary_settings({PREFECT_API_URL: ops.api_url}), get_client(sync_client=True) as client:
        logs = " ".join(log.message for log in client.read_logs())
        runs = " ".join(str(flow_run.parameters) for flow_run in client.read_flow_runs())
    for url in (ops.slack.url(OWNERS), ops.slack.url(GROWTH), ops.slack.url(PLATFORM_CHANNEL)):
        assert url not in logs and url not in runs
