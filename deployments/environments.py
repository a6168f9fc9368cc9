"""The environments the same image is promoted through, and everything that differs between them.

One table, read by three consumers: `prefect deploy` (through `deploy_settings`, a deployment build step
that needs no Docker engine), `infra` (work pools, blocks, automations, roles) and the docs. What an
environment is *not* allowed to differ in is the code: every environment runs the same image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

from runtime.api_mark import refuse_another_environments_api
from shipshape import names
from shipshape.cost import CostModel
from shipshape.errors import ConfigurationError
from shipshape.settings import code_version

PoolType = Literal["process", "docker"]
# Backfill and monitor runs wait on pipeline runs: on the pipelines' queue they could take every slot
# and wait forever. They get their own queue of the same pool, with its own limit.
PIPELINE_QUEUE = "default"
PLATFORM_QUEUE = "platform"
PLATFORM_CONCURRENCY = 2


@dataclass(frozen=True)
class Environment:
    name: str
    pool_type: PoolType
    schedules_active: bool
    pool_concurrency: int  # pipeline runs at once (the pipelines' queue); the pool adds the platform's slots
    # The rates `shipshape cost` and budgets price with (default: `CostModel`'s documented assumptions); apply stores
    # them as a Prefect variable (infra/cost_model.py).
    cost_model: CostModel = field(default_factory=CostModel)

    @property
    def pool_name(self) -> str:
        return names.pool_name(self.name)

    @property
    def queue_limits(self) -> dict[str, int]:
        """Each queue of the pool and how many of its runs may run at once."""
        return {PIPELINE_QUEUE: self.pool_concurrency, PLATFORM_QUEUE: PLATFORM_CONCURRENCY}

    @property
    def warehouse_block(self) -> str:
        return names.warehouse_block(self.name)

    @property
    def slack_block(self) -> str:
        return names.slack_block(self.name)

    def channel_block(self, channel_slug: str) -> str:
        return names.channel_block(self.name, channel_slug)

    def role(self, purpose: names.RolePurpose) -> str:
        return names.role_name(self.name, purpose)

    def job_env(self) -> dict[str, str]:
        """What a flow run needs to find its environment's blocks; names only, never values."""
        return {"SHIPSHAPE_ENV": self.name, "SHIPSHAPE_WAREHOUSE_BLOCK": self.warehouse_block}


# The names are `shipshape.names.ENVIRONMENTS`: a run (below this layer) tells each environment's blocks apart by them.
_DEV, _STAGING, _PROD = names.ENVIRONMENTS

ENVIRONMENTS: dict[str, Environment] = {
    env.name: env
    for env in (
        # dev: process worker on a developer's or CI machine; schedules paused, runs are started by hand.
        Environment(_DEV, pool_type="process", schedules_active=False, pool_concurrency=2),
        Environment(_STAGING, pool_type="docker", schedules_active=True, pool_concurrency=4),
        Environment(_PROD, pool_type="docker", schedules_active=True, pool_concurrency=4),
    )
}


def environment(name: str | None) -> Environment:
    """The named environment, or an error listing the valid names and how to choose one."""
    if name in ENVIRONMENTS:
        return ENVIRONMENTS[name]
    raise ConfigurationError(
        f"DEPLOY_ENV={name!r} is not an environment; use one of {', '.join(ENVIRONMENTS)} "
        "(e.g. `DEPLOY_ENV=staging prefect deploy --all`, or `make deploy ENV=staging`)"
    )


def deploy_settings(environment_name: str | None = None) -> dict[str, Any]:
    """Deployment build step: the chosen environment's job variables and schedule state.

    prefect.yaml calls it as `deployments.environments.deploy_settings` and templates
    `{{ environment.image }}`, `{{ environment.env }}` and `{{ environment.schedules_active }}` from it.
    Every environment records the same image; dev's process pool runs the worker's checkout instead. A Prefect API
    marked for another environment (`make apply`, `runtime.api_mark`) is refused before anything is registered.
    """
    env = environment(environment_name or os.environ.get("DEPLOY_ENV"))
    image = os.environ.get("SHIPSHAPE_IMAGE")
    if not image and env.pool_type == "docker":
        raise ConfigurationError(
            f"SHIPSHAPE_IMAGE is not set: {env.name} runs the promoted image; set it to the image built "
            "for this commit, e.g. SHIPSHAPE_IMAGE=ghcr.io/acme/shipshape@sha256:... (`make deploy IMAGE=...`)"
        )
    refuse_another_environments_api(env.name, f"`prefect deploy` (DEPLOY_ENV={env.name})")
    return {
        "image": image or f"shipshape:{code_version()}",
        "env": env.job_env(),
        "schedules_active": env.schedules_active,
    }
