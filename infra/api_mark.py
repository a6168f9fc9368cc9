"""`make apply` claims its Prefect API for its environment, and refuses an API another environment claimed.

Checked before anything else is planned or changed (warehouse included): a wrong PREFECT_API_URL would otherwise
write this environment's pool, blocks and automations next to another's, and prune theirs. The first apply of an
environment on an unmarked API sets the mark (`runtime.api_mark`); `plan` shows it as `+ api mark …`.
"""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import VariableCreate
from prefect.exceptions import ObjectAlreadyExists

from deployments.environments import Environment
from infra.changes import Change
from runtime.api_mark import another_environments_api, api_environment, api_url
from shipshape import names


def claim(env: Environment, *, dry_run: bool) -> list[Change]:
    """[] when the API is already `env`'s; the mark to set (set unless `dry_run`) when it is nobody's; an error
    naming the API and its environment when it is another's."""
    owner = api_environment()
    if owner == env.name:
        return []
    if owner is not None:
        raise another_environments_api(owner, env.name, f"`make apply ENV={env.name}`")
    if not dry_run:
        try:
            with get_client(sync_client=True) as client:
                client.create_variable(VariableCreate(name=names.API_ENVIRONMENT_VARIABLE, value=env.name))
        except ObjectAlreadyExists:  # another environment's first apply marked it a moment ago: check again
            return claim(env, dry_run=dry_run)
    return [Change("api mark", names.API_ENVIRONMENT_VARIABLE, "create", f"{env.name} on {api_url()}")]
