"""A run loads only its own environment's blocks, even when another environment's sit on the same Prefect API, and
nothing from an API marked for another environment."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import VariableCreate
from pydantic import SecretStr

from deployments.environments import deploy_settings
from runtime.blocks import WarehouseConnection
from runtime.connections import warehouse_urls
from shipshape import names
from shipshape.errors import ConfigurationError


def _save_warehouse_block(name: str, database: str) -> None:
    WarehouseConnection(
        host="127.0.0.1", database=database, loader_user="loader", loader_password=SecretStr("loader-secret"),
        publisher_user="publisher", publisher_password=SecretStr("publisher-secret"),
        monitor_user="monitor", monitor_password=SecretStr("monitor-secret"),
    ).save(name, overwrite=True)


def test_a_dev_run_asked_for_the_prod_warehouse_block_is_refused_and_loads_its_own(
    prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _save_warehouse_block("warehouse-prod", "prod_db")
    _save_warehouse_block("warehouse-dev", "dev_db")
    monkeypatch.setenv("SHIPSHAPE_ENV", "dev")
    monkeypatch.setenv("SHIPSHAPE_WAREHOUSE_BLOCK", "warehouse-prod")
    with pytest.raises(ConfigurationError) as refused:
        warehouse_urls()
    assert str(refused.value).startswith(
        "block 'warehouse-prod' belongs to environment 'prod' but this run is in 'dev' (SHIPSHAPE_ENV)"
    )
    assert "prod_db" not in str(refused.value) and "secret" not in str(refused.value)
    monkeypatch.setenv("SHIPSHAPE_WAREHOUSE_BLOCK", "warehouse-dev")
    assert "/dev_db" in warehouse_urls().loader


@pytest.fixture
def api_marked_prod(prefect_api: str) -> Iterator[None]:
    """The session's test API marked as prod's, as `make apply ENV=prod` leaves it; unmarked again afterwards."""
    with get_client(sync_client=True) as client:
        client.create_variable(VariableCreate(name=names.API_ENVIRONMENT_VARIABLE, value="prod"))
        try:
            yield
        finally:
            client.delete_variable_by_name(names.API_ENVIRONMENT_VARIABLE)


@pytest.mark.usefixtures("api_marked_prod")
def test_a_dev_run_on_the_api_marked_for_prod_is_refused_even_its_own_blocks(
    prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One wrong PREFECT_API_URL: the names are dev's, the API is prod's. The run stops before loading anything."""
    _save_warehouse_block("warehouse-dev", "dev_db")
    monkeypatch.setenv("SHIPSHAPE_ENV", "dev")
    monkeypatch.setenv("SHIPSHAPE_WAREHOUSE_BLOCK", "warehouse-dev")
    with pytest.raises(ConfigurationError) as refused:
        warehouse_urls()
    assert str(refused.value) == (
        f"the Prefect API at {prefect_api} belongs to environment 'prod' (Prefect variable 'shipshape-environment'), "
        "but this run (SHIPSHAPE_ENV) is for 'dev'; refused before anything was read or changed: point "
        "PREFECT_API_URL at the 'dev' environment's own Prefect API"
    )
    _save_warehouse_block("warehouse-prod", "prod_db")  # prod's own run on it still loads its block
    monkeypatch.setenv("SHIPSHAPE_ENV", "prod")
    monkeypatch.setenv("SHIPSHAPE_WAREHOUSE_BLOCK", "warehouse-prod")
    assert "/prod_db" in warehouse_urls().loader


@pytest.mark.usefixtures("api_marked_prod")
def test_prefect_deploy_of_dev_on_the_api_marked_for_prod_is_refused_in_its_build_step(
    prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPSHAPE_IMAGE", "ghcr.io/acme/shipshape@sha256:" + "0" * 64)
    with pytest.raises(ConfigurationError) as refused:
        deploy_settings("dev")
    assert str(refused.value) == (
        f"the Prefect API at {prefect_api} belongs to environment 'prod' (Prefect variable 'shipshape-environment'), "
        "but `prefect deploy` (DEPLOY_ENV=dev) is for 'dev'; refused before anything was read or changed: point "
        "PREFECT_API_URL at the 'dev' environment's own Prefect API"
    )
    assert deploy_settings("prod")["env"] == {"SHIPSHAPE_ENV": "prod", "SHIPSHAPE_WAREHOUSE_BLOCK": "warehouse-prod"}


def test_a_run_reads_its_warehouse_block_once_and_the_next_run_sees_it_changed(
    prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run connects several times per partition; the block is asked for once per flow run, not per connection."""
    monkeypatch.setenv("SHIPSHAPE_ENV", "dev")
    monkeypatch.setenv("SHIPSHAPE_WAREHOUSE_BLOCK", "warehouse-dev")

    @flow
    def connects_twice_while_the_block_changes() -> tuple[str, str]:
        _save_warehouse_block("warehouse-dev", "before_db")
        first = warehouse_urls().loader
        _save_warehouse_block("warehouse-dev", "after_db")
        return first, warehouse_urls().loader

    first, second = connects_twice_while_the_block_changes()
    assert "/before_db" in first and "/before_db" in second

    @flow
    def next_run() -> str:
        return warehouse_urls().loader

    assert "/after_db" in next_run()
