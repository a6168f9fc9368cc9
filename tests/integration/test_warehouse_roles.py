"""Least-privilege warehouse roles on real PostgreSQL: plan/apply/idempotency, what each role may and may not do,
and the example pipeline running end to end as the loader and the publisher.

Role names are cluster-wide, so each test gets its own environment name and drops its roles afterwards.
Roles log in through the server's trust authentication (127.0.0.1), so their URLs carry no password.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from demo.shop_app import orders_per_day
from deployments.environments import Environment
from flows.monitor import monitor
from flows.run_pipeline import run_pipeline
from infra.changes import Change
from infra.warehouse import PASSWORD_VARIABLES, Purpose, passwords_from_environment, reconcile
from shipshape.alerts import FRESHNESS_BREACH
from shipshape.catalog import find_pipeline
from shipshape.declaration import Load
from shipshape.errors import ConfigurationError, PublishError, WarehouseError
from shipshape.history import prune
from shipshape.ledger import HISTORY_INDEX_TABLE, LedgerEntry
from shipshape.names import PUBLISHED_TABLE_FUNCTIONS
from shipshape.partitions import plan_windows
from shipshape.platform_migrations import MIGRATIONS
from shipshape.platform_schema import migrate
from shipshape.publish import StagedPartition, publish
from shipshape.rollback import rollback_partition
from shipshape.warehouses import AUDIT_SCHEMA, HISTORY_SCHEMA, open_warehouse
from tests.support.postgres import as_role, drop_roles
from tests.support.project import DAYS, FIRST_DAY, make_project

pytestmark = [pytest.mark.postgres, pytest.mark.filterwarnings("ignore::DeprecationWarning:soda_.*")]

PASSWORDS = {
    "loader": "loader-test-password", "publisher": "publisher-test-password", "consumer": "consumer-pw",
    "monitor": "monitor-pw",
}
MIGRATION_LINES = [f"+ migration platform version {m.version} ({m.description})" for m in MIGRATIONS]
PUBLISHED = "analytics.fct_orders"
AUDIT_TABLE = "audit.shop_orders__20261101__abcd1234__out"
ALL_DAYS = [FIRST_DAY + timedelta(days=offset) for offset in range(DAYS)]


@pytest.fixture
def env(postgres_url: str) -> Iterator[Environment]:
    """A fresh environment name; its roles (with everything they own or were granted) are dropped afterwards."""
    environment = Environment(f"t{uuid.uuid4().hex[:8]}", "process", False, 1)
    yield environment
    drop_roles(postgres_url, [*roles(environment), environment.role("owner")])


@pytest.fixture
def applied(postgres_url: str, env: Environment) -> Environment:
    reconcile(postgres_url, env, PASSWORDS, dry_run=False)
    return env


def roles(env: Environment) -> list[str]:
    """loader, publisher, consumer, monitor."""
    return [env.role(purpose) for purpose in PASSWORD_VARIABLES]


def connect_as(postgres_url: str, env: Environment, purpose: Purpose) -> psycopg.Connection:
    return psycopg.connect(as_role(postgres_url, env.role(purpose)), autocommit=True)


def publish_a_table(postgres_url: str, env: Environment) -> None:
    """What a first publish does (after apply): the owner role creates the published table, the publisher fills it."""
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(env.role("owner"))))
        admin.execute(f"CREATE TABLE {PUBLISHED} (order_id bigint, amount numeric(12,2))")
    with connect_as(postgres_url, env, "publisher") as publisher:
        publisher.execute(f"INSERT INTO {PUBLISHED} VALUES (1, 10.00), (2, 20.00)")


def allowed(connection: psycopg.Connection, statements: list[str]) -> list[str]:
    """The statements the server let through; any refusal other than a missing privilege raises."""
    let_through = []
    for statement in statements:
        try:
            connection.execute(statement)
        except psycopg.errors.InsufficientPrivilege:
            continue
        let_through.append(statement)
    return let_through


# --- plan / apply -------------------------------------------------------------------------------------------------


def test_plan_lists_everything_apply_makes_exactly_that_and_a_second_apply_changes_nothing(
    postgres_url: str, env: Environment
) -> None:
    loader, publisher, consumer, monitor = roles(env)
    owner = env.role("owner")

    plan = reconcile(postgres_url, env, PASSWORDS, dry_run=True)

    lines = [str(change) for change in plan]
    assert lines[: 15 + len(MIGRATIONS)] == [
        "+ schema analytics",
        "+ schema audit",
        "+ schema history",
        "+ schema platform",
        *MIGRATION_LINES,
        f"+ role {loader} (LOGIN)",
        f"+ role {publisher} (LOGIN)",
        f"+ role {consumer} (LOGIN)",
        f"+ role {monitor} (LOGIN)",
        f"+ role {owner} (NOLOGIN)",
        *(
            f"+ function platform.{name} (as {owner}, run by {publisher})"
            for name in PUBLISHED_TABLE_FUNCTIONS
        ),
    ]
    assert f"+ grant USAGE, CREATE on schema audit to {loader}" in lines
    # Partition exchange: the owner's functions take audited tables over and move replaced partitions to history.
    assert f"+ grant role {loader} to {owner} (its functions take audited tables over)" in lines
    assert f"+ grant USAGE, CREATE on schema history to {owner}" in lines
    assert f"+ grant USAGE, CREATE on schema analytics to {owner}" in lines
    assert f"+ grant USAGE on schema analytics to {publisher}" in lines
    assert f"+ grant SELECT, DELETE on table platform.dead_letters to {publisher}" in lines
    assert f"+ grant SELECT, INSERT, UPDATE on table platform.incidents to {monitor}" in lines
    assert f"+ grant SELECT on table platform.incidents to {loader}" in lines  # read only
    assert not any(line.endswith(f"platform.incidents to {role}") for role in (publisher, consumer) for line in lines)
    assert f"+ row policy {monitor}_select on platform.publish_ledger (SELECT every row)" in lines
    assert f"+ grant SELECT on table platform.schema_version to {loader}" in lines
    assert f"+ grant SELECT on table platform.schema_version to {monitor}" in lines
    assert f"+ default privilege SELECT on tables {loader} creates in audit to {publisher}" in lines
    assert f"+ default privilege SELECT on tables {owner} creates in analytics to {consumer}" in lines
    assert f"+ default privilege SELECT, INSERT, DELETE on tables {owner} creates in analytics to {publisher}" in lines
    assert "+ row security platform.publish_ledger" in lines
    assert f"+ grant USAGE, CREATE on schema history to {publisher}" in lines
    on_ledger = "on platform.publish_ledger (INSERT status"
    assert f"+ row policy {loader}_insert {on_ledger} NOT IN (published, rolled_back))" in lines
    assert f"+ row policy {publisher}_insert {on_ledger} IN (published, rolled_back))" in lines
    assert not [line for line in lines if "schema history" in line and (loader in line or consumer in line)]
    assert {change.kind for change in plan} == {
        "schema", "migration", "role", "function", "grant", "default privilege", "row security", "row policy"
    }
    assert {change.action for change in plan} == {"create"}
    with psycopg.connect(postgres_url) as admin:
        schemas = admin.execute("SELECT nspname FROM pg_namespace WHERE nspname IN ('analytics', 'audit')").fetchall()
        loader_rows = admin.execute("SELECT rolname FROM pg_roles WHERE rolname = %s", [loader]).fetchall()
    assert (schemas, loader_rows) == ([], []), "the plan changed the warehouse"

    assert reconcile(postgres_url, env, PASSWORDS, dry_run=False) == plan
    assert reconcile(postgres_url, env, PASSWORDS, dry_run=False) == []
    assert reconcile(postgres_url, env, PASSWORDS, dry_run=True) == []


def test_privileges_granted_beyond_the_policy_are_planned_as_revokes_and_apply_removes_them(
    postgres_url: str, applied: Environment
) -> None:
    publish_a_table(postgres_url, applied)
    loader, _, consumer, _ = roles(applied)
    with psycopg.connect(postgres_url) as admin:
        database = admin.execute("SELECT current_database()").fetchone()[0]
    by_hand = [
        ("DELETE ON platform.publish_ledger", consumer),
        ("DELETE, TRUNCATE ON platform.publish_ledger", loader),
        (f"INSERT ON {PUBLISHED}", loader),  # next to the SELECT the policy gives it
        ("CREATE ON SCHEMA analytics", loader),  # next to the USAGE the policy gives it
        (f"CREATE ON DATABASE {database}", consumer),  # next to CONNECT: it could create schemas
    ]
    memberships = ["pg_read_all_data", "pg_write_all_data"]  # every table, around any per-table grant
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        for privileges, role in by_hand:
            admin.execute(sql.SQL(f"GRANT {privileges} TO {{}}").format(sql.Identifier(role)))
        for group in memberships:
            admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(consumer)))

    plan = reconcile(postgres_url, applied, PASSWORDS, dry_run=True)

    assert sorted(str(change) for change in plan) == sorted([
        f"- grant DELETE on table platform.publish_ledger to {consumer}",
        f"- grant DELETE, TRUNCATE on table platform.publish_ledger to {loader}",
        f"- grant INSERT on table {PUBLISHED} to {loader}",
        f"- grant CREATE on schema analytics to {loader}",
        f"- grant CREATE on database {database} to {consumer}",
        *(f"- grant role {group} to {consumer}" for group in memberships),
    ])
    assert reconcile(postgres_url, applied, PASSWORDS, dry_run=False) == plan
    assert reconcile(postgres_url, applied, PASSWORDS, dry_run=False) == []
    with connect_as(postgres_url, applied, "consumer") as as_consumer:
        refused_to_consumer = [
            "DELETE FROM platform.publish_ledger WHERE false",
            "SELECT count(*) FROM platform.publish_ledger",
            "CREATE SCHEMA sneaky",
        ]
        assert allowed(as_consumer, refused_to_consumer) == []
        assert as_consumer.execute(f"SELECT count(*) FROM {PUBLISHED}").fetchone() == (2,)  # the policy's own stays
    with connect_as(postgres_url, applied, "loader") as as_loader:
        refused = [
            "DELETE FROM platform.publish_ledger WHERE false",
            f"INSERT INTO {PUBLISHED} SELECT 3, 30.00 WHERE false",
            "CREATE TABLE analytics.fct_sneaky (one int)",
        ]
        assert allowed(as_loader, refused) == []
        assert as_loader.execute(f"SELECT count(*) FROM {PUBLISHED}").fetchone() == (2,)


def test_tables_that_existed_before_apply_get_the_same_access_as_later_ones(
    postgres_url: str, env: Environment
) -> None:
    with open_warehouse(postgres_url) as admin:
        for schema in ("analytics", AUDIT_SCHEMA):
            admin.ensure_schema(schema)
        admin.execute(f"CREATE TABLE {PUBLISHED} (order_id bigint)")
        admin.execute(f"CREATE TABLE {AUDIT_TABLE} (order_id bigint)")
    loader, publisher, consumer, _ = roles(env)

    made = [str(change) for change in reconcile(postgres_url, env, PASSWORDS, dry_run=False)]

    assert f"+ grant SELECT on table {PUBLISHED} to {loader}" in made
    assert f"+ grant SELECT, INSERT, DELETE on table {PUBLISHED} to {publisher}" in made
    assert f"+ grant SELECT on table {PUBLISHED} to {consumer}" in made
    assert f"+ grant SELECT on table {AUDIT_TABLE} to {publisher}" in made
    with connect_as(postgres_url, env, "publisher") as connection:
        connection.execute(f"INSERT INTO {PUBLISHED} SELECT order_id FROM {AUDIT_TABLE}")
        connection.execute(f"DELETE FROM {PUBLISHED} WHERE order_id = 1")
    assert reconcile(postgres_url, env, PASSWORDS, dry_run=True) == []


def test_duckdb_has_no_roles_so_reconcile_ensures_schemas_and_migrates_the_platform_tables(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    env = Environment("unused", "process", False, 1)

    changes = reconcile(url, env, {}, dry_run=False)

    assert [str(change) for change in changes] == [
        "+ schema analytics",
        "+ schema audit",
        "+ schema history",
        "+ schema platform",
        *MIGRATION_LINES,
    ]
    assert reconcile(url, env, {}, dry_run=False) == []


# --- what each role may do ------------------------------------------------------------------------------------------


def test_the_loader_works_in_the_audit_area_and_platform_tables_infra_created(
    postgres_url: str, applied: Environment
) -> None:
    """The flow's own calls as the loader: ensuring what exists already must not need CREATE."""
    with open_warehouse(as_role(postgres_url, applied.role("loader"))) as loader:
        migrate(loader)
        loader.ensure_schema(AUDIT_SCHEMA)
        loader.create_table_as(AUDIT_SCHEMA, "run__raw", "SELECT 1 AS order_id", scratch=True)
        loader.execute("INSERT INTO platform.dead_letters (pipeline, run_tag) VALUES ('p', 'r')")
        loader.execute("INSERT INTO platform.publish_ledger (pipeline, status) VALUES ('p', 'failed')")
        assert loader.fetch_all("SELECT count(*) FROM platform.publish_ledger") == [(1,)]
        with loader.exclusive(["shipshape:p:2026-11-01"]) as held:
            assert held
        loader.drop_table(AUDIT_SCHEMA, "run__raw")


def test_the_loader_may_record_failed_and_blocked_attempts_but_no_published_ledger_row(
    postgres_url: str, applied: Environment
) -> None:
    """A `published` row is what freshness, SLOs and backfill planning trust: only the publish step may write one."""
    ledger = "INSERT INTO platform.publish_ledger (pipeline, partition_key, status) VALUES ('p', '2026-11-01', %s)"
    with connect_as(postgres_url, applied, "loader") as loader:
        for status in ("failed", "blocked"):
            loader.execute(ledger, [status])
        for claimed in ("published", "rolled_back", None):  # NULL too: the check must hold, not merely not fail
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                loader.execute(ledger, [claimed])
        assert loader.execute("SELECT status FROM platform.publish_ledger ORDER BY 1").fetchall() == [
            ("blocked",),
            ("failed",),
        ]
    with connect_as(postgres_url, applied, "publisher") as publisher:
        publisher.execute(ledger, ["published"])
        publisher.execute(ledger, ["rolled_back"])
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            publisher.execute(ledger, ["failed"])


def test_a_ledger_policy_added_or_row_security_turned_off_by_hand_is_planned_back_and_apply_restores_it(
    postgres_url: str, applied: Environment
) -> None:
    """Permissive policies are OR-ed: one more for the loader would let through what the platform's refuses."""
    loader = applied.role("loader")
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE POLICY sneaky ON platform.publish_ledger FOR INSERT TO {} WITH CHECK (true)").format(
                sql.Identifier(loader)
            )
        )
        admin.execute("ALTER TABLE platform.publish_ledger DISABLE ROW LEVEL SECURITY")

    plan = reconcile(postgres_url, applied, PASSWORDS, dry_run=True)

    assert [str(change) for change in plan] == [
        "+ row security platform.publish_ledger",
        "- row policy sneaky on platform.publish_ledger",
    ]
    assert reconcile(postgres_url, applied, PASSWORDS, dry_run=False) == plan
    assert reconcile(postgres_url, applied, PASSWORDS, dry_run=False) == []
    with connect_as(postgres_url, applied, "loader") as as_loader, pytest.raises(
        psycopg.errors.InsufficientPrivilege, match="row-level security"
    ):
        as_loader.execute("INSERT INTO platform.publish_ledger (pipeline, status) VALUES ('p', 'published')")


def test_history_is_the_publishers_alone_the_consumer_and_the_loader_cannot_read_it(
    postgres_url: str, applied: Environment
) -> None:
    """The publisher keeps replaced rows, rolls back and prunes with its own rights; the rows of a bad publish (or
    of a partition since corrected, perhaps for a privacy reason) reach no consumer through history."""
    spec = find_pipeline("shop_orders").spec
    with connect_as(postgres_url, applied, "loader") as loader:
        for run, amount in (("first", 1), ("second", 100)):
            loader.execute(
                f"CREATE TABLE audit.shop_orders__20261101__{run}__out AS SELECT 7::bigint AS order_id, "
                f"DATE '{FIRST_DAY}' AS order_date, {amount}.00::numeric(12,2) AS amount"
            )
    (window,) = plan_windows("day", FIRST_DAY, FIRST_DAY)
    with open_warehouse(as_role(postgres_url, applied.role("publisher"))) as publisher:
        for run in ("first", "second"):
            entry = LedgerEntry(
                pipeline="shop_orders", partition_key=window.key, partition_start=window.start,
                partition_end=window.end, flow_run_id=run, run_tag=run, code_version="test", contract_hash="",
                row_count=1, rejected_rows=0, status="published", check_results=[], message="",
                started_at=datetime.now(UTC), destination="analytics.fct_orders",
            )  # fmt: skip
            out = f"shop_orders__20261101__{run}__out"
            publish(publisher, spec, [StagedPartition(window, out, entry)], publisher.claim([]))
        rollback_partition(publisher, spec, window.key, None)
        kept = publisher.list_tables(HISTORY_SCHEMA)
        # The first publish's (empty) and the rollback's; the second's became the partition again (partition exchange).
        assert len(kept) == 2

        reads = [f"SELECT * FROM {HISTORY_SCHEMA}.{table}" for table in kept]
        for purpose in ("consumer", "loader"):
            with connect_as(postgres_url, applied, purpose) as other:
                assert allowed(other, reads) == [], f"the {purpose} read history"
        with connect_as(postgres_url, applied, "consumer") as consumer:
            assert allowed(consumer, [f"SELECT * FROM platform.{HISTORY_INDEX_TABLE}"]) == []
        with connect_as(postgres_url, applied, "consumer") as consumer:
            assert consumer.execute(f"SELECT order_id, amount FROM {PUBLISHED}").fetchall() == [(7, Decimal("1.00"))]

        assert len(prune(publisher, datetime.now(UTC) + timedelta(days=8))) == 2
        assert publisher.list_tables(HISTORY_SCHEMA) == []


INCIDENT_WRITES = [
    f"INSERT INTO platform.incidents (pipeline, kind, is_open) VALUES ('p', '{FRESHNESS_BREACH}', true)",
    "UPDATE platform.incidents SET is_open = false",
    "DELETE FROM platform.incidents",
]


def test_only_the_monitor_writes_incidents_and_it_writes_nothing_else(postgres_url: str, applied: Environment) -> None:
    """A team's transform runs as the loader: if it could write incidents it could close one, or keep one open so
    its recovery never alerts. Only the monitors' own role writes them; it reads the ledger and writes nothing else."""
    publish_a_table(postgres_url, applied)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("INSERT INTO platform.incidents (pipeline, kind, is_open) VALUES ('q', 'volume_anomaly', true)")
        admin.execute("INSERT INTO platform.publish_ledger (pipeline, status) VALUES ('q', 'published')")
    for purpose in ("loader", "publisher", "consumer"):
        with connect_as(postgres_url, applied, purpose) as other:
            assert allowed(other, INCIDENT_WRITES) == [], f"the {purpose} wrote incidents"
    with connect_as(postgres_url, applied, "monitor") as monitor:
        assert allowed(monitor, INCIDENT_WRITES[:2]) == INCIDENT_WRITES[:2]
        assert monitor.execute("SELECT status FROM platform.publish_ledger").fetchall() == [("published",)]
        refused = [
            "INSERT INTO platform.publish_ledger (pipeline, status) VALUES ('p', 'published')",
            "INSERT INTO platform.publish_ledger (pipeline, status) VALUES ('p', 'failed')",
            "UPDATE platform.publish_ledger SET status = 'failed'",
            "INSERT INTO platform.dead_letters (pipeline, run_tag) VALUES ('p', 'r')",
            f"INSERT INTO {PUBLISHED} VALUES (3, 30.00)",
            f"DELETE FROM {PUBLISHED}",
            f"SELECT count(*) FROM {PUBLISHED}",
            "CREATE TABLE audit.sneaky (one int)",
            INCIDENT_WRITES[2],  # history is kept: an incident is resolved, never deleted
        ]
        assert allowed(monitor, refused) == []
    with psycopg.connect(postgres_url) as admin:
        assert admin.execute(f"SELECT count(*) FROM {PUBLISHED}").fetchone() == (2,)
        assert admin.execute("SELECT count(*) FROM platform.publish_ledger").fetchone() == (1,)


def test_the_incident_grant_an_older_policy_gave_the_loader_is_revoked_by_apply(
    postgres_url: str, applied: Environment
) -> None:
    loader = applied.role("loader")
    with psycopg.connect(postgres_url, autocommit=True) as admin:  # what apply granted before the monitor role
        grant = sql.SQL("GRANT SELECT, INSERT, UPDATE ON platform.incidents TO {}").format(sql.Identifier(loader))
        admin.execute(grant)

    plan = reconcile(postgres_url, applied, PASSWORDS, dry_run=True)

    assert [str(change) for change in plan] == [f"- grant INSERT, UPDATE on table platform.incidents to {loader}"]
    assert reconcile(postgres_url, applied, PASSWORDS, dry_run=False) == plan
    with connect_as(postgres_url, applied, "loader") as as_loader:
        assert allowed(as_loader, INCIDENT_WRITES) == []


def test_the_publisher_reads_audit_tables_the_loader_creates_after_apply(
    postgres_url: str, applied: Environment
) -> None:
    with connect_as(postgres_url, applied, "loader") as loader:
        loader.execute(f"CREATE TABLE {AUDIT_TABLE} AS SELECT 7::bigint AS order_id, 1.5::numeric(12,2) AS amount")
        loader.execute("INSERT INTO platform.dead_letters (pipeline, run_tag) VALUES ('p', 'old')")

    with open_warehouse(as_role(postgres_url, applied.role("publisher"))) as through_functions:
        through_functions.create_published_table("analytics", "fct_orders", AUDIT_SCHEMA, AUDIT_TABLE.split(".")[1])
    with connect_as(postgres_url, applied, "publisher") as publisher:
        publisher.execute(f"INSERT INTO {PUBLISHED} SELECT * FROM {AUDIT_TABLE}")
        publisher.execute("DELETE FROM platform.dead_letters WHERE pipeline = 'p' AND run_tag <> 'new'")
        publisher.execute("INSERT INTO platform.publish_ledger (pipeline, status) VALUES ('p', 'published')")
        assert allowed(publisher, [f"DROP TABLE {AUDIT_TABLE}", "CREATE TABLE audit.mine (one int)"]) == []

    with psycopg.connect(postgres_url) as admin:
        assert admin.execute(f"SELECT order_id FROM {PUBLISHED}").fetchall() == [(7,)]
        assert admin.execute("SELECT count(*) FROM platform.dead_letters").fetchall() == [(0,)]


def test_the_loader_is_refused_every_write_to_published_tables_and_schemas(
    postgres_url: str, applied: Environment
) -> None:
    publish_a_table(postgres_url, applied)

    with connect_as(postgres_url, applied, "loader") as loader:
        assert loader.execute(f"SELECT count(*) FROM {PUBLISHED}").fetchone() == (2,)  # transforms read {{ this }}
        let_through = allowed(
            loader,
            [
                f"INSERT INTO {PUBLISHED} VALUES (3, 30.00)",
                f"UPDATE {PUBLISHED} SET amount = 0",
                f"DELETE FROM {PUBLISHED}",
                f"TRUNCATE {PUBLISHED}",
                f"DROP TABLE {PUBLISHED}",
                f"ALTER TABLE {PUBLISHED} ADD COLUMN leaked text",
                "CREATE TABLE analytics.fct_sneaky (one int)",
                "CREATE SCHEMA sneaky",
            ],
        )
        assert let_through == []
    with psycopg.connect(postgres_url) as admin:
        assert admin.execute(f"SELECT * FROM {PUBLISHED} ORDER BY order_id").fetchall() == [(1, 10), (2, 20)]


def test_the_consumer_reads_published_tables_created_after_apply_and_nothing_else(
    postgres_url: str, applied: Environment
) -> None:
    publish_a_table(postgres_url, applied)
    with connect_as(postgres_url, applied, "loader") as loader:
        loader.execute(f"CREATE TABLE {AUDIT_TABLE} (order_id bigint)")

    with connect_as(postgres_url, applied, "consumer") as consumer:
        assert consumer.execute(f"SELECT order_id FROM {PUBLISHED} ORDER BY 1").fetchall() == [(1,), (2,)]
        let_through = allowed(
            consumer,
            [
                f"SELECT * FROM {AUDIT_TABLE}",
                "SELECT * FROM platform.publish_ledger",
                "SELECT * FROM platform.dead_letters",
                f"INSERT INTO {PUBLISHED} VALUES (3, 30.00)",
                f"DELETE FROM {PUBLISHED}",
                "CREATE TABLE analytics.mine (one int)",
            ],
        )
        assert let_through == []


# --- passwords ----------------------------------------------------------------------------------------------------


def test_a_changed_password_is_the_only_change_and_an_unchanged_one_is_none(
    postgres_url: str, applied: Environment
) -> None:
    loader = applied.role("loader")
    rotated = PASSWORDS | {"loader": "rotated-loader-password"}
    expected = [Change("password", loader, "update", "from SHIPSHAPE_LOADER_PASSWORD")]

    assert reconcile(postgres_url, applied, rotated, dry_run=True) == expected
    assert reconcile(postgres_url, applied, rotated, dry_run=False) == expected

    assert reconcile(postgres_url, applied, rotated, dry_run=True) == []
    assert reconcile(postgres_url, applied, PASSWORDS, dry_run=True) == expected
    assert str(expected[0]) == f"~ password {loader} (from SHIPSHAPE_LOADER_PASSWORD)"


def test_a_password_postgresql_hashed_itself_is_recognised_as_unchanged(
    postgres_url: str, applied: Environment
) -> None:
    """Our SCRAM verifier computation agrees with the server's (its own salt, its own iteration count)."""
    password = "set-by-the-server"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SET password_encryption = 'scram-sha-256'")
        admin.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(applied.role("publisher")), sql.Literal(password)
            )
        )

    assert reconcile(postgres_url, applied, PASSWORDS | {"publisher": password}, dry_run=True) == []


def test_a_missing_password_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in PASSWORD_VARIABLES.values():
        monkeypatch.setenv(variable, f"value of {variable}")
    assert passwords_from_environment() == {
        "loader": "value of SHIPSHAPE_LOADER_PASSWORD",
        "publisher": "value of SHIPSHAPE_PUBLISHER_PASSWORD",
        "consumer": "value of SHIPSHAPE_CONSUMER_PASSWORD",
        "monitor": "value of SHIPSHAPE_MONITOR_PASSWORD",
    }
    monkeypatch.delenv("SHIPSHAPE_PUBLISHER_PASSWORD")

    with pytest.raises(ConfigurationError, match=r"^SHIPSHAPE_PUBLISHER_PASSWORD is not set"):
        passwords_from_environment()


# --- end to end -----------------------------------------------------------------------------------------------------


@pytest.fixture
def example(
    tmp_path: Path, postgres_url: str, env: Environment, monkeypatch: pytest.MonkeyPatch, prefect_api: str
) -> Environment:
    """The example project on the test database after apply: runs as the loader, publishes as the publisher, and
    monitors (the volume check, the monitor flow) as the monitor."""
    make_project(tmp_path, as_role(postgres_url, env.role("loader")), monkeypatch)
    monkeypatch.setenv("SHIPSHAPE_PUBLISHER_URL", as_role(postgres_url, env.role("publisher")))
    monkeypatch.setenv("SHIPSHAPE_MONITOR_URL", as_role(postgres_url, env.role("monitor")))
    reconcile(postgres_url, env, PASSWORDS, dry_run=False)
    return env


def published_rows(postgres_url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(postgres_url) as admin:
        return admin.execute(f"SELECT * FROM {PUBLISHED} ORDER BY order_id").fetchall()


def test_the_example_pipeline_runs_as_loader_and_publisher_and_the_consumer_reads_what_it_published(
    postgres_url: str, example: Environment
) -> None:
    state = run_pipeline("shop_orders", start_date=ALL_DAYS[0], end_date=ALL_DAYS[-1], return_state=True)

    assert state.is_completed(), state.message
    with connect_as(postgres_url, example, "consumer") as consumer:
        counts = consumer.execute(f"SELECT order_date, count(*) FROM {PUBLISHED} GROUP BY 1 ORDER BY 1").fetchall()
    assert counts == [(day, orders_per_day(day)) for day in ALL_DAYS]
    with psycopg.connect(postgres_url) as admin:
        ledger = admin.execute("SELECT partition_key, status FROM platform.publish_ledger ORDER BY 1").fetchall()
        owner = admin.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'analytics'").fetchall()
    assert ledger == [(day.isoformat(), "published") for day in ALL_DAYS]
    # The table and its partitions (one per day, each an audited table the owner's function took over).
    assert set(owner) == {(example.role("owner"),)}, "the first publish creates the table as the owner role"
    assert len(owner) == 1 + len(ALL_DAYS)


def incidents(postgres_url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(postgres_url) as admin:
        return admin.execute("SELECT pipeline, kind, is_open FROM platform.incidents ORDER BY 1, 2").fetchall()


def test_a_monitor_run_opens_and_resolves_an_incident_as_the_monitor_role(
    postgres_url: str, example: Environment
) -> None:
    """The monitor flow as it runs deployed: the ledger read and the incident written through the monitor's connection
    (the loader's URL could not write them any more). Never published: a freshness incident opens; published: it
    resolves; the volume check inside the run wrote through the monitor role too (or the run would have failed)."""
    monitor()
    assert ("shop_orders", FRESHNESS_BREACH, True) in incidents(postgres_url)

    state = run_pipeline("shop_orders", start_date=FIRST_DAY, end_date=FIRST_DAY, return_state=True)
    assert state.is_completed(), state.message
    monitor()

    assert ("shop_orders", FRESHNESS_BREACH, False) in incidents(postgres_url)
    with connect_as(postgres_url, example, "loader") as loader:
        assert allowed(loader, INCIDENT_WRITES) == []


def test_publishing_as_the_loader_is_refused_and_the_published_table_is_unchanged(
    postgres_url: str, example: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_pipeline("shop_orders", start_date=FIRST_DAY, end_date=FIRST_DAY, return_state=True)
    assert first.is_completed(), first.message
    before = published_rows(postgres_url)
    monkeypatch.setenv("SHIPSHAPE_PUBLISHER_URL", as_role(postgres_url, example.role("loader")))

    state = run_pipeline("shop_orders", start_date=ALL_DAYS[0], end_date=ALL_DAYS[-1], return_state=True)

    assert state.is_failed()
    with pytest.raises(WarehouseError, match="permission denied"):
        state.result()
    assert published_rows(postgres_url) == before
    assert len(before) == orders_per_day(FIRST_DAY)


# --- the loader's transform output runs none of the loader's code as the publisher ---------------------------------

# What the loader could leave at the transform output's name, if it got DDL past the single-SELECT rule: each reads
# as ordinary rows but, read by the publisher, calls a loader function with the publisher's rights.
EMPTY_IT = f"CREATE FUNCTION audit.empty_it() RETURNS bigint LANGUAGE sql AS $$ DELETE FROM {PUBLISHED} RETURNING 1 $$"
HOSTILE_OUTPUTS = {
    "view calling a function": [
        "CREATE VIEW audit.evil__out AS SELECT 3::bigint AS order_id, 3.00::numeric(12,2) AS amount, "
        "audit.empty_it() AS gone"
    ],
    "table with a row-level policy": [
        "CREATE TABLE audit.evil__out AS SELECT 3::bigint AS order_id, 3.00::numeric(12,2) AS amount",
        "ALTER TABLE audit.evil__out ENABLE ROW LEVEL SECURITY",
        "CREATE POLICY everyone ON audit.evil__out USING (audit.empty_it() IS NULL OR true)",
    ],
    "table with a domain column": [
        "CREATE DOMAIN audit.checked AS bigint CHECK (audit.empty_it() IS NULL OR true)",
        "CREATE TABLE audit.evil__out (order_id audit.checked, amount numeric(12,2))",
    ],
}


@pytest.mark.parametrize("output", HOSTILE_OUTPUTS)
def test_publish_refuses_a_transform_output_that_would_run_loader_code(
    postgres_url: str, applied: Environment, output: str
) -> None:
    publish_a_table(postgres_url, applied)  # another team's table: 2 rows the publisher may delete
    with connect_as(postgres_url, applied, "loader") as loader:
        for statement in [EMPTY_IT, *HOSTILE_OUTPUTS[output]]:
            loader.execute(statement)
    spec = find_pipeline("shop_orders").spec
    hostile = spec.model_copy(  # full_replace: publish reads every row of the output, so the function runs
        update={
            "name": "evil",
            "load": Load(mode="full_replace"),
            "destination": spec.destination.model_copy(update={"table": "evil"}),
        }
    )
    (window,) = plan_windows("day", FIRST_DAY, FIRST_DAY)
    entry = LedgerEntry(
        pipeline="evil", partition_key=window.key, partition_start=window.start, partition_end=window.end,
        flow_run_id="", run_tag="evil", code_version="test", contract_hash="", row_count=1, rejected_rows=0,
        status="published", check_results=[], message="", started_at=datetime.now(UTC), destination="analytics.evil",
    )  # fmt: skip

    refused = r"audit\.evil__out (is a view|has row-level|has columns of types)"
    with (
        open_warehouse(as_role(postgres_url, applied.role("publisher"))) as publisher,
        pytest.raises(PublishError, match=refused),
    ):
        publish(publisher, hostile, [StagedPartition(window, "evil__out", entry)], publisher.claim([]))

    with psycopg.connect(postgres_url) as admin:
        assert admin.execute(f"SELECT count(*) FROM {PUBLISHED}").fetchone() == (2,)
        assert admin.execute("SELECT count(*) FROM platform.publish_ledger").fetchone() == (0,)
        assert admin.execute("SELECT to_regclass('analytics.evil')").fetchone() == (None,)


def test_an_earlier_versions_table_keeps_its_grants_until_its_date_then_plan_revokes_and_drops_it(
    postgres_url: str, env: Environment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(tmp_path, postgres_url, monkeypatch)
    project.edit_declaration(lambda data: data["destination"].update(version=2, previous_version_until="2027-01-31"))
    last_day, day_after = date(2027, 1, 31), date(2027, 2, 1)
    with open_warehouse(postgres_url) as admin:
        admin.ensure_schema("analytics")
        admin.execute(f"CREATE TABLE {PUBLISHED} (order_id bigint)")
        admin.execute(f"CREATE TABLE {PUBLISHED}_v2 (order_id bigint)")
    loader, publisher, consumer, _monitor = roles(env)

    reconcile(postgres_url, env, PASSWORDS, dry_run=False, today=last_day)
    with connect_as(postgres_url, env, "consumer") as reader:  # both versions readable in the period
        assert allowed(reader, [f"SELECT * FROM {PUBLISHED}", f"SELECT * FROM {PUBLISHED}_v2"]) == [
            f"SELECT * FROM {PUBLISHED}",
            f"SELECT * FROM {PUBLISHED}_v2",
        ]
    assert reconcile(postgres_url, env, PASSWORDS, dry_run=True, today=last_day) == []

    plan = [str(change) for change in reconcile(postgres_url, env, PASSWORDS, dry_run=True, today=day_after)]
    assert f"- grant SELECT on table {PUBLISHED} to {consumer}" in plan
    assert f"- grant DELETE, INSERT, SELECT on table {PUBLISHED} to {publisher}" in plan
    assert f"- grant SELECT on table {PUBLISHED} to {loader}" in plan
    assert plan[-1] == f"- table {PUBLISHED} (earlier destination.version, deprecation period over)"
    assert not [line for line in plan if f"{PUBLISHED}_v2" in line]
    assert [str(change) for change in reconcile(postgres_url, env, PASSWORDS, dry_run=False, today=day_after)] == plan
    with open_warehouse(postgres_url) as admin:
        assert admin.list_tables("analytics") == ["fct_orders_v2"]
    assert reconcile(postgres_url, env, PASSWORDS, dry_run=True, today=day_after) == []
