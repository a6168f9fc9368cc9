"""Masks declared PII columns before rows reach the warehouse: keyed hash (joinable, not reversible) or drop.

A keyed hash (HMAC-SHA256) rather than a plain hash, so nobody without the key can confirm a
guessed e-mail address by hashing it; the same key gives the same digest on every run, which keeps
re-runs idempotent and hashed columns joinable across tables.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Literal

import pyarrow as pa

from shipshape.column_types import ColumnType

HASHED_TYPE = ColumnType("text")


class PiiMasker:
    def __init__(self, rules: dict[str, Literal["hash", "drop"]], key: str) -> None:
        self.rules = rules
        self._key = key.encode()

    def masked_columns(self, declared: dict[str, ColumnType]) -> dict[str, ColumnType]:
        """The columns that reach the warehouse: dropped ones gone, hashed ones as text."""
        return {
            name: HASHED_TYPE if self.rules.get(name) == "hash" else kind
            for name, kind in declared.items()
            if self.rules.get(name) != "drop"
        }

    def apply(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        columns, names = [], []
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            rule = self.rules.get(name)
            if rule == "drop":
                continue
            names.append(name)
            columns.append(self._hash(column) if rule == "hash" else column)
        return pa.RecordBatch.from_arrays(columns, names=names)

    def mask_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """The same masking for one raw record (a rejected row bound for the dead-letter table)."""
        return {
            name: self._digest(value) if self.rules.get(name) == "hash" else value
            for name, value in record.items()
            if self.rules.get(name) != "drop"
        }

    def _hash(self, column: pa.Array) -> pa.Array:
        return pa.array([self._digest(value) for value in column.to_pylist()], type=pa.string())

    def _digest(self, value: object) -> str | None:
        return None if value is None else hmac.new(self._key, str(value).encode(), hashlib.sha256).hexdigest()
