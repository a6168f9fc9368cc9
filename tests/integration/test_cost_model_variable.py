"""The environment's cost model reaches run time as `make apply` stores it: a Prefect variable, created once,
unchanged by a second apply, updated when `environments.py` changes it, and read back by the monitor's code."""

from __future__ import annotations

import uuid
from dataclasses import replace

from prefect.client.orchestration import get_client

from deployments.environments import Environment
from infra import cost_model
from runtime.cost_sources import cost_model as read_cost_model
from shipshape.cost import CostModel


def test_apply_stores_the_environments_cost_model_once_and_updates_exactly_a_changed_rate(prefect_api: str) -> None:
    env = Environment(f"t{uuid.uuid4().hex[:8]}", "process", False, 1, CostModel(vcpu_hour=0.05))
    with get_client(sync_client=True) as client:
        assert read_cost_model(env.name, client) == CostModel(), "never applied: the documented defaults"
        planned = cost_model.reconcile(client, env, dry_run=True)
        assert read_cost_model(env.name, client) == CostModel(), "plan changes nothing"
        applied = cost_model.reconcile(client, env, dry_run=False)
        again = cost_model.reconcile(client, env, dry_run=False)
        cheaper = replace(env, cost_model=replace(env.cost_model, storage_gb_month=0.02))
        updated = cost_model.reconcile(client, cheaper, dry_run=False)
        read_back = read_cost_model(env.name, client)

    assert [change.action for change in planned] == [change.action for change in applied] == ["create"]
    assert applied[0].name == f"shipshape-{env.name}-cost-model" and "vcpu_hour 0.05" in applied[0].detail
    assert again == []
    assert [change.action for change in updated] == ["update"]
    assert read_back == CostModel(vcpu_hour=0.05, storage_gb_month=0.02)
