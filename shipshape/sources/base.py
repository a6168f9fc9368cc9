"""What every source provides: the live schema (for drift checks) and bounded chunks of raw values.

Sources select the declared columns explicitly and nothing else. Values may be untyped (CSV text,
JSON) — `convert.py` turns them into declared types and sends failures to the dead-letter table.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

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
