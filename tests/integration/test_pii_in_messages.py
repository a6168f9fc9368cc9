"""Rejected rows bearing PII through the real convert → dead-letter path, on DuckDB and PostgreSQL.

The reject reason travels to `platform.dead_letters.reason`, the ledger message, the run state and Slack; the
raw record stays in `platform.dead_letters.raw_record`, masked by the declared PII rules. Neither may hold a
clear PII value, nor may the error that stops the run, nor a warehouse error about a value it refused.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Literal

import jinja2
import psycopg
import pyarrow as pa
import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogWorker

from flows.run_pipeline import run_pipeline
from shipshape.alerts import run_state_alerts
from shipshape.column_types import ColumnType
from shipshape.convert import BatchConverter
from shipshape.declaration import Rejects
from shipshape.errors import RejectThresholdError, WarehouseError
from shipshape.ledger import DEAD_LETTER_TABLE, write_dead_letters
from shipshape.pii import PiiMasker
from shipshape.platform_schema import migrate
from shipshape.rejects import enforce_threshold
from shipshape.warehouses import PLATFORM_SCHEMA, open_warehouse
from tests.support.project import FIRST_DAY, make_project

SSN = "123-45-6789"  # a `drop` column declared bigint: the clear value fails conversion
CARD = "4111-1111-1111-1111"  # a `hash` column declared bigint
EMAIL = "ana.lima@example.com"  # a `hash` text column of the rejected rows
DECLARED = {
    name: ColumnType.parse(kind)
    for name, kind in {"order_id": "bigint", "ssn": "bigint", "card": "bigint", "email": "text"}.items()
}
RULES: dict[str, Literal["hash", "drop"]] = {"ssn": "drop", "card": "hash", "email": "hash"}


def test_rejected_pii_rows_leave_no_clear_value_in_dead_letters_or_the_error(warehouse_url: str) -> None:
    masker = PiiMasker(RULES, "integration-test-key")
    converter = BatchConverter(DECLARED, redact=masker.mask_record)
    batch = pa.RecordBatch.from_pydict({
        "order_id": ["1", "2", "3"],
        "ssn": [SSN, "123456789", "987654321"],
        "card": ["4111111111111111", CARD, "4111111111111112"],
        "email": [EMAIL, EMAIL, "other@example.com"],
    })

    typed, rejected = converter.convert(batch)
    assert typed.num_rows == 1 and len(rejected) == 2
    with open_warehouse(warehouse_url) as warehouse:
        migrate(warehouse)
        write_dead_letters(warehouse, "shop_orders", "2026-11-05", "run1", rejected)
        stored = warehouse.fetch_all(
            f"SELECT reason, raw_record FROM {warehouse.qualified(PLATFORM_SCHEMA, DEAD_LETTER_TABLE)} "
            "ORDER BY row_number"
        )
    with pytest.raises(RejectThresholdError) as raised:
        enforce_threshold(Rejects(max_rows=0), len(rejected), typed.num_rows, rejected[0].reason,
                          where="pipeline shop_orders, partition 2026-11-05", run_tag="run1")

    assert [reason for reason, _ in stored] == [
        "column 'ssn': value is not a valid bigint",
        "column 'card': value is not a valid bigint",
    ]
    everything = " ".join(text for row in stored for text in row) + str(raised.value)
    for clear in [SSN, CARD, EMAIL, "123456789", "4111111111111111"]:
        assert clear not in everything
    assert masker.mask_record({"card": CARD})["card"] in stored[1][1]  # the hashed column: its digest only
    assert "column 'ssn': value is not a valid bigint" in str(raised.value)


def test_a_value_the_database_refuses_is_not_quoted_in_the_warehouse_error(warehouse_url: str) -> None:
    with open_warehouse(warehouse_url) as warehouse:
        warehouse.execute("CREATE TABLE landed (id BIGINT PRIMARY KEY, ssn TEXT, email TEXT)")
        warehouse.execute("INSERT INTO landed VALUES (?, ?, ?)", [1, SSN, EMAIL])
        errors = []
        for statement, params in [
            ("SELECT CAST(ssn AS BIGINT) FROM landed", []),  # a transform casting a PII column
            ("SELECT CAST(ssn AS DATE) FROM landed", []),
            ("INSERT INTO landed VALUES (?, ?, ?)", [1, SSN, EMAIL]),  # a key that already exists
            ("INSERT INTO landed VALUES (?, ?, ?)", [None, SSN, EMAIL]),  # a NULL key: PostgreSQL shows the row
        ]:
            with pytest.raises(WarehouseError) as raised:
                warehouse.execute(statement, params)
            errors.append(str(raised.value))

    for message in errors:
        assert SSN not in message and EMAIL not in message, message
    assert "<value>" in errors[0]


@pytest.mark.filterwarnings("ignore::DeprecationWarning:soda_.*")
def test_a_run_over_pii_bearing_bad_rows_leaves_no_clear_value_in_any_record_message_log_or_alert(
    tmp_path: Path, postgres_url: str, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole flow, not the engine alone: every channel a rejected row's text can travel through."""
    project = make_project(tmp_path, postgres_url, monkeypatch)

    def declare_ssn(data: dict[str, Any]) -> None:
        data["source"]["columns"]["ssn"] = "bigint"
        data["pii"]["columns"]["ssn"] = "drop"

    project.edit_declaration(declare_ssn)
    created = f"{FIRST_DAY.isoformat()} 12:00:00"
    with sqlite3.connect(project.shop_db) as shop:
        shop.execute("ALTER TABLE orders ADD COLUMN ssn TEXT")
        shop.executemany(  # an amount that is not a decimal next to a clear email; an SSN that is not a bigint
            "INSERT INTO orders VALUES (?, 1, ?, ?, 'paid', ?, ?, NULL, ?)",
            [(1, EMAIL, "twelve", created, created, None), (2, "b@example.com", "1.00", created, created, SSN)],
        )

    state = run_pipeline("shop_orders", start_date=FIRST_DAY, end_date=FIRST_DAY, return_state=True)

    assert not state.is_completed(), "max_rows: 0 with two rejects must stop the run"
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    APILogWorker.drain_all()  # blocks until every log record of the run has reached the API
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    with psycopg.connect(postgres_url) as admin:
        dead_letters = admin.execute("SELECT reason, raw_record FROM platform.dead_letters").fetchall()
        ledger = admin.execute("SELECT status, message, check_results FROM platform.publish_ledger").fetchall()
    alerts = [
        jinja2.Template(f"{trigger.what}\n{trigger.detail}").render(flow_run=flow_run)
        for _, trigger in run_state_alerts()
    ]
    assert flow_run.state is not None

    channels = {
        "dead letters": [text for row in dead_letters for text in row],
        "ledger": [str(value) for row in ledger for value in row],
        "flow run state": [flow_run.state.message or ""],
        "task run states": [run.state.message or "" for run in task_runs if run.state],
        "logs": [log.message for log in logs],
        "alerts": alerts,
    }
    assert len(dead_letters) == 2 and ledger and logs, "each channel must hold the run's text, or the scan is empty"
    assert "value is not a valid" in (flow_run.state.message or ""), "the state message names the reject"
    leaks = [
        (name, text)
        for name, texts in channels.items()
        for text in texts
        if any(clear in text for clear in (EMAIL, SSN, "123456789"))
    ]
    assert leaks == []
