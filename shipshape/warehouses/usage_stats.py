"""What a warehouse can tell about its own use: bytes per table and how often readers read a table.

The cost and value of a pipeline (`shipshape.usage`, `shipshape.cost`) come from these two numbers. How an engine
reports them is the adapter's (PostgreSQL: `postgres_usage.py`); an engine that cannot say returns nothing, and
callers show "unknown", never a made-up number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

ReadMethod = Literal["statements", "scans", "partition_scans"]
"""`statements`: queries run by the reader roles that name the table (exact per role); `scans`: table scans by
anyone, the platform's own included (the caller subtracts those, `shipshape.usage`); `partition_scans`: a partitioned
table's scans per partition (`ReadCounter.partitions`; the caller takes the largest increase, `shipshape.usage`)."""


@dataclass(frozen=True)
class ReadCounter:
    """A cumulative counter of reads of one table, as the engine keeps it; it only grows until the engine's
    statistics are reset (then it starts again from zero)."""

    value: int
    method: ReadMethod
    partitions: Mapping[int, int] | None = None
    """`partition_scans`: each partition's scans by the partition's id (PostgreSQL: its oid), which stays the same
    while the relation stays in the table; a partition exchanged in is a new id. `value` is then their sum."""


class UsageStatistics:
    """Defaults for an engine that reports neither: no sizes, no read counters."""

    def table_sizes(self, schema: str) -> dict[str, int]:
        """Bytes on disk of every table of `schema`, whoever may read it (the monitor sizes tables it cannot read)."""
        return {}

    def read_counters(self, schema: str, tables: Sequence[str], readers: Sequence[str]) -> dict[str, ReadCounter]:
        """Each of `tables` (in `schema`) the engine counts reads of, by the roles `readers` where it can tell roles
        apart; a table missing from the answer has no counter (unknown reads)."""
        return {}

    statistics_reader: str | None = None
    """A built-in role whose members see every role's statement statistics (`make apply` makes the monitor one)."""

    def statement_statistics_switch(self) -> Callable[[], None] | None:
        """What turns per-statement read counting on here when it could be and is not yet (`make apply` runs it, as
        the admin); None where there is nothing to turn on, and reads come from what `read_counters` has without it."""
        return None
