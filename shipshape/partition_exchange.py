"""Which publishes replace a partition by moving tables (partition exchange) rather than copying rows.

Decided once, here, for the three steps that must agree: the transform (which makes the audited table ready to be
attached), the first publish (which creates the table partitioned) and every publish and rollback after it.
"""

from __future__ import annotations

from shipshape.declaration import Pipeline
from shipshape.warehouses import Warehouse
from shipshape.warehouses.exchange import PartitionExchange, partition_exchange


def exchanging(warehouse: Warehouse, spec: Pipeline) -> PartitionExchange | None:
    """The warehouse's partition exchange when `spec`'s publishes use it, else None (they copy rows).

    `replace_partition` on an engine with `supports_partition_exchange`, into a table that is partitioned or not
    created yet (its first publish creates it partitioned). DuckDB, merge and full_replace copy; so does a published
    table made before partition exchange (plain): it keeps DELETE + INSERT, its history and rollbacks work as before,
    until it is recreated (dropped, or a new `destination.version`).
    """
    exchange = partition_exchange(warehouse)
    if exchange is None or spec.load.mode != "replace_partition" or spec.partition is None:
        return None
    schema, table = spec.destination.schema_name, spec.destination.published_table
    if warehouse.table_exists(schema, table) and not exchange.is_partitioned(schema, table):
        return None
    return exchange
