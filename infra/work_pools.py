"""Work pools as code: one per environment, its base job template, its queues and their concurrency limits.

Two queues: `default` for pipeline runs (a backfill's children included: its limit is what throttles a
backfill across the environment) and `platform` for backfill and monitor runs, so a flow that waits on
pipeline runs never occupies the slots those runs need. The pool's limit is the sum.

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
from prefect.client.schemas.objects import WorkQueue
from prefect.exceptions import ObjectNotFound

from deployments.environments import Environment
from infra.changes import Change
from infra.ownership import created, prune, record_created
from shipshape.errors import ConfigurationError
from shipshape.names import WORKER_MEMORY_GB

# Containers reach the warehouse and the Prefect API through this Docker network. By default a dedicated
# user-defined bridge (`docker network create shipshape` on each worker's engine): a pipeline container then sees
# neither the host's ports nor its other services. "host" is only for engines without a bridge, such as the
# tests' private engine (started with --bridge=none, /work/shared/notes/containers.md), which sets it explicitly.
DOCKER_NETWORK_VARIABLE = "SHIPSHAPE_DOCKER_NETWORK"
DEFAULT_DOCKER_NETWORK = "shipshape"
MEMORY_LIMIT = f"{WORKER_MEMORY_GB}g"  # what the cost model charges per run (`shipshape.names`)
# A process pool's runs start the engine straight away, on the `python` first on the worker's PATH (the worker's
# own: `infra.local.worker.start_worker` puts it first). Left unset, Prefect 3.8's process worker starts a
# workspace supervisor instead, which imports Prefect, runs the pull steps, then execs this same command: a second
# interpreter and Prefect import (~1.5 s) before every run. The engine runs the pull steps itself.
PROCESS_ENGINE_COMMAND = "python -m prefect.engine"
QUEUE_KIND = "work queue"


def reconcile(client: SyncPrefectClient, env: Environment, *, dry_run: bool) -> list[Change]:
    return _reconcile_pool(client, env, dry_run=dry_run) + _reconcile_queues(client, env, dry_run=dry_run)


def pool_limit(env: Environment) -> int:
    return sum(env.queue_limits.values())


def _reconcile_queues(client: SyncPrefectClient, env: Environment, *, dry_run: bool) -> list[Change]:
    """The pool's queues and their limits; before the pool exists (a first plan) every queue is a create."""
    try:
        existing = {queue.name: queue for queue in client.read_work_queues(work_pool_name=env.pool_name)}
    except ObjectNotFound:
        existing = {}
    changes = []
    for name, limit in env.queue_limits.items():
        queue = existing.get(name)
        if queue is not None and queue.concurrency_limit == limit:
            continue
        if not dry_run:
            if queue is None:
                client.create_work_queue(name, work_pool_name=env.pool_name, concurrency_limit=limit)
            else:
                client.update_work_queue(queue.id, concurrency_limit=limit)
        changes.append(Change(QUEUE_KIND, _queue_path(env, name), "update" if queue else "create",
                              f"concurrency {limit}"))
    return changes + _prune_queues(client, env, existing, dry_run=dry_run)


def _prune_queues(
    client: SyncPrefectClient, env: Environment, existing: dict[str, WorkQueue], *, dry_run: bool
) -> list[Change]:
    """Queues an earlier apply created that the environment no longer declares; others in the pool stay."""
    ours = created(client, env.name, QUEUE_KIND)
    declared = {_queue_path(env, name) for name in env.queue_limits}
    changes = prune(
        QUEUE_KIND,
        {_queue_path(env, name): queue for name, queue in existing.items()},
        declared,
        owned=ours.__contains__,
        delete=lambda queue: client.delete_work_queue_by_id(queue.id),
        dry_run=dry_run,
    )
    if not dry_run:
        record_created(client, env.name, QUEUE_KIND, declared)
    return changes


def _queue_path(env: Environment, queue: str) -> str:
    """`shipshape-dev/default`: how changes and the created record name a queue of the pool."""
    return f"{env.pool_name}/{queue}"


def _reconcile_pool(client: SyncPrefectClient, env: Environment, *, dry_run: bool) -> list[Change]:
    template = base_job_template(env)
    description = f"shipshape {env.name}: {env.pool_type} runs of the declared pipelines"
    try:
        pool = client.read_work_pool(env.pool_name)
    except ObjectNotFound:
        if not dry_run:
            client.create_work_pool(
                WorkPoolCreate(
                    name=env.pool_name, type=env.pool_type, base_job_template=template,
                    concurrency_limit=pool_limit(env), description=description,
                )
            )
        return [Change("work pool", env.pool_name, "create", f"{env.pool_type}, concurrency {pool_limit(env)}")]
    if pool.type != env.pool_type:
        raise ConfigurationError(
            f"work pool {env.pool_name!r} exists with type {pool.type!r}, but {env.name} needs {env.pool_type!r}; "
            f"delete it (`prefect work-pool delete {env.pool_name}`) and apply again"
        )
    differs = [
        field
        for field, current, wanted in (
            ("base job template", pool.base_job_template, template),
            ("concurrency limit", pool.concurrency_limit, pool_limit(env)),
            ("description", pool.description, description),
        )
        if current != wanted
    ]
    if not differs:
        return []
    if not dry_run:
        client.update_work_pool(
            env.pool_name,
            WorkPoolUpdate(base_job_template=template, concurrency_limit=pool_limit(env), description=description),
        )
    return [Change("work pool", env.pool_name, "update", ", ".join(differs))]


def base_job_template(env: Environment) -> dict[str, Any]:
    """The worker type's default template with this environment's defaults filled in."""
    if env.pool_type == "process":
        from prefect.workers.process import ProcessWorker

        template = copy.deepcopy(ProcessWorker.get_default_base_job_template())
        defaults: dict[str, object] = {"env": env.job_env(), "command": PROCESS_ENGINE_COMMAND}
    else:
        from prefect_docker.worker import DockerWorker

        template = copy.deepcopy(DockerWorker.get_default_base_job_template())
        defaults = {
            "env": env.job_env(),
            "network_mode": os.environ.get(DOCKER_NETWORK_VARIABLE, DEFAULT_DOCKER_NETWORK),
            "mem_limit": MEMORY_LIMIT,
            # Promoted images are addressed by digest and pulled once; a local engine keeps its own build.
            "image_pull_policy": "IfNotPresent",
            "auto_remove": True,
        }
    for name, value in defaults.items():
        template["variables"]["properties"][name]["default"] = value
    return template
