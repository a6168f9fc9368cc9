"""PostgreSQL's sizes and read counters (`UsageStatistics`).

Reads come from `pg_stat_statements` when the server preloads it and `make apply` created the extension: the calls of
every statement run by a reader role (the environment's consumer) whose text names the table as a whole word — exact
per role, counting queries, not rows. The monitor role sees other roles' statement texts as a member of
`pg_read_all_stats` (granted by `make apply`). A statement that names the table only in a comment or a string also
counts; one reading it through a view does not.

Without it (or without any reader role on the server) the table's scan counters stand in: `seq_scan + idx_scan` of
`pg_stat_user_tables`, which count every role's scans — the platform's own included, subtracted by the caller — and a
query that scans the table twice (a self-join) counts twice. A partitioned table (partition exchange) has no counter
of its own: each leaf partition's, by oid (`partition_scans`). Both counters are the server's cumulative statistics:
a statistics reset or a crash restarts them from zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from shipshape.errors import WarehouseError
from shipshape.warehouses.base import Warehouse
from shipshape.warehouses.usage_stats import ReadCounter

_STATEMENTS_EXTENSION = "pg_stat_statements"


class PostgresUsage(Warehouse):
    statistics_reader = "pg_read_all_stats"

    def table_sizes(self, schema: str) -> dict[str, int]:
        """`pg_total_relation_size`: the table with its indexes and TOAST; read from the catalog, which shows every
        table to every role, so the monitor sizes the audit area and history it may not read. A partitioned table
        (partition exchange) holds nothing itself: its size is its partitions', which are not listed on their own; a
        plain table is in no partition tree (`pg_partition_tree` has no row for it): its own size."""
        rows = self.fetch_all(
            "SELECT c.relname, coalesce((SELECT sum(pg_total_relation_size(t.relid)) "
            "FROM pg_partition_tree(c.oid) AS t), pg_total_relation_size(c.oid)) FROM pg_class AS c "
            "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ? AND c.relkind IN ('r', 'p') AND NOT c.relispartition",
            [schema],
        )
        return {str(name): int(size) for name, size in rows}

    def read_counters(self, schema: str, tables: Sequence[str], readers: Sequence[str]) -> dict[str, ReadCounter]:
        statements_schema = self._statement_statistics()
        if statements_schema is not None and self._any_role_exists(readers):
            try:
                return {table: self._statement_reads(statements_schema, table, readers) for table in tables}
            except WarehouseError:  # created once, but the server no longer preloads the library: count scans
                pass
        # A partitioned table's own counters stay 0 (its partitions are scanned): each leaf partition's counter,
        # by oid, stands in (`shipshape.usage` compares the partitions two samples share).
        rows = self.fetch_all(
            "SELECT c.relname, c.relkind = 'p', s.relid::bigint, coalesce(s.seq_scan, 0) + coalesce(s.idx_scan, 0) "
            "FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "LEFT JOIN LATERAL pg_partition_tree(c.oid) AS t ON t.isleaf "  # no rows for a plain table
            "JOIN pg_stat_user_tables AS s ON s.relid = coalesce(t.relid, c.oid) "
            "WHERE n.nspname = ? AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname = ANY(?)",
            [schema, list(tables)],
        )
        counters: dict[str, ReadCounter] = {}
        partitions: dict[str, dict[int, int]] = {}
        for name, partitioned, leaf, count in rows:
            if partitioned:
                partitions.setdefault(str(name), {})[int(leaf)] = int(count)
            else:
                counters[str(name)] = ReadCounter(int(count), "scans")
        for table, by_oid in partitions.items():
            counters[table] = ReadCounter(sum(by_oid.values()), "partition_scans", by_oid)
        return counters

    def _statement_statistics(self) -> str | None:
        """The schema of the `pg_stat_statements` view when the extension exists in this database (`make apply`
        creates it only where the library is preloaded; the monitor may not read `shared_preload_libraries`)."""
        rows = self.fetch_all(
            "SELECT n.nspname FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace "
            "WHERE e.extname = ?",
            [_STATEMENTS_EXTENSION],
        )
        return str(rows[0][0]) if rows else None

    def _any_role_exists(self, roles: Sequence[str]) -> bool:
        return bool(roles) and bool(
            self.fetch_all("SELECT 1 FROM pg_roles WHERE rolname = ANY(?)", [list(roles)])
        )

    def _statement_reads(self, statements_schema: str, table: str, readers: Sequence[str]) -> ReadCounter:
        view = f'"{statements_schema}".pg_stat_statements'
        rows = self.fetch_all(
            f"SELECT coalesce(sum(s.calls), 0) FROM {view} AS s JOIN pg_roles AS r ON r.oid = s.userid "
            "WHERE r.rolname = ANY(?) AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND s.query ~* ?",
            [list(readers), rf"\m{table}\M"],
        )
        return ReadCounter(int(rows[0][0]), "statements")

    def statement_statistics_switch(self) -> Callable[[], None] | None:
        """Creating the `pg_stat_statements` extension, when the server preloads the library and this database has
        no extension for it yet. An admin that may not read the server's settings (not a superuser) leaves it off:
        reads fall back to scan counters."""
        try:
            preloaded = self.fetch_all("SELECT current_setting('shared_preload_libraries')")
        except WarehouseError:
            return None
        libraries = str(preloaded[0][0]).replace(" ", "").split(",")
        if _STATEMENTS_EXTENSION not in libraries or self._statement_statistics() is not None:
            return None
        return partial(self.execute, f"CREATE EXTENSION IF NOT EXISTS {_STATEMENTS_EXTENSION}")
