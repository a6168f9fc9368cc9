"""Publishing by partition exchange: what an adapter implements when it declares `supports_partition_exchange`.

A separate interface, not stubs on `Warehouse` (like `locks.AdvisoryLocks`): an engine without declarative
partitions (DuckDB) has nothing to implement, and the conformance suite checks that the flag and this interface
agree. Shared code reaches it through `partition_exchange`, which answers from the flag, never from the engine.

A `replace_partition` destination created by such an engine is partitioned by its partition column, one partition
per partition key (`names.partition_table`). Publishing a partition then moves tables instead of copying rows: the
current partition leaves the table for the history area (`history.h_<entry>`, what `shipshape.history` notes) and
the audited table takes its place, in the caller's transaction, so the cost does not grow with the partition.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import date, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipshape.warehouses.base import Warehouse


class PartitionExchange(ABC):
    @abstractmethod
    def create_partitioned_table(
        self, schema: str, table: str, source_schema: str, source_table: str, column: str
    ) -> None:
        """Create `schema.table` empty, with the source's columns and types, partitioned by range of `column`."""

    @abstractmethod
    def is_partitioned(self, schema: str, table: str) -> bool:
        """Whether the published table is partitioned (made by `create_partitioned_table`), so publishes exchange;
        a table from before (or converted by nobody) keeps DELETE + INSERT."""

    @abstractmethod
    def bound_audited_table(
        self, schema: str, table: str, column: str, bounds: tuple[date | datetime, date | datetime]
    ) -> None:
        """Prove, once, that every row of the audited table has `column` in `bounds` ([start, end)): a constraint
        made as its owner when the transform ends, so the publish attaching it as a partition scans nothing."""

    @abstractmethod
    def exchange_partition(
        self,
        schema: str,
        table: str,
        bounds: tuple[date | datetime, date | datetime],
        partition: str,
        source: tuple[str, str],
        kept_as: str,
    ) -> bool:
        """In the open transaction: move the partition `partition` (rows in `bounds`, [start, end)) of `schema.table`,
        if there is one, into the history table `kept_as` (else create `kept_as` empty), then make the table
        `source` (schema, name), shaped like `schema.table` first, that partition. Returns whether one was replaced.
        Counts no row: it costs the same for any partition size."""

    @abstractmethod
    def drop_history_table(self, table: str) -> None:
        """Drop one kept table of the history area, whoever of the platform's roles made it (pruning)."""


def partition_exchange(warehouse: Warehouse) -> PartitionExchange | None:
    """The warehouse as a `PartitionExchange` when it declares `supports_partition_exchange`, else None."""
    if warehouse.capabilities.supports_partition_exchange and isinstance(warehouse, PartitionExchange):
        return warehouse
    return None
