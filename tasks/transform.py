"""Run the pipeline's SQL inside the warehouse, on the partition's raw audit data."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from shipshape.audit_area import RunTables
from shipshape.catalog import DeclaredPipeline
from shipshape.settings import load_settings
from shipshape.transform import run_transform
from shipshape.warehouses import AUDIT_SCHEMA, open_warehouse


@task(name="transform-partition", cache_policy=NO_CACHE)
def transform_partition(declared: DeclaredPipeline, run: RunTables) -> int:
    """Materialise the transform output in the audit area; returns its row count."""
    with open_warehouse(load_settings().warehouse_url) as warehouse:
        out = run_transform(warehouse, declared.spec, declared.transform_paths, run)
        rows = warehouse.row_count(AUDIT_SCHEMA, out)
    get_run_logger().info("Transformed %s into %s: %s rows", run.window.key, out, rows)
    return rows
