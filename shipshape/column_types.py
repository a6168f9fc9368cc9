"""Portable column types: one name in a declaration, the right type in Arrow and in each warehouse.

Declarations must run unchanged on DuckDB and PostgreSQL, so they name types from this
small vocabulary and the adapters translate; a type outside it is a declaration error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")

SIMPLE_TYPES: dict[str, pa.DataType] = {
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "text": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}

ALLOWED_TYPES_HINT = ", ".join([*SIMPLE_TYPES, "decimal(p,s)"])


@dataclass(frozen=True)
class ColumnType:
    """A parsed portable type: `name` is the family, precision/scale only for decimals."""

    name: str
    precision: int | None = None
    scale: int | None = None

    @classmethod
    def parse(cls, text: str) -> ColumnType:
        normalized = text.strip().lower()
        if normalized in SIMPLE_TYPES:
            return cls(normalized)
        match = _DECIMAL.match(normalized)
        if match:
            precision, scale = int(match.group(1)), int(match.group(2))
            if 1 <= precision <= 38 and scale <= precision:
                return cls("decimal", precision, scale)
        raise ValueError(f"unknown column type {text!r}; expected one of {ALLOWED_TYPES_HINT}")

    def __str__(self) -> str:
        return f"decimal({self.precision},{self.scale})" if self.name == "decimal" else self.name

    @property
    def arrow(self) -> pa.DataType:
        if self.name == "decimal":
            return pa.decimal128(self.precision, self.scale)
        return SIMPLE_TYPES[self.name]

    @property
    def family(self) -> str:
        """Coarse kind used to detect type drift across engines that spell types differently."""
        return {
            "integer": "integer",
            "bigint": "integer",
            "decimal": "number",
            "double": "number",
            "timestamptz": "timestamp",
        }.get(self.name, self.name)


def family_of_arrow(data_type: pa.DataType) -> str:
    """The family of a type found in a live source (Parquet schema, SQL reflection via Arrow)."""
    if pa.types.is_integer(data_type):
        return "integer"
    if pa.types.is_floating(data_type) or pa.types.is_decimal(data_type):
        return "number"
    if pa.types.is_boolean(data_type):
        return "boolean"
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "text"
    if pa.types.is_date(data_type):
        return "date"
    if pa.types.is_timestamp(data_type):
        return "timestamp"
    if pa.types.is_null(data_type):
        return "null"
    return str(data_type)
