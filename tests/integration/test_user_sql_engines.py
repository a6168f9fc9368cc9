"""User SQL cannot run a second statement on either engine, whatever the parser said (defence in depth)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipshape.audit_area import RunTables
from shipshape.catalog import load_pipeline
from shipshape.errors import TerminalError, WarehouseError
from shipshape.partitions import FULL_REFRESH
from shipshape.settings import PACKAGE_ROOT
from shipshape.transform import run_transform
from shipshape.warehouses import AUDIT_SCHEMA, open_warehouse


def test_the_engine_refuses_a_second_statement_the_parser_missed(warehouse_url: str) -> None:
    with open_warehouse(warehouse_url) as warehouse:
        warehouse.ensure_schema(AUDIT_SCHEMA)
        warehouse.execute("CREATE TABLE audit.victim AS SELECT 1 AS one")
        with pytest.raises(WarehouseError):
            warehouse.create_table_as(AUDIT_SCHEMA, "out", "SELECT 1 AS one; DROP TABLE audit.victim")
        assert warehouse.table_exists(AUDIT_SCHEMA, "victim")
        assert not warehouse.table_exists(AUDIT_SCHEMA, "out")


def test_a_transform_edited_after_loading_is_refused_before_it_runs(warehouse_url: str, tmp_path: Path) -> None:
    declared = load_pipeline(PACKAGE_ROOT / "pipelines" / "shop_orders.yaml", PACKAGE_ROOT)
    hostile = tmp_path / "fct_orders.sql"
    hostile.write_text("WITH gone AS (DELETE FROM audit.victim RETURNING *) SELECT * FROM gone")
    with open_warehouse(warehouse_url) as warehouse:
        warehouse.ensure_schema(AUDIT_SCHEMA)
        warehouse.execute("CREATE TABLE audit.victim AS SELECT 1 AS one")
        run = RunTables(declared.name, FULL_REFRESH, "r1")
        with pytest.raises(TerminalError, match=r"transform fct_orders.sql is not one read-only query: .*DELETE"):
            run_transform(warehouse, declared.spec, [hostile], run)
        assert warehouse.row_count(AUDIT_SCHEMA, "victim") == 1


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM 'https://example.com/data.parquet'",
    ],
)
def test_a_duckdb_transform_cannot_reach_files_or_the_network(tmp_path: Path, sql: str) -> None:
    with open_warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}") as warehouse:
        warehouse.ensure_schema(AUDIT_SCHEMA)
        with pytest.raises(WarehouseError, match="disabled"):
            warehouse.create_table_as(AUDIT_SCHEMA, "out", sql)
        with pytest.raises(WarehouseError, match="Cannot enable external access"):
            warehouse.execute("SET enable_external_access = true")
