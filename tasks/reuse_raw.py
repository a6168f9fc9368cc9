"""Re-use raw data already loaded for a partition, so a transform or contract fix needs no re-extract."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from runtime.connections import connect
from shipshape.audit_area import RunTables
from shipshape.catalog import DeclaredPipeline
from shipshape.errors import TerminalError
from shipshape.ledger import carry_over_dead_letters, entries
from shipshape.outcomes import LoadReport
from shipshape.warehouses import AUDIT_SCHEMA


@task(name="reuse-raw", cache_policy=NO_CACHE)
def reuse_latest_raw(declared: DeclaredPipeline, run: RunTables) -> LoadReport:
    """Copy the newest kept raw table of the partition (per the ledger) into this run's raw table."""
    with connect() as warehouse:
        existing = set(warehouse.list_tables(AUDIT_SCHEMA))
        for entry in entries(warehouse, declared.name):
            previous = RunTables(declared.name, run.window, entry.run_tag)
            if entry.partition_key == run.window.key and previous.raw in existing:
                source = warehouse.qualified(AUDIT_SCHEMA, previous.raw)
                warehouse.create_table_as(AUDIT_SCHEMA, run.raw, f"SELECT * FROM {source}", scratch=True)
                carry_over_dead_letters(warehouse, declared.name, run.window.key, entry.run_tag, run.run_tag)
                rows = warehouse.row_count(AUDIT_SCHEMA, run.raw)
                get_run_logger().info("Re-using %s rows of raw data from run %s", rows, entry.run_tag)
                return LoadReport(rows, entry.rejected_rows)
    raise TerminalError(
        f"pipeline {declared.name}, partition {run.window.key}: no raw data is kept for it; run without reuse_raw"
    )
