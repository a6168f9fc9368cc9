"""ELT transforms: the pipeline's SQL files run inside the warehouse, each materialised in the audit area.

Placeholders, not Jinja: `{{ raw }}` is the partition's loaded data, `{{ this }}` the published
table, and `{{ <file stem> }}` any earlier step's output. Only those names exist, so the SQL stays
plain SQL that runs unchanged on DuckDB and PostgreSQL.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from shipshape.audit_area import RunTables
from shipshape.catalog import PLACEHOLDER
from shipshape.declaration import Partition, Pipeline
from shipshape.errors import TerminalError
from shipshape.partition_exchange import exchanging
from shipshape.partitions import Window
from shipshape.user_sql import FIX, select_problem
from shipshape.warehouses import AUDIT_SCHEMA, Warehouse


def render(sql_file: Path, tables: dict[str, str]) -> str:
    text = sql_file.read_text().strip().rstrip(";")
    return PLACEHOLDER.sub(lambda match: tables[match.group(1)], text)


def run_transform(warehouse: Warehouse, spec: Pipeline, sql_files: list[Path], run: RunTables) -> str:
    """Materialise every step; returns the table to audit and publish (the raw table when there is no SQL)."""
    names = {
        "raw": warehouse.qualified(AUDIT_SCHEMA, run.raw),
        "this": warehouse.qualified(spec.destination.schema_name, spec.destination.published_table),
    }
    exchange = exchanging(warehouse, spec)
    output = run.raw
    for index, sql_file in enumerate(sql_files, start=1):
        last = index == len(sql_files)
        output = run.out if last else run.step(f"s{index}")
        sql = render(sql_file, names)
        _check_one_select(warehouse, spec, sql_file, sql)
        # A table the publish will attach as a partition is written durably now, so the publish writes none of it.
        warehouse.create_table_as(AUDIT_SCHEMA, output, sql, scratch=not (last and exchange is not None))
        names[sql_file.stem] = warehouse.qualified(AUDIT_SCHEMA, output)
    if exchange is not None and not sql_files:  # the raw table stays for re-runs (`reuse_raw`): attach a copy
        output = run.out
        warehouse.create_table_as(AUDIT_SCHEMA, output, f"SELECT * FROM {names['raw']}")
    if spec.partition is not None:
        _check_inside_window(warehouse, spec, spec.partition, run.window, output)
        if exchange is not None:  # proved here, once: the publish attaches it without scanning it
            exchange.bound_audited_table(AUDIT_SCHEMA, output, spec.partition.column, window_bounds(spec, run.window))
    return output


def _check_one_select(warehouse: Warehouse, spec: Pipeline, sql_file: Path, sql: str) -> None:
    """Checked again here, in the engine's own dialect, though loading the declaration checked it: the file may
    have changed since, and a query read as one SELECT in another dialect must still be one in this engine's."""
    problem = select_problem(sql, warehouse.capabilities.sql_dialect)
    if problem is not None:
        raise TerminalError(
            f"pipeline {spec.name}: transform {sql_file.name} is not one read-only query: {problem}; {FIX}. "
            "Nothing ran and nothing was published"
        )


def window_bounds(spec: Pipeline, window: Window) -> tuple[date | datetime, date | datetime]:
    """Bounds typed for comparison with the partition column: dates for daily, naive UTC for hourly."""
    if window.start is None or window.end is None:
        raise ValueError(f"pipeline {spec.name}: partition {window.key} is the whole table and has no bounds")
    if spec.grain == "day":
        return window.start.date(), window.end.date()
    return window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)


def _check_inside_window(
    warehouse: Warehouse, spec: Pipeline, partition: Partition, window: Window, output: str
) -> None:
    """Publishing replaces exactly the partition's range, so output outside it would be lost or duplicated."""
    column = warehouse.quote(partition.column)
    out = warehouse.qualified(AUDIT_SCHEMA, output)
    start, end = window_bounds(spec, window)
    if partition.column not in warehouse.table_columns(AUDIT_SCHEMA, output):
        raise TerminalError(
            f"pipeline {spec.name}: the transform output has no partition column {partition.column!r}; "
            "select it in the last transform step"
        )
    outside = warehouse.fetch_all(
        f"SELECT count(*) FROM {out} WHERE {column} IS NULL OR {column} < ? OR {column} >= ?", [start, end]
    )[0][0]
    if outside:
        raise TerminalError(
            f"pipeline {spec.name}, partition {window.key}: the transform produced {outside} rows whose "
            f"{partition.column} is outside [{start}, {end}) or NULL; nothing was published"
        )
