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

from prefect.runtime import flow_run

from runtime.blocks import WarehouseConnection, load_block
from shipshape.errors import ConfigurationError, TransientError, WarehouseError
from shipshape.platform_schema import ensure_current
from shipshape.settings import LOCAL_ENVIRONMENT, environment_name, load_settings
from shipshape.warehouses import Warehouse, kind_of, open_warehouse

Role = Literal["loader", "publisher", "monitor"]


@dataclass(frozen=True)
class WarehouseUrls:
    loader: str
    publisher: str
    monitor: str
    origin: str  # where they came from, for error messages (never the URLs themselves: they may hold passwords)
    # One role does everything (the embedded DuckDB, a single URL): nobody else owns the platform tables, so a run
    # migrates them. Separate roles are `make apply`'s, and only apply (as their owner) may change the tables.
    may_migrate: bool


def warehouse_urls() -> WarehouseUrls:
    if block_name := os.environ.get("SHIPSHAPE_WAREHOUSE_BLOCK"):
        return _run_urls_from_block(block_name)
    url = os.environ.get("SHIPSHAPE_WAREHOUSE_URL") or f"duckdb:///{load_settings().data_dir / 'warehouse.duckdb'}"
    publisher = os.environ.get("SHIPSHAPE_PUBLISHER_URL") or url
    monitor = os.environ.get("SHIPSHAPE_MONITOR_URL") or url
    single_role = publisher == url and monitor == url
    origin = "SHIPSHAPE_WAREHOUSE_URL"
    return WarehouseUrls(loader=url, publisher=publisher, monitor=monitor, origin=origin, may_migrate=single_role)


def import_warehouse_adapters() -> None:
    """Import the adapters (and their drivers) that this process's warehouse URLs select, without connecting.

    A command imports them while it waits for its local API instead of in its first task. URLs from a block
    are read from the API, so they are left to the run."""
    if os.environ.get("SHIPSHAPE_WAREHOUSE_BLOCK"):
        return
    urls = warehouse_urls()
    for url in {urls.loader, urls.publisher, urls.monitor}:
        kind_of(url).adapter()


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


def ensure_platform_schema(warehouse: Warehouse) -> None:
    """Before a run reads or writes the platform tables: they are at this code's version, or the run stops.

    Migrated here when the run may (`WarehouseUrls.may_migrate`); otherwise the error names the apply to run.
    """
    environment = environment_name()
    command = _apply_command() if environment != LOCAL_ENVIRONMENT else "`make apply ENV=<the roles' environment>`"
    from_block = bool(os.environ.get("SHIPSHAPE_WAREHOUSE_BLOCK"))  # its roles are apply's: no need to load it again
    ensure_current(warehouse, may_migrate=not from_block and warehouse_urls().may_migrate, apply_command=command)


_URLS_OF_RUN: dict[tuple[str, str, str], WarehouseUrls] = {}


def _run_urls_from_block(name: str) -> WarehouseUrls:
    """The block's URLs, read once per flow run (each read asks the API twice: its mark, then the block) although a
    run connects a few times per partition; outside a flow run, read at each call.

    A run's roles and passwords are those of its start: a password rotated mid-run reaches the next run.
    """
    run = str(flow_run.id or "")
    if not run:
        return _urls_from_block(name)
    key = (run, name, environment_name())
    if key not in _URLS_OF_RUN:
        _URLS_OF_RUN[key] = _urls_from_block(name)
    return _URLS_OF_RUN[key]


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
        may_migrate=False,
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
