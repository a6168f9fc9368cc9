"""Published tables belong to the environment's NOLOGIN owner role; the publisher holds DML only and changes a
table's shape only through the owner's SECURITY DEFINER functions, which refuse every argument they were not made
for. On real PostgreSQL with the roles `make apply` makes (`infra.warehouse.reconcile`).

Roles are cluster-wide: run this module against a private server (SHIPSHAPE_TEST_POSTGRES_URL) while others share
the machine; each test gets its own environment name and drops its roles afterwards (`env` fixture).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql

from demo.shop_app import orders_per_day
from deployments.environments import Environment
from flows.run_pipeline import run_pipeline
from infra.warehouse import reconcile
from shipshape.ledger import entries
from shipshape.settings import load_settings
from shipshape.warehouses import AUDIT_SCHEMA, open_warehouse
from tests.integration.test_schema_evolution import add_coupon_code
from tests.integration.test_warehouse_roles import (  # fixtures: env, applied, example
    PASSWORDS,
    PUBLISHED,
    allowed,
    applied,
    connect_as,
    env,
    example,
)
from tests.support.postgres import as_role
from tests.support.project import FIRST_DAY

pytestmark = [pytest.mark.postgres, pytest.mark.filterwarnings("ignore::DeprecationWarning:soda_.*")]

__all__ = ["applied", "env", "example"]  # fixtures used by name below

OUT = "shop_orders__20261101__abcd1234__out"
OUT_COLUMNS = "order_id bigint, amount numeric(12,2), order_date date"
INJECTION = 'fct_orders"; DROP TABLE analytics.fct_orders; --'


def admin(postgres_url: str) -> psycopg.Connection:
    return psycopg.connect(postgres_url, autocommit=True)


def owner_of(postgres_url: str, schema: str, table: str) -> str | None:
    with admin(postgres_url) as connection:
        found = connection.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname = %s AND tablename = %s", [schema, table]
        ).fetchone()
    return None if found is None else str(found[0])


def published_state(postgres_url: str) -> tuple[object, ...]:
    """Columns with types, rows and grants of the published table, and every relation in `analytics`."""
    with admin(postgres_url) as connection:
        columns = connection.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            [PUBLISHED],
        ).fetchall()
        rows = connection.execute(f"SELECT * FROM {PUBLISHED} ORDER BY 1").fetchall()
        acl = connection.execute("SELECT relacl::text FROM pg_class WHERE oid = %s::regclass", [PUBLISHED]).fetchone()
        relations = connection.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'analytics'::regnamespace ORDER BY 1"
        ).fetchall()
    return columns, rows, acl, relations


@pytest.fixture
def published(postgres_url: str, applied: Environment) -> Environment:
    """After apply: the loader's transform output, and the published table the publisher created from it through
    the owner's function, with one row."""
    with connect_as(postgres_url, applied, "loader") as loader:
        loader.execute(f"CREATE TABLE audit.{OUT} ({OUT_COLUMNS})")
        loader.execute(f"INSERT INTO audit.{OUT} VALUES (1, 10.50, '2026-11-01')")
    with open_warehouse(as_role(postgres_url, applied.role("publisher"))) as publisher:
        publisher.create_published_table("analytics", "fct_orders", AUDIT_SCHEMA, OUT)
        publisher.insert_from("analytics", "fct_orders", AUDIT_SCHEMA, OUT, ["order_id", "amount", "order_date"])
    return applied


def test_the_owner_role_owns_what_the_publisher_creates_and_the_publisher_may_only_write_rows(
    postgres_url: str, published: Environment
) -> None:
    assert owner_of(postgres_url, "analytics", "fct_orders") == published.role("owner")
    with admin(postgres_url) as connection:
        can_login = connection.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", [published.role("owner")])
        assert can_login.fetchone() == (False,)
    with connect_as(postgres_url, published, "consumer") as consumer:  # the owner's default privileges
        assert consumer.execute(f"SELECT order_id FROM {PUBLISHED}").fetchall() == [(1,)]
    before = published_state(postgres_url)

    with connect_as(postgres_url, published, "publisher") as publisher:
        let_through = allowed(
            publisher,
            [
                f"DROP TABLE {PUBLISHED}",
                f"TRUNCATE {PUBLISHED}",
                f"ALTER TABLE {PUBLISHED} ADD COLUMN leaked text",
                f"ALTER TABLE {PUBLISHED} ALTER COLUMN amount TYPE text",
                f"ALTER TABLE {PUBLISHED} OWNER TO {published.role('publisher')}",
                f"ALTER TABLE {PUBLISHED} ENABLE ROW LEVEL SECURITY",
                f"CREATE INDEX sneaky ON {PUBLISHED} (order_id)",
                "CREATE TABLE analytics.fct_sneaky (one int)",
            ],
        )
        # Without the grant option GRANT only warns ("no privileges were granted"): the ACL is what must not change.
        publisher.execute(f"GRANT SELECT, DELETE ON {PUBLISHED} TO PUBLIC")
        publisher.execute(sql.SQL(f"GRANT ALL ON {PUBLISHED} TO {{}}").format(sql.Identifier(published.role("loader"))))
        assert let_through == []
        assert published_state(postgres_url) == before
        publisher.execute(f"INSERT INTO {PUBLISHED} VALUES (2, 20.00, '2026-11-02')")
        publisher.execute(f"DELETE FROM {PUBLISHED} WHERE order_id = 1")
        assert publisher.execute(f"SELECT order_id FROM {PUBLISHED}").fetchall() == [(2,)]
    with connect_as(postgres_url, published, "loader") as loader, pytest.raises(
        psycopg.errors.InsufficientPrivilege, match="permission denied for function create_published_table"
    ):
        loader.execute("SELECT platform.create_published_table('analytics', 'mine', 'audit', %s)", [OUT])


# (function, arguments, loader statements that prepare the source, refusal)
HOSTILE_CALLS = {
    "reserved schema": (
        "create_published_table", ["platform", "leak", "audit", OUT], [], "platform is a reserved schema"
    ),
    "pg_ schema": ("create_published_table", ["pg_temp", "leak", "audit", OUT], [], "pg_temp is a reserved schema"),
    "source outside audit": (
        "create_published_table", ["analytics", "leak", "platform", "publish_ledger"], [],
        "platform.publish_ledger is not a plain table of",
    ),
    "source a view": (
        "create_published_table", ["analytics", "leak", "audit", "v__out"],
        [f"CREATE VIEW audit.v__out AS SELECT * FROM audit.{OUT}"], "audit.v__out is not a plain table of",
    ),
    "source with row security": (
        "add_published_columns", ["analytics", "fct_orders", "audit", "rls__out"],
        [
            "CREATE TABLE audit.rls__out (order_id bigint, extra text)",
            "ALTER TABLE audit.rls__out ENABLE ROW LEVEL SECURITY",
        ],
        "audit.rls__out is not a plain table of",
    ),
    "source with a trigger": (
        "add_published_columns", ["analytics", "fct_orders", "audit", "trg__out"],
        [
            "CREATE TABLE audit.trg__out (order_id bigint, extra text)",
            "CREATE FUNCTION audit.noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
            "CREATE TRIGGER noop BEFORE INSERT ON audit.trg__out FOR EACH ROW EXECUTE FUNCTION audit.noop()",
        ],
        "audit.trg__out is not a plain table of",
    ),
    "source with a domain column": (
        "add_published_columns", ["analytics", "fct_orders", "audit", "dom__out"],
        [
            "CREATE DOMAIN audit.checked AS text CHECK (true)",
            "CREATE TABLE audit.dom__out (order_id bigint, extra audit.checked)",
        ],
        "audit.dom__out is not a plain table of",
    ),
    "target not a published table": (
        "add_published_columns", ["platform", "publish_ledger", "audit", OUT], [], "platform is a reserved schema"
    ),
    "injected target name": (
        "add_published_columns", ["analytics", INJECTION, "audit", OUT], [], "is not a published table",
    ),
    "injected column name": (
        "widen_published_column", ["analytics", "fct_orders", "amount TYPE text; --", "audit", OUT], [],
        "does not widen",
    ),
    "narrowing": (
        "widen_published_column", ["analytics", "fct_orders", "amount", "audit", "narrow__out"],
        ["CREATE TABLE audit.narrow__out (order_id bigint, amount numeric(10,2), order_date date)"],
        "amount numeric(12,2) does not widen to numeric(10,2)",
    ),
    "a NULL": ("add_published_columns", ["analytics", "fct_orders", None, OUT], [], "no argument may be NULL"),
}  # fmt: skip


@pytest.mark.parametrize("case", HOSTILE_CALLS)
def test_the_owner_functions_refuse_what_they_were_not_made_for(
    postgres_url: str, published: Environment, case: str
) -> None:
    function, arguments, prepare, refusal = HOSTILE_CALLS[case]
    with connect_as(postgres_url, published, "loader") as loader:
        for statement in prepare:
            loader.execute(statement)
    before = published_state(postgres_url)

    placeholders = ", ".join("%s" for _ in arguments)
    with connect_as(postgres_url, published, "publisher") as publisher, pytest.raises(
        psycopg.errors.InsufficientPrivilege, match=refusal.replace("(", r"\(").replace(")", r"\)")
    ):
        publisher.execute(f"SELECT platform.{function}({placeholders})", arguments)

    assert published_state(postgres_url) == before


def test_the_publisher_widens_and_adds_columns_through_the_owner_functions(
    postgres_url: str, published: Environment
) -> None:
    with connect_as(postgres_url, published, "loader") as loader:
        loader.execute(
            "CREATE TABLE audit.wider__out (order_id bigint, amount numeric(14,3), order_date date, note text)"
        )

    with open_warehouse(as_role(postgres_url, published.role("publisher"))) as publisher:
        publisher.widen_published_column("analytics", "fct_orders", "amount", AUDIT_SCHEMA, "wider__out")
        publisher.add_published_columns("analytics", "fct_orders", AUDIT_SCHEMA, "wider__out")

    columns, rows, _, _ = published_state(postgres_url)
    assert columns == [("order_id", "bigint"), ("amount", "numeric(14,3)"), ("order_date", "date"), ("note", "text")]
    assert rows == [(1, Decimal("10.500"), date(2026, 11, 1), None)]
    assert owner_of(postgres_url, "analytics", "fct_orders") == published.role("owner")


def test_a_table_of_another_owner_is_not_a_published_table_to_the_functions(
    postgres_url: str, published: Environment
) -> None:
    """A table in a destination schema that is not the owner role's (made by hand after apply) is left alone."""
    with admin(postgres_url) as connection:
        connection.execute("CREATE TABLE analytics.by_hand (order_id bigint)")
        connection.execute(
            sql.SQL("GRANT SELECT ON analytics.by_hand TO {}").format(sql.Identifier(published.role("publisher")))
        )
    with connect_as(postgres_url, published, "publisher") as publisher, pytest.raises(
        psycopg.errors.InsufficientPrivilege, match=r"analytics\.by_hand is not a published table"
    ):
        publisher.execute("SELECT platform.add_published_columns('analytics', 'by_hand', 'audit', %s)", [OUT])
    assert owner_of(postgres_url, "analytics", "by_hand") == "postgres"


def test_an_injected_table_name_is_one_name_not_a_statement(postgres_url: str, published: Environment) -> None:
    with open_warehouse(as_role(postgres_url, published.role("publisher"))) as publisher:
        publisher.create_published_table("analytics", INJECTION, AUDIT_SCHEMA, OUT)

    assert owner_of(postgres_url, "analytics", "fct_orders") == published.role("owner")
    assert owner_of(postgres_url, "analytics", INJECTION) == published.role("owner")


def test_apply_hands_tables_the_publisher_owns_to_the_owner_role_and_restores_the_functions(
    postgres_url: str, applied: Environment
) -> None:
    """A warehouse from before the owner role: the publisher had CREATE and owns what it published. And the
    functions changed by hand (granted to the loader, body replaced): apply plans all of it back."""
    loader, publisher, consumer, owner = (applied.role(p) for p in ("loader", "publisher", "consumer", "owner"))
    with admin(postgres_url) as connection:
        connection.execute(sql.SQL("GRANT CREATE ON SCHEMA analytics TO {}").format(sql.Identifier(publisher)))
        connection.execute(
            sql.SQL("GRANT EXECUTE ON FUNCTION platform.add_published_columns(text, text, text, text) TO {}").format(
                sql.Identifier(loader)
            )
        )
        connection.execute("DROP FUNCTION platform.create_published_table(text, text, text, text)")
        connection.execute(
            "CREATE FUNCTION platform.create_published_table(a text, b text, c text, d text) "
            "RETURNS void LANGUAGE sql AS $$ SELECT $$"
        )
    with connect_as(postgres_url, applied, "publisher") as as_publisher:
        as_publisher.execute(f"CREATE TABLE {PUBLISHED} (order_id bigint, amount numeric(12,2))")
        as_publisher.execute(f"INSERT INTO {PUBLISHED} VALUES (1, 10.00)")

    plan = reconcile(postgres_url, applied, PASSWORDS, dry_run=True)

    assert sorted(str(change) for change in plan) == sorted([
        f"~ owner {PUBLISHED} (from {publisher} to {owner})",
        f"~ function platform.create_published_table (as {owner}, run by {publisher})",
        f"~ function platform.add_published_columns (as {owner}, run by {publisher})",
        f"+ grant SELECT on table {PUBLISHED} to {loader}",
        f"+ grant SELECT, INSERT, DELETE on table {PUBLISHED} to {publisher}",
        f"+ grant SELECT on table {PUBLISHED} to {consumer}",
        f"- grant CREATE on schema analytics to {publisher}",
    ])
    assert reconcile(postgres_url, applied, PASSWORDS, dry_run=False) == plan
    assert reconcile(postgres_url, applied, PASSWORDS, dry_run=False) == []
    assert owner_of(postgres_url, "analytics", "fct_orders") == owner
    with connect_as(postgres_url, applied, "publisher") as as_publisher:
        assert allowed(as_publisher, [f"DROP TABLE {PUBLISHED}", "CREATE TABLE analytics.again (one int)"]) == []
        as_publisher.execute(f"DELETE FROM {PUBLISHED}")
    with connect_as(postgres_url, applied, "loader") as as_loader, pytest.raises(
        psycopg.errors.InsufficientPrivilege, match="permission denied for function add_published_columns"
    ):
        as_loader.execute(f"SELECT platform.add_published_columns('analytics', 'fct_orders', 'audit', '{OUT}')")


def test_the_example_takes_a_new_column_through_the_owner_role(postgres_url: str, example: Environment) -> None:
    """Issue 12 with issue 11's roles: the run is the loader, the publish the publisher, the DDL the owner's."""
    first = run_pipeline("shop_orders", start_date=FIRST_DAY, end_date=FIRST_DAY, return_state=True)
    assert first.is_completed(), first.message
    second_day = date(2026, 11, 2)
    add_coupon_code(load_settings().project_dir)

    second = run_pipeline("shop_orders", start_date=second_day, end_date=second_day, return_state=True)

    assert second.is_completed(), second.message
    assert owner_of(postgres_url, "analytics", "fct_orders") == example.role("owner")
    with connect_as(postgres_url, example, "consumer") as consumer:
        counts = consumer.execute(
            f"SELECT order_date, count(*), count(coupon_code) FROM {PUBLISHED} GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert counts == [(FIRST_DAY, orders_per_day(FIRST_DAY), 0), (second_day, orders_per_day(second_day), 0)]
    with open_warehouse(postgres_url) as warehouse:
        latest = entries(warehouse, "shop_orders")[0]
    assert (latest.partition_key, latest.message) == (second_day.isoformat(), "schema change: added coupon_code (text)")
