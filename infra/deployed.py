"""Deployments of pipelines that are no longer declared: `apply` deletes them so they stop running.

`make deploy` creates and updates deployments from prefect.yaml but never deletes one, so a removed
pipeline's deployment would stay scheduled while its alerts (pruned automations) tell nobody it fails.
Only deployments tagged as the platform's in this environment are candidates.
"""

from __future__ import annotations

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

from deployments.environments import Environment
from infra.changes import Change
from infra.ownership import prune
from shipshape import names
from shipshape.catalog import load_all


def declared_deployments(env: Environment) -> set[str]:
    """Every deployment prefect.yaml registers in `env`: one per declared pipeline, backfill, rollback, monitor."""
    pipelines = {names.deployment_name(declared.spec.name, env.name) for declared in load_all()}
    return pipelines | {
        names.backfill_deployment(env.name),
        names.rollback_deployment(env.name),
        names.monitor_deployment(env.name),
    }


def reconcile(client: SyncPrefectClient, env: Environment, *, dry_run: bool) -> list[Change]:
    platform_tags = DeploymentFilterTags(all_=[names.DEPLOYMENT_TAG, names.env_tag(env.name)])
    existing = {
        deployment.name: deployment
        for deployment in client.read_deployments(deployment_filter=DeploymentFilter(tags=platform_tags))
    }
    return prune(
        "deployment", existing, declared_deployments(env), owned=lambda _name: True,
        delete=lambda deployment: client.delete_deployment(deployment.id), dry_run=dry_run,
    )
