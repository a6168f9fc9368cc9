"""Renders prefect.yaml from the pipeline declarations: one source of truth for schedules and owners.

Written by `python -m deployments.generate` (with CODEOWNERS and the runbooks), so adding a pipeline
never means hand-editing prefect.yaml. Each entry is written once for every environment: names, pool
and tags carry `{{ $DEPLOY_ENV }}`, and the environment's image, run environment and schedule state come
from the `deploy_settings` build step (deployments/environments.py). Besides one deployment per pipeline
there are three platform deployments: `backfill-<env>` (the UI's backfill form), `rollback-<env>` (the UI's
rollback form) and `monitor-<env>` (freshness, SLOs and burn-rate alerts, every few minutes).
"""

from __future__ import annotations

from typing import Any

import yaml

from deployments.environments import PIPELINE_QUEUE, PLATFORM_QUEUE
from shipshape import names
from shipshape.catalog import DeclaredPipeline

ENTRYPOINT = "flows/run_pipeline.py:run_pipeline"
BACKFILL_ENTRYPOINT = "flows/backfill.py:backfill"
ROLLBACK_ENTRYPOINT = "flows/rollback.py:rollback"
MONITOR_ENTRYPOINT = "flows/monitor.py:monitor"
MONITOR_INTERVAL_SECONDS = 300
ENV = "{{ $DEPLOY_ENV }}"
HEADER = """\
# Generated from pipelines/*.yaml by `python -m deployments.generate`. Do not edit by hand.
# Deploy one environment at a time: `DEPLOY_ENV=staging SHIPSHAPE_IMAGE=<image> prefect deploy --all`
# (or `make deploy ENV=staging IMAGE=<image>`). Environments are defined in deployments/environments.py.
"""


def render(pipelines: list[DeclaredPipeline]) -> str:
    document: dict[str, Any] = {
        "name": "shipshape",
        "prefect-version": "3.8.8",
        "build": [
            {"deployments.environments.deploy_settings": {"id": "environment", "environment_name": ENV}},
        ],
        "push": None,
        "pull": [{"deployments.pull.enter_project_dir": {}}],
        "deployments": [_scheduled(declared) for declared in pipelines]
        + [_backfill(), _rollback(), _monitor(pipelines)],
    }
    return HEADER + yaml.safe_dump(document, sort_keys=False)


def _scheduled(declared: DeclaredPipeline) -> dict[str, Any]:
    spec = declared.spec
    schedule = {
        "cron": spec.schedule.cron,
        "timezone": spec.schedule.timezone,
        "active": "{{ environment.schedules_active }}",
    }
    return {
        "name": names.deployment_name(spec.name, ENV),
        "description": spec.description,
        "entrypoint": ENTRYPOINT,
        "parameters": {"pipeline": spec.name},
        "schedules": [schedule],
        "tags": [names.DEPLOYMENT_TAG, names.env_tag(ENV), f"team:{spec.owner.team}", names.pipeline_tag(spec.name)],
        "work_pool": _work_pool(),
    }


def _backfill() -> dict[str, Any]:
    """Backfills from the UI's Custom Run form: pipeline dropdown, dates, mode, dry run, concurrency."""
    return _operator_form(
        names.backfill_deployment(ENV),
        BACKFILL_ENTRYPOINT,
        "Backfill a pipeline's partitions from the publish ledger (missing, failed or all); "
        "dry_run shows the plan without running anything.",
    )


def _rollback() -> dict[str, Any]:
    """Rollbacks from the UI's Custom Run form: pipeline dropdown, partition, version (list_versions shows them)."""
    return _operator_form(
        names.rollback_deployment(ENV),
        ROLLBACK_ENTRYPOINT,
        "Restore a partition as an earlier publish left it (kept for the pipeline's history.retention), "
        "or undo everything one flow run published; list_versions shows the partition's versions from the ledger.",
    )


def _operator_form(name: str, entrypoint: str, description: str) -> dict[str, Any]:
    """A platform flow an operator starts from the UI's form: no schedule, on the platform's own queue."""
    return {
        "name": name,
        "description": description,
        "entrypoint": entrypoint,
        "tags": [names.DEPLOYMENT_TAG, names.env_tag(ENV), names.PLATFORM_TAG],
        "work_pool": _work_pool(PLATFORM_QUEUE),
    }


def _monitor(pipelines: list[DeclaredPipeline]) -> dict[str, Any]:
    schedule = {"interval": MONITOR_INTERVAL_SECONDS, "active": "{{ environment.schedules_active }}"}
    return {
        "name": names.monitor_deployment(ENV),
        "description": "Freshness from the publish ledger, SLOs and error budgets; opens and resolves incidents.",
        "entrypoint": MONITOR_ENTRYPOINT,
        "schedules": [schedule],
        "tags": [names.DEPLOYMENT_TAG, names.env_tag(ENV), names.PLATFORM_TAG],
        "work_pool": _work_pool(PLATFORM_QUEUE),
        "triggers": [_freshness_trigger(declared) for declared in pipelines],
    }


def _freshness_trigger(declared: DeclaredPipeline) -> dict[str, Any]:
    """Proactive: no Completed run of the pipeline's deployment within its SLA → run the monitor for it now.

    Prefect arms it at the first Completed run and fires once per lapse, on time (not at the next monitor
    tick); the monitor then reads the ledger and opens the incident, so the alert has one path and one text.
    """
    spec = declared.spec
    deployment = names.deployment_name(spec.name, ENV)
    return {
        "name": f"{deployment} freshness SLA {spec.freshness.sla}",
        "description": f"No completed run of {deployment} within {spec.freshness.sla}: run the monitor for it.",
        "enabled": True,
        "posture": "Proactive",
        "after": ["prefect.flow-run.Completed"],
        "expect": ["prefect.flow-run.Completed"],
        "match_related": {"prefect.resource.role": "deployment", "prefect.resource.name": deployment},
        "for_each": ["related:deployment:prefect.resource.id"],
        "threshold": 1,
        "within": int(spec.freshness.sla_delta.total_seconds()),
        "parameters": {"pipeline": spec.name},
    }


def _work_pool(queue: str = PIPELINE_QUEUE) -> dict[str, Any]:
    job_variables = {"image": "{{ environment.image }}", "env": "{{ environment.env }}"}
    return {"name": names.pool_name(ENV), "work_queue_name": queue, "job_variables": job_variables}
