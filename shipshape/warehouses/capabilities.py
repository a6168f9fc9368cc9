"""What an engine can do, as data: shared code branches on these flags, never on an engine's name.

Each adapter declares one `Capabilities` as a class attribute (like SQLMesh's `SUPPORTS_*` and dlt's destination
capabilities). Every flag is either consulted by shared code or asserted against the engine's real behaviour by
`tests/integration/test_warehouse_conformance.py`, so a flag cannot silently lie.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capabilities:
    # CREATE UNLOGGED TABLE: scratch tables skip the write-ahead log (`Warehouse.create_table(scratch=True)`).
    supports_unlogged_tables: bool
    # CREATE/DROP inside a transaction roll back with it, so publish may create its destination in its transaction.
    supports_transactional_ddl: bool
    # Named locks other processes see, released by the engine when the session dies (`Warehouse.exclusive`).
    # Without them only threads of this process are excluded: right for an engine one process opens at a time.
    supports_advisory_locks: bool
    # Login roles, grants and default privileges (`shipshape.warehouses.roles`; `infra.warehouse` consults it).
    supports_roles: bool
    # UPDATE ... RETURNING: `Warehouse.conditional_update` learns in one statement whether a row changed.
    supports_returning: bool
    # MERGE INTO ... WHEN MATCHED / WHEN NOT MATCHED.
    supports_merge: bool
    # Publishing `replace_partition` by swapping a whole partition in (`warehouses.exchange.PartitionExchange`).
    supports_partition_exchange: bool
    # The sqlglot dialect user SQL is parsed in right before it runs here (`shipshape.user_sql`).
    sql_dialect: str
