"""What every source provides: the live schema (for drift checks) and bounded chunks of raw values.

Sources select the declared columns explicitly and nothing else. Values may be untyped (CSV text,
JSON) — `convert.py` turns them into declared types and sends failures to the dead-letter table.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import pyarrow as pa

from shipshape.partitions import Window

CHUNK_ROWS = 100_000


class Source(Protocol):
    def observed_columns(self, window: Window) -> dict[str, str | None]:
        """Columns the live source offers → type family (`column_types.ColumnType.family`), None when untyped."""
        ...

    def batches(self, window: Window) -> Iterator[pa.RecordBatch]:
        """The window's rows, declared columns only, at most CHUNK_ROWS per batch, memory bounded."""
        ...


def rows_to_batch(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> pa.RecordBatch:
    """One RecordBatch from row tuples (non-empty), each column's Arrow type inferred from its Python values.

    A column whose values mix types (SQLite's dynamic typing, loose JSON) arrives as text instead of
    failing the whole read, so type conversion can reject exactly the bad values.
    """
    return pa.RecordBatch.from_arrays([_array(values) for values in zip(*rows, strict=True)], names=list(names))


def _array(values: Sequence[Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if value is None else str(value) for value in values], type=pa.string())
