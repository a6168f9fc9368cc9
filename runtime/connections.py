"""Which warehouse a run talks to, and as whom: the loader for everything up to the gate, the publisher to publish,
the monitor to read the ledger and write incident state.

Resolved at run time so one image serves every environment: a deployment names its environment's
block (SHIPSHAPE_WAREHOUSE_BLOCK); local runs and tests give URLs (SHIPSHAPE_WAREHOUSE_URL, optionally
SHIPSHAPE_PUBLISHER_URL, SHIPSHAPE_MONITOR_URL); with neither, the embedded DuckDB file in the data folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from runtime.blocks import WarehouseConnection, load_block
from shipshape.errors import ConfigurationError, TransientError, WarehouseError
from shipshape.settings import LOCAL_ENVIRONMENT, environment_name, load_settings
from shipshape.warehouses import Warehouse, open_warehouse

Role = Literal["loader", "publisher", "monitor"]


@dataclass(frozen=True)
class WarehouseUrls:
    loader: str
    publisher: str
    monitor: str
    origin: str  # where they came from, for error messages (never the URLs themselves: they may hold passwords)


def warehouse_urls() -> WarehouseUrls:
    if block_name := os.environ.get("SHIPSHAPE_WAREHOUSE_BLOCK"):
        return _urls_from_block(block_name)
    url = os.environ.get("SHIPSHAPE_WAREHOUSE_URL") or f"duckdb:///{load_settings().data_dir / 'warehouse.duckdb'}"
    publisher = os.environ.get("SHIPSHAPE_PUBLISHER_URL") or url
    monitor = os.environ.get("SHIPSHAPE_MONITOR_URL") or url
    return WarehouseUrls(loader=url, publisher=publisher, monitor=monitor, origin="SHIPSHAPE_WAREHOUSE_URL")


@contextmanager
def connect(role: Role = "loader") -> Iterator[Warehouse]:
    """An open warehouse connection as `role`; a refused connection names where its settings came from."""
    urls = warehouse_urls()
    try:
        warehouse = open_warehouse({"loader": urls.loader, "publisher": urls.publisher, "monitor": urls.monitor}[role])
    except TransientError as error:  # server down or unreachable: worth a retry, but say which settings
        raise TransientError(f"{error} — the {role} connection comes from {urls.origin}") from None
    except WarehouseError as error:  # refused: wrong role, database or password; retrying cannot help
        raise ConfigurationError(f"{error} — the {role} connection comes from {urls.origin}; check it") from None
    with warehouse:
        yield warehouse


def _urls_from_block(name: str) -> WarehouseUrls:
    apply = _apply_command()
    try:
        block = load_block(WarehouseConnection, name)
    except ValueError:
        raise ConfigurationError(
            f"warehouse block {name!r} (named by SHIPSHAPE_WAREHOUSE_BLOCK) does not exist on this Prefect API as a "
            f"'{WarehouseConnection.get_block_type_slug()}' block; create it with {apply} "
            "(reads SHIPSHAPE_WAREHOUSE_HOST, SHIPSHAPE_WAREHOUSE_DATABASE and the role passwords from the environment)"
        ) from None
    return WarehouseUrls(
        loader=block.url(block.loader_user, block.loader_password),
        publisher=block.url(block.publisher_user, block.publisher_password),
        monitor=block.url(block.monitor_user, block.monitor_password),
        origin=f"warehouse block {name!r} (fix it with {apply})",
    )


def _apply_command() -> str:
    """`make apply` writes a deployed environment's blocks; a local run (no SHIPSHAPE_ENV) has none to apply."""
    environment = environment_name()
    if environment == LOCAL_ENVIRONMENT:
        return (
            "`make apply ENV=<its environment>` with SHIPSHAPE_ENV set to it, or run locally on "
            "SHIPSHAPE_WAREHOUSE_URL or the embedded default: `unset SHIPSHAPE_WAREHOUSE_BLOCK`"
        )
    return f"`make apply ENV={environment}`"
