"""The warehouse connection block (one document per environment: `warehouse-dev`, ...) and typed block loading.

A block, not environment variables, because the same image runs everywhere: the deployment names the
block (SHIPSHAPE_WAREHOUSE_BLOCK) and the run loads it from its environment's Prefect API. Passwords are
`SecretStr`, so Prefect stores them encrypted and shows them masked in the UI.
"""

from __future__ import annotations

from typing import TypeVar

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from runtime.api_mark import refuse_another_environments_api
from shipshape import names
from shipshape.errors import ConfigurationError
from shipshape.settings import environment_name
from shipshape.warehouses import adapter


class WarehouseConnection(Block):
    """A warehouse and the roles a run uses: loader (audit area), publisher, and monitor (incident state).

    `kind` names a registered adapter (`shipshape.warehouses.KINDS`), which builds the URL from these fields.
    """

    _block_type_name = "Shipshape Warehouse"
    _block_type_slug = "shipshape-warehouse"
    _description = "Warehouse for shipshape pipelines (PostgreSQL by default): loader and publisher credentials."

    kind: str = Field(default="postgresql", description="Warehouse kind: a registered adapter, e.g. postgresql.")
    host: str = Field(description="Host name of the warehouse server.")
    port: int = Field(default=5432, description="Port of the warehouse server.")
    database: str = Field(description="Database holding the audit area, platform tables and published schemas.")
    loader_user: str = Field(description="Role that writes only the audit area (extract, load, transform, audit).")
    loader_password: SecretStr = Field(description="Password of the loader role.")
    publisher_user: str = Field(description="Role that publishes audited partitions.")
    publisher_password: SecretStr = Field(description="Password of the publisher role.")
    monitor_user: str = Field(description="Role of the monitors: reads the ledger, the only one writing incidents.")
    monitor_password: SecretStr = Field(description="Password of the monitor role.")

    def url(self, user: str, password: SecretStr) -> str:
        """The warehouse URL of one role; only ever handed to drivers, never logged."""
        secret = password.get_secret_value()
        return adapter(self.kind).connection_url(self.host, self.port, self.database, user, secret)


BlockT = TypeVar("BlockT", bound=Block)


def load_block(block_type: type[BlockT], name: str, environment: str | None = None) -> BlockT:
    """The saved block document `name`, from synchronous code; `ValueError` when there is none (as `load` says).

    Only a block of `environment` (the run's, SHIPSHAPE_ENV, unless `make apply` names the one it applies) or of
    none, from an API not marked for another environment (`runtime.api_mark`): anything else is refused. Every
    deployed run loads its warehouse block before it touches data, so a run on another environment's API stops here.

    `Block.load` answers with a coroutine when called inside an async flow; the platform loads blocks in sync
    tasks, and a coroutine here would fail later and far away, so it fails now and says why.
    """
    environment = environment or environment_name()
    _refuse_another_environments_block(name, environment)
    refuse_another_environments_api(environment)
    block = block_type.load(name)
    if not isinstance(block, block_type):
        raise TypeError(f"{block_type.__name__} {name!r} was loaded from async code; load blocks in a sync task")
    return block


def _refuse_another_environments_block(name: str, run_environment: str) -> None:
    """Nothing but convention keeps environments apart on a Prefect API, and one mistyped SHIPSHAPE_WAREHOUSE_BLOCK
    would give a dev run prod's warehouse credentials or channel: a run loads only its own environment's blocks.
    Refused before the API is asked, so nothing of the other environment reaches the run."""
    owner = names.block_environment(name)
    if owner is not None and owner != run_environment:
        raise ConfigurationError(
            f"block {name!r} belongs to environment {owner!r} but this run is in {run_environment!r} (SHIPSHAPE_ENV); "
            f"a run loads only its own environment's blocks: name {names.warehouse_block(run_environment)!r} and "
            f"the like, or run it in {owner!r}"
        )
