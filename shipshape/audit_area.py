"""Names and housekeeping of the audit area: per-run tables that consumers never read.

Table names encode pipeline, partition and run (`<pipeline>__<partition>__<run>__<step>`) so a
crashed run's leftovers can be found and removed by the next run of the same partition, while
quarantined (blocked) runs stay for inspection until the partition is published again.
"""

from __future__ import annotations

from dataclasses import dataclass

from shipshape.names import audit_partition_prefix, audit_table
from shipshape.partitions import Window
from shipshape.warehouses import AUDIT_SCHEMA, Warehouse


@dataclass(frozen=True)
class RunTables:
    pipeline: str
    window: Window
    run_tag: str

    @property
    def partition_prefix(self) -> str:
        return audit_partition_prefix(self.pipeline, self.window.table_suffix)

    def step(self, name: str) -> str:
        return audit_table(self.pipeline, self.window.table_suffix, self.run_tag, name)

    @property
    def raw(self) -> str:
        return self.step("raw")

    @property
    def out(self) -> str:
        return self.step("out")

    def run_tag_of(self, table: str) -> str | None:
        """The run a table of this partition belongs to, or None if it is not one of this partition's."""
        if not table.startswith(self.partition_prefix):
            return None
        return table.removeprefix(self.partition_prefix).split("__", 1)[0]

    def partition_tables(self, warehouse: Warehouse) -> dict[str, list[str]]:
        """This partition's audit tables, grouped by run tag."""
        grouped: dict[str, list[str]] = {}
        for table in warehouse.list_tables(AUDIT_SCHEMA):
            tag = self.run_tag_of(table)
            if tag is not None:
                grouped.setdefault(tag, []).append(table)
        return grouped

    def drop_runs(self, warehouse: Warehouse, keep: set[str]) -> None:
        """Drop this partition's tables of every run except `keep`, and this run's non-raw steps."""
        for tag, tables in self.partition_tables(warehouse).items():
            for table in tables:
                if tag not in keep or (tag == self.run_tag and table != self.raw):
                    warehouse.drop_table(AUDIT_SCHEMA, table)
