"""Publishing `replace_partition` by partition exchange on real PostgreSQL, with the roles `make apply` makes: the
audited table becomes the partition, the replaced one moves into history, a rollback does the reverse; the owner's
`exchange_partition` refuses every argument it was not made for; a reader holding a lock makes a publish fail as
transient after `lock_timeout`, and readers arriving meanwhile see the new rows once it commits.

Roles are cluster-wide: each test gets its own environment name and drops its roles afterwards (`env` fixture).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg
import psycopg.sql
import pytest

from deployments.environments import Environment
from shipshape.catalog import find_pipeline
from shipshape.declaration import Pipeline
from shipshape.errors import TransientError
from shipshape.history import find
from shipshape.ledger import LedgerEntry, entries
from shipshape.names import destination_lock, history_table, partition_table
from shipshape.partitions import plan_windows
from shipshape.platform_schema import migrate
from shipshape.publish import StagedPartition, publish
from shipshape.rollback import rollback_partition
from shipshape.warehouses import AUDIT_SCHEMA, HISTORY_SCHEMA, Warehouse, open_warehouse
from tests.integration.test_history_rollback import waiting_on_locks
from tests.integration.test_warehouse_roles import (  # fixtures: env, applied
    PUBLISHED,
    allowed,
    applied,
    connect_as,
    env,
)
from tests.support.postgres import as_role
from tests.support.waiting import WAIT_SECONDS, wait_until

pytestmark = [pytest.mark.postgres]

__all__ = ["applied", "env"]  # fixtures used by name below

DAY1, DAY2 = date(2026, 11, 1), date(2026, 11, 2)
PARTITION1 = f"analytics.{partition_table('fct_orders', DAY1.isoformat())}"


def spec() -> Pipeline:
    return find_pipeline("shop_orders").spec


def audited(connection: psycopg.Connection, run: str, day: date, amounts: list[int], name: str = "") -> str:
    """The loader's transform output for `day` (named `name`, by default as a run names it): one order per amount."""
    out = name or f"shop_orders__{day:%Y%m%d}__{run}__out"
    values = ", ".join(
        f"({day.day * 100 + n}::bigint, DATE '{day}', {amount}.00::numeric(12,2))" for n, amount in enumerate(amounts)
    )
    connection.execute(
        f"CREATE TABLE {AUDIT_SCHEMA}.{out} AS SELECT * FROM (VALUES {values}) AS v (order_id, order_date, amount)"
    )
    return out


def publish_day(warehouse: Warehouse, run: str, day: date, out: str) -> LedgerEntry:
    """Publish `out` as the publish task does; returns its ledger entry."""
    (window,) = plan_windows("day", day, day)
    entry = LedgerEntry(
        pipeline="shop_orders", partition_key=window.key, partition_start=window.start, partition_end=window.end,
        flow_run_id=run, run_tag=run, code_version=run, contract_hash="",
        row_count=warehouse.row_count(AUDIT_SCHEMA, out), rejected_rows=0,
        status="published", check_results=[], message="", started_at=datetime.now(UTC),
        destination="analytics.fct_orders",
    )  # fmt: skip
    publish(warehouse, spec(), [StagedPartition(window, out, entry)], warehouse.claim([]))
    return entry


def amounts(connection: psycopg.Connection, relation: str) -> list[Decimal]:
    return [row[0] for row in connection.execute(f"SELECT amount FROM {relation} ORDER BY order_id").fetchall()]


def relkind(postgres_url: str, relation: str) -> tuple[str, str] | None:
    with psycopg.connect(postgres_url) as admin:
        found = admin.execute(
            "SELECT relkind::text, pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass(%s)", [relation]
        ).fetchone()
    return None if found is None else (str(found[0]), str(found[1]))


@pytest.fixture
def publisher(postgres_url: str, applied: Environment) -> Iterator[Warehouse]:
    with open_warehouse(as_role(postgres_url, applied.role("publisher"))) as opened:
        yield opened


def test_a_publish_moves_the_replaced_partition_into_history_and_the_consumer_reads_the_new_rows(
    postgres_url: str, applied: Environment, publisher: Warehouse
) -> None:
    with connect_as(postgres_url, applied, "loader") as loader:
        first, second = audited(loader, "first", DAY1, [1, 2]), audited(loader, "second", DAY1, [100, 200, 300])
    publish_day(publisher, "first", DAY1, first)
    entry = publish_day(publisher, "second", DAY1, second)

    owner = applied.role("owner")
    assert relkind(postgres_url, PUBLISHED) == ("p", owner)
    assert relkind(postgres_url, PARTITION1) == ("r", owner), "the audited table is the partition, the owner's"
    assert relkind(postgres_url, f"{AUDIT_SCHEMA}.{second}") is None
    kept = f"{HISTORY_SCHEMA}.{history_table(entry.entry_id)}"
    assert relkind(postgres_url, kept) == ("r", owner)
    with connect_as(postgres_url, applied, "consumer") as consumer:
        assert amounts(consumer, PUBLISHED) == [Decimal("100.00"), Decimal("200.00"), Decimal("300.00")]
        assert allowed(consumer, [f"SELECT * FROM {kept}"]) == [], "the consumer read history"
    with connect_as(postgres_url, applied, "loader") as loader:
        assert allowed(loader, [f"SELECT * FROM {kept}", f"INSERT INTO {PARTITION1} VALUES (1, '{DAY1}', 1)"]) == []
    with connect_as(postgres_url, applied, "publisher") as connection:
        assert amounts(connection, kept) == [Decimal("1.00"), Decimal("2.00")]
    noted = find(publisher, entry.entry_id)
    assert noted is not None and noted.row_count == 2
    assert [e.status for e in entries(publisher, "shop_orders")] == ["published", "published"]


def test_a_rollback_exchanges_back_and_a_new_day_gets_its_own_partition(
    postgres_url: str, applied: Environment, publisher: Warehouse
) -> None:
    with connect_as(postgres_url, applied, "loader") as loader:
        outs = [audited(loader, run, day, rows) for run, day, rows in (("good", DAY1, [1, 2]), ("bad", DAY1, [999]),
                                                                       ("d2", DAY2, [5]))]
    good = publish_day(publisher, "good", DAY1, outs[0])
    bad = publish_day(publisher, "bad", DAY1, outs[1])
    new_day = publish_day(publisher, "d2", DAY2, outs[2])

    restored = rollback_partition(publisher, spec(), DAY1.isoformat(), None)

    assert restored.restored.entry_id == good.entry_id
    with connect_as(postgres_url, applied, "consumer") as consumer:
        rows = consumer.execute(f"SELECT order_date, amount FROM {PUBLISHED} ORDER BY order_id").fetchall()
    assert rows == [(DAY1, Decimal("1.00")), (DAY1, Decimal("2.00")), (DAY2, Decimal("5.00"))]
    assert find(publisher, bad.entry_id) is None, "its kept rows are the partition again"
    undone = find(publisher, restored.entry.entry_id)
    assert undone is not None and undone.row_count == 1, "the rollback kept the bad publish's rows"
    new_day_kept = find(publisher, new_day.entry_id)
    assert new_day_kept is not None and new_day_kept.row_count == 0, "a new day replaced nothing"
    partitions = {partition_table("fct_orders", day.isoformat()) for day in (DAY1, DAY2)}
    with psycopg.connect(postgres_url) as admin:
        attached = admin.execute(
            "SELECT c.relname FROM pg_inherits JOIN pg_class AS c ON c.oid = inhrelid WHERE inhparent = %s::regclass",
            [PUBLISHED],
        ).fetchall()
    assert {name for (name,) in attached} == partitions


def test_with_roles_a_new_column_reaches_the_partitions_and_a_rollback_brings_old_rows_back_with_it_null(
    postgres_url: str, applied: Environment, publisher: Warehouse
) -> None:
    with connect_as(postgres_url, applied, "loader") as loader:
        before = audited(loader, "before", DAY1, [1])
        after = "shop_orders__20261101__after__out"
        loader.execute(
            f"CREATE TABLE {AUDIT_SCHEMA}.{after} AS SELECT 101::bigint AS order_id, DATE '{DAY1}' AS order_date, "
            "5.00::numeric(12,2) AS amount, 'web'::text AS channel"
        )
    publish_day(publisher, "before", DAY1, before)
    publish_day(publisher, "after", DAY1, after)  # the owner's function adds `channel` to the table and partitions
    with connect_as(postgres_url, applied, "consumer") as consumer:
        assert consumer.execute(f"SELECT amount, channel FROM {PUBLISHED}").fetchall() == [(Decimal("5.00"), "web")]

    rollback_partition(publisher, spec(), DAY1.isoformat(), None)

    with connect_as(postgres_url, applied, "consumer") as consumer:
        assert consumer.execute(f"SELECT amount, channel FROM {PUBLISHED}").fetchall() == [(Decimal("1.00"), None)]


# (arguments after the target, loader statements preparing the source, refusal)
HOSTILE = {
    "a NULL": ([None, "2026-11-02", "p", "audit", "src__out", "h_x"], [], "no argument may be NULL"),
    "source with an index": (
        ["2026-11-01", "2026-11-02", "p", "audit", "src__out", "h_x"],
        ["CREATE INDEX ON audit.src__out (order_id)"],
        "is not a plain table of",
    ),
    "source with a default": (
        ["2026-11-01", "2026-11-02", "p", "audit", "src__out", "h_x"],
        ["ALTER TABLE audit.src__out ALTER COLUMN amount SET DEFAULT 1"],
        "is not a plain table of",
    ),
    "source with an identity column": (
        ["2026-11-01", "2026-11-02", "p", "audit", "src__out", "h_x"],
        ["ALTER TABLE audit.src__out ALTER COLUMN order_id SET NOT NULL",
         "ALTER TABLE audit.src__out ALTER COLUMN order_id ADD GENERATED ALWAYS AS IDENTITY"],
        "is not a plain table of",
    ),
    "source a published table": (
        ["2026-11-01", "2026-11-02", "p", "analytics", "fct_orders", "h_x"], [], "holds neither audited nor kept",
    ),
    "source not a kept table": (
        ["2026-11-01", "2026-11-02", "p", "history", "not_kept", "h_x"], [], "is not a history table of",
    ),
    "kept name outside history's": (
        ["2026-11-01", "2026-11-02", "p", "audit", "src__out", "fct_orders"], [], "is not a history table name",
    ),
    "a CHECK running the loader's code": (
        ["2026-11-01", "2026-11-02", "p", "audit", "src__out", "h_x"],
        [
            "CREATE FUNCTION audit.mine(numeric) RETURNS boolean LANGUAGE sql AS 'SELECT true'",
            "ALTER TABLE audit.src__out ADD CONSTRAINT shipshape_partition_bound CHECK (audit.mine(amount))",
        ],
        "is not a plain table of",
    ),
    "rows outside the bounds": (
        ["2026-11-05", "2026-11-06", "p", "audit", "src__out", "h_x"], [], "violated by some row",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", HOSTILE)
def test_the_exchange_function_refuses_what_it_was_not_made_for(
    postgres_url: str, applied: Environment, publisher: Warehouse, case: str
) -> None:
    arguments, prepare, refusal = HOSTILE[case]
    with connect_as(postgres_url, applied, "loader") as loader:
        publish_day(publisher, "first", DAY1, audited(loader, "first", DAY1, [1]))
        audited(loader, "src", DAY1, [7], name="src__out")
        for statement in prepare:
            loader.execute(statement)

    with connect_as(postgres_url, applied, "publisher") as connection, pytest.raises(psycopg.Error, match=refusal):
        connection.execute(
            "SELECT platform.exchange_partition('analytics', 'fct_orders', %s, %s, %s, %s, %s, %s)", arguments
        )

    with connect_as(postgres_url, applied, "consumer") as consumer:
        assert amounts(consumer, PUBLISHED) == [Decimal("1.00")]
    assert relkind(postgres_url, "audit.src__out") == ("r", applied.role("loader"))


def test_the_owner_in_the_loader_role_gives_the_loader_and_the_publisher_nothing(
    postgres_url: str, applied: Environment, publisher: Warehouse
) -> None:
    """The owner is a member of the loader (its exchange function takes audited tables over); nobody is a member of
    the owner, so neither login role can act as it, or as each other, outside the owner's functions."""
    with connect_as(postgres_url, applied, "loader") as loader:
        publish_day(publisher, "first", DAY1, audited(loader, "first", DAY1, [1]))
        out = audited(loader, "second", DAY1, [2])
        kept = publisher.list_tables(HISTORY_SCHEMA)
        owner, other = applied.role("owner"), applied.role("publisher")
        assert allowed(loader, [
            f'SET ROLE "{owner}"', f'SET ROLE "{other}"', f"DROP TABLE {PUBLISHED}", f"DROP TABLE {PARTITION1}",
            f"ALTER TABLE {PARTITION1} OWNER TO CURRENT_USER", *(f"DROP TABLE {HISTORY_SCHEMA}.{t}" for t in kept),
            f"SELECT platform.exchange_partition('analytics', 'fct_orders', '2026-11-01', '2026-11-02', 'p', "
            f"'audit', '{out}', 'h_x')",
        ]) == []  # fmt: skip
    with connect_as(postgres_url, applied, "publisher") as connection:
        loader_role = applied.role("loader")
        assert allowed(connection, [
            f'SET ROLE "{owner}"', f'SET ROLE "{loader_role}"', f"DROP TABLE {AUDIT_SCHEMA}.{out}",
            f"DROP TABLE {PARTITION1}", f"ALTER TABLE {PARTITION1} DETACH PARTITION {PARTITION1}",
            f"ALTER TABLE {PUBLISHED} DETACH PARTITION {PARTITION1}",
        ]) == []  # fmt: skip


def test_an_injected_partition_name_is_one_name_not_a_statement(
    postgres_url: str, applied: Environment, publisher: Warehouse
) -> None:
    injected = 'p"; DROP TABLE analytics.fct_orders; --'
    with connect_as(postgres_url, applied, "loader") as loader:
        publish_day(publisher, "first", DAY1, audited(loader, "first", DAY1, [1]))
        out = audited(loader, "second", DAY2, [2])
    with connect_as(postgres_url, applied, "publisher") as connection:
        connection.execute(
            "SELECT platform.exchange_partition('analytics', 'fct_orders', %s, %s, %s, 'audit', %s, 'h_injected')",
            [DAY2.isoformat(), "2026-11-03", injected, out],
        )
    assert relkind(postgres_url, PUBLISHED) == ("p", applied.role("owner"))
    with psycopg.connect(postgres_url) as admin:
        quoted = psycopg.sql.Identifier("analytics", injected).as_string(admin)
        assert admin.execute(f"SELECT amount FROM {quoted}").fetchall() == [(Decimal("2.00"),)]


def test_a_table_from_before_partition_exchange_keeps_delete_insert_and_its_rollback(postgres_url: str) -> None:
    """A published table an earlier release made (plain): publishes and rollbacks copy rows as before."""
    with open_warehouse(postgres_url) as warehouse:
        migrate(warehouse)
        warehouse.ensure_schema(AUDIT_SCHEMA)
        warehouse.execute("CREATE SCHEMA analytics")
        warehouse.execute("CREATE TABLE analytics.fct_orders (order_id bigint, order_date date, amount numeric(12,2))")
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            first, second = audited(connection, "first", DAY1, [1]), audited(connection, "second", DAY1, [50])
        publish_day(warehouse, "first", DAY1, first)
        entry = publish_day(warehouse, "second", DAY1, second)

        assert relkind(postgres_url, PUBLISHED) == ("r", "postgres"), "still plain: nothing converted it"
        assert relkind(postgres_url, f"{AUDIT_SCHEMA}.{second}") is not None, "copied, not moved"
        assert warehouse.fetch_all(f"SELECT amount FROM {HISTORY_SCHEMA}.{history_table(entry.entry_id)}") == [
            (Decimal("1.00"),)
        ]
        rollback_partition(warehouse, spec(), DAY1.isoformat(), None)
        assert warehouse.fetch_all(f"SELECT amount FROM {PUBLISHED}") == [(Decimal("1.00"),)]


def test_a_reader_holding_a_lock_makes_the_publish_fail_as_transient_after_lock_timeout(
    postgres_url: str, applied: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPSHAPE_WAREHOUSE_LOCK_TIMEOUT_SECONDS", "1")
    with connect_as(postgres_url, applied, "loader") as loader:
        first, second = audited(loader, "first", DAY1, [1]), audited(loader, "second", DAY1, [2])
    with open_warehouse(as_role(postgres_url, applied.role("publisher"))) as publisher:
        publish_day(publisher, "first", DAY1, first)
        with connect_as(postgres_url, applied, "consumer") as reader:
            with reader.transaction():  # a long report: its ACCESS SHARE lock stays until it ends
                assert amounts(reader, PUBLISHED) == [Decimal("1.00")]
                with pytest.raises(TransientError, match=r"waited longer than lock_timeout .* nothing was published"):
                    publish_day(publisher, "second", DAY1, second)
            assert amounts(reader, PUBLISHED) == [Decimal("1.00")]
        assert relkind(postgres_url, f"{AUDIT_SCHEMA}.{second}") == ("r", applied.role("loader")), "left as it was"

        publish_day(publisher, "second", DAY1, second)  # the retry, once the reader is done
    with connect_as(postgres_url, applied, "consumer") as consumer:
        assert amounts(consumer, PUBLISHED) == [Decimal("2.00")]


def test_readers_wait_for_the_exchange_and_then_see_the_new_rows(postgres_url: str, applied: Environment) -> None:
    with connect_as(postgres_url, applied, "loader") as loader:
        first, second = audited(loader, "first", DAY1, [1]), audited(loader, "second", DAY1, [2])
    seen: list[object] = []

    def read() -> None:
        with connect_as(postgres_url, applied, "consumer") as reader:
            seen.append(amounts(reader, PUBLISHED))

    with open_warehouse(as_role(postgres_url, applied.role("publisher"))) as publisher:
        publish_day(publisher, "first", DAY1, first)
        reader = threading.Thread(target=read)
        with publisher.transaction():  # the publish below commits when this block ends
            publish_day(publisher, "second", DAY1, second)
            reader.start()
            wait_until(lambda: waiting_on_locks(postgres_url) == 1, "the reader waits on the exchanged table")
        reader.join(timeout=WAIT_SECONDS)
    assert seen == [[Decimal("2.00")]]


def test_concurrent_publishes_of_two_days_both_land(postgres_url: str, applied: Environment) -> None:
    with connect_as(postgres_url, applied, "loader") as loader:
        first = audited(loader, "first", DAY1, [1])
        outs = {DAY1: audited(loader, "again", DAY1, [10]), DAY2: audited(loader, "new", DAY2, [20])}
    failures: list[BaseException] = []

    def publish_in_own_session(day: date) -> None:
        try:
            with open_warehouse(as_role(postgres_url, applied.role("publisher"))) as own:
                publish_day(own, f"run-{day.day}", day, outs[day])
        except BaseException as error:
            failures.append(error)

    with open_warehouse(as_role(postgres_url, applied.role("publisher"))) as publisher:
        publish_day(publisher, "first", DAY1, first)
        threads = [threading.Thread(target=publish_in_own_session, args=(day,)) for day in outs]
        with publisher.transaction():  # both start together behind a publish of the table that is under way
            publisher.hold_until_commit(destination_lock("analytics", "fct_orders"))
            for thread in threads:
                thread.start()
            wait_until(lambda: waiting_on_locks(postgres_url) == 2, "both publishes wait on the destination lock")
        for thread in threads:
            thread.join(timeout=WAIT_SECONDS)

    assert failures == []
    with connect_as(postgres_url, applied, "consumer") as consumer:
        rows = consumer.execute(f"SELECT order_date, amount FROM {PUBLISHED} ORDER BY order_date").fetchall()
    assert rows == [(DAY1, Decimal("10.00")), (DAY2, Decimal("20.00"))]
