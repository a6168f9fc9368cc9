"""The whole write-audit-publish flow on real warehouses: `run_pipeline` over the example shop pipeline.

Every test runs on DuckDB and on PostgreSQL (the `warehouse_url` fixture) against a real temporary Prefect API,
and asserts on what the warehouse holds afterwards: the published table, the ledger, the dead letters and the
audit area.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from demo.shop_app import generate, inject_bad_orders, orders_per_day
from flows.run_pipeline import run_pipeline
from shipshape.audit_area import RunTables
from shipshape.errors import (
    AuditFailedError,
    ConfigurationError,
    RejectThresholdError,
    SchemaDriftError,
    TerminalError,
    WarehouseError,
)
from shipshape.ledger import entries
from shipshape.partitions import plan_windows
from shipshape.warehouses import AUDIT_SCHEMA, PLATFORM_SCHEMA, open_warehouse
from tests.support.project import DAYS, FIRST_DAY, Project, make_project

# Soda warns about its own use of its own internal helpers (raw SQL, UNION ALL) on every run.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:soda_.*")

PIPELINE = "shop_orders"
SCHEMA, TABLE = "analytics", "fct_orders"
ALL_DAYS = [FIRST_DAY + timedelta(days=offset) for offset in range(DAYS)]
LAST_DAY = ALL_DAYS[-1]
MIDDLE_DAY = ALL_DAYS[1]
BAD_ORDERS = 25
SQL_FILE = "pipelines/shop_orders/fct_orders.sql"
CONTRACT_FILE = "checks/fct_orders.yaml"


# --- helpers ----------------------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, warehouse_url: str, monkeypatch: pytest.MonkeyPatch, prefect_api: str) -> Project:
    return make_project(tmp_path, warehouse_url, monkeypatch)


def run(first: date | None = None, last: date | None = None, *, reuse_raw: bool = False) -> UUID:
    """Run the flow (it must succeed); returns its flow run id."""
    state = run_pipeline(PIPELINE, start_date=first, end_date=last or first, reuse_raw=reuse_raw, return_state=True)
    assert state.is_completed(), state.message
    return state.state_details.flow_run_id


def query(project: Project, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with open_warehouse(project.warehouse_url) as warehouse:
        return warehouse.fetch_all(sql, params)


def published(project: Project) -> list[tuple[Any, ...]]:
    """The whole published table, sorted; empty when it was never created."""
    with open_warehouse(project.warehouse_url) as warehouse:
        if not warehouse.table_exists(SCHEMA, TABLE):
            return []
        return warehouse.fetch_all(f"SELECT * FROM {warehouse.qualified(SCHEMA, TABLE)} ORDER BY order_id")


def published_columns(project: Project) -> list[str]:
    with open_warehouse(project.warehouse_url) as warehouse:
        return warehouse.table_columns(SCHEMA, TABLE)


def counts_per_day(project: Project) -> dict[date, int]:
    rows = query(project, f"SELECT order_date, count(*) FROM {SCHEMA}.{TABLE} GROUP BY order_date ORDER BY 1")
    return {day: int(count) for day, count in rows}


def ledger(project: Project) -> list[dict[str, Any]]:
    """Ledger rows of the pipeline, newest first, as plain dicts (check results too) to compare with literals."""
    with open_warehouse(project.warehouse_url) as warehouse:
        return [asdict(entry) for entry in entries(warehouse, PIPELINE)]


def audit_tables(project: Project) -> list[str]:
    with open_warehouse(project.warehouse_url) as warehouse:
        return warehouse.list_tables(AUDIT_SCHEMA)


def run_tables(day: date, run_tag: str) -> RunTables:
    (window,) = plan_windows("day", day, day)
    return RunTables(PIPELINE, window, run_tag)


def tables_of_run(project: Project, run_tag: str) -> list[str]:
    return [table for table in audit_tables(project) if f"__{run_tag}__" in table]


def dead_letters(project: Project) -> list[tuple[Any, ...]]:
    """(partition_key, run_tag, row_number, reason, raw_record) of every dead letter of the pipeline."""
    return query(
        project,
        f"SELECT partition_key, run_tag, row_number, reason, raw_record FROM {PLATFORM_SCHEMA}.dead_letters "
        "WHERE pipeline = ? ORDER BY row_number",
        [PIPELINE],
    )


def shop(project: Project, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run SQL on the source shop database (SQLite), committing any change."""
    with sqlite3.connect(project.shop_db) as connection:
        return connection.execute(sql, params).fetchall()


def day_bounds(day: date) -> tuple[str, str]:
    return f"{day.isoformat()} 00:00:00", f"{(day + timedelta(days=1)).isoformat()} 00:00:00"


def first_order_ids(project: Project, day: date, count: int) -> list[int]:
    rows = shop(
        project,
        "SELECT order_id FROM orders WHERE created_at >= ? AND created_at < ? ORDER BY order_id LIMIT ?",
        [*day_bounds(day), count],
    )
    return [row[0] for row in rows]


def break_amounts(project: Project, day: date, count: int = 3, value: str = "abc") -> list[int]:
    """Make `count` amounts of `day` unconvertible (SQLite keeps text in a NUMERIC column); returns their ids."""
    ids = first_order_ids(project, day, count)
    shop(project, f"UPDATE orders SET amount = ? WHERE order_id IN ({', '.join('?' * len(ids))})", [value, *ids])
    return ids


def set_rejects(project: Project, max_rows: int) -> None:
    project.edit_declaration(lambda data: data.update(rejects={"max_rows": max_rows}))


def edit_text(project: Project, relative: str, old: str, new: str) -> None:
    path = project.root / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new))


def edit_contract(project: Project, change: Callable[[dict[str, Any]], None]) -> None:
    path = project.root / CONTRACT_FILE
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def day_orders(project: Project, day: date) -> list[dict[str, Any]]:
    """The source rows of one day, as the declared columns."""
    with sqlite3.connect(project.shop_db) as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute(
            "SELECT order_id, customer_id, email, amount, status, created_at, updated_at FROM orders "
            "WHERE created_at >= ? AND created_at < ? ORDER BY order_id",
            day_bounds(day),
        ).fetchall()
    return [dict(row) for row in rows]


def hmac_hex(value: str, key: str) -> str:
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


# --- publishing a range ---------------------------------------------------------------------------------------


def test_date_range_run_publishes_every_partition_with_exactly_the_source_rows_and_a_full_ledger(
    project: Project,
) -> None:
    flow_run_id = run(FIRST_DAY, LAST_DAY)

    assert counts_per_day(project) == {day: orders_per_day(day) for day in ALL_DAYS}
    source_ids = [row[0] for row in shop(project, "SELECT order_id FROM orders ORDER BY order_id")]
    assert [row[0] for row in published(project)] == source_ids
    rows = ledger(project)
    assert sorted(entry["partition_key"] for entry in rows) == [day.isoformat() for day in ALL_DAYS]
    contract_hash = hashlib.sha256((project.root / CONTRACT_FILE).read_bytes()).hexdigest()[:16]
    for entry in rows:
        day = date.fromisoformat(entry["partition_key"])
        assert entry["status"] == "published"
        assert entry["flow_run_id"] == str(flow_run_id)
        assert entry["code_version"]
        assert entry["contract_hash"] == contract_hash
        assert entry["row_count"] == orders_per_day(day)
        assert entry["rejected_rows"] == 0
        assert entry["check_results"], "no check results recorded"
        assert not [check for check in entry["check_results"] if check["blocking"]]
        row_count = [check for check in entry["check_results"] if check["name"] == "row_count"]
        assert [check["measured"] for check in row_count] == [orders_per_day(day)]


def test_rerunning_a_range_three_times_leaves_the_published_table_and_dead_letters_identical(
    project: Project,
) -> None:
    set_rejects(project, 5)
    break_amounts(project, MIDDLE_DAY)
    run(FIRST_DAY, LAST_DAY)
    first_rows, first_counts, first_letters = published(project), counts_per_day(project), dead_letters(project)

    run(FIRST_DAY, LAST_DAY)
    run(FIRST_DAY, LAST_DAY)

    assert published(project) == first_rows
    assert counts_per_day(project) == first_counts
    assert first_counts[MIDDLE_DAY] == orders_per_day(MIDDLE_DAY) - 3
    letters = dead_letters(project)
    assert len(letters) == len(first_letters) == 3
    assert [letter[2:] for letter in letters] == [letter[2:] for letter in first_letters]
    assert len(ledger(project)) == 3 * DAYS


# --- the audit gate -------------------------------------------------------------------------------------------


def test_failed_audit_blocks_the_partition_and_leaves_the_published_table_unchanged(project: Project) -> None:
    run(MIDDLE_DAY)
    before = published(project)
    inject_bad_orders(project.shop_db, MIDDLE_DAY, BAD_ORDERS)

    with pytest.raises(AuditFailedError) as raised:
        run_pipeline(PIPELINE, start_date=MIDDLE_DAY, end_date=MIDDLE_DAY)

    message = str(raised.value)
    assert f"amount invalid={BAD_ORDERS}" in message
    assert f"status invalid={BAD_ORDERS}" in message
    assert "unchanged" in message
    assert published(project) == before
    blocked = ledger(project)[0]
    assert (blocked["status"], blocked["partition_key"]) == ("blocked", MIDDLE_DAY.isoformat())
    assert blocked["row_count"] == orders_per_day(MIDDLE_DAY) + BAD_ORDERS
    failed = {check["name"]: check for check in blocked["check_results"] if check["blocking"]}
    assert set(failed) == {"amount invalid", "status invalid"}
    assert {name: check["measured"] for name, check in failed.items()} == {
        "amount invalid": BAD_ORDERS,
        "status invalid": BAD_ORDERS,
    }
    quarantined = run_tables(MIDDLE_DAY, blocked["run_tag"])
    assert set(tables_of_run(project, blocked["run_tag"])) == {quarantined.raw, quarantined.out}
    assert quarantined.out in message
    _assert_blocked_artifact(UUID(blocked["flow_run_id"]), MIDDLE_DAY)


def _assert_blocked_artifact(flow_run_id: UUID, day: date) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    key = f"audit-shop-orders-{day:%Y%m%d}"
    (artifact,) = [artifact for artifact in artifacts if artifact.key == key]
    assert artifact.type == "table"
    table = artifact.data if isinstance(artifact.data, list) else json.loads(artifact.data)
    failed = {row["name"] for row in table if row["blocking"]}
    assert failed == {"amount invalid", "status invalid"}


@pytest.mark.parametrize("published_before", [False, True], ids=["first-run", "after-a-publish"])
def test_a_blocked_middle_day_publishes_no_partition_of_the_range(project: Project, published_before: bool) -> None:
    if published_before:
        run(FIRST_DAY, LAST_DAY)
    before = published(project)
    inject_bad_orders(project.shop_db, MIDDLE_DAY, BAD_ORDERS)

    with pytest.raises(AuditFailedError) as raised:
        run_pipeline(PIPELINE, start_date=FIRST_DAY, end_date=LAST_DAY)

    assert f"blocked 1 of {DAYS} partition(s)" in str(raised.value)
    assert published(project) == before
    assert bool(before) is published_before
    rows = ledger(project)
    this_run = [entry for entry in rows if entry["flow_run_id"] == rows[0]["flow_run_id"]]
    assert [(entry["partition_key"], entry["status"]) for entry in this_run] == [(MIDDLE_DAY.isoformat(), "blocked")]


def test_per_partition_mode_publishes_every_day_but_the_blocked_one_and_names_it(project: Project) -> None:
    """A backfill's batch: the blocked middle day stops no other day, each published on its own."""
    inject_bad_orders(project.shop_db, MIDDLE_DAY, BAD_ORDERS)

    state = run_pipeline(PIPELINE, start_date=FIRST_DAY, end_date=LAST_DAY, publish_mode="per_partition",
                         return_state=True)

    assert state.name == "AuditFailed"
    assert f"1 of {DAYS} partition(s) not published — {MIDDLE_DAY}: blocked, " in state.message
    assert f"The {DAYS - 1} other partition(s) are published in {SCHEMA}.{TABLE}" in state.message
    good = [day for day in ALL_DAYS if day != MIDDLE_DAY]
    assert counts_per_day(project) == {day: orders_per_day(day) for day in good}
    this_run = [e for e in ledger(project) if e["flow_run_id"] == str(state.state_details.flow_run_id)]
    assert sorted((e["partition_key"], e["status"]) for e in this_run) == sorted(
        [(day.isoformat(), "published") for day in good] + [(MIDDLE_DAY.isoformat(), "blocked")]
    )
    # Each passing day was its own publish: its own ledger row, none waiting for the others' audits.
    assert len({e["finished_at"] for e in this_run if e["status"] == "published"}) == DAYS - 1


def test_per_partition_mode_goes_on_after_a_day_that_fails_before_its_audit(project: Project) -> None:
    set_rejects(project, 0)
    break_amounts(project, MIDDLE_DAY)

    state = run_pipeline(PIPELINE, start_date=FIRST_DAY, end_date=LAST_DAY, publish_mode="per_partition",
                         return_state=True)

    assert state.is_failed() and state.name == "Failed"
    assert f"{MIDDLE_DAY}: failed, " in state.message and "3 rows failed type conversion" in state.message
    assert counts_per_day(project) == {day: orders_per_day(day) for day in ALL_DAYS if day != MIDDLE_DAY}
    statuses = {e["partition_key"]: e["status"] for e in ledger(project)}
    assert statuses[MIDDLE_DAY.isoformat()] == "failed"


def test_republishing_after_a_fix_removes_the_quarantined_tables_of_the_partition(project: Project) -> None:
    inject_bad_orders(project.shop_db, MIDDLE_DAY, BAD_ORDERS)
    with pytest.raises(AuditFailedError):
        run_pipeline(PIPELINE, start_date=MIDDLE_DAY, end_date=MIDDLE_DAY)
    blocked_tag = ledger(project)[0]["run_tag"]
    assert tables_of_run(project, blocked_tag)

    generate(project.shop_db, FIRST_DAY, DAYS)
    run(MIDDLE_DAY)

    latest = ledger(project)[0]
    assert latest["status"] == "published"
    assert counts_per_day(project) == {MIDDLE_DAY: orders_per_day(MIDDLE_DAY)}
    prefix = run_tables(MIDDLE_DAY, latest["run_tag"]).partition_prefix
    assert [table for table in audit_tables(project) if table.startswith(prefix)] == [
        run_tables(MIDDLE_DAY, latest["run_tag"]).raw
    ]


# --- re-using raw data ----------------------------------------------------------------------------------------


def test_reuse_raw_republishes_the_same_rows_without_reading_the_source(project: Project) -> None:
    run(FIRST_DAY)
    before = published(project)
    first_tag = ledger(project)[0]["run_tag"]
    project.shop_db.unlink()

    run(FIRST_DAY, reuse_raw=True)

    assert published(project) == before
    assert len(before) == orders_per_day(FIRST_DAY)
    latest = ledger(project)[0]
    assert (latest["status"], latest["row_count"]) == ("published", orders_per_day(FIRST_DAY))
    assert latest["run_tag"] != first_tag
    assert not project.shop_db.exists(), "the source was opened"


def test_reuse_raw_keeps_the_dead_letters_of_the_reused_load(project: Project) -> None:
    """Re-using raw data re-uses its rejects (the ledger counts them), so their dead letters must stay."""
    set_rejects(project, 5)
    break_amounts(project, FIRST_DAY)
    run(FIRST_DAY)
    letters = dead_letters(project)
    assert len(letters) == 3

    run(FIRST_DAY, reuse_raw=True)

    assert ledger(project)[0]["rejected_rows"] == 3
    assert [letter[2:] for letter in dead_letters(project)] == [letter[2:] for letter in letters]


# --- schema drift ---------------------------------------------------------------------------------------------


def test_a_renamed_source_column_stops_the_run_before_loading(project: Project) -> None:
    run(FIRST_DAY)
    before = published(project)
    shop(project, "ALTER TABLE orders RENAME COLUMN amount TO total")

    with pytest.raises(SchemaDriftError) as raised:
        run_pipeline(PIPELINE, start_date=FIRST_DAY, end_date=FIRST_DAY)

    assert "'amount'" in str(raised.value)
    assert published(project) == before
    failed = ledger(project)[0]
    assert failed["status"] == "failed"
    assert tables_of_run(project, failed["run_tag"]) == []


def test_an_undeclared_source_column_is_never_loaded(project: Project) -> None:
    shop(project, "UPDATE orders SET coupon_code = 'SAVE10-LEAK'")

    run(FIRST_DAY)

    raw = run_tables(FIRST_DAY, ledger(project)[0]["run_tag"]).raw
    with open_warehouse(project.warehouse_url) as warehouse:
        raw_columns = warehouse.table_columns(AUDIT_SCHEMA, raw)
        raw_rows = warehouse.fetch_all(f"SELECT * FROM {warehouse.qualified(AUDIT_SCHEMA, raw)}")
    assert raw_columns == ["order_id", "customer_id", "email", "amount", "status", "created_at", "updated_at"]
    assert "coupon_code" not in published_columns(project)
    every_value = [*raw_rows, *published(project)]
    assert len(raw_rows) == orders_per_day(FIRST_DAY)
    assert not [row for row in every_value if "SAVE10-LEAK" in map(str, row)]


def _use_parquet_source(project: Project, day: date, amount_type: pa.DataType) -> None:
    """Switch the pipeline to a landed Parquet file per day, holding the shop's rows with `amount` as given."""
    rows = day_orders(project, day)
    stamp = pa.timestamp("us", tz="UTC")
    table = pa.table(
        {
            "order_id": pa.array([row["order_id"] for row in rows], pa.int64()),
            "customer_id": pa.array([row["customer_id"] for row in rows], pa.int64()),
            "email": [row["email"] for row in rows],
            "amount": pa.array([f"{row['amount']:.2f}" for row in rows]).cast(amount_type),
            "status": [row["status"] for row in rows],
            "created_at": pa.array([f"{row['created_at']}+00:00" for row in rows]).cast(stamp),
            "updated_at": pa.array([f"{row['updated_at']}+00:00" for row in rows]).cast(stamp),
        }
    )
    landing = project.data_dir / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, landing / f"orders_{day.isoformat()}.parquet")
    columns = yaml.safe_load(project.declaration.read_text())["source"]["columns"]
    path = "{data_dir}/landing/orders_{start:%Y-%m-%d}.parquet"
    project.edit_declaration(lambda data: data.update(source={"kind": "file", "path": path, "format": "parquet",
                                                               "columns": columns}))


def test_a_typed_source_column_whose_type_changed_stops_the_run_before_loading(project: Project) -> None:
    _use_parquet_source(project, FIRST_DAY, pa.decimal128(12, 2))
    run(FIRST_DAY)
    before = published(project)
    assert len(before) == orders_per_day(FIRST_DAY)
    _use_parquet_source(project, FIRST_DAY, pa.string())

    with pytest.raises(SchemaDriftError) as raised:
        run_pipeline(PIPELINE, start_date=FIRST_DAY, end_date=FIRST_DAY)

    assert "column 'amount': declared decimal(12,2) (number), found text" in str(raised.value)
    assert published(project) == before
    assert tables_of_run(project, ledger(project)[0]["run_tag"]) == []


# --- rejected values ------------------------------------------------------------------------------------------


def test_unconvertible_values_go_to_dead_letters_once_and_the_rest_is_published(project: Project) -> None:
    set_rejects(project, 5)
    broken = break_amounts(project, FIRST_DAY)

    run(FIRST_DAY)
    run(FIRST_DAY)

    assert counts_per_day(project) == {FIRST_DAY: orders_per_day(FIRST_DAY) - 3}
    assert not {row[0] for row in published(project)} & set(broken)
    letters = dead_letters(project)
    latest = ledger(project)[0]
    assert len(letters) == 3
    assert {(key, tag) for key, tag, *_ in letters} == {(FIRST_DAY.isoformat(), latest["run_tag"])}
    assert latest["rejected_rows"] == 3
    for _, _, row_number, reason, raw_record in letters:
        assert "'amount'" in reason
        record = json.loads(raw_record)
        assert record["amount"] == "abc"
        assert record["order_id"] in broken
        assert row_number >= 1


def test_more_rejects_than_allowed_fail_the_run_and_keep_the_dead_letters(project: Project) -> None:
    set_rejects(project, 0)
    break_amounts(project, FIRST_DAY)

    with pytest.raises(RejectThresholdError) as raised:
        run_pipeline(PIPELINE, start_date=FIRST_DAY, end_date=FIRST_DAY)

    assert "3 rows failed type conversion" in str(raised.value)
    assert published(project) == []
    failed = ledger(project)[0]
    assert failed["status"] == "failed"
    letters = dead_letters(project)
    assert len(letters) == 3
    assert {tag for _, tag, *_ in letters} == {failed["run_tag"]}


# --- PII ------------------------------------------------------------------------------------------------------


def test_emails_are_published_as_their_keyed_hash_and_never_loaded_raw(project: Project) -> None:
    run(FIRST_DAY)

    key = project.env()["PII_HASH_KEY"]
    emails = {row["order_id"]: row["email"] for row in day_orders(project, FIRST_DAY)}
    hashes = dict(query(project, f"SELECT order_id, customer_email_hash FROM {SCHEMA}.{TABLE}"))
    assert hashes == {order_id: hmac_hex(email, key) for order_id, email in emails.items()}
    raw = run_tables(FIRST_DAY, ledger(project)[0]["run_tag"]).raw
    raw_rows = query(project, f'SELECT * FROM {AUDIT_SCHEMA}."{raw}"')
    assert len(raw_rows) == len(emails)
    assert not [row for row in raw_rows if any("@" in str(value) for value in row)]


def test_dead_letters_hold_no_raw_pii(project: Project) -> None:
    """The raw record of a rejected row must not carry the declared PII column in clear text."""
    set_rejects(project, 5)
    break_amounts(project, FIRST_DAY)

    run(FIRST_DAY)

    letters = dead_letters(project)
    assert len(letters) == 3
    assert not [raw_record for *_, raw_record in letters if "@example.com" in raw_record]


def test_pii_drop_removes_the_column_everywhere(project: Project) -> None:
    project.edit_declaration(lambda data: data["pii"].update(columns={"email": "drop"}))
    edit_text(project, SQL_FILE, "    email AS customer_email_hash,\n", "")
    edit_contract(
        project,
        lambda data: data.update(
            columns=[column for column in data["columns"] if column["name"] != "customer_email_hash"]
        ),
    )

    run(FIRST_DAY)

    assert "customer_email_hash" not in published_columns(project)
    assert len(published(project)) == orders_per_day(FIRST_DAY)
    raw = run_tables(FIRST_DAY, ledger(project)[0]["run_tag"]).raw
    with open_warehouse(project.warehouse_url) as warehouse:
        assert "email" not in warehouse.table_columns(AUDIT_SCHEMA, raw)


def test_a_missing_pii_key_fails_the_run_naming_the_variable(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PII_HASH_KEY")

    with pytest.raises(ConfigurationError, match="PII_HASH_KEY"):
        run_pipeline(PIPELINE, start_date=FIRST_DAY, end_date=FIRST_DAY)

    assert published(project) == []
    assert ledger(project)[0]["status"] == "failed"


# --- load modes -----------------------------------------------------------------------------------------------


def test_merge_updates_changed_rows_in_place_without_duplicates(project: Project) -> None:
    project.edit_declaration(lambda data: data.update(load={"mode": "merge", "key": ["order_id"]}))
    run(FIRST_DAY)
    before = {row[0]: row for row in published(project)}
    changed = first_order_ids(project, FIRST_DAY, 10)
    shop(
        project,
        f"UPDATE orders SET status = 'cancelled' WHERE order_id IN ({', '.join('?' * len(changed))})",
        changed,
    )

    run(FIRST_DAY)

    rows = published(project)
    status_at = published_columns(project).index("status")
    after = {row[0]: row for row in rows}
    assert len(rows) == len(after) == orders_per_day(FIRST_DAY)
    assert {order_id: row[status_at] for order_id, row in after.items() if order_id in changed} == dict.fromkeys(
        changed, "cancelled"
    )
    assert {k: v for k, v in after.items() if k not in changed} == {k: v for k, v in before.items() if k not in changed}


def test_a_merge_rerun_whose_output_has_null_or_repeated_keys_blocks_and_the_table_keeps_its_rows(
    project: Project,
) -> None:
    """A NULL key matches no published row, so each re-run would insert its rows again; a repeated key would be
    published twice. The platform blocks both, even with a contract that checks neither."""
    project.edit_declaration(lambda data: data.update(load={"mode": "merge", "key": ["order_id"]}))
    edit_contract(project, lambda data: next(c for c in data["columns"] if c["name"] == "order_id").pop("checks"))
    run(FIRST_DAY)
    before = published(project)
    null_ids = "    CASE WHEN order_id % 10 = 0 THEN NULL ELSE order_id END AS order_id,\n"
    edit_text(project, SQL_FILE, "    order_id,\n", null_ids)
    edit_text(
        project, SQL_FILE, "FROM {{ raw }}",
        "FROM (SELECT * FROM {{ raw }} UNION ALL SELECT * FROM {{ raw }} WHERE order_id % 10 = 1) AS doubled",
    )
    ids = [order["order_id"] for order in day_orders(project, FIRST_DAY)]
    nulls, repeated = sum(i % 10 == 0 for i in ids), sum(i % 10 == 1 for i in ids)

    with pytest.raises(AuditFailedError) as raised:
        run_pipeline(PIPELINE, start_date=FIRST_DAY, end_date=FIRST_DAY)

    assert f"merge key: not NULL={nulls} (merge key (order_id) is NULL in {nulls} rows; " in str(raised.value)
    assert f"merge key: unique={repeated} (merge key (order_id) repeats: {repeated} keys, {2 * repeated} rows; " in (
        str(raised.value)
    )
    assert published(project) == before
    blocked = ledger(project)[0]
    assert blocked["status"] == "blocked"
    assert {check["name"] for check in blocked["check_results"] if check["blocking"]} == {
        "merge key: not NULL", "merge key: unique"
    }


def test_merge_that_would_shrink_the_table_more_than_allowed_blocks_and_the_table_keeps_its_rows(
    project: Project,
) -> None:
    """Merging on a coarse key (the day) would replace every published row of that key: a source that lost most of
    the day would shrink the table. (Such a key repeats in the output, which blocks on its own; the table here
    was published by partition, so the shrink rule is what protects its rows.)"""
    run(FIRST_DAY)
    project.edit_declaration(lambda data: data.update(load={"mode": "merge", "key": ["order_date"]}, volume={}))
    before = published(project)
    shop(project, "DELETE FROM orders WHERE order_id % 5 <> 0")
    remaining = len(day_orders(project, FIRST_DAY))

    with pytest.raises(AuditFailedError) as raised:
        run_pipeline(PIPELINE, start_date=FIRST_DAY, end_date=FIRST_DAY)

    minimum = (len(before) + 1) // 2
    assert (
        f"volume: shrink within max_shrink={remaining} (must be at least {minimum} of the {len(before)} rows now in "
        f"{SCHEMA}.{TABLE} (volume.max_shrink 0.5))"
    ) in str(raised.value)
    assert published(project) == before
    blocked = ledger(project)[0]
    assert {check["name"] for check in blocked["check_results"] if check["blocking"]} == {
        "volume: shrink within max_shrink", "merge key: unique"
    }


def _use_full_replace(project: Project) -> int:
    """Make the pipeline a full refresh of a shop with recent orders; returns how many orders it has."""
    def unpartitioned(data: dict[str, Any]) -> None:
        del data["partition"]
        data["load"] = {"mode": "full_replace"}

    project.edit_declaration(unpartitioned)
    # Recent days, so the contract's freshness check (judged against now for a full refresh) passes.
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    return generate(project.shop_db, yesterday - timedelta(days=DAYS - 1), DAYS)


def test_full_replace_replaces_the_whole_table(project: Project) -> None:
    total = _use_full_replace(project)

    run()

    source_ids = [row[0] for row in shop(project, "SELECT order_id FROM orders ORDER BY order_id")]
    assert [row[0] for row in published(project)] == source_ids
    assert len(source_ids) == total
    shop(project, "DELETE FROM orders WHERE order_id % 10 = 0")

    run()

    remaining = [row[0] for row in shop(project, "SELECT order_id FROM orders ORDER BY order_id")]
    assert [row[0] for row in published(project)] == remaining
    assert len(remaining) < total
    assert [entry["partition_key"] for entry in ledger(project)] == ["full", "full"]


def test_full_replace_that_would_shrink_the_table_more_than_allowed_blocks_and_the_table_keeps_its_rows(
    project: Project,
) -> None:
    total = _use_full_replace(project)
    run()
    before = published(project)
    assert len(before) == total
    shop(project, "DELETE FROM orders WHERE order_id % 5 <> 0")  # the source lost 80% of its rows
    remaining = [row[0] for row in shop(project, "SELECT order_id FROM orders ORDER BY order_id")]

    state = run_pipeline(PIPELINE, return_state=True)

    assert (state.is_failed(), state.name) == (True, "AuditFailed")
    minimum = (total + 1) // 2
    assert f"volume: shrink within max_shrink={len(remaining)} (must be at least {minimum} " in state.message
    assert f"{SCHEMA}.{TABLE} is unchanged" in state.message
    assert published(project) == before
    blocked = ledger(project)[0]
    assert (blocked["status"], blocked["row_count"]) == ("blocked", len(remaining))
    failed = {check["name"]: check for check in blocked["check_results"] if check["blocking"]}
    assert set(failed) == {"volume: shrink within max_shrink"}
    assert failed["volume: shrink within max_shrink"]["measured"] == len(remaining)
    quarantined = RunTables(PIPELINE, plan_windows(None, FIRST_DAY, FIRST_DAY)[0], blocked["run_tag"])
    assert set(tables_of_run(project, blocked["run_tag"])) == {quarantined.raw, quarantined.out}

    project.edit_declaration(lambda data: data["volume"].update(max_shrink=0.85))  # an expected clean-up
    run()

    assert [row[0] for row in published(project)] == remaining
    assert ledger(project)[0]["status"] == "published"


def test_hourly_partitions_publish_each_hour_of_a_day(project: Project) -> None:
    def hourly(data: dict[str, Any]) -> None:
        data["partition"] = {"column": "created_at", "grain": "hour"}
        data.pop("volume")  # an hour of the shop is ~100 orders, below the daily bounds

    project.edit_declaration(hourly)

    run(FIRST_DAY)

    keys = sorted({entry["partition_key"] for entry in ledger(project)})
    assert keys == [window.key for window in plan_windows("hour", FIRST_DAY, FIRST_DAY)] and len(keys) == 24
    rows = query(project, f"SELECT count(*) FROM {SCHEMA}.{TABLE} WHERE order_date = ?", [FIRST_DAY])
    assert rows[0][0] == orders_per_day(FIRST_DAY)

    run(FIRST_DAY)  # idempotent per hour too

    assert query(project, f"SELECT count(*) FROM {SCHEMA}.{TABLE}")[0][0] == orders_per_day(FIRST_DAY)


# --- transform guard ------------------------------------------------------------------------------------------


def test_transform_output_outside_the_partition_fails_and_publishes_nothing(project: Project) -> None:
    edit_text(
        project,
        SQL_FILE,
        "CAST(created_at AS DATE) AS order_date",
        "CAST(created_at + INTERVAL '1 day' AS DATE) AS order_date",
    )

    with pytest.raises(TerminalError) as raised:
        run_pipeline(PIPELINE, start_date=FIRST_DAY, end_date=FIRST_DAY)

    assert type(raised.value) is TerminalError
    assert f"{orders_per_day(FIRST_DAY)} rows whose order_date is outside" in str(raised.value)
    assert published(project) == []



def test_bad_transform_sql_fails_at_once_without_retries(project: Project) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    edit_text(project, SQL_FILE, "FROM {{ raw }}", "FROM {{ raw }} WHERE no_such_column = 1")

    state = run_pipeline(PIPELINE, start_date=FIRST_DAY, end_date=FIRST_DAY, return_state=True)

    assert state.is_failed()
    with pytest.raises(WarehouseError, match="no_such_column"):
        state.result()
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    transform_runs = [task_run for task_run in task_runs if task_run.name.startswith("transform-partition")]
    assert [task_run.run_count for task_run in transform_runs] == [1], "a permanent error must not be retried"
    assert [entry["status"] for entry in ledger(project)] == ["failed"]
    assert "no_such_column" in ledger(project)[0]["message"]
    assert published(project) == []
