"""Rejected rows bearing PII through the real convert → dead-letter path, on DuckDB and PostgreSQL.

The reject reason travels to `platform.dead_letters.reason`, the ledger message, the run state and Slack; the
raw record stays in `platform.dead_letters.raw_record`, masked by the declared PII rules. Neither may hold a
clear PII value, nor may the error that stops the run, nor a warehouse error about a value it refused.
"""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
import pytest

from shipshape.column_types import ColumnType
from shipshape.convert import BatchConverter
from shipshape.declaration import Rejects
from shipshape.errors import RejectThresholdError, WarehouseError
from shipshape.ledger import DEAD_LETTER_TABLE, ensure_platform_tables, write_dead_letters
from shipshape.pii import PiiMasker
from shipshape.rejects import enforce_threshold
from shipshape.warehouses import PLATFORM_SCHEMA, open_warehouse

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
        ensure_platform_tables(warehouse)
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
