"""The audit gate's way into PostgreSQL: where Soda Core connects (soda-postgres plugin), parsed from the URL."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict

from shipshape.audit import DATA_SOURCE_NAME
from shipshape.errors import ConfigurationError

if TYPE_CHECKING:
    from soda_core.common.data_source_impl import DataSourceImpl


@dataclass(frozen=True)
class PostgresTarget:
    """Where Soda connects; it opens and closes its own connection for each verification.

    The password stays in memory (never in a file, never in `repr`). `None` leaves it to libpq's usual places,
    `PGPASSWORD` then `~/.pgpass`, or to a server that needs none (trust). `options` are further libpq
    parameters such as `sslmode`.
    """

    host: str
    port: int
    database: str
    user: str
    password: str | None = field(default=None, repr=False)
    options: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_url(cls, url: str) -> PostgresTarget:
        """Parse `postgresql://user[:password]@host[:port]/database[?param=value]` (percent-encoded parts too)."""
        hint = "expected postgresql://user[:password]@host[:port]/database"
        try:
            params = {key: str(value) for key, value in conninfo_to_dict(url).items()}
        except ProgrammingError:
            # psycopg's message can quote the offending part of the URL, which may be the password.
            raise ConfigurationError(f"the warehouse URL is not a valid PostgreSQL URL; {hint}") from None
        missing = [name for name in ("host", "dbname", "user") if not params.get(name)]
        if missing:
            raise ConfigurationError(f"the warehouse URL has no {', '.join(missing)}; {hint}")
        return cls(
            host=params.pop("host"),
            port=int(params.pop("port", "5432")),
            database=params.pop("dbname"),
            user=params.pop("user"),
            password=params.pop("password", None),
            options=params,
        )

    def dataset_path(self, schema: str, table: str) -> str:
        """Soda names a PostgreSQL dataset `<data source>/<database>/<schema>/<table>` (else no schema check)."""
        return f"{self.database}/{schema}/{table}"

    @contextmanager
    def data_source(self) -> Iterator[DataSourceImpl]:
        from soda_postgres.common.data_sources.postgres_data_source import PostgresDataSourceImpl
        from soda_postgres.common.data_sources.postgres_data_source_connection import PostgresDataSource

        connection = {
            "connect_timeout": 10,
            **self.options,
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "user": self.user,
            # Soda's model insists on a password key. libpq still reads ~/.pgpass for an empty one, but no longer
            # PGPASSWORD, so that fallback is done here to connect exactly as `psycopg.connect(url)` would.
            "password": self.password if self.password is not None else os.environ.get("PGPASSWORD", ""),
        }
        model = {"name": DATA_SOURCE_NAME, "type": "postgres", "connection": connection}
        yield PostgresDataSourceImpl(data_source_model=PostgresDataSource.model_validate(model))
