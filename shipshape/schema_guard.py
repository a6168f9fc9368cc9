"""Refuses, before anything is loaded, a run or `validate --live` whose transform no longer produces a column the
published table has: the same breaking change `shipshape diff` catches in CI, caught again against the warehouse
(a branch merged without CI, a hand-made table). The publish would fail on it anyway, but only after extracting,
loading and auditing the partition; here the message names the column and the fix (`destination.version`).
New columns are not refused: they are additive.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shipshape.catalog import DeclaredPipeline
from shipshape.errors import BreakingChangeError
from shipshape.output_columns import output_columns
from shipshape.schema_changes import version_bump
from shipshape.warehouses import Warehouse


def check_published(warehouse: Warehouse, declared: DeclaredPipeline) -> None:
    """Raise `BreakingChangeError` if the version's published table has columns the transform no longer makes."""
    spec, destination = declared.spec, declared.spec.destination
    schema, table = destination.schema_name, destination.published_table
    if not warehouse.table_exists(schema, table):  # the first publish of this version creates it
        return
    produced = output_columns(declared)
    missing = [column for column in warehouse.table_columns(schema, table) if column not in produced]
    if not missing:
        return
    sql = ", ".join(spec.transform) or "the declared source columns"
    raise BreakingChangeError(
        f"pipeline {spec.name}: {schema}.{table} has column(s) {', '.join(missing)} that the transform ({sql}) no "
        "longer produces; removing or renaming a published column breaks its readers. Keep the column, or "
        f"{version_bump(spec.name, destination, datetime.now(UTC).date())}. Nothing was loaded"
    )
