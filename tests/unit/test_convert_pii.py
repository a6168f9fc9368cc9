"""Type conversion with accountable rejects, and PII masking: pure Arrow in, Arrow out."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from shipshape import convert
from shipshape.column_types import ColumnType
from shipshape.convert import BatchConverter
from shipshape.pii import PiiMasker

DECLARED = {
    name: ColumnType.parse(text)
    for name, text in {"id": "bigint", "amount": "decimal(12,2)", "note": "text", "paid_at": "timestamptz"}.items()
}
KEY = "unit-test-key"


def text_batch(rows: int, start: int = 1, **overrides: dict[int, str | None]) -> pa.RecordBatch:
    """`rows` clean text rows (as a CSV would give them); `overrides` maps column → {index: value}."""
    columns: dict[str, list[str | None]] = {
        "id": [str(start + index) for index in range(rows)],
        "amount": [f"{(start + index) % 1000}.25" for index in range(rows)],
        "note": [f"note {start + index}" for index in range(rows)],
        "paid_at": ["2026-11-01 12:00:00"] * rows,
    }
    for name, values in overrides.items():
        for index, value in values.items():
            columns[name][index] = value
    return pa.RecordBatch.from_pydict(columns, schema=pa.schema([(name, pa.string()) for name in columns]))


@pytest.fixture
def cast_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Lengths of the column slices the converter tried to cast (each call of the bisecting search)."""
    calls: list[int] = []
    original = convert._failing_indices

    def counting(column: pa.Array, target: pa.DataType, offset: int = 0) -> list[int]:
        calls.append(len(column))
        return original(column, target, offset)

    monkeypatch.setattr(convert, "_failing_indices", counting)
    return calls


def single(converter: BatchConverter, **values: str | None) -> dict[str, Any]:
    """Convert one row given as text; returns its typed values (it must not be rejected)."""
    row = {"id": "1", "amount": "1.00", "note": "n", "paid_at": "2026-11-01 00:00:00"} | values
    batch = pa.RecordBatch.from_pydict({name: pa.array([value], pa.string()) for name, value in row.items()})
    typed, rejected = converter.convert(batch)
    assert rejected == []
    return typed.to_pylist()[0]


# --- BatchConverter -------------------------------------------------------------------------------------------


def test_clean_batches_convert_with_one_cast_per_column(cast_calls: list[int]) -> None:
    converter = BatchConverter(DECLARED)

    first, rejected_first = converter.convert(text_batch(5_000))
    second, rejected_second = converter.convert(text_batch(3_000, start=5_001))

    assert (rejected_first, rejected_second) == ([], [])
    assert cast_calls == [5_000] * len(DECLARED) + [3_000] * len(DECLARED)
    assert first.schema == converter.schema == second.schema
    assert first.column("id").to_pylist()[:2] == [1, 2]
    assert second.column("amount")[0].as_py() == Decimal("1.25")


def test_a_bad_value_in_a_large_batch_is_found_by_bisection_with_its_row_number(cast_calls: list[int]) -> None:
    converter = BatchConverter(DECLARED)
    converter.convert(text_batch(1_000))
    rows, bad_index = 100_000, 61_803
    cast_calls.clear()

    typed, rejected = converter.convert(text_batch(rows, start=1_001, amount={bad_index: "12,50"}))

    (reject,) = rejected
    assert reject.row_number == 1_000 + bad_index + 1
    assert reject.reason == "column 'amount': value is not a valid decimal(12,2)"
    assert json.loads(reject.raw_record) == {
        "id": str(1_001 + bad_index),
        "amount": "12,50",
        "note": f"note {1_001 + bad_index}",
        "paid_at": "2026-11-01 12:00:00",
    }
    # Bisection: two casts per halving of the bad column, one cast for each clean column.
    assert len(cast_calls) <= len(DECLARED) + 2 * math.ceil(math.log2(rows))
    assert typed.num_rows == rows - 1
    assert 1_001 + bad_index not in typed.column("id").to_pylist()


def test_every_bad_row_is_rejected_once_in_row_order_naming_its_first_bad_column() -> None:
    converter = BatchConverter(DECLARED)

    typed, rejected = converter.convert(
        text_batch(10, id={2: "two", 7: "8.5"}, amount={2: "much", 5: "1e999"}, paid_at={9: "yesterday"})
    )

    assert [(reject.row_number, reject.reason) for reject in rejected] == [
        (3, "column 'id': value is not a valid bigint"),
        (6, "column 'amount': value is not a valid decimal(12,2)"),
        (8, "column 'id': value is not a valid bigint"),
        (10, "column 'paid_at': value is not a valid timestamptz"),
    ]
    assert typed.column("id").to_pylist() == [1, 2, 4, 5, 7, 9]


def test_blanks_are_null_and_whitespace_is_trimmed_except_in_text() -> None:
    converter = BatchConverter(DECLARED)
    batch = text_batch(4, id={0: " 42 "}, amount={1: "", 2: "   ", 3: None}, paid_at={1: "", 2: " "}, note={1: "  "})

    typed, rejected = converter.convert(batch)

    assert rejected == []
    assert typed.column("id").to_pylist() == [42, 2, 3, 4]
    assert typed.column("amount").to_pylist() == [Decimal("1.25"), None, None, None]
    assert typed.column("paid_at").to_pylist()[1:3] == [None, None]
    assert typed.column("note").to_pylist()[1] == "  "


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01 12:00:00", datetime(2026, 11, 1, 12, tzinfo=UTC)),
        ("2026-11-01T12:00:00", datetime(2026, 11, 1, 12, tzinfo=UTC)),
        ("2026-11-01T12:00:00.250", datetime(2026, 11, 1, 12, 0, 0, 250_000, tzinfo=UTC)),
        ("2026-11-01T12:00:00Z", datetime(2026, 11, 1, 12, tzinfo=UTC)),
        ("2026-11-01T12:00:00+02:00", datetime(2026, 11, 1, 10, tzinfo=UTC)),
        ("2026-11-01 12:00:00-0500", datetime(2026, 11, 1, 17, tzinfo=UTC)),
    ],
)
def test_timestamps_without_offset_are_read_as_utc_and_offsets_are_honoured(text: str, expected: datetime) -> None:
    assert single(BatchConverter(DECLARED), paid_at=text)["paid_at"] == expected


def test_a_date_only_timestamp_without_offset_is_read_as_midnight_utc() -> None:
    """ISO 8601 allows a bare date; like any offset-less value it must be read as UTC, not taken for an offset."""
    assert single(BatchConverter(DECLARED), paid_at="2026-11-01")["paid_at"] == datetime(2026, 11, 1, tzinfo=UTC)


def test_already_typed_columns_pass_through() -> None:
    declared = {"id": ColumnType.parse("bigint"), "day": ColumnType.parse("date")}
    batch = pa.RecordBatch.from_pydict({"id": pa.array([1, 2], pa.int32()), "day": ["2026-11-01", "2026-11-02"]})

    typed, rejected = BatchConverter(declared).convert(batch)

    assert rejected == []
    assert typed.schema == pa.schema([("id", pa.int64()), ("day", pa.date32())])
    assert typed.column("day").to_pylist() == [date(2026, 11, 1), date(2026, 11, 2)]


# --- PiiMasker ------------------------------------------------------------------------------------------------


def people() -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {"id": [1, 2, 3], "email": ["ana@example.com", None, "bo@example.com"], "phone": ["+351 1", "+351 2", None]}
    )


def keyed_hash(value: str, key: str = KEY) -> str:
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


def test_hash_replaces_values_with_their_hmac_sha256_hex_and_keeps_nulls() -> None:
    masked = PiiMasker({"email": "hash"}, KEY).apply(people())

    assert masked.schema.names == ["id", "email", "phone"]
    assert masked.column("email").to_pylist() == [keyed_hash("ana@example.com"), None, keyed_hash("bo@example.com")]
    assert masked.column("id").to_pylist() == [1, 2, 3]
    assert masked.column("phone").to_pylist() == ["+351 1", "+351 2", None]


def test_the_hash_depends_on_the_key_and_is_stable_for_one_key() -> None:
    again = PiiMasker({"email": "hash"}, KEY).apply(people()).column("email")
    other = PiiMasker({"email": "hash"}, "another-key").apply(people()).column("email")

    assert again == PiiMasker({"email": "hash"}, KEY).apply(people()).column("email")
    assert other[0].as_py() != again[0].as_py()
    assert again[0].as_py() != hashlib.sha256(b"ana@example.com").hexdigest()


def test_drop_removes_the_column_and_masked_columns_describe_what_is_loaded() -> None:
    masker = PiiMasker({"email": "drop", "phone": "hash"}, KEY)
    declared = {"id": ColumnType("bigint"), "email": ColumnType("text"), "phone": ColumnType("bigint")}

    masked = masker.apply(people())

    assert masked.schema.names == ["id", "phone"]
    assert masked.column("phone").to_pylist() == [keyed_hash("+351 1"), keyed_hash("+351 2"), None]
    assert masker.masked_columns(declared) == {"id": ColumnType("bigint"), "phone": ColumnType("text")}
