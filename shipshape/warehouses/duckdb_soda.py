"""The audit gate's way into DuckDB: Soda Core runs on the pipeline's own connection (soda-duckdb plugin)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb

from shipshape.audit import DATA_SOURCE_NAME

if TYPE_CHECKING:
    from soda_core.common.data_source_impl import DataSourceImpl


@dataclass(frozen=True)
class DuckDBTarget:
    """The pipeline's own DuckDB connection (a second connection to the same file would be refused).

    Soda runs on a cursor of it: a cursor has its own transaction, so a failing audit query can never abort a
    transaction the caller has open, and closing the cursor leaves the connection as it was. The audit table
    must therefore be committed before it is audited, which publishing from another transaction needs anyway.
    """

    connection: duckdb.DuckDBPyConnection

    def dataset_path(self, schema: str, table: str) -> str:
        """Soda names a DuckDB dataset `<data source>/<schema>/<table>`."""
        return f"{schema}/{table}"

    @contextmanager
    def data_source(self) -> Iterator[DataSourceImpl]:
        from soda_duckdb.common.data_sources.duckdb_data_source import DuckDBDataSourceImpl

        cursor = self.connection.cursor()
        try:
            yield DuckDBDataSourceImpl.from_existing_cursor(cursor, DATA_SOURCE_NAME)
        finally:
            cursor.close()
