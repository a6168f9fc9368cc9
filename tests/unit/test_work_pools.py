"""The pools' rendered base job templates: which network a pipeline container joins, how a process run starts.

A container on the host network sees every port of the worker's machine; production pools therefore default
to a dedicated bridge, and only an engine without a bridge (the tests' private one) may ask for the host's.
"""

from __future__ import annotations

from typing import Any

import pytest

from deployments.environments import ENVIRONMENTS
from infra.work_pools import DOCKER_NETWORK_VARIABLE, base_job_template

DOCKER_ENVIRONMENTS = [name for name, env in ENVIRONMENTS.items() if env.pool_type == "docker"]


def defaults(name: str) -> dict[str, Any]:
    properties = base_job_template(ENVIRONMENTS[name])["variables"]["properties"]
    return {key: value.get("default") for key, value in properties.items()}


def test_staging_and_prod_are_the_docker_pools() -> None:
    assert DOCKER_ENVIRONMENTS == ["staging", "prod"]


@pytest.mark.parametrize("name", DOCKER_ENVIRONMENTS)
def test_docker_pools_run_containers_on_the_dedicated_bridge_by_default(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DOCKER_NETWORK_VARIABLE, raising=False)
    assert defaults(name)["network_mode"] == "shipshape"


@pytest.mark.parametrize("name", DOCKER_ENVIRONMENTS)
def test_an_engine_without_a_bridge_overrides_the_network(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DOCKER_NETWORK_VARIABLE, "host")
    assert defaults(name)["network_mode"] == "host"


def test_the_process_pool_has_no_network_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DOCKER_NETWORK_VARIABLE, raising=False)
    assert "network_mode" not in defaults("dev")


def test_the_process_pool_starts_the_engine_itself() -> None:
    """Unset, Prefect's process worker starts a supervisor that imports Prefect, then execs the engine: two
    interpreters per run. The engine runs the deployment's pull steps itself."""
    assert defaults("dev")["command"] == "python -m prefect.engine"
