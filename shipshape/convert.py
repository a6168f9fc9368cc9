"""Turns raw source values into declared types, row by row accountable, chunk by chunk fast.

A whole column is cast at once (vectorised). Only when that fails do we bisect the column to
find the offending rows — O(bad · log n) casts — and send each to the dead-letter table with the
reason (column and type, never the value) and the raw record (PII masked). Nothing is silently dropped or
coerced to NULL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from shipshape.column_types import ColumnType

_DATE_ONLY = r"^\d{4}-\d\d-\d\d$"
_TIME_WITH_OFFSET = r"\d\d:\d\d(:\d\d(\.\d+)?)?\s*(Z|[+-]\d\d(:?\d\d)?)$"


@dataclass(frozen=True)
class RejectedRow:
    row_number: int
    reason: str
    raw_record: str


class BatchConverter:
    """Converts batches of one extraction; row numbers count across batches (1-based)."""

    def __init__(
        self, declared: dict[str, ColumnType], redact: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    ) -> None:
        """`redact` masks a rejected row's raw record (PII) before it is kept in the dead-letter table."""
        self.declared = declared
        self._redact = redact or (lambda record: record)
        self.schema = pa.schema([(name, kind.arrow) for name, kind in declared.items()])
        self._rows_seen = 0

    def convert(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, list[RejectedRow]]:
        first_row_number = self._rows_seen + 1
        self._rows_seen += batch.num_rows
        prepared = {name: _prepare(batch.column(name), kind) for name, kind in self.declared.items()}
        reasons: dict[int, str] = {}
        for name, kind in self.declared.items():
            for index in _failing_indices(prepared[name], kind.arrow):
                reasons.setdefault(index, rejection_reason(name, kind))
        if not reasons:
            return self._typed(prepared), []
        keep = pa.array([index not in reasons for index in range(batch.num_rows)])
        typed = self._typed({name: column.filter(keep) for name, column in prepared.items()})
        rejected = [
            RejectedRow(first_row_number + index, reason, self._raw_record(batch, index))
            for index, reason in sorted(reasons.items())
        ]
        return typed, rejected

    def _raw_record(self, batch: pa.RecordBatch, index: int) -> str:
        record = self._redact(batch.slice(index, 1).to_pylist()[0])
        return json.dumps(record, default=str, sort_keys=True)

    def _typed(self, columns: dict[str, pa.Array]) -> pa.RecordBatch:
        arrays = [columns[name].cast(field.type) for name, field in zip(self.declared, self.schema, strict=True)]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def rejection_reason(column: str, kind: ColumnType) -> str:
    """Why a row was rejected, naming the column and the type but never the value.

    The reason travels far — `platform.dead_letters.reason`, the ledger, the run state, Slack — and the value may be
    PII (a `drop` column holds a social security number until it is dropped). The row itself, masked as the PII
    rules say, is kept only in `platform.dead_letters.raw_record`.
    """
    return f"column {column!r}: value is not a valid {kind}"


def _prepare(column: pa.Array, kind: ColumnType) -> pa.Array:
    """Text-to-typed conventions: blanks are NULL, whitespace is trimmed, offset-less timestamps are UTC."""
    if not pa.types.is_string(column.type) or kind.name == "text":
        return column
    trimmed = pc.utf8_trim_whitespace(column)
    column = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
    if kind.name == "timestamptz":
        date_only = pc.match_substring_regex(column, _DATE_ONLY)
        column = pc.if_else(date_only, pc.binary_join_element_wise(column, " 00:00:00", ""), column)
        has_offset = pc.match_substring_regex(column, _TIME_WITH_OFFSET)
        column = pc.if_else(has_offset, column, pc.binary_join_element_wise(column, "+00:00", ""))
    return column


def _failing_indices(column: pa.Array, target: pa.DataType, offset: int = 0) -> list[int]:
    """Indices whose value cannot be cast, found by bisection so clean chunks cost one cast."""
    try:
        column.cast(target)
        return []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        if len(column) == 1:
            return [offset]
    middle = len(column) // 2
    return _failing_indices(column.slice(0, middle), target, offset) + _failing_indices(
        column.slice(middle), target, offset + middle
    )
