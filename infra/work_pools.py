"""Work pools as code: one per environment, its base job template and its concurrency limit.

Docker pools get the defaults every run of that environment shares (network, resources, pull policy,
the environment's name); the image itself comes from each deployment, so promotion is a deploy, not an
infra change.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.exceptions import ObjectNotFound

from deployments.environments import Environment
from infra.changes import Change
from shipshape.errors import ConfigurationError

# Containers reach the warehouse and the Prefect API through this Docker network ("host" on a single machine).
DOCKER_NETWORK_VARIABLE = "SHIPSHAPE_DOCKER_NETWORK"
MEMORY_LIMIT = "2g"


def reconcile(client: SyncPrefectClient, env: Environment, *, dry_run: bool) -> list[Change]:
    template = base_job_template(env)
    description = f"shipshape {env.name}: {env.pool_type} runs of the declared pipelines"
    try:
        pool = client.read_work_pool(env.pool_name)
    except ObjectNotFound:
        if not dry_run:
            client.create_work_pool(
                WorkPoolCreate(
                    name=env.pool_name, type=env.pool_type, base_job_template=template,
                    concurrency_limit=env.pool_concurrency, description=description,
                )
            )
        return [Change("work pool", env.pool_name, "create", f"{env.pool_type}, concurrency {env.pool_concurrency}")]
    if pool.type != env.pool_type:
        raise ConfigurationError(
            f"work pool {env.pool_name!r} exists with type {pool.type!r}, but {env.name} needs {env.pool_type!r}; "
            f"delete it (`prefect work-pool delete {env.pool_name}`) and apply again"
        )
    differs = [
        field
        for field, current, wanted in (
            ("base job template", pool.base_job_template, template),
            ("concurrency limit", pool.concurrency_limit, env.pool_concurrency),
            ("description", pool.description, description),
        )
        if current != wanted
    ]
    if not differs:
        return []
    if not dry_run:
        client.update_work_pool(
            env.pool_name,
            WorkPoolUpdate(base_job_template=template, concurrency_limit=env.pool_concurrency, description=description),
        )
    return [Change("work pool", env.pool_name, "update", ", ".join(differs))]


def base_job_template(env: Environment) -> dict[str, Any]:
    """The worker type's default template with this environment's defaults filled in."""
    if env.pool_type == "process":
        from prefect.workers.process import ProcessWorker

        template = copy.deepcopy(ProcessWorker.get_default_base_job_template())
        defaults = {"env": env.job_env()}
    else:
        from prefect_docker.worker import DockerWorker

        template = copy.deepcopy(DockerWorker.get_default_base_job_template())
        defaults = {
            "env": env.job_env(),
            "network_mode": os.environ.get(DOCKER_NETWORK_VARIABLE, "host"),
            "mem_limit": MEMORY_LIMIT,
            # Promoted images are addressed by digest and pulled once; a local engine keeps its own build.
            "image_pull_policy": "IfNotPresent",
            "auto_remove": True,
        }
    for name, value in defaults.items():
        template["variables"]["properties"][name]["default"] = value
    return template
