"""Warehouse adapters behind one interface; `open_warehouse` picks one from a URL through the registry below.

Adding a warehouse is one adapter module in this package (a `Warehouse` subclass, its Soda target and its
`Capabilities`), one `WarehouseKind` in `KINDS`, its Soda plugin in the dependencies, and its entry in the
conformance suite's `ADAPTERS` — nothing else names an engine. Adapters are imported only when a URL asks for
them, so a DuckDB run never imports psycopg or ADBC, and a PostgreSQL run never imports DuckDB.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

from shipshape.errors import ConfigurationError
from shipshape.redact import mask_credentials
from shipshape.warehouses.base import AUDIT_SCHEMA, HISTORY_SCHEMA, PLATFORM_SCHEMA, Warehouse

__all__ = [
    "AUDIT_SCHEMA",
    "HISTORY_SCHEMA",
    "KINDS",
    "PLATFORM_SCHEMA",
    "Warehouse",
    "WarehouseKind",
    "adapter",
    "kind_of",
    "open_warehouse",
]


@dataclass(frozen=True)
class WarehouseKind:
    """One engine: the URL prefixes that select it and where its adapter class lives (imported on first use)."""

    url_prefixes: tuple[str, ...]
    url_form: str  # how its URL looks, for error messages
    module: str
    class_name: str

    def adapter(self) -> type[Warehouse]:
        adapter_class: type[Warehouse] = getattr(import_module(self.module), self.class_name)
        return adapter_class


KINDS: dict[str, WarehouseKind] = {
    "duckdb": WarehouseKind(("duckdb:///",), "duckdb:///<file>", "shipshape.warehouses.duckdb", "DuckDBWarehouse"),
    "postgresql": WarehouseKind(
        ("postgresql://", "postgres://"),
        "postgresql://<user>@<host>/<db>",
        "shipshape.warehouses.postgres",
        "PostgresWarehouse",
    ),
}


def adapter(kind: str) -> type[Warehouse]:
    """The adapter class of a registered kind (`duckdb`, `postgresql`), e.g. to build a URL from block fields."""
    if kind not in KINDS:
        raise ConfigurationError(f"warehouse kind {kind!r} is not registered; expected one of {', '.join(KINDS)}")
    return KINDS[kind].adapter()


def open_warehouse(url: str) -> Warehouse:
    """`duckdb:///path/to/file.duckdb` or `postgresql://user@host:port/db` (any registered kind's URL)."""
    return kind_of(url).adapter().from_url(url)


def kind_of(url: str) -> WarehouseKind:
    """The registered kind whose URL prefix `url` has; an unsupported URL is refused with the forms expected."""
    for kind in KINDS.values():
        if url.startswith(kind.url_prefixes):
            return kind
    expected = " or ".join(kind.url_form for kind in KINDS.values())
    shown = mask_credentials(url, url)
    raise ConfigurationError(f"SHIPSHAPE_WAREHOUSE_URL={shown!r} is not supported; expected {expected}")
