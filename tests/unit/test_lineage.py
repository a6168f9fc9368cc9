"""Lineage from declarations and transform SQL: each pipeline's own path, the tables its SQL reads (CTEs and
placeholders are not tables), every version of a published table, and the pipelines reading it."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipshape.catalog import load_all
from shipshape.lineage import Edge, Lineage, lineage, table_node_id, tables_read
from tests.support.project import copy_example

FIXTURE = Path(__file__).parents[1] / "fixtures" / "report"  # order_status_daily: reads analytics.fct_orders
TODAY = date(2026, 12, 6)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    copy_example(tmp_path)
    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    return tmp_path


def edit(project: Path, pipeline: str, change: dict[str, Any]) -> None:
    path = project / "pipelines" / f"{pipeline}.yaml"
    data = yaml.safe_load(path.read_text())
    for key, value in change.items():
        data[key] = data[key] | value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def graph(project: Path) -> Lineage:
    return lineage(load_all(project), TODAY)


def test_each_pipeline_walks_source_raw_steps_table(project: Path) -> None:
    edges = set(graph(project).edges)
    assert {
        Edge("source:shop_orders", "raw:shop_orders", "loads"),
        Edge("raw:shop_orders", "step:shop_orders:fct_orders", "feeds"),
        Edge("step:shop_orders:fct_orders", "table:analytics.fct_orders", "publishes"),
        # The second step reads the first through its placeholder, not the raw data.
        Edge("raw:order_status_daily", "step:order_status_daily:counted", "feeds"),
        Edge("step:order_status_daily:counted", "step:order_status_daily:with_revenue", "feeds"),
        Edge("step:order_status_daily:with_revenue", "table:analytics.order_status_daily", "publishes"),
    } <= edges
    assert Edge("raw:order_status_daily", "step:order_status_daily:with_revenue", "feeds") not in edges


def test_a_transform_reading_a_published_table_makes_its_pipeline_a_reader(project: Path) -> None:
    lineage = graph(project)
    assert Edge("table:analytics.fct_orders", "step:order_status_daily:with_revenue", "reads") in lineage.edges
    assert lineage.readers("analytics.fct_orders") == ["order_status_daily"]
    assert lineage.readers("analytics.order_status_daily") == []
    # The source's own database table (the shop's `orders`) is the source node, not a warehouse table.
    assert "table:orders" not in {node.id for node in lineage.nodes}


def test_ctes_and_placeholders_are_not_tables() -> None:
    sql = (FIXTURE / "pipelines/order_status_daily/with_revenue.sql").read_text()
    assert tables_read(sql, ["raw", "this", "counted"]) == {"analytics.fct_orders"}
    assert tables_read("WITH x AS (SELECT 1 AS a) SELECT * FROM x JOIN Ref.Countries c ON TRUE") == {"ref.countries"}
    assert tables_read("SELECT * FROM {{ raw }} JOIN lookup USING (id)", ["raw"]) == {"lookup"}
    # A CTE's name only hides the bare name: a schema-qualified table of the same name is still read.
    assert tables_read("WITH fct_orders AS (SELECT 1) SELECT * FROM analytics.fct_orders") == {"analytics.fct_orders"}
    assert tables_read("SELECT * FROM read_csv('x.csv')") == set()


def test_a_table_no_pipeline_publishes_is_external(project: Path) -> None:
    step = project / "pipelines/order_status_daily/counted.sql"
    step.write_text(
        "SELECT CAST(r.created_at AS DATE) AS order_date, r.status AS status, count(*) AS orders\n"
        "FROM {{ raw }} AS r JOIN ref.statuses AS s ON s.name = r.status GROUP BY 1, 2\n"
    )
    lineage = graph(project)
    external = next(node for node in lineage.nodes if node.id == table_node_id("ref.statuses"))
    assert (external.kind, external.pipeline) == ("external", None)
    assert Edge(external.id, "step:order_status_daily:counted", "reads") in lineage.edges


def test_every_version_of_a_table_is_a_node_and_its_old_readers_stay_on_the_old_one(project: Path) -> None:
    edit(project, "shop_orders", {"destination": {"version": 3, "previous_version_until": "2026-12-31"}})
    lineage = graph(project)
    labels = {node.id: node.label for node in lineage.nodes if node.pipeline == "shop_orders" and node.kind == "table"}
    assert labels == {
        "table:analytics.fct_orders": "analytics.fct_orders (retired)",
        "table:analytics.fct_orders_v2": "analytics.fct_orders_v2 (kept)",
        "table:analytics.fct_orders_v3": "analytics.fct_orders_v3 (current)",
    }
    assert {
        Edge("table:analytics.fct_orders", "table:analytics.fct_orders_v2", "next_version"),
        Edge("table:analytics.fct_orders_v2", "table:analytics.fct_orders_v3", "next_version"),
        Edge("step:shop_orders:fct_orders", "table:analytics.fct_orders_v3", "publishes"),
    } <= set(lineage.edges)
    assert lineage.readers("analytics.fct_orders") == ["order_status_daily"]  # still reads version 1
    assert lineage.readers("analytics.fct_orders_v3") == []


def test_a_source_reading_a_published_table_is_its_reader(project: Path) -> None:
    edit(project, "order_status_daily", {"source": {"table": "analytics.fct_orders"}})
    lineage = graph(project)
    assert Edge("table:analytics.fct_orders", "source:order_status_daily", "reads") in lineage.edges
