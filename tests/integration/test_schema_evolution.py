"""Additive schema evolution on both warehouses: publish adds a new column and widens a type in its own transaction;
a removed, narrowed or retyped column is refused and the published table stays as it was.

The first test is the user's path from issue 12: after a first run of the example, declare `coupon_code`, select it
in the SQL, add it to the contract, run the next day. The others publish prepared outputs (`shipshape.publish`).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from demo.shop_app import orders_per_day
from flows.run_pipeline import run_pipeline
from shipshape.catalog import find_pipeline
from shipshape.errors import PublishError
from shipshape.ledger import LedgerEntry, entries
from shipshape.partitions import plan_windows
from shipshape.platform_schema import migrate
from shipshape.publish import StagedPartition, publish
from shipshape.warehouses import AUDIT_SCHEMA, Warehouse, open_warehouse
from tests.support.project import FIRST_DAY, make_project

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:soda_.*")

SCHEMA, TABLE = "analytics", "fct_orders"
SECOND_DAY = date(2026, 11, 2)


def add_coupon_code(root: Path) -> None:
    """What a user does to publish a new source column: declaration, transform SQL, contract (project at `root`)."""
    declaration_path = root / "pipelines/shop_orders.yaml"
    declaration = yaml.safe_load(declaration_path.read_text())
    declaration["source"]["columns"]["coupon_code"] = "text"
    declaration_path.write_text(yaml.safe_dump(declaration, sort_keys=False))
    sql = root / "pipelines/shop_orders/fct_orders.sql"
    sql.write_text(sql.read_text().replace("    updated_at\n", "    updated_at,\n    coupon_code\n"))
    contract_path = root / "checks/fct_orders.yaml"
    contract = yaml.safe_load(contract_path.read_text())
    contract["columns"].append({"name": "coupon_code", "data_type": "text"})
    contract_path.write_text(yaml.safe_dump(contract, sort_keys=False))


def test_a_column_added_to_the_example_is_published_and_earlier_partitions_read_null(
    tmp_path: Path, warehouse_url: str, monkeypatch: pytest.MonkeyPatch, prefect_api: str
) -> None:
    project = make_project(tmp_path, warehouse_url, monkeypatch)
    first = run_pipeline("shop_orders", start_date=FIRST_DAY, end_date=FIRST_DAY, return_state=True)
    assert first.is_completed(), first.message
    with sqlite3.connect(project.shop_db) as shop:
        shop.execute("UPDATE orders SET coupon_code = 'SAVE' || (order_id % 3) WHERE created_at >= ?", ["2026-11-02"])
    add_coupon_code(project.root)

    second = run_pipeline("shop_orders", start_date=SECOND_DAY, end_date=SECOND_DAY, return_state=True)

    assert second.is_completed(), second.message
    with open_warehouse(warehouse_url) as warehouse:
        assert warehouse.table_columns(SCHEMA, TABLE)[-1] == "coupon_code"
        per_day = warehouse.fetch_all(
            f"SELECT order_date, count(*), count(coupon_code), min(coupon_code) FROM {SCHEMA}.{TABLE} "
            "GROUP BY 1 ORDER BY 1"
        )
        ledger = {entry.partition_key: entry for entry in entries(warehouse, "shop_orders")}
    assert per_day == [
        (FIRST_DAY, orders_per_day(FIRST_DAY), 0, None),  # published before the column existed: NULL until re-run
        (SECOND_DAY, orders_per_day(SECOND_DAY), orders_per_day(SECOND_DAY), "SAVE0"),
    ]
    recorded = ledger[SECOND_DAY.isoformat()]
    assert recorded.status == "published"
    assert recorded.message == "schema change: added coupon_code (text)"
    (change,) = [check for check in recorded.check_results if check.check_type == "schema_change"]
    assert (change.column, change.outcome, change.blocking, change.detail) == (
        "coupon_code", "passed", False, "added (text)"
    )
    assert ledger[FIRST_DAY.isoformat()].message == ""

    rerun = run_pipeline("shop_orders", start_date=FIRST_DAY, end_date=FIRST_DAY, return_state=True)
    assert rerun.is_completed(), rerun.message
    with open_warehouse(warehouse_url) as warehouse:
        assert warehouse.fetch_all(
            f"SELECT count(*) FROM {SCHEMA}.{TABLE} WHERE order_date = ? AND coupon_code IS NULL", [FIRST_DAY]
        ) == [(orders_per_day(FIRST_DAY),)], "day 1's source has no coupon codes: the re-run publishes its NULLs"


# --- publishing prepared outputs -------------------------------------------------------------------------------------


def staged(out_table: str, day: date = FIRST_DAY) -> StagedPartition:
    (window,) = plan_windows("day", day, day)
    entry = LedgerEntry(
        pipeline="shop_orders", partition_key=window.key, partition_start=window.start, partition_end=window.end,
        flow_run_id="", run_tag=out_table, code_version="test", contract_hash="", row_count=1, rejected_rows=0,
        status="published", check_results=[], message="", started_at=datetime.now(UTC), destination=f"{SCHEMA}.{TABLE}",
    )  # fmt: skip
    return StagedPartition(window, out_table, entry)


def output(warehouse: Warehouse, name: str, columns: str, values: str, into: str = "") -> str:
    warehouse.ensure_schema(AUDIT_SCHEMA)
    warehouse.execute(f"CREATE TABLE {warehouse.qualified(AUDIT_SCHEMA, name)} ({columns})")
    warehouse.execute(f"INSERT INTO {warehouse.qualified(AUDIT_SCHEMA, name)} {into} VALUES {values}")
    return name


def publish_output(warehouse: Warehouse, out_table: str, day: date = FIRST_DAY) -> None:
    publish(warehouse, find_pipeline("shop_orders").spec, [staged(out_table, day)], warehouse.claim([]))


def shapes(warehouse: Warehouse) -> list[tuple[str, str]]:
    return [(shape.name, shape.type_text) for shape in warehouse.column_shapes(SCHEMA, TABLE)]


def rows(warehouse: Warehouse) -> list[tuple[Any, ...]]:
    return warehouse.fetch_all(f"SELECT * FROM {warehouse.qualified(SCHEMA, TABLE)} ORDER BY order_date")


ORIGINAL = "order_id integer, amount decimal(12,2), note varchar(10), order_date date"


@pytest.fixture
def warehouse(warehouse_url: str) -> Any:
    with open_warehouse(warehouse_url) as warehouse:
        migrate(warehouse)
        publish_output(warehouse, output(warehouse, "first__out", ORIGINAL, f"(1, 10.50, 'one', '{FIRST_DAY}')"))
        yield warehouse


def test_wider_types_are_changed_in_place_and_published_rows_keep_their_values(warehouse: Warehouse) -> None:
    # varchar(10) → varchar(40) on PostgreSQL; DuckDB has no varchar length, so the note stays VARCHAR there.
    wider = "order_id bigint, amount decimal(14,2), note varchar(40), order_date date"
    publish_output(warehouse, output(warehouse, "wider__out", wider, f"(2, 123456789012.25, 'two', '{SECOND_DAY}')"),
                   SECOND_DAY)  # fmt: skip

    types = dict(shapes(warehouse))
    assert types["order_id"] == "bigint" and types["amount"] in ("numeric(14,2)", "decimal(14,2)")
    assert rows(warehouse) == [
        (1, Decimal("10.50"), "one", FIRST_DAY),
        (2, Decimal("123456789012.25"), "two", SECOND_DAY),
    ]
    (entry,) = [e for e in entries(warehouse, "shop_orders") if e.run_tag == "wider__out"]
    assert entry.message.startswith("schema change: widened order_id integer → bigint; widened amount ")


@pytest.mark.parametrize(
    ("columns", "refused"),
    [
        ("order_id integer, amount decimal(12,2), order_date date", "removed note"),
        (
            "order_id smallint, amount decimal(12,2), note varchar(10), order_date date",
            "changed order_id integer → smallint",
        ),
        ("order_id integer, amount decimal(10,2), note varchar(10), order_date date", "changed amount "),
        ("order_id text, amount decimal(12,2), note varchar(10), order_date date", "changed order_id integer → "),
    ],
    ids=["removed", "narrowed integer", "narrowed decimal", "retyped"],
)
def test_a_removed_narrowed_or_retyped_column_is_refused_and_nothing_changes(
    warehouse: Warehouse, columns: str, refused: str
) -> None:
    before_shapes, before_rows = shapes(warehouse), rows(warehouse)
    hostile = output(
        warehouse, "changed__out", f"{columns}, coupon_code text", f"('1', '{SECOND_DAY}', 'NEW')",
        "(order_id, order_date, coupon_code)",
    )  # fmt: skip

    with pytest.raises(PublishError) as raised:
        publish_output(warehouse, hostile, SECOND_DAY)

    message = str(raised.value)
    assert message.startswith(
        f"pipeline shop_orders, partition {SECOND_DAY}: the transform output audit.changed__out differs from "
        f"{SCHEMA}.{TABLE} in a way publish does not make by itself (added coupon_code (text); "
    )
    assert refused in message
    assert (
        "it would drop or reinterpret published data. Nothing was published; the table is unchanged. Restore the "
        "column or its type in the transform, or bump destination.version to 2 with previous_version_until"
    ) in message
    assert (shapes(warehouse), rows(warehouse)) == (before_shapes, before_rows), "not even the new column was added"
    assert [e.run_tag for e in entries(warehouse, "shop_orders")] == ["first__out"]
