"""Backfill on a real Prefect server: the dev environment as a team runs it, with a process worker.

The module sets up once what `make apply ENV=dev` and `make deploy ENV=dev` do, starts a worker for the dev
pool, and generates a shop with bad orders on two days. Each test uses its own days, so the tests do not
depend on each other's runs; they assert on the server (runs, links, states, artifacts) and on the warehouse
(the ledger and the published table as the consumer reads it).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Locator, Page, sync_playwright
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterName,
    FlowRunFilterParentFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.flow_runs import wait_for_flow_run
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Cancelling, Crashed

from demo.shop_app import generate, inject_bad_orders, orders_per_day
from deployments.environments import ENVIRONMENTS
from flows.backfill_children import launch_child, scheduled_for_a_worker
from flows.backfill_in_process import pending_for_this_process
from shipshape.backfill_plan import NO_ENTRY, Batch, PartitionPlan
from shipshape.names import backfill_limit, destination_lock
from shipshape.settings import PACKAGE_ROOT
from shipshape.warehouses import open_warehouse
from tests.support.platform import (
    EnvironmentValues,
    cli,
    environment_values,
    new_roles_dropped,
    real_prefect_server,
    run,
    worker,
)
from tests.support.postgres import backend_waiting_on, databases
from tests.support.slack import SlackReceiver
from tests.support.waiting import wait_until

FIRST_DAY = date(2026, 11, 1)
DAYS = 27
BAD_DAYS = (date(2026, 11, 5), date(2026, 11, 7), date(2026, 11, 12), date(2026, 11, 18))  # blocked until fixed
DEV = ENVIRONMENTS["dev"]
ARTIFACTS = PACKAGE_ROOT / "test-artifacts"  # screenshots, kept by CI (gitignored)
CHROMIUM = "/usr/bin/chromium"


@dataclass(frozen=True)
class DevPlatform:
    api_url: str
    home: Path
    values: EnvironmentValues
    shop_db: Path
    slack: SlackReceiver

    @property
    def platform_channel(self) -> str:
        """The environment's own Slack channel (a path on the local receiver): platform flows report there."""
        return self.values.values["SHIPSHAPE_SLACK_WEBHOOK_URL"].removeprefix(f"{self.slack.base_url}/")

    def env(self) -> dict[str, str]:
        return {"PREFECT_API_URL": self.api_url, "PREFECT_HOME": str(self.home), **self.values.values}

    @contextmanager
    def client(self) -> Iterator[SyncPrefectClient]:
        with temporary_settings({PREFECT_API_URL: self.api_url}), get_client(sync_client=True) as client:
            yield client


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevPlatform]:
    home = tmp_path_factory.mktemp("prefect-home")
    slack = SlackReceiver()
    values = environment_values("dev", slack.base_url)
    data_dir = tmp_path_factory.mktemp("shop-data")
    generate(data_dir / "shop.db", FIRST_DAY, DAYS)
    for day in BAD_DAYS:
        inject_bad_orders(data_dir / "shop.db", day)
    with slack.serving(), new_roles_dropped(), databases([values.database]), real_prefect_server(home) as api_url:
        platform = DevPlatform(api_url, home, values, data_dir / "shop.db", slack)
        apply = run([cli("python"), "-m", "infra", "apply", "--env", "dev"], platform.env())
        assert apply.returncode == 0, apply.stdout + apply.stderr
        deploy = run([cli("prefect"), "--no-prompt", "deploy", "--all"], {**platform.env(), "DEPLOY_ENV": "dev"})
        with platform.client() as client:
            deployed = {deployment.name for deployment in client.read_deployments()}
        expected = {"backfill-dev", "rollback-dev", "shop_orders-dev"}
        assert expected <= deployed, deploy.stdout[-3000:] + deploy.stderr[-3000:]
        with worker(api_url, home, "dev", "process", {"SHIPSHAPE_DATA_DIR": str(data_dir)}):
            yield platform
    slack.save(ARTIFACTS / "slack-payloads-backfill.json")


# --- helpers ----------------------------------------------------------------------------------------------------


def day(number: int) -> date:
    return date(2026, 11, number)


def run_one_day(dev: DevPlatform, single: date) -> None:
    """A direct run of the pipeline's deployment for one day. Its publish also gives backfills a duration estimate
    from the ledger, so a short backfill then runs in its own process."""
    with temporary_settings({PREFECT_API_URL: dev.api_url}):
        run_deployment("run-pipeline/shop_orders-dev", parameters={"start_date": single, "end_date": single},
                       timeout=600, poll_interval=1)


def launch_backfill(dev: DevPlatform, start: date, end: date, **options: object) -> FlowRun:
    """Run the backfill deployment as the UI's Run button does, and wait until it is final."""
    parameters = {"pipeline": "shop_orders", "start_date": start, "end_date": end, **options}
    with temporary_settings({PREFECT_API_URL: dev.api_url}):
        parent = run_deployment("backfill/backfill-dev", parameters=parameters, timeout=900, poll_interval=1)
    assert parent.state is not None and parent.state.is_final(), f"the backfill did not finish: {parent.state}"
    return parent


def children_of(dev: DevPlatform, parent: FlowRun) -> list[FlowRun]:
    """The runs the UI shows nested under the backfill run."""
    with dev.client() as client:
        parent_filter = FlowRunFilterParentFlowRunId(any_=[parent.id])
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=parent_filter))


def pipeline_runs(dev: DevPlatform) -> list[FlowRun]:
    """Every run of the dev pipeline deployment, however it was started."""
    with dev.client() as client:
        deployment = client.read_deployment_by_name("run-pipeline/shop_orders-dev")
        ids = FlowRunFilterDeploymentId(any_=[deployment.id])
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(deployment_id=ids))


def runs_for(runs: list[FlowRun], days: list[date]) -> dict[str, list[str]]:
    """Run ids per partition day (each day from the run's start_date to its end_date), for the given days."""
    found: dict[str, list[str]] = {}
    for flow_run in runs:
        for covered in days_of(flow_run):
            if covered in days:
                found.setdefault(covered.isoformat(), []).append(str(flow_run.id))
    return found


def days_of(child: FlowRun) -> list[date]:
    """The days a child run covers: its start_date to its end_date."""
    first = date.fromisoformat(str(child.parameters["start_date"]))
    last = date.fromisoformat(str(child.parameters["end_date"]))
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def table_artifact(dev: DevPlatform, flow_run: FlowRun) -> list[dict[str, Any]]:
    (artifact,) = artifacts_of(dev, flow_run, "table")
    return json.loads(artifact.data)


def artifacts_of(dev: DevPlatform, flow_run: FlowRun, kind: str) -> list[Any]:
    with dev.client() as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(
            any_=[flow_run.id])))
    return [artifact for artifact in artifacts if artifact.type == kind]


def published_by_day(dev: DevPlatform) -> dict[date, int]:
    """Read as the consumer: published data is what the read-only role sees."""
    with psycopg.connect(dev.values.role_url("consumer")) as connection:
        query = "SELECT order_date, count(*) FROM analytics.fct_orders GROUP BY order_date"
        return dict(connection.execute(query).fetchall())


def fix_bad_orders(shop_db: Path, bad_day: date) -> None:
    """What the application team's fix does: the buggy release's orders of that day are gone."""
    with sqlite3.connect(shop_db) as connection:
        connection.execute("DELETE FROM orders WHERE status = 'lost' AND created_at LIKE ?", [f"{bad_day}%"])


def max_overlap(runs: list[FlowRun]) -> int:
    """Most runs running at the same instant, from their start and end times."""
    events = sorted([(r.start_time, 1) for r in runs] + [(r.end_time, -1) for r in runs], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


# --- tests ------------------------------------------------------------------------------------------------------


def test_a_backfill_publishes_every_missing_day_once_in_linked_children_of_several_days(dev: DevPlatform) -> None:
    """days_per_run from the form: children as the form says, each started by the worker, even for short days."""
    days = [day(1), day(2), day(3)]
    started = datetime.now().astimezone()
    parent = launch_backfill(dev, days[0], days[-1], days_per_run=2)
    elapsed = (datetime.now().astimezone() - started).total_seconds()
    assert parent.state.is_completed(), parent.state.message
    children = children_of(dev, parent)
    assert sorted(covered for child in children for covered in days_of(child)) == days  # each day exactly once
    assert [days_of(child) for child in sorted(children, key=days_of)] == [days[:2], days[2:]]
    assert {child.state.name for child in children} == {"Completed"}
    assert all(child.infrastructure_pid for child in children)  # the worker started a process for each
    assert all("backfill" in child.tags for child in children)
    assert {child.parameters["publish_mode"] for child in children} == {"per_partition"}
    published = published_by_day(dev)
    assert {d: published.get(d) for d in days} == {d: orders_per_day(d) for d in days}
    summary = table_artifact(dev, parent)
    child_of = {covered.isoformat(): child.name for child in children for covered in days_of(child)}
    assert [(row["partition"], row["run"], row["outcome"], row["rows published"]) for row in summary] == [
        (d.isoformat(), child_of[d.isoformat()], "published", orders_per_day(d)) for d in days
    ]
    (progress,) = artifacts_of(dev, parent, "progress")
    assert (progress.data, progress.description) == (100.0, "shop_orders: 3 done, 0 blocked, 0 failed of 3 day(s)")
    print(f"backfill of {len(days)} days in {len(children)} child run(s): {elapsed:.1f} s")

    # Launched again, identically: every day is published now, so nothing runs and nothing is duplicated.
    before = runs_for(pipeline_runs(dev), days)
    again = launch_backfill(dev, days[0], days[-1], days_per_run=2)
    assert again.state.is_completed(), again.state.message
    assert children_of(dev, again) == []
    assert runs_for(pipeline_runs(dev), days) == before


def test_a_blocked_day_in_a_batch_stops_no_other_fails_the_backfill_and_mode_failed_retries_only_it(
    dev: DevPlatform,
) -> None:
    good, bad = day(4), day(5)
    parent = launch_backfill(dev, good, bad, days_per_run=2)  # one child for both days
    assert parent.state.is_failed()
    (child,) = children_of(dev, parent)
    assert (days_of(child), child.state.name) == ([good, bad], "AuditFailed")
    assert f"1 of 2 day(s) not published — {bad} (blocked in {child.name}: AuditFailed)" in parent.state.message
    assert "re-run with mode=failed" in parent.state.message
    published = published_by_day(dev)
    assert published.get(good) == orders_per_day(good) and bad not in published
    summary = table_artifact(dev, parent)
    assert [(row["partition"], row["run"], row["outcome"]) for row in summary] == [
        (good.isoformat(), child.name, "published"), (bad.isoformat(), child.name, "blocked"),
    ]
    # The platform's automation tells the environment's channel that the backfill failed, and why.
    [alert] = dev.slack.wait_for(dev.platform_channel, f"/runs/flow-run/{parent.id}")
    assert alert.text.startswith(f"[shipshape dev] {parent.name} ended Failed\nbackfill run {parent.name} of ")
    assert "re-run with mode=failed" in alert.text

    fix_bad_orders(dev.shop_db, bad)
    retry = launch_backfill(dev, good, bad, mode="failed")
    assert retry.state.is_completed(), retry.state.message
    assert [days_of(c) for c in children_of(dev, retry)] == [[bad]]
    assert published_by_day(dev).get(bad) == orders_per_day(bad)


def test_a_small_backfill_runs_its_days_as_one_child_run_in_its_own_process(dev: DevPlatform) -> None:
    """With a publish in the ledger, three short days run in the backfill's process: one child run of the pipeline's
    deployment under the backfill that no worker started; a blocked day there blocks only itself."""
    published, first_good, bad, last_good = day(16), day(17), day(18), day(19)
    run_one_day(dev, published)
    parent = launch_backfill(dev, published, last_good)  # mode missing: the 17th to the 19th, 1 batch
    assert parent.state.is_failed()
    assert f"1 of 3 day(s) not published — {bad} (blocked in " in parent.state.message
    (child,) = children_of(dev, parent)
    assert (days_of(child), child.state.name) == ([first_good, bad, last_good], "AuditFailed")
    with dev.client() as client:
        deployment = client.read_deployment_by_name("run-pipeline/shop_orders-dev")
        states = sorted(client.read_flow_run_states(child.id), key=lambda state: state.timestamp)
    assert child.deployment_id == deployment.id  # the deployment's automations, status and freshness see it
    assert {"backfill", f"partition:{first_good}..{last_good}"} <= set(child.tags)
    assert child.parameters["publish_mode"] == "per_partition"
    # No worker started it: never Scheduled (workers take only those), claimed here, no process of its own.
    assert [state.name for state in states] == ["Pending", "InProcess", "Running", "AuditFailed"]
    assert child.infrastructure_pid is None
    wait_until(lambda: f"1 batch in this process: {first_good}..{last_good}" in logs_of(dev, parent),
               "the backfill's log says it ran its days in its own process")  # logs reach the API after the run
    wait_until(lambda: any("Finished in state" in message for message in logs_of(dev, child)), "the child's logs")
    # Its steps ran in the main thread, where Prefect enforces their timeouts (a thread could not stop a hung read).
    assert not [message for message in logs_of(dev, child) if "running in a worker thread" in message]
    assert published_entries(dev, [first_good, bad, last_good]) == {
        first_good.isoformat(): [str(child.id)], last_good.isoformat(): [str(child.id)]
    }
    published_days = published_by_day(dev)
    assert {d: published_days.get(d) for d in (first_good, bad, last_good)} == {
        first_good: orders_per_day(first_good), bad: None, last_good: orders_per_day(last_good)
    }
    summary = table_artifact(dev, parent)
    assert [(row["partition"], row["run"], row["outcome"]) for row in summary] == [
        (first_good.isoformat(), child.name, "published"), (bad.isoformat(), child.name, "blocked"),
        (last_good.isoformat(), child.name, "published"),
    ]
    (progress,) = artifacts_of(dev, parent, "progress")
    assert (progress.data, progress.description) == (100.0, "shop_orders: 2 done, 1 blocked, 0 failed of 3 day(s)")


@contextmanager
def backfill_with_its_child_held_at_publish(dev: DevPlatform, target: date) -> Iterator[FlowRun]:
    """A one-day backfill, submitted, whose in-process child waits at its publish until the block ends: the test
    holds the published table's publish lock, so the child's day has passed its audit and has no ledger entry yet."""
    parameters = {"pipeline": "shop_orders", "start_date": target, "end_date": target}
    admin_url = dev.values.values["SHIPSHAPE_WAREHOUSE_ADMIN_URL"]
    with open_warehouse(admin_url) as warehouse, warehouse.transaction():
        warehouse.hold_until_commit(destination_lock("analytics", "fct_orders"))
        with temporary_settings({PREFECT_API_URL: dev.api_url}):
            backfill = run_deployment("backfill/backfill-dev", parameters=parameters, timeout=0)
        wait_until(lambda: backend_waiting_on(admin_url, "SELECT pg_advisory_xact_lock"), "its child waits to publish")
        assert [child.state_name for child in children_of(dev, backfill)] == ["Running"]
        yield backfill


def test_a_backfill_killed_while_running_its_day_in_its_own_process_leaves_no_run_the_next_one_waits_for(
    dev: DevPlatform,
) -> None:
    """Its process dies with the child run it executes, and no worker is left to mark that run: it stays Running.
    The next backfill of the day finds it by idempotency key; seeing the backfill that claimed it ended, it marks it
    Crashed and runs the day in a new child, instead of waiting forever. The held publish lock keeps the first child
    running until the kill."""
    estimate, target = day(22), day(23)
    run_one_day(dev, estimate)
    with backfill_with_its_child_held_at_publish(dev, target) as killed:
        with dev.client() as client:
            pid = client.read_flow_run(killed.id).infrastructure_pid
        assert pid, "the worker started the backfill's process"
        os.kill(int(pid.rsplit(":", 1)[-1]), signal.SIGKILL)
        with temporary_settings({PREFECT_API_URL: dev.api_url}):
            killed = asyncio.run(wait_for_flow_run(killed.id, timeout=120))
        assert killed.state.is_crashed(), killed.state
        (abandoned,) = children_of(dev, killed)
        assert abandoned.state_name == "Running"
        # Its slot stays taken until its lease expires (5 min): Prefect frees a global limit's lease only when its
        # holder releases it. Removed here so that the module's later backfills do not wait for it.
        with dev.client() as client:
            limit = backfill_limit("shop_orders-dev")
            assert client.read_global_concurrency_limit_by_name(limit).active_slots == 1
            client.delete_global_concurrency_limit_by_name(limit)
    again = launch_backfill(dev, target, target)
    assert again.state.is_completed(), again.state.message
    (child,) = [c for c in children_of(dev, again) if c.id != abandoned.id]
    assert child.state_name == "Completed"
    with dev.client() as client:
        abandoned = client.read_flow_run(abandoned.id)
    assert abandoned.state.is_crashed()
    assert f"its backfill run {killed.name} ended Crashed" in abandoned.state.message
    assert published_entries(dev, [target]) == {target.isoformat(): [str(child.id)]}
    assert published_by_day(dev)[target] == orders_per_day(target)


def test_cancelling_a_backfill_that_runs_its_day_in_its_own_process_cancels_that_run_too(dev: DevPlatform) -> None:
    """The UI's Cancel sets the backfill Cancelling; its worker stops the process, which executes the child. No
    worker knows that child (Prefect would leave it Cancelling for good), so the backfill's process ends it
    Cancelled on its way out; nothing is published."""
    estimate, target = day(26), day(27)
    run_one_day(dev, estimate)
    with backfill_with_its_child_held_at_publish(dev, target) as backfill:
        with dev.client() as client:
            client.set_flow_run_state(backfill.id, Cancelling(), force=True)  # what the UI's Cancel button sends
        with temporary_settings({PREFECT_API_URL: dev.api_url}):
            backfill = asyncio.run(wait_for_flow_run(backfill.id, timeout=120))
    assert backfill.state_name == "Cancelled"
    (child,) = children_of(dev, backfill)
    assert (child.state_name, child.state.message) == ("Cancelled", f"its backfill run {backfill.name} was cancelled")
    assert target.isoformat() not in published_entries(dev, [target])
    with dev.client() as client:  # unlike a killed one, a cancelled backfill gives its slot back
        assert client.read_global_concurrency_limit_by_name(backfill_limit("shop_orders-dev")).active_slots == 0


def test_two_identical_small_backfills_at_once_run_their_day_once_in_one_process(dev: DevPlatform) -> None:
    """Both find the same Pending child by key and both try to claim it; the server grants one claim, the other
    backfill waits for the run and reports the same outcome."""
    estimate, target = day(24), day(25)
    run_one_day(dev, estimate)
    parameters = {"pipeline": "shop_orders", "start_date": target, "end_date": target}
    with temporary_settings({PREFECT_API_URL: dev.api_url}):
        submitted = [run_deployment("backfill/backfill-dev", parameters=parameters, timeout=0) for _ in range(2)]
        backfills = [asyncio.run(wait_for_flow_run(flow_run.id, timeout=900)) for flow_run in submitted]
    assert [backfill.state_name for backfill in backfills] == ["Completed", "Completed"]
    (child,) = [run for run in pipeline_runs(dev) if target in days_of(run)]
    with dev.client() as client:
        states = sorted(client.read_flow_run_states(child.id), key=lambda state: state.timestamp)
    assert [state.name for state in states] == ["Pending", "InProcess", "Running", "Completed"]
    assert child.infrastructure_pid is None
    assert published_entries(dev, [target]) == {target.isoformat(): [str(child.id)]}
    assert [[row["run"] for row in table_artifact(dev, backfill)] for backfill in backfills] == [[child.name]] * 2


def logs_of(dev: DevPlatform, flow_run: FlowRun) -> list[str]:
    with dev.client() as client:
        return [log.message for log in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))]


def published_entries(dev: DevPlatform, days: list[date]) -> dict[str, list[str]]:
    """The ledger's publishes of these days: the flow run of each, oldest first."""
    with psycopg.connect(dev.values.values["SHIPSHAPE_WAREHOUSE_ADMIN_URL"]) as admin:
        rows = admin.execute(
            "SELECT partition_key, flow_run_id FROM platform.publish_ledger WHERE status = 'published' "
            "AND partition_key = ANY(%s) ORDER BY finished_at", [[d.isoformat() for d in days]]).fetchall()
    found: dict[str, list[str]] = {}
    for key, flow_run_id in rows:
        found.setdefault(key, []).append(flow_run_id)
    return found


def test_a_dry_run_shows_the_plan_from_the_ledger_and_creates_no_run(dev: DevPlatform) -> None:
    published, blocked, missing = day(6), day(7), day(8)
    for single in (published, blocked):
        run_one_day(dev, single)
    before = pipeline_runs(dev)
    parent = launch_backfill(dev, published, missing, dry_run=True)
    assert parent.state.is_completed(), parent.state.message
    plan = table_artifact(dev, parent)
    assert [(row["partition"], row["status"], row["action"], row["rows"]) for row in plan] == [
        (published.isoformat(), "published", "skip", orders_per_day(published)),
        (blocked.isoformat(), "blocked", "run", ""),
        (missing.isoformat(), "missing", "run", ""),
    ]
    assert plan[0]["last published"].startswith(str(date.today()))
    assert all(isinstance(row["estimated duration (s)"], float) for row in plan)
    assert children_of(dev, parent) == []
    assert len(pipeline_runs(dev)) == len(before)


def test_two_identical_backfills_share_their_children_and_the_concurrency_bound(dev: DevPlatform) -> None:
    """The dev pipelines' queue allows 2 runs at once; max_concurrent=1 must hold them to one."""
    days = [day(9) + timedelta(days=offset) for offset in range(3)]
    parameters = {"pipeline": "shop_orders", "start_date": days[0], "end_date": days[-1], "max_concurrent": 1,
                  "days_per_run": 1}
    with temporary_settings({PREFECT_API_URL: dev.api_url}):
        first, second = (run_deployment("backfill/backfill-dev", parameters=parameters, timeout=0) for _ in range(2))
        first, second = (asyncio.run(wait_for_flow_run(flow_run.id, timeout=900)) for flow_run in (first, second))
    assert first.state.is_completed(), first.state.message
    assert second.state.is_completed(), second.state.message
    children = [r for r in pipeline_runs(dev) if set(days_of(r)) & set(days)]
    assert sorted(covered for c in children for covered in days_of(c)) == days  # each day run once in all
    assert {c.state.name for c in children} == {"Completed"}
    overlap = max_overlap(children)
    print(f"max overlap of {len(children)} children under max_concurrent=1 (queue limit 2): {overlap}")
    assert overlap == 1


def test_launching_a_day_twice_returns_the_same_run_and_a_crashed_one_is_replaced(dev: DevPlatform) -> None:
    """Both ways a child is created: Scheduled for a worker, Pending for the backfill's own process. On a pool no
    worker polls, so the runs stay as the test leaves them."""
    with dev.client() as client:
        client.create_work_pool(WorkPoolCreate(name="shipshape-idle", type="process"))
        flow_id = client.read_flow_by_name("run-pipeline").id
        client.create_deployment(flow_id=flow_id, name="shop_orders-idle", work_pool_name="shipshape-idle")
    for number, create, created_as in ((20, scheduled_for_a_worker, "Scheduled"),
                                       (21, pending_for_this_process, "Pending")):
        plan = Batch((PartitionPlan(day(number), "missing", None, None, None, NO_ENTRY, never_published=True,
                                    latest_unsuccessful=False),))
        with temporary_settings({PREFECT_API_URL: dev.api_url}):
            first = asyncio.run(launch_child("shop_orders-idle", plan, create))
            again = asyncio.run(launch_child("shop_orders-idle", plan, create))
            assert again.id == first.id
            assert first.state.name == created_as
            assert first.idempotency_key == f"backfill:shop_orders-idle:2026-11-{number}:{NO_ENTRY}"
            with get_client(sync_client=True) as client:
                client.set_flow_run_state(first.id, Crashed(message="worker lost"), force=True)
            replaced = asyncio.run(launch_child("shop_orders-idle", plan, create))
            assert replaced.id != first.id
            assert replaced.idempotency_key == f"{first.idempotency_key}:after-{first.id}"
            assert asyncio.run(launch_child("shop_orders-idle", plan, create)).id == replaced.id


def test_a_backfill_launched_from_the_ui_custom_run_form_publishes_its_days(dev: DevPlatform) -> None:
    """Deployments → backfill-dev → Run → Custom run in Debian's Chromium, as an operator does it."""
    days = [day(14), day(15)]
    ui = dev.api_url.removesuffix("/api")
    started = time.monotonic()
    with chromium_page() as page:
        open_custom_run(page, ui, "backfill-dev")
        choose(page, "pipeline", "shop_orders")
        for field, value in zip(("start_date", "end_date"), days, strict=True):
            pick_date(page, field, value)
        page.screenshot(path=ARTIFACTS / "backfill-form.png", full_page=True)
        shutil.copy(ARTIFACTS / "backfill-form.png", "/tmp/backfill-form.png")
        run_name = page.get_by_role("textbox").first.input_value()  # the form's generated Run Name
        page.get_by_role("button", name="Submit").click()
        page.wait_for_url(re.compile(r"tab=Runs"))  # the UI accepted the run and shows the deployment's runs
    with dev.client() as client:
        (parent,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[run_name])))
    with temporary_settings({PREFECT_API_URL: dev.api_url}):
        parent = asyncio.run(wait_for_flow_run(parent.id, timeout=900))
    with chromium_page() as page:  # a new session: Playwright's sync API holds an event loop while it is open
        page.goto(f"{ui}/runs/flow-run/{parent.id}")
        page.get_by_text("Completed").first.wait_for()
        page.get_by_text("2 of 2 day(s) selected").first.wait_for()  # its logs have loaded
        page.screenshot(path=ARTIFACTS / "backfill-finished-run.png", full_page=True)
    print(f"browser test, form to finished backfill of {len(days)} days: {time.monotonic() - started:.1f} s")
    assert parent.state.is_completed(), parent.state.message
    assert parent.parameters == {"pipeline": "shop_orders", "start_date": days[0].isoformat(),
                                 "end_date": days[-1].isoformat(), "mode": "missing", "dry_run": False,
                                 "max_concurrent": 4, "days_per_run": 0}
    children = children_of(dev, parent)
    assert sorted(covered for c in children for covered in days_of(c)) == days
    assert {c.state.name for c in children} == {"Completed"}
    published = published_by_day(dev)
    assert {d: published.get(d) for d in days} == {d: orders_per_day(d) for d in days}


def test_a_wrong_publish_is_rolled_back_from_the_ui_rollback_form_to_a_version_the_ledger_lists(
    dev: DevPlatform,
) -> None:
    """Deployments → rollback-dev → Run → Custom run in Chromium: pipeline from the dropdown, the partition, and a
    version that the same form listed from the ledger (list_versions); the consumer then reads that version again."""
    target, lost = day(11), 100
    for version in ("good", "wrong"):
        if version == "wrong":
            lose_orders(dev.shop_db, target, lost)  # a release that drops orders: valid, but wrong
        run_one_day(dev, target)
    assert published_by_day(dev)[target] == orders_per_day(target) - lost
    with temporary_settings({PREFECT_API_URL: dev.api_url}):
        listing = run_deployment("rollback/rollback-dev", timeout=300, poll_interval=1, parameters={
            "pipeline": "shop_orders", "partition": target.isoformat(), "list_versions": True})
    assert listing.state is not None and listing.state.is_completed(), listing.state
    listed = table_artifact(dev, listing)
    assert [(row["status"], row["rows"]) for row in listed[:2]] == [  # newest first; earlier tests may add older
        ("published", orders_per_day(target) - lost), ("published", orders_per_day(target))
    ]
    good = listed[1]["version (to_version)"]
    assert listed[1]["restorable"].startswith("until ")

    ui = dev.api_url.removesuffix("/api")
    with chromium_page() as page:
        open_custom_run(page, ui, "rollback-dev")
        choose(page, "pipeline", "shop_orders")
        # Parameters with a default are labelled "<name> (Optional)" by the UI; a string is a text area.
        field(page, "partition (Optional)").get_by_role("textbox").fill(target.isoformat())
        field(page, "to_version (Optional)").get_by_role("textbox").fill(good)
        page.screenshot(path=ARTIFACTS / "rollback-form.png", full_page=True)
        run_name = page.get_by_role("textbox").first.input_value()
        page.get_by_role("button", name="Submit").click()
        page.wait_for_url(re.compile(r"tab=Runs"))
    with dev.client() as client:
        (rollback,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[run_name])))
    with temporary_settings({PREFECT_API_URL: dev.api_url}):
        rollback = asyncio.run(wait_for_flow_run(rollback.id, timeout=300))

    assert rollback.state.is_completed(), rollback.state.message
    assert rollback.parameters == {"pipeline": "shop_orders", "partition": target.isoformat(), "to_version": good,
                                   "undo_flow_run": "", "list_versions": False}
    assert published_by_day(dev)[target] == orders_per_day(target), "the consumer reads the good version again"
    with psycopg.connect(dev.values.values["SHIPSHAPE_WAREHOUSE_ADMIN_URL"]) as admin:
        newest = admin.execute(
            "SELECT status, restored_entry_id, flow_run_id FROM platform.publish_ledger WHERE partition_key = %s "
            "ORDER BY finished_at DESC LIMIT 1", [target.isoformat()]).fetchone()
    assert newest == ("rolled_back", good, str(rollback.id))


def lose_orders(shop_db: Path, on_day: date, count: int) -> None:
    """What a buggy release does: `count` of the day's orders never reach the database."""
    with sqlite3.connect(shop_db) as connection:
        connection.execute(
            "DELETE FROM orders WHERE rowid IN (SELECT rowid FROM orders WHERE created_at LIKE ? LIMIT ?)",
            [f"{on_day}%", count],
        )


def test_a_running_backfill_shows_its_progress_per_day_in_the_ui(dev: DevPlatform) -> None:
    """Screenshot of the progress artifact while the backfill runs: one day blocked, the other waiting to publish.

    The test holds the published table's publish lock, so the good day's child waits at its publish (as behind
    another publish) and the backfill stays running, without timing; max_concurrent=1 runs the bad day first."""
    bad, good = day(12), day(13)
    parameters = {"pipeline": "shop_orders", "start_date": bad, "end_date": good, "days_per_run": 1,
                  "max_concurrent": 1}
    with open_warehouse(dev.values.values["SHIPSHAPE_WAREHOUSE_ADMIN_URL"]) as warehouse, warehouse.transaction():
        warehouse.hold_until_commit(destination_lock("analytics", "fct_orders"))
        with temporary_settings({PREFECT_API_URL: dev.api_url}):
            parent = run_deployment("backfill/backfill-dev", parameters=parameters, timeout=0)

        def one_day_counted() -> bool:
            return any("1 blocked" in (a.description or "") for a in artifacts_of(dev, parent, "progress"))

        wait_until(one_day_counted, "the backfill counted its blocked day")
        (progress,) = artifacts_of(dev, parent, "progress")
        with chromium_page() as page:
            page.goto(f"{dev.api_url.removesuffix('/api')}/artifacts/artifact/{progress.id}")
            page.get_by_text("shop_orders: 0 done, 1 blocked, 0 failed of 2 day(s)").first.wait_for()
            page.get_by_text("Progress: 50%").first.wait_for()
            page.screenshot(path=ARTIFACTS / "backfill-progress.png", full_page=True)
        with dev.client() as client:
            assert client.read_flow_run(parent.id).state.is_running()
        assert progress.data == 50.0
    with temporary_settings({PREFECT_API_URL: dev.api_url}):  # the lock is released: the good day publishes
        parent = asyncio.run(wait_for_flow_run(parent.id, timeout=900))
    assert parent.state.is_failed() and f"{bad} (blocked in " in parent.state.message
    assert published_by_day(dev).get(good) == orders_per_day(good)
    (progress,) = artifacts_of(dev, parent, "progress")
    assert (progress.data, progress.description) == (100.0, "shop_orders: 1 done, 1 blocked, 0 failed of 2 day(s)")


@contextmanager
def chromium_page() -> Iterator[Page]:
    """Debian's Chromium driven by Playwright (no browser download here); closed whatever happens."""
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def field(page: Page, name: str) -> Locator:
    """A parameter's block in the form, found by its label (the innermost block holding that label)."""
    return page.locator(".schema-form-property", has=page.get_by_text(name, exact=True)).last


def open_custom_run(page: Page, ui: str, deployment: str) -> None:
    """Deployments → <deployment> → Run → Custom run, as an operator gets to a deployment's form."""
    page.goto(f"{ui}/deployments")
    page.get_by_role("link", name=deployment).first.click()
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Custom run").click()


def choose(page: Page, name: str, option: str) -> None:
    """The UI's select opens from the keyboard (a synthetic click opens and closes it at once)."""
    field(page, name).locator(".p-select-button__control").focus()
    page.keyboard.press("ArrowDown")
    page.get_by_role("option", name=option, exact=True).click()


def pick_date(page: Page, name: str, value: date) -> None:
    """The date picker's own "Selected Date" input, then Apply — what a user types instead of paging months."""
    field(page, name).locator(".p-date-button__control").click()
    page.locator("input[type=date]").fill(value.isoformat())
    page.get_by_role("button", name="Apply").click()
