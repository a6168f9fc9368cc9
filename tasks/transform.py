"""Run the pipeline's SQL inside the warehouse, on the partition's raw audit data."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from runtime.connections import connect
from shipshape.audit_area import RunTables
from shipshape.catalog import DeclaredPipeline
from shipshape.outcomes import TransformReport
from shipshape.transform import run_transform
from shipshape.warehouses import AUDIT_SCHEMA


@task(name="transform-partition", cache_policy=NO_CACHE)
def transform_partition(declared: DeclaredPipeline, run: RunTables) -> TransformReport:
    """Materialise the transform output in the audit area: the table the audit and the publish read."""
    with connect() as warehouse:
        table = run_transform(warehouse, declared.spec, declared.transform_paths, run)
        rows = warehouse.row_count(AUDIT_SCHEMA, table)
    get_run_logger().info("Transform output of %s is %s: %s rows", run.window.key, table, rows)
    return TransformReport(table, rows)
