"""Non-SQL sources through the whole write-audit-publish flow: an HTTP JSON API and landed CSV files.

Each test runs on DuckDB and PostgreSQL, against a real temporary Prefect API and (for HTTP) a real local server.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.run_pipeline import run_pipeline
from shipshape.errors import AuditFailedError, SourceError, TransientError
from shipshape.ledger import entries
from shipshape.pii import PiiMasker
from shipshape.settings import PACKAGE_ROOT
from shipshape.warehouses import AUDIT_SCHEMA, PLATFORM_SCHEMA, open_warehouse
from tests.support.http_api import JsonApi, serve_json_api
from tests.support.project import FIRST_DAY, Project, make_project

# Soda warns about its own use of its own internal helpers (raw SQL, UNION ALL) on every run.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:soda_.*")

DAY = FIRST_DAY
COLUMNS = ["order_id", "customer_id", "email", "amount", "status", "created_at", "updated_at"]
API_PIPELINE = "api_orders"
API_TABLE = "fct_api_orders"
API_TOKEN = "orders-api-token-for-tests"
TOKEN_VARIABLE = "SHIPSHAPE_SECRET_ORDERS_API_TOKEN"
PAGE_SIZE = 500

# The example pipeline's transform, unchanged: the same SQL serves an HTTP source.
API_SQL = (PACKAGE_ROOT / "pipelines/shop_orders/fct_orders.sql").read_text()

API_CONTRACT = {
    "dataset": "warehouse/${var.dataset_path}",
    "variables": {"dataset_path": {"default": f"analytics/{API_TABLE}"}},
    "columns": [
        {"name": "order_id", "data_type": "bigint", "checks": [{"missing": None}, {"duplicate": None}]},
        {"name": "customer_id", "data_type": "bigint"},
        {"name": "customer_email_hash", "data_type": "text"},
        {
            "name": "amount",
            "data_type": "decimal",
            "numeric_precision": 12,
            "numeric_scale": 2,
            "checks": [{"invalid": {"valid_min": 0}}],
        },
        {"name": "status", "data_type": "text"},
        {"name": "order_date", "data_type": "date", "checks": [{"missing": None}]},
        {"name": "created_at", "data_type": "timestamp with time zone"},
        {"name": "updated_at", "data_type": "timestamp with time zone"},
    ],
    "checks": [{"schema": None}, {"row_count": {"threshold": {"must_be_greater_than": 0}}}],
}


@pytest.fixture
def project(tmp_path: Path, warehouse_url: str, monkeypatch: pytest.MonkeyPatch, prefect_api: str) -> Project:
    return make_project(tmp_path, warehouse_url, monkeypatch)


def day_orders(project: Project, day: date) -> list[dict[str, Any]]:
    """The shop's orders of one day, as the source would hand them out (timestamps as UTC text)."""
    with sqlite3.connect(project.shop_db) as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute(
            f"SELECT {', '.join(COLUMNS)} FROM orders WHERE created_at >= ? AND created_at < ? ORDER BY order_id",
            [f"{day} 00:00:00", f"{day + timedelta(days=1)} 00:00:00"],
        ).fetchall()
    return [dict(row) for row in rows]


def published(project: Project, table: str) -> list[tuple[Any, ...]]:
    """(order_id, amount) of every published row, sorted; empty when the table was never created."""
    with open_warehouse(project.warehouse_url) as warehouse:
        if not warehouse.table_exists("analytics", table):
            return []
        return warehouse.fetch_all(
            f"SELECT order_id, amount FROM {warehouse.qualified('analytics', table)} ORDER BY order_id"
        )


def ledger(project: Project, pipeline: str) -> list[dict[str, Any]]:
    with open_warehouse(project.warehouse_url) as warehouse:
        return [asdict(entry) for entry in entries(warehouse, pipeline)]


def run_day(pipeline: str) -> None:
    state = run_pipeline(pipeline, start_date=DAY, end_date=DAY, return_state=True)
    assert state.is_completed(), state.message


def blocking_checks(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in entry["check_results"] if check["blocking"]}


def tables_of_run(project: Project, run_tag: str) -> list[str]:
    with open_warehouse(project.warehouse_url) as warehouse:
        return [table for table in warehouse.list_tables(AUDIT_SCHEMA) if f"__{run_tag}__" in table]


def drop_row_count_rules(project: Project, pipeline: str, contract: str, volume: dict[str, Any]) -> None:
    """No `row_count` check in the contract (nor a freshness check, which needs rows) and no `volume.min_rows`:
    only the platform's own volume rules are left to stop an empty publish. `volume` becomes `volume:`."""
    path = project.root / contract
    data = yaml.safe_load(path.read_text())
    data["checks"] = [check for check in data["checks"] if not {"row_count", "freshness"} & set(check)]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    project.edit_declaration(lambda data: data.update(volume=volume), pipeline)


# --- HTTP -----------------------------------------------------------------------------------------------------


def declare_api_pipeline(project: Project, api: JsonApi) -> None:
    """A pipeline of its own (declaration, SQL, contract) reading the orders API with cursor pagination."""
    declaration = {
        "name": API_PIPELINE,
        "description": "Orders from the shop's JSON API.",
        "owner": {"team": "commerce", "github": "@example-org/commerce", "slack_channel": "#commerce-data"},
        "source": {
            "kind": "http",
            "url": api.url("/cursor"),
            "params": {"created_from": "{start}", "created_before": "{end}"},
            "records_path": "data.items",
            "pagination": {"type": "cursor", "cursor_field": "meta.next_cursor"},
            "token": {"env": TOKEN_VARIABLE},
            "columns": {
                "order_id": "bigint",
                "customer_id": "bigint",
                "email": "text",
                "amount": "decimal(12,2)",
                "status": "text",
                "created_at": "timestamptz",
                "updated_at": "timestamptz",
            },
        },
        "destination": {"table": API_TABLE},
        "partition": {"column": "order_date", "grain": "day"},
        "load": {"mode": "replace_partition"},
        "transform": [f"pipelines/{API_PIPELINE}/{API_TABLE}.sql"],
        "contract": f"checks/{API_TABLE}.yaml",
        "freshness": {"sla": "26h"},
        "schedule": {"cron": "30 2 * * *"},
        "pii": {"columns": {"email": "hash"}},
    }
    files = {
        f"pipelines/{API_PIPELINE}.yaml": yaml.safe_dump(declaration, sort_keys=False),
        f"pipelines/{API_PIPELINE}/{API_TABLE}.sql": API_SQL,
        f"checks/{API_TABLE}.yaml": yaml.safe_dump(API_CONTRACT, sort_keys=False),
    }
    for relative, text in files.items():
        path = project.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def api(project: Project) -> Iterator[JsonApi]:
    with serve_json_api(day_orders(project, DAY), page_size=PAGE_SIZE, token=API_TOKEN) as running:
        declare_api_pipeline(project, running)
        yield running


def test_http_source_publishes_every_record_once_through_transient_failures(
    project: Project, api: JsonApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_VARIABLE, API_TOKEN)
    api.fail_next(2, 503)
    api.fail_next(1, 429, retry_after="0")

    run_day(API_PIPELINE)

    expected = [(record["order_id"], record["amount"]) for record in api.records]
    assert len(expected) > 2 * PAGE_SIZE  # several pages
    rows = published(project, API_TABLE)
    assert [order_id for order_id, _ in rows] == [order_id for order_id, _ in expected]
    assert [float(amount) for _, amount in rows] == [amount for _, amount in expected]
    requests = api.requests
    assert {request.headers["authorization"] for request in requests} == {f"Bearer {API_TOKEN}"}
    assert {(request.query["created_from"], request.query["created_before"]) for request in requests} == {
        (str(DAY), str(DAY + timedelta(days=1)))
    }
    latest = ledger(project, API_PIPELINE)[0]
    assert (latest["status"], latest["row_count"]) == ("published", len(expected))


def test_http_source_rejected_token_fails_at_once_and_publishes_nothing(
    project: Project, api: JsonApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_VARIABLE, "a-revoked-token")

    with pytest.raises(SourceError) as raised:
        run_pipeline(API_PIPELINE, start_date=DAY, end_date=DAY)

    message = str(raised.value)
    assert "401" in message
    assert "source.token" in message
    assert "not retried" in message
    assert len(api.requests) == 1
    assert published(project, API_TABLE) == []
    assert ledger(project, API_PIPELINE)[0]["status"] == "failed"


def declare_fast_retries(project: Project, source_attempts: int, task_retries: int) -> None:
    """Small retry budgets without delays, so a failure exhausts the source's own retries and reaches the task."""

    def change(data: dict[str, Any]) -> None:
        data["source"]["max_attempts"] = source_attempts
        data["retries"] = {"attempts": task_retries, "delay_seconds": 0}

    project.edit_declaration(change, API_PIPELINE)


def extract_attempts(flow_run_id: Any) -> list[int]:
    """How many times each extract task run of the flow run ran, as the Prefect API recorded it."""
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return [task_run.run_count for task_run in task_runs if task_run.name.startswith("extract-to-audit")]


SECOND_PAGE = {"cursor": f"after-{PAGE_SIZE}"}


def test_http_source_failing_mid_load_is_retried_by_the_task_and_published_once(
    project: Project, api: JsonApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_VARIABLE, API_TOKEN)
    declare_fast_retries(project, source_attempts=2, task_retries=2)
    api.fail_page("/cursor", SECOND_PAGE, 503, times=3)  # the first load gives up on page 2, the second gets it

    state = run_pipeline(API_PIPELINE, start_date=DAY, end_date=DAY, return_state=True)

    assert state.is_completed(), state.message
    assert extract_attempts(state.state_details.flow_run_id) == [2]
    expected = [record["order_id"] for record in api.records]
    assert len(expected) > 2 * PAGE_SIZE  # page 2 is in the middle of the read
    assert [order_id for order_id, _ in published(project, API_TABLE)] == expected
    assert [(entry["status"], entry["row_count"]) for entry in ledger(project, API_PIPELINE)] == [
        ("published", len(expected))
    ]


def test_http_source_down_mid_load_fails_after_retries_with_one_line_and_publishes_nothing(
    project: Project, api: JsonApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_VARIABLE, API_TOKEN)
    declare_fast_retries(project, source_attempts=2, task_retries=2)
    api.fail_page("/cursor", SECOND_PAGE, 503)

    state = run_pipeline(API_PIPELINE, start_date=DAY, end_date=DAY, return_state=True)

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, TransientError), repr(error)
    assert extract_attempts(state.state_details.flow_run_id) == [3]
    (entry,) = ledger(project, API_PIPELINE)
    assert entry["status"] == "failed"
    for message in (str(error), entry["message"], state.message or ""):
        assert f"http source: GET {api.url('/cursor')}" in message, message
        assert f"cursor={SECOND_PAGE['cursor']} failed 2 times; last: HTTP 503" in message, message
        assert "Traceback" not in message and "\n" not in message.strip(), message
    assert published(project, API_TABLE) == []


def test_http_source_answering_an_empty_list_blocks_and_leaves_the_published_partition_unchanged(
    project: Project, api: JsonApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`200 {"data": []}` (an API having a bad day) must not replace a published partition with nothing."""
    monkeypatch.setenv(TOKEN_VARIABLE, API_TOKEN)
    def unpaginated(data: dict[str, Any]) -> None:
        data["source"].update(url=api.url("/data"), records_path="data")
        del data["source"]["pagination"]

    project.edit_declaration(unpaginated, API_PIPELINE)
    drop_row_count_rules(project, API_PIPELINE, f"checks/{API_TABLE}.yaml", volume={})
    run_day(API_PIPELINE)
    before = published(project, API_TABLE)
    assert len(before) == len(api.records) > 0
    api.records = []

    state = run_pipeline(API_PIPELINE, start_date=DAY, end_date=DAY, return_state=True)

    assert (state.is_failed(), state.name) == (True, "AuditFailed")
    assert "volume: not empty=0" in state.message
    assert "unchanged" in state.message
    assert published(project, API_TABLE) == before
    blocked = ledger(project, API_PIPELINE)[0]
    assert (blocked["status"], blocked["row_count"]) == ("blocked", 0)
    failed = blocking_checks(blocked)
    assert set(failed) == {"volume: not empty", "volume: shrink within max_shrink"}
    assert failed["volume: shrink within max_shrink"]["measured"] == 0
    assert [table for table in tables_of_run(project, blocked["run_tag"]) if table.endswith("__out")]
    assert api.requests[-1].path == "/data"


# --- files ----------------------------------------------------------------------------------------------------


def use_csv_source(project: Project, max_rejects: int, **csv: Any) -> None:
    """The example pipeline reading the landed CSV of each day instead, with `csv` as its `csv:` options."""

    def change(data: dict[str, Any]) -> None:
        columns = data["source"]["columns"]
        path = "{data_dir}/landing/orders/{start:%Y-%m-%d}.csv"
        data["source"] = {"kind": "file", "path": path, "format": "csv", "columns": columns}
        if csv:
            data["source"]["csv"] = csv
        data["rejects"] = {"max_rows": max_rejects}

    project.edit_declaration(change)


def landing_file(project: Project, day: date) -> Path:
    folder = project.data_dir / "landing" / "orders"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{day}.csv"


def land_csv(project: Project, day: date, records: list[dict[str, Any]]) -> None:
    with landing_file(project, day).open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(records)


def test_csv_source_sends_an_unconvertible_value_to_dead_letters_and_publishes_the_rest(project: Project) -> None:
    use_csv_source(project, max_rejects=1)
    records = day_orders(project, DAY)
    bad_row = 7
    records[bad_row - 1]["amount"] = "12,50"
    land_csv(project, DAY, records)

    run_day("shop_orders")

    bad_id = records[bad_row - 1]["order_id"]
    assert [order_id for order_id, _ in published(project, "fct_orders")] == [
        record["order_id"] for record in records if record["order_id"] != bad_id
    ]
    with open_warehouse(project.warehouse_url) as warehouse:
        letters = warehouse.fetch_all(
            f"SELECT partition_key, row_number, reason, raw_record FROM {PLATFORM_SCHEMA}.dead_letters "
            "WHERE pipeline = ?",
            ["shop_orders"],
        )
    ((partition_key, row_number, reason, raw_record),) = letters
    assert (partition_key, row_number) == (str(DAY), bad_row)
    assert reason == "column 'amount': value is not a valid decimal(12,2)"  # never the value (SECURITY.md)
    raw = json.loads(raw_record)
    assert (raw["order_id"], raw["amount"]) == (str(bad_id), "12,50")
    latest = ledger(project, "shop_orders")[0]
    assert (latest["status"], latest["rejected_rows"]) == ("published", 1)


def published_orders(project: Project) -> dict[int, tuple[Any, ...]]:
    """order_id → (amount, status, customer_email_hash, updated_at) as published."""
    with open_warehouse(project.warehouse_url) as warehouse:
        rows = warehouse.fetch_all(
            "SELECT order_id, amount, status, customer_email_hash, updated_at "
            f"FROM {warehouse.qualified('analytics', 'fct_orders')} ORDER BY order_id"
        )
    return {order_id: rest for order_id, *rest in rows}


def email_hash(project: Project, email: str) -> str:
    """The published digest of `email`: the pipeline's keyed hash, with the project's key."""
    (digest,) = PiiMasker({"email": "hash"}, project.env()["PII_HASH_KEY"]).mask_record({"email": email}).values()
    return str(digest)


def test_csv_written_by_pandas_with_na_publishes_nulls_where_na_was(project: Project) -> None:
    use_csv_source(project, max_rejects=0, null_markers=["", "NA"])
    records = day_orders(project, DAY)
    for index, column in [(2, "status"), (4, "email"), (6, "updated_at")]:
        records[index][column] = None
    # Written by pandas itself, as a data team's export job would: each None becomes a bare NA.
    pandas.DataFrame.from_records(records, columns=COLUMNS).to_csv(landing_file(project, DAY), index=False, na_rep="NA")
    assert landing_file(project, DAY).read_text().count(",NA") == 3

    run_day("shop_orders")

    published = published_orders(project)
    assert sorted(published) == [record["order_id"] for record in records]
    for index, record in enumerate(records):
        amount, status, email_digest, updated_at = published[record["order_id"]]
        assert float(amount) == record["amount"]
        assert status == (None if index == 2 else record["status"])
        assert email_digest == (None if index == 4 else email_hash(project, record["email"]))
        assert (updated_at is None) == (index == 6)
    latest = ledger(project, "shop_orders")[0]
    assert (latest["status"], latest["rejected_rows"]) == ("published", 0)


def test_spreadsheet_export_in_cp1252_with_semicolons_publishes_accented_text_intact(project: Project) -> None:
    use_csv_source(project, max_rejects=0, delimiter=";", encoding="cp1252")
    records = day_orders(project, DAY)
    for record in records:
        local, domain = record["email"].split("@")
        record["email"] = f"{local}.josé-€@{domain}"
    lines = [";".join(COLUMNS)] + [";".join(f"{record[column]}" for column in COLUMNS) for record in records]
    landing_file(project, DAY).write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))

    run_day("shop_orders")

    published = published_orders(project)
    assert list(published) == [record["order_id"] for record in records]
    for record in records:
        amount, status, email_digest, _ = published[record["order_id"]]
        expected = (record["amount"], record["status"], email_hash(project, record["email"]))
        assert (float(amount), status, email_digest) == expected


def test_a_header_only_csv_blocks_the_partition(project: Project) -> None:
    use_csv_source(project, max_rejects=0)
    drop_row_count_rules(project, "shop_orders", "checks/fct_orders.yaml", volume={})
    land_csv(project, DAY, [])

    with pytest.raises(AuditFailedError) as raised:
        run_pipeline("shop_orders", start_date=DAY, end_date=DAY)

    assert "volume: not empty=0" in str(raised.value)
    assert "allow_empty" in str(raised.value)
    assert published(project, "fct_orders") == []
    blocked = ledger(project, "shop_orders")[0]
    assert (blocked["status"], blocked["row_count"]) == ("blocked", 0)
    assert set(blocking_checks(blocked)) == {"volume: not empty"}


def test_allow_empty_publishes_an_empty_partition(project: Project) -> None:
    use_csv_source(project, max_rejects=0)
    drop_row_count_rules(project, "shop_orders", "checks/fct_orders.yaml", volume={"allow_empty": True})
    land_csv(project, DAY, [])

    run_day("shop_orders")

    published_now = ledger(project, "shop_orders")[0]
    assert (published_now["status"], published_now["row_count"]) == ("published", 0)
    with open_warehouse(project.warehouse_url) as warehouse:
        assert warehouse.table_exists("analytics", "fct_orders")
    assert published(project, "fct_orders") == []


def test_emptying_a_published_partition_needs_max_shrink_as_well_as_allow_empty(project: Project) -> None:
    """replace_partition compares with what the partition holds now: allow_empty alone does not wipe it."""
    use_csv_source(project, max_rejects=0)
    drop_row_count_rules(project, "shop_orders", "checks/fct_orders.yaml", volume={"allow_empty": True})
    records = day_orders(project, DAY)
    land_csv(project, DAY, records)
    run_day("shop_orders")
    before = published(project, "fct_orders")
    assert len(before) == len(records)
    land_csv(project, DAY, [])

    with pytest.raises(AuditFailedError) as raised:
        run_pipeline("shop_orders", start_date=DAY, end_date=DAY)

    assert f"volume: shrink within max_shrink=0 (must be at least {(len(records) + 1) // 2}" in str(raised.value)
    assert published(project, "fct_orders") == before
    assert set(blocking_checks(ledger(project, "shop_orders")[0])) == {"volume: shrink within max_shrink"}

    project.edit_declaration(lambda data: data["volume"].update(max_shrink=1))
    run_day("shop_orders")

    assert published(project, "fct_orders") == []
    assert ledger(project, "shop_orders")[0]["status"] == "published"
