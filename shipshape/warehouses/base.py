"""The warehouse interface: the shared logic lives here, each engine adds only its differences.

Callers branch on `capabilities`, never on an engine name, and never see driver exceptions:
adapters translate them into `TransientError` (retry) or `WarehouseError` (stop).
SQL in this module uses `?` placeholders; adapters translate to their driver's style.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from shipshape.column_types import ColumnType

AUDIT_SCHEMA = "audit"
PLATFORM_SCHEMA = "platform"


@dataclass(frozen=True)
class Capabilities:
    supports_unlogged_tables: bool


class Warehouse(ABC):
    """One connection to one warehouse; not shared between threads."""

    capabilities: ClassVar[Capabilities]
    _process_locks: ClassVar[dict[str, threading.Lock]] = {}
    _process_locks_guard: ClassVar[threading.Lock] = threading.Lock()

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement; `?` marks parameters."""

    @abstractmethod
    def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside commit together or not at all."""

    @abstractmethod
    def append_arrow(self, schema: str, table: str, batches: pa.RecordBatchReader) -> None:
        """Bulk-load a stream of batches into an existing table (never row-by-row)."""

    @abstractmethod
    def ddl_type(self, column_type: ColumnType) -> str: ...

    @abstractmethod
    def soda_target(self) -> Any:
        """What `shipshape.audit.verify_contract` needs to reach this warehouse."""

    @abstractmethod
    def _try_cross_process_lock(self, name: str) -> bool:
        """Take a lock that other processes see and that dies with this connection; False if taken."""

    @abstractmethod
    def _release_cross_process_lock(self, name: str) -> None: ...

    # --- shared logic -------------------------------------------------------------------------

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @staticmethod
    def quote(identifier: str) -> str:
        return '"' + identifier.replace('"', '""') + '"'

    def qualified(self, schema: str, table: str) -> str:
        return f"{self.quote(schema)}.{self.quote(table)}"

    def schema_exists(self, schema: str) -> bool:
        return bool(self.fetch_all("SELECT 1 FROM information_schema.schemata WHERE schema_name = ?", [schema]))

    def ensure_schema(self, schema: str) -> None:
        """Create the schema only if it is missing.

        PostgreSQL checks the CREATE privilege before IF NOT EXISTS, so a role that may only use an
        existing schema (the least-privilege loader) would be refused even though nothing needs creating.
        """
        if not self.schema_exists(schema):
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {self.quote(schema)}")

    def create_table(self, schema: str, table: str, columns: dict[str, ColumnType], *, scratch: bool = False) -> None:
        """(Re)create a table with declared types; `scratch` tables skip durability where the engine allows."""
        body = ", ".join(f"{self.quote(name)} {self.ddl_type(kind)}" for name, kind in columns.items())
        unlogged = "UNLOGGED " if scratch and self.capabilities.supports_unlogged_tables else ""
        self.execute(f"DROP TABLE IF EXISTS {self.qualified(schema, table)}")
        self.execute(f"CREATE {unlogged}TABLE {self.qualified(schema, table)} ({body})")

    def create_table_as(self, schema: str, table: str, select_sql: str, *, scratch: bool = False) -> None:
        unlogged = "UNLOGGED " if scratch and self.capabilities.supports_unlogged_tables else ""
        self.execute(f"DROP TABLE IF EXISTS {self.qualified(schema, table)}")
        self.execute(f"CREATE {unlogged}TABLE {self.qualified(schema, table)} AS {select_sql}")

    def drop_table(self, schema: str, table: str) -> None:
        self.execute(f"DROP TABLE IF EXISTS {self.qualified(schema, table)}")

    def list_tables(self, schema: str) -> list[str]:
        rows = self.fetch_all(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY table_name", [schema]
        )
        return [row[0] for row in rows]

    def table_exists(self, schema: str, table: str) -> bool:
        return table in self.list_tables(schema)

    def table_columns(self, schema: str, table: str) -> list[str]:
        rows = self.fetch_all(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position",
            [schema, table],
        )
        return [row[0] for row in rows]

    def row_count(self, schema: str, table: str) -> int:
        return int(self.fetch_all(f"SELECT count(*) FROM {self.qualified(schema, table)}")[0][0])

    @contextmanager
    def exclusive(self, names: Sequence[str]) -> Iterator[bool]:
        """Hold named locks for the block; yields False (holding none) if any is already held elsewhere.

        Locks are taken in sorted order so two runs over overlapping ranges cannot deadlock.
        Within a process a thread lock guards each name; across processes the engine's own
        lock does, and it is released by the engine if this process dies (SIGKILL included).
        """
        held: list[str] = []
        try:
            for name in sorted(set(names)):
                if not self._take(name):
                    yield False
                    return
                held.append(name)
            yield True
        finally:
            for name in reversed(held):
                self._release(name)

    def _take(self, name: str) -> bool:
        with self._process_locks_guard:
            lock = self._process_locks.setdefault(name, threading.Lock())
        if not lock.acquire(blocking=False):
            return False
        if not self._try_cross_process_lock(name):
            lock.release()
            return False
        return True

    def _release(self, name: str) -> None:
        self._release_cross_process_lock(name)
        self._process_locks[name].release()
