"""The environment's cost model (`deployments.environments.Environment.cost_model`) as the Prefect variable the
monitor and `shipshape cost` read (`names.cost_model_variable`): rates are data of the environment, like its pool,
so changing one is a reviewed change to `environments.py` and an apply, never code in a run."""

from __future__ import annotations

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import VariableCreate, VariableUpdate

from deployments.environments import Environment
from infra.changes import Change
from shipshape.names import cost_model_variable

KIND = "variable"


def reconcile(client: SyncPrefectClient, env: Environment, *, dry_run: bool) -> list[Change]:
    name, wanted = cost_model_variable(env.name), env.cost_model.as_dict()
    current = client.read_variable_by_name(name)
    if current is not None and current.value == wanted:
        return []
    detail = ", ".join(f"{key} {value}" for key, value in sorted(wanted.items()))
    if not dry_run:
        if current is None:
            client.create_variable(VariableCreate(name=name, value=wanted))
        else:
            client.update_variable(VariableUpdate(name=name, value=wanted))
    return [Change(KIND, name, "create" if current is None else "update", detail)]
