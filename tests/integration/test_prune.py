"""`infra plan/apply` prune what the platform created for a removed pipeline, and nothing anyone else made.

Against Prefect's real (test) API, in-process: the Prefect side of `python -m infra` (`reconcile_prefect`);
the warehouse side creates cluster-wide roles and is covered by test_deploy.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags
from prefect_slack import SlackWebhook

from deployments import environments
from deployments.prefect_yaml import ENV, render
from infra.__main__ import reconcile_prefect
from infra.ownership import created
from shipshape import names
from shipshape.catalog import load_all
from shipshape.settings import PACKAGE_ROOT
from tests.support.project import EXAMPLE_FILES, copy_example

ENV_NAME = "dev"
REMOVED = "shop_refunds"


@pytest.fixture
def two_pipelines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """shop_orders and shop_refunds (own channel, own PII Secret block), and the values `make apply` reads."""
    copy_example(tmp_path)
    refunds = yaml.safe_load((tmp_path / EXAMPLE_FILES[0]).read_text())
    # A pipeline reads only its own folder: the copy gets its own transform file.
    (tmp_path / "pipelines" / REMOVED).mkdir()
    shutil.copy(PACKAGE_ROOT / EXAMPLE_FILES[1], tmp_path / "pipelines" / REMOVED / "fct_refunds.sql")
    refunds |= {
        "name": REMOVED, "destination": {"table": "fct_refunds"}, "transform": [f"pipelines/{REMOVED}/fct_refunds.sql"]
    }
    refunds["owner"]["slack_channel"] = "#refunds-data"
    refunds["pii"]["key"] = {"block": "refunds-pii-key-{env}"}
    (tmp_path / "pipelines" / f"{REMOVED}.yaml").write_text(yaml.safe_dump(refunds))
    monkeypatch.setenv("SHIPSHAPE_PROJECT_DIR", str(tmp_path))
    for name, value in {
        "SHIPSHAPE_WAREHOUSE_HOST": "127.0.0.1", "SHIPSHAPE_WAREHOUSE_DATABASE": "shipshape_prune",
        "SHIPSHAPE_LOADER_PASSWORD": "loader-pw", "SHIPSHAPE_PUBLISHER_PASSWORD": "publisher-pw",
        "SHIPSHAPE_MONITOR_PASSWORD": "monitor-pw",
        "SHIPSHAPE_SLACK_WEBHOOK_URL": "http://127.0.0.1:9/slack", "SHIPSHAPE_SECRET_PII_HASH_KEY": "pii-key",
        "SHIPSHAPE_SECRET_REFUNDS_PII_KEY": "refunds-key",
    }.items():
        monkeypatch.setenv(name, value)
    return tmp_path


@pytest.fixture
def foreign_objects(prefect_api: str) -> Iterator[None]:
    """Objects someone else made, named like the platform's: a deployment and a Slack block.

    Afterwards everything of the environment goes, so no other test on the session's API meets its automations.
    """
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("someone-elses-flow")
        client.create_deployment(flow_id, f"{REMOVED}-{ENV_NAME}", tags=[f"env:{ENV_NAME}"])
    SlackWebhook(url="http://127.0.0.1:9/theirs").save(f"slack-{ENV_NAME}-theirs", overwrite=True)
    yield
    with get_client(sync_client=True) as client:
        for automation in client.read_automations():
            if automation.name.startswith(names.automation_prefix(ENV_NAME)):
                client.delete_automation(automation.id)
        for deployment in client.read_deployments(deployment_filter=DeploymentFilter(
                tags=DeploymentFilterTags(all_=[names.env_tag(ENV_NAME)]))):
            client.delete_deployment(deployment.id)
        ours = created(client, ENV_NAME, "block") | {f"slack-incoming-webhook slack-{ENV_NAME}-theirs"}
        for document in client.read_block_documents(include_secrets=False):
            if document.block_type and f"{document.block_type.slug} {document.name}" in ours:
                client.delete_block_document(document.id)
        for kind in ("block", "work queue"):
            client.delete_variable_by_name(names.created_record(ENV_NAME, kind))
        client.delete_work_pool(names.pool_name(ENV_NAME))


def _register_deployments() -> None:
    """What `make deploy ENV=dev` registers: the deployments of the rendered prefect.yaml, with their tags."""
    document = yaml.safe_load(render(load_all()).replace(ENV, ENV_NAME))
    with get_client(sync_client=True) as client:
        for deployment in document["deployments"]:
            flow_id = client.create_flow_from_name(deployment["entrypoint"].rsplit(":", 1)[1])
            client.create_deployment(flow_id, deployment["name"], tags=deployment["tags"])


def _lines(dry_run: bool) -> list[str]:
    return [str(change) for change in reconcile_prefect(environments.environment(ENV_NAME), dry_run=dry_run)]


def test_plan_and_apply_delete_only_what_the_platform_made_for_a_removed_pipeline(
    two_pipelines: Path, foreign_objects: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as renamed:  # an earlier release's platform queue, to be pruned after the rename
        renamed.setattr(environments, "PLATFORM_QUEUE", "platform-old")
        _lines(dry_run=False)
    _register_deployments()
    with get_client(sync_client=True) as client:
        client.create_work_queue("adhoc", work_pool_name=f"shipshape-{ENV_NAME}")  # someone's own queue
    (two_pipelines / "pipelines" / f"{REMOVED}.yaml").unlink()

    removals = {
        f"- work queue shipshape-{ENV_NAME}/platform-old",
        f"- block slack-incoming-webhook slack-{ENV_NAME}-refunds-data",
        f"- block secret refunds-pii-key-{ENV_NAME}",
        *(f"- automation shipshape-{ENV_NAME}-{REMOVED}-{alert}"
          for alert in ("run-failed", "audit-blocked", "recovered", "incidents")),
        f"- deployment {REMOVED}-{ENV_NAME}",
    }
    plan = _lines(dry_run=True)
    assert {line for line in plan if line.startswith("-")} == removals
    applied = _lines(dry_run=False)
    assert set(applied) == set(plan)
    assert _lines(dry_run=False) == []

    with get_client(sync_client=True) as client:
        deployments = {(d.name, tuple(d.tags)) for d in client.read_deployments()}
        queues = {queue.name for queue in client.read_work_queues(work_pool_name=f"shipshape-{ENV_NAME}")}
    assert (f"{REMOVED}-{ENV_NAME}", (f"env:{ENV_NAME}",)) in deployments  # the foreign one, same name
    assert {name for name, _ in deployments} >= {f"shop_orders-{ENV_NAME}", f"backfill-{ENV_NAME}"}
    assert queues == {"default", "platform", "adhoc"}
    assert SlackWebhook.load(f"slack-{ENV_NAME}-theirs").url.get_secret_value() == "http://127.0.0.1:9/theirs"
    assert Secret.load(f"pii-hash-key-{ENV_NAME}").get() == "pii-key"
