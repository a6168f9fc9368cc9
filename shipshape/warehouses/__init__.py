"""Warehouse adapters behind one interface; `open_warehouse` picks one from a URL."""

from __future__ import annotations

from pathlib import Path

from shipshape.errors import ConfigurationError
from shipshape.warehouses.base import AUDIT_SCHEMA, PLATFORM_SCHEMA, Warehouse

__all__ = ["AUDIT_SCHEMA", "PLATFORM_SCHEMA", "Warehouse", "open_warehouse"]


def open_warehouse(url: str) -> Warehouse:
    """`duckdb:///path/to/file.duckdb` or `postgresql://user@host:port/db`."""
    if url.startswith("duckdb:///"):
        from shipshape.warehouses.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(Path(url.removeprefix("duckdb:///")))
    if url.startswith(("postgresql://", "postgres://")):
        from shipshape.warehouses.postgres import PostgresWarehouse

        return PostgresWarehouse(url)
    raise ConfigurationError(
        f"SHIPSHAPE_WAREHOUSE_URL={_redacted(url)!r} is not supported; expected duckdb:///<file> or postgresql://<user>@<host>/<db>"
    )


def _redacted(url: str) -> str:
    """Never echo a password back into logs."""
    if "@" in url and ":" in url.split("@", 1)[0].split("//", 1)[-1]:
        scheme, rest = url.split("//", 1)
        user = rest.split("@", 1)[0].split(":", 1)[0]
        return f"{scheme}//{user}:***@{rest.split('@', 1)[1]}"
    return url
