"""The registry of warehouse kinds: how a URL picks an adapter, and what a wrong URL is told (never its password)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from runtime.blocks import WarehouseConnection
from shipshape.errors import ConfigurationError
from shipshape.warehouses import KINDS, adapter, open_warehouse


def test_an_unsupported_url_lists_every_registered_form_and_hides_the_password() -> None:
    with pytest.raises(ConfigurationError) as raised:
        open_warehouse("snowflake://analyst:hunter2@account/db")

    message = str(raised.value)
    assert "hunter2" not in message
    assert "snowflake://analyst:***@account/db" in message
    assert message.endswith("expected duckdb:///<file> or postgresql://<user>@<host>/<db>")
    assert all(kind.url_form in message for kind in KINDS.values())


def test_an_unregistered_kind_names_the_registered_ones() -> None:
    with pytest.raises(ConfigurationError) as raised:
        adapter("snowflake")

    assert str(raised.value) == "warehouse kind 'snowflake' is not registered; expected one of duckdb, postgresql"


def test_the_block_builds_its_url_through_the_postgresql_adapter_with_every_part_encoded() -> None:
    block = WarehouseConnection(
        host="db.example",
        port=6543,
        database="ware house",
        loader_user="load@er",
        loader_password=SecretStr("p@ss:w/rd"),
        publisher_user="publisher",
        publisher_password=SecretStr("x"),
        monitor_user="monitor",
        monitor_password=SecretStr("x"),
    )

    url = block.url(block.loader_user, block.loader_password)

    assert url == "postgresql://load%40er:p%40ss%3Aw%2Frd@db.example:6543/ware%20house"
    assert url == adapter("postgresql").connection_url("db.example", 6543, "ware house", "load@er", "p@ss:w/rd")
