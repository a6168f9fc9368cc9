"""Deploy: infra as code and `prefect deploy --all` for dev, staging and prod, each on its own real Prefect server.

The module sets up once what a team's CI does per environment — `python -m infra apply --env E` twice,
`DEPLOY_ENV=E SHIPSHAPE_IMAGE=<image> prefect deploy --all` against that environment's API — then checks what each
server holds, that one environment's apply or deploy is refused on another's API, runs the dev deployment on a
process worker and the staging deployment on a docker worker inside the built image.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from demo.shop_app import generate
from deployments.environments import ENVIRONMENTS
from runtime.blocks import WarehouseConnection
from tests.support.docker_engine import git_sha
from tests.support.platform import (
    EnvironmentValues,
    cli,
    environment_values,
    new_roles_dropped,
    real_prefect_servers,
    run,
    worker,
)
from tests.support.postgres import database_url, databases
from tests.support.slack import SlackReceiver

FIRST_DAY = date(2026, 11, 1)
IMAGE = f"shipshape:test-{git_sha(short=True)}"


@dataclass(frozen=True)
class Platform:
    api_urls: dict[str, str]  # per environment: its own Prefect API
    homes: dict[str, Path]
    environments: dict[str, EnvironmentValues]
    applies: dict[str, list[subprocess.CompletedProcess[str]]]  # per environment: apply, apply again, plan
    deploys: dict[str, subprocess.CompletedProcess[str]]
    data_dir: Path
    slack: SlackReceiver

    def env(self, name: str) -> dict[str, str]:
        return {
            "PREFECT_API_URL": self.api_urls[name], "PREFECT_HOME": str(self.homes[name]),
            **self.environments[name].values,
        }

    @contextmanager
    def client(self, name: str) -> Iterator[SyncPrefectClient]:
        """A client of the environment's own API."""
        with temporary_settings({PREFECT_API_URL: self.api_urls[name]}), get_client(sync_client=True) as client:
            yield client

    def secret_values(self) -> list[str]:
        return [value for env in self.environments.values() for value in env.secret_values()]

    def channel(self, name: str) -> str:
        """The path of the environment's Slack webhook on the local receiver."""
        return self.environments[name].values["SHIPSHAPE_SLACK_WEBHOOK_URL"].removeprefix(f"{self.slack.base_url}/")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    homes = {name: tmp_path_factory.mktemp(f"prefect-home-{name}") for name in ENVIRONMENTS}
    slack = SlackReceiver()
    envs = {name: environment_values(name, slack.base_url) for name in ENVIRONMENTS}
    data_dir = tmp_path_factory.mktemp("shop-data")
    generate(data_dir / "shop.db", FIRST_DAY, 2)
    warehouses = databases([env.database for env in envs.values()])
    with slack.serving(), new_roles_dropped(), warehouses, real_prefect_servers(homes) as api_urls:
        platform = Platform(api_urls, homes, envs, {}, {}, data_dir, slack)
        for name in envs:
            infra = [cli("python"), "-m", "infra"]
            platform.applies[name] = [
                run([*infra, "apply", "--env", name], platform.env(name)),
                run([*infra, "apply", "--env", name], platform.env(name)),
                run([*infra, "plan", "--env", name], platform.env(name)),
            ]
            deploy_env = {**platform.env(name), "DEPLOY_ENV": name, "SHIPSHAPE_IMAGE": IMAGE}
            platform.deploys[name] = run([cli("prefect"), "--no-prompt", "deploy", "--all"], deploy_env)
        yield platform


@pytest.fixture(scope="module")
def dev_worker(platform: Platform) -> Iterator[Path]:
    extra = {"SHIPSHAPE_DATA_DIR": str(platform.data_dir)}
    with worker(platform.api_urls["dev"], platform.homes["dev"], "dev", "process", extra) as log_path:
        yield log_path


def run_and_wait(platform: Platform, deployment: str, **options: object) -> FlowRun:
    """Runs `<pipeline>-<env>` on that environment's API."""
    with temporary_settings({PREFECT_API_URL: platform.api_urls[deployment.rsplit("-", 1)[1]]}):
        parameters = {"start_date": FIRST_DAY, "end_date": FIRST_DAY}
        flow_run = run_deployment(f"run-pipeline/{deployment}", parameters=parameters, timeout=600, poll_interval=1,
                                  **options)
    assert flow_run.state is not None and flow_run.state.is_final(), f"{deployment} did not finish: {flow_run.state}"
    return flow_run


def published_rows(env: EnvironmentValues) -> int:
    """Read as the consumer: published data is what the read-only role sees."""
    with psycopg.connect(env.role_url("consumer")) as connection:
        return connection.execute("SELECT count(*) FROM analytics.fct_orders").fetchone()[0]


def ledger_code_versions(env: EnvironmentValues) -> set[str]:
    with psycopg.connect(env.values["SHIPSHAPE_WAREHOUSE_ADMIN_URL"]) as connection:
        rows = connection.execute("SELECT DISTINCT code_version FROM platform.publish_ledger").fetchall()
    return {row[0] for row in rows}


def test_infra_apply_creates_everything_once_and_then_changes_nothing(platform: Platform) -> None:
    for name, (first, second, plan) in platform.applies.items():
        assert first.returncode == 0, first.stderr
        pool_line = f"+ work pool shipshape-{name} ({ENVIRONMENTS[name].pool_type}, concurrency "
        assert pool_line in first.stdout
        # Roles are cluster-wide and may exist already; their grants in this environment's new database may not.
        assert first.stdout.splitlines()[0] == (
            f"+ api mark shipshape-environment ({name} on {platform.api_urls[name]})"
        ), "the mark is checked and set before anything else"
        for line in (f"+ grant USAGE, CREATE on schema audit to shipshape_{name}_loader",
                     f"+ block shipshape-warehouse warehouse-{name}",
                     f"+ block secret pii-hash-key-{name}", f"+ automation shipshape-{name}-platform-failed",
                     f"+ block slack-incoming-webhook slack-{name}-commerce-data",
                     f"+ automation shipshape-{name}-shop_orders-run-failed"):
            assert line in first.stdout
        assert second.stdout.splitlines()[0] == "no changes", second.stdout
        assert plan.stdout.splitlines() == ["no changes", f"{name}: would change 0 object(s)"]


def api_contents(platform: Platform, name: str) -> dict[str, object]:
    """What an environment's API holds that apply or deploy could write: pools, blocks, automations, variables."""
    with platform.client(name) as client:
        return {
            "pools": sorted(pool.name for pool in client.read_work_pools()),
            "blocks": sorted((d.name, d.updated) for d in client.read_block_documents(include_secrets=False)),
            "automations": sorted((a.name, str(a.id)) for a in client.read_automations()),
            "variables": sorted((v.name, str(v.value), v.updated) for v in client.read_variables()),
            "deployments": sorted((d.name, d.updated) for d in client.read_deployments()),
        }


def test_staging_is_refused_on_dev_s_api_before_anything_changes_there_or_in_its_warehouse(platform: Platform) -> None:
    """One wrong PREFECT_API_URL: staging's values, dev's API. Plan, apply and deploy each stop with one line."""
    before = api_contents(platform, "dev")
    fresh = f"shipshape_test_refused_{platform.environments['staging'].database[-8:]}"
    with databases([fresh]):
        on_dev = {
            **platform.env("staging"), "PREFECT_API_URL": platform.api_urls["dev"],
            "PREFECT_HOME": str(platform.homes["dev"]), "SHIPSHAPE_WAREHOUSE_ADMIN_URL": database_url(fresh),
        }
        refusal = (
            f"the Prefect API at {platform.api_urls['dev']} belongs to environment 'dev' (Prefect variable "
            "'shipshape-environment'), but {what} is for 'staging'; refused before anything was read or changed: "
            "point PREFECT_API_URL at the 'staging' environment's own Prefect API"
        )
        for command in ("plan", "apply"):
            result = run([cli("python"), "-m", "infra", command, "--env", "staging"], on_dev)
            assert (result.returncode, result.stdout) == (1, ""), result.stdout + result.stderr
            assert result.stderr == f"error: {refusal.format(what='`make apply ENV=staging`')}\n"
        # Registers nothing: dev's API has no staging pool, so Prefect stops before the build step's own refusal
        # (`deploy_settings`, tested in test_block_environments.py).
        deploy = run([cli("prefect"), "--no-prompt", "deploy", "--all"],
                     {**on_dev, "DEPLOY_ENV": "staging", "SHIPSHAPE_IMAGE": IMAGE})
        assert deploy.returncode != 0
        with psycopg.connect(database_url(fresh)) as warehouse:
            schemas = warehouse.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname IN ('audit', 'platform', 'analytics')"
            ).fetchall()
    assert schemas == [], "the warehouse was changed before the API was checked"
    assert api_contents(platform, "dev") == before


def test_apply_updates_exactly_what_changed_and_plan_said_so(platform: Platform) -> None:
    infra = [cli("python"), "-m", "infra"]
    changed = {**platform.env("prod"), "SHIPSHAPE_DOCKER_NETWORK": "shipshape", "SHIPSHAPE_SLACK_WEBHOOK_URL": "http://x"}
    # The owners' channel has no webhook of its own here, so it follows the environment's.
    expected = [
        "~ work pool shipshape-prod (base job template)",
        "~ block slack-incoming-webhook slack-prod",
        "~ block slack-incoming-webhook slack-prod-commerce-data",
    ]
    plan = run([*infra, "plan", "--env", "prod"], changed)
    apply = run([*infra, "apply", "--env", "prod"], changed)
    restore = run([*infra, "apply", "--env", "prod"], platform.env("prod"))
    assert plan.stdout.splitlines() == [*expected, "prod: would change 3 object(s)"], plan.stdout + plan.stderr
    assert apply.stdout.splitlines() == [*expected, "prod: changed 3 object(s)"]
    assert restore.stdout.splitlines() == [*expected, "prod: changed 3 object(s)"]


def test_pools_are_process_for_dev_and_docker_for_staging_and_prod(platform: Platform) -> None:
    pools = {}
    for name in ENVIRONMENTS:
        with platform.client(name) as client:
            found = {pool.name: pool for pool in client.read_work_pools()}
        assert set(found) <= {f"shipshape-{name}", "default-agent-pool"}, f"{name}'s API holds {set(found)}"
        pools.update(found)
    assert {name: pools[f"shipshape-{name}"].type for name in ENVIRONMENTS} == {
        "dev": "process", "staging": "docker", "prod": "docker",
    }
    docker_defaults = pools["shipshape-prod"].base_job_template["variables"]["properties"]
    # The test engine's override (tests/support/platform.py); production's default is tested in tests/unit.
    assert docker_defaults["network_mode"]["default"] == "host"
    assert docker_defaults["mem_limit"]["default"] == "2g"
    assert docker_defaults["env"]["default"] == {"SHIPSHAPE_ENV": "prod", "SHIPSHAPE_WAREHOUSE_BLOCK": "warehouse-prod"}
    # Pipelines' queue + the platform's queue (backfill and monitor runs wait on pipeline runs: never on their slots).
    assert {pool.concurrency_limit for name, pool in pools.items() if name.startswith("shipshape-")} == {4, 6}
    with platform.client("dev") as client:
        dev_queues = client.read_work_queues(work_pool_name="shipshape-dev")
    queues = {queue.name: queue.concurrency_limit for queue in dev_queues}
    assert queues == {"default": 2, "platform": 2}


def test_deploy_all_registers_each_environment_with_its_pool_image_schedule_and_blocks(platform: Platform) -> None:
    for result in platform.deploys.values():
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    kinds = ("shop_orders", "backfill", "rollback", "monitor")
    for name, env in ENVIRONMENTS.items():
        with platform.client(name) as client:
            deployments = {deployment.name: deployment for deployment in client.read_deployments()}
        assert set(deployments) == {f"{kind}-{name}" for kind in kinds}, f"{name}'s API holds only its own"
        scheduled, backfill, rollback, monitor = (deployments[f"{kind}-{name}"] for kind in kinds)
        for deployment in (scheduled, backfill, rollback, monitor):
            assert deployment.work_pool_name == f"shipshape-{name}"
            assert deployment.job_variables == {
                "image": IMAGE, "env": {"SHIPSHAPE_ENV": name, "SHIPSHAPE_WAREHOUSE_BLOCK": f"warehouse-{name}"},
            }
            assert f"env:{name}" in deployment.tags
        assert scheduled.parameters == {"pipeline": "shop_orders"}
        assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in scheduled.schedules] == [
            ("30 2 * * *", "UTC", env.schedules_active)
        ]
        assert backfill.parameters == {} and backfill.schedules == []
        assert rollback.parameters == {} and rollback.schedules == []  # an operator's form, never on a schedule
        assert [(s.schedule.interval.total_seconds(), s.active) for s in monitor.schedules] == [
            (300, env.schedules_active)
        ]


def test_deploy_refuses_an_unknown_environment_and_a_docker_environment_without_an_image(platform: Platform) -> None:
    unknown = run([cli("prefect"), "--no-prompt", "deploy", "--all"], {**platform.env("dev"), "DEPLOY_ENV": "qa"})
    assert unknown.returncode != 0
    assert "shipshape-qa" in unknown.stdout + unknown.stderr
    no_image = {**platform.env("staging"), "DEPLOY_ENV": "staging", "SHIPSHAPE_IMAGE": ""}
    missing = run([cli("prefect"), "--no-prompt", "deploy", "--all"], no_image)
    assert missing.returncode != 0
    assert "SHIPSHAPE_IMAGE is not set: staging runs the promoted image" in missing.stdout + missing.stderr


def test_a_process_worker_runs_the_dev_deployment_and_publishes(platform: Platform, dev_worker: Path) -> None:
    flow_run = run_and_wait(platform, "shop_orders-dev")
    assert flow_run.state.is_completed(), f"{flow_run.state.message}\n{dev_worker.read_text()[-3000:]}"
    assert published_rows(platform.environments["dev"]) == 2399


def test_a_missing_block_fails_the_run_naming_the_block_and_the_fix(platform: Platform, dev_worker: Path) -> None:
    assert run_and_wait(platform, "shop_orders-dev").state.is_completed()  # arms the failure alert
    wrong = {"env": {"SHIPSHAPE_ENV": "dev", "SHIPSHAPE_WAREHOUSE_BLOCK": "warehouse-dve"}}
    flow_run = run_and_wait(platform, "shop_orders-dev", job_variables=wrong)
    assert flow_run.state.is_failed()
    assert (
        "warehouse block 'warehouse-dve' (named by SHIPSHAPE_WAREHOUSE_BLOCK) does not exist on this Prefect API "
        "as a 'shipshape-warehouse' block; create it with `make apply ENV=dev`"
    ) in flow_run.state.message
    # The pipeline's automation, created by `make apply`, posts it to the owners' channel (here: the environment's).
    [alert] = platform.slack.wait_for(platform.channel("dev"), f"/runs/flow-run/{flow_run.id}")
    assert f"the run ended Failed.\nError: {flow_run.state.message}" in alert.text


def test_a_block_with_wrong_settings_fails_the_run_naming_the_block_and_is_not_retried(
    platform: Platform, dev_worker: Path
) -> None:
    with temporary_settings({PREFECT_API_URL: platform.api_urls["dev"]}):
        WarehouseConnection(
            host="127.0.0.1", port=int(platform.environments["dev"].values["SHIPSHAPE_WAREHOUSE_PORT"]),
            database="no_such_database", loader_user="shipshape_dev_loader",
            loader_password="x", publisher_user="shipshape_dev_publisher", publisher_password="x",
            monitor_user="shipshape_dev_monitor", monitor_password="x",
        ).save("warehouse-broken", overwrite=True)
    wrong = {"env": {"SHIPSHAPE_ENV": "dev", "SHIPSHAPE_WAREHOUSE_BLOCK": "warehouse-broken"}}
    flow_run = run_and_wait(platform, "shop_orders-dev", job_variables=wrong)
    assert flow_run.state.is_failed()
    message = flow_run.state.message
    assert 'database "no_such_database" does not exist' in message
    assert "the loader connection comes from warehouse block 'warehouse-broken' (fix it with `make apply ENV=dev`)" in (
        message
    )
    assert flow_run.run_count == 1


def test_a_docker_worker_runs_the_staging_deployment_inside_the_built_image(
    platform: Platform, project_image: str, docker_host: str
) -> None:
    assert project_image == IMAGE, "the deployments were registered with the image this session builds"
    platform.data_dir.chmod(0o755)  # the image's non-root user reads the shop database through the mount
    (platform.data_dir / "shop.db").chmod(0o644)
    mount = {"volumes": [f"{platform.data_dir}:/var/lib/shipshape"]}
    with worker(platform.api_urls["staging"], platform.homes["staging"], "staging", "docker",
                {"DOCKER_HOST": docker_host}) as log_path:
        flow_run = run_and_wait(platform, "shop_orders-staging", job_variables=mount)
        assert flow_run.state.is_completed(), f"{flow_run.state.message}\n{log_path.read_text()[-3000:]}"
    staging = platform.environments["staging"]
    assert published_rows(staging) == 2399
    # The image bakes the full git sha as its code version; runs from a checkout record a 12-character one.
    assert ledger_code_versions(staging) == {git_sha(short=False)}
    assert "Docker container" in log_path.read_text()


def test_no_secret_value_reaches_logs_parameters_or_deployments(platform: Platform, dev_worker: Path) -> None:
    run_and_wait(platform, "shop_orders-dev")  # at least one run whose logs are checked, whatever ran before
    run_logs, deployments, flow_runs = "", "", ""
    for name in ENVIRONMENTS:
        with platform.client(name) as client:
            run_logs += "\n".join(log.message for log in client.read_logs())
            deployments += json.dumps([d.model_dump(mode="json") for d in client.read_deployments()])
            flow_runs += json.dumps([r.model_dump(mode="json") for r in client.read_flow_runs()])
    outputs = [result.stdout + result.stderr for results in platform.applies.values() for result in results]
    outputs += [result.stdout + result.stderr for result in platform.deploys.values()]
    texts = {
        "flow run logs": run_logs, "deployments": deployments, "flow runs (parameters)": flow_runs,
        "infra and deploy output": "\n".join(outputs), "worker log": dev_worker.read_text(),
        "server logs": "\n".join((home / "server.log").read_text() for home in platform.homes.values()),
    }
    assert "Published 1 partition(s) of shop_orders" in run_logs
    for secret in platform.secret_values():
        for where, text in texts.items():
            assert secret not in text, f"a secret value appears in the {where}"
