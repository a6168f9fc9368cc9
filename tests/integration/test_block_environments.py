"""A run loads only its own environment's blocks, even when another environment's sit on the same Prefect API."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from runtime.blocks import WarehouseConnection
from runtime.connections import warehouse_urls
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
