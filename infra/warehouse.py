"""Prepares a warehouse for the declared pipelines: audit area, platform tables, published schemas.

Idempotent — run it as often as you like. Runs also create what they need, so this exists for
deployments where the pipeline's role may not create schemas: an owner role applies it once.
Usage: `python -m infra.warehouse` (uses SHIPSHAPE_WAREHOUSE_URL).
"""

from __future__ import annotations

from shipshape.catalog import load_all
from shipshape.ledger import ensure_platform_tables
from shipshape.settings import load_settings
from shipshape.warehouses import AUDIT_SCHEMA, open_warehouse


def apply() -> list[str]:
    """Create every schema and platform table that is missing; returns the schemas ensured."""
    schemas = sorted({AUDIT_SCHEMA} | {declared.spec.destination.schema_name for declared in load_all()})
    with open_warehouse(load_settings().warehouse_url) as warehouse:
        for schema in schemas:
            warehouse.ensure_schema(schema)
        ensure_platform_tables(warehouse)
    return schemas


if __name__ == "__main__":
    print("ensured schemas:", ", ".join(apply()), "and the platform tables")
