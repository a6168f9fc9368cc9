"""The warehouse connection block: one document per environment (`warehouse-dev`, `warehouse-staging`, ...).

A block, not environment variables, because the same image runs everywhere: the deployment names the
block (SHIPSHAPE_WAREHOUSE_BLOCK) and the run loads it from its environment's Prefect API. Passwords are
`SecretStr`, so Prefect stores them encrypted and shows them masked in the UI.
"""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from shipshape.warehouses import adapter


class WarehouseConnection(Block):
    """A PostgreSQL warehouse and the two roles a pipeline uses: loader (audit area) and publisher."""

    _block_type_name = "Shipshape Warehouse"
    _block_type_slug = "shipshape-warehouse"
    _description = "PostgreSQL warehouse for shipshape pipelines: loader and publisher credentials."

    host: str = Field(description="Host name of the PostgreSQL server.")
    port: int = Field(default=5432, description="Port of the PostgreSQL server.")
    database: str = Field(description="Database holding the audit area, platform tables and published schemas.")
    loader_user: str = Field(description="Role that writes only the audit area (extract, load, transform, audit).")
    loader_password: SecretStr = Field(description="Password of the loader role.")
    publisher_user: str = Field(description="Role that publishes audited partitions.")
    publisher_password: SecretStr = Field(description="Password of the publisher role.")

    def url(self, user: str, password: SecretStr) -> str:
        """The warehouse URL of one role; only ever handed to drivers, never logged."""
        return adapter("postgresql").connection_url(
            self.host, self.port, self.database, user, password.get_secret_value()
        )
