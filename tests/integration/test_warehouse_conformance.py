"""What every warehouse adapter must do, run against each real engine (like dlt's destination tests).

Parametrised over one list, `ADAPTERS`. A new adapter (say Snowflake) passes by adding itself to that list with
how to make a fresh, empty warehouse of its kind and which driver modules it imports: every test below then runs
on it, and `test_every_registered_kind_is_under_test` fails until it is added. Nothing else here names an engine,
except the role cleanup, which has to undo what the role tests did outside any database.

Capability flags are asserted against behaviour in both directions where the engine can say so: a flag that is
True must work, a flag that is False must be refused (or, for locks and partition exchange, visibly absent).
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pytest

from shipshape.audit import verify_contract
from shipshape.column_types import SIMPLE_TYPES, ColumnType
from shipshape.errors import SourceError, TransientError, WarehouseError
from shipshape.warehouses import AUDIT_SCHEMA, KINDS, Warehouse, open_warehouse
from shipshape.warehouses.exchange import PartitionExchange
from shipshape.warehouses.locks import AdvisoryLocks
from shipshape.warehouses.roles import DefaultPrivilege, Grant
from tests.support.waiting import wait_until

# Soda warns about its own use of its own internal helpers (raw SQL, UNION ALL) on every run.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:soda_.*")

CONTRACT = Path(__file__).parents[1] / "support" / "contracts" / "orders.yml"


@dataclass(frozen=True)
class BlockFields:
    """What a connection block holds, as `Warehouse.connection_url` takes it."""

    host: str
    port: int
    database: str
    user: str
    password: str


@dataclass(frozen=True)
class FreshWarehouse:
    """An empty warehouse for one test: its URL and the same place as block fields."""

    url: str
    block: BlockFields


@dataclass(frozen=True)
class AdapterUnderTest:
    kind: str  # its key in shipshape.warehouses.KINDS
    fresh: Callable[[pytest.FixtureRequest, Path], FreshWarehouse]
    drivers: tuple[str, ...] = field(default=())  # top-level modules only this adapter may import


def _fresh_duckdb(request: pytest.FixtureRequest, tmp_path: Path) -> FreshWarehouse:
    path = tmp_path / "warehouse.duckdb"
    return FreshWarehouse(f"duckdb:///{path}", BlockFields("", 0, str(path), "", ""))


def _fresh_postgresql(request: pytest.FixtureRequest, tmp_path: Path) -> FreshWarehouse:
    url = request.getfixturevalue("postgres_url")
    parts = urlsplit(url)
    block = BlockFields(parts.hostname or "", parts.port or 5432, parts.path.lstrip("/"), parts.username or "", "")
    return FreshWarehouse(url, block)


ADAPTERS = [
    AdapterUnderTest("duckdb", _fresh_duckdb, drivers=("duckdb",)),
    AdapterUnderTest("postgresql", _fresh_postgresql, drivers=("psycopg", "adbc_driver_postgresql")),
]


@pytest.fixture(params=ADAPTERS, ids=[adapter.kind for adapter in ADAPTERS])
def adapter_under_test(request: pytest.FixtureRequest) -> AdapterUnderTest:
    return request.param


@pytest.fixture
def fresh(adapter_under_test: AdapterUnderTest, request: pytest.FixtureRequest, tmp_path: Path) -> FreshWarehouse:
    return adapter_under_test.fresh(request, tmp_path)


@pytest.fixture
def warehouse(fresh: FreshWarehouse) -> Iterator[Warehouse]:
    with open_warehouse(fresh.url) as opened:
        opened.ensure_schema(AUDIT_SCHEMA)
        yield opened


def _run_python(code: str) -> str:
    """Run `code` in a fresh interpreter (another process: its own imports, its own warehouse session)."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


# --- registry ---------------------------------------------------------------------------------------------------


def test_every_registered_kind_is_under_test() -> None:
    assert sorted(adapter.kind for adapter in ADAPTERS) == sorted(KINDS)


def test_the_registry_opens_this_adapter_and_it_imports_no_other_driver(
    adapter_under_test: AdapterUnderTest, fresh: FreshWarehouse
) -> None:
    others = sorted({driver for adapter in ADAPTERS if adapter is not adapter_under_test for driver in adapter.drivers})
    loaded = _run_python(
        f"""
        import sys
        from shipshape.warehouses import open_warehouse
        with open_warehouse({fresh.url!r}) as warehouse:
            print(type(warehouse).__module__, type(warehouse).__name__)
        print(sorted(name for name in {others!r} if name in sys.modules))
        """
    )
    kind = KINDS[adapter_under_test.kind]
    assert loaded.splitlines() == [f"{kind.module} {kind.class_name}", "[]"]


def test_connection_url_from_block_fields_reaches_the_same_warehouse(
    adapter_under_test: AdapterUnderTest, fresh: FreshWarehouse
) -> None:
    block = fresh.block
    url = (
        KINDS[adapter_under_test.kind]
        .adapter()
        .connection_url(block.host, block.port, block.database, block.user, block.password)
    )
    with open_warehouse(fresh.url) as first:
        first.ensure_schema("reached")
    with open_warehouse(url) as second:
        assert second.schema_exists("reached")


# --- statements and transactions --------------------------------------------------------------------------------


def test_question_marks_are_parameters_and_percent_signs_stay_text(warehouse: Warehouse) -> None:
    assert warehouse.fetch_all("SELECT ? + 1, ?", [1, "50% off"]) == [(2, "50% off")]
    assert warehouse.fetch_all("SELECT '100%'") == [("100%",)]


def test_a_transaction_commits_together(warehouse: Warehouse) -> None:
    warehouse.create_table(AUDIT_SCHEMA, "t", {"id": ColumnType("bigint")})
    with warehouse.transaction():
        warehouse.execute(f"INSERT INTO {warehouse.qualified(AUDIT_SCHEMA, 't')} VALUES (?), (?)", [1, 2])
    assert warehouse.row_count(AUDIT_SCHEMA, "t") == 2


def test_a_transaction_rolls_back_on_an_exception(warehouse: Warehouse) -> None:
    warehouse.create_table(AUDIT_SCHEMA, "t", {"id": ColumnType("bigint")})
    with pytest.raises(RuntimeError), warehouse.transaction():
        warehouse.execute(f"INSERT INTO {warehouse.qualified(AUDIT_SCHEMA, 't')} VALUES (?)", [1])
        raise RuntimeError("interrupted")
    assert warehouse.row_count(AUDIT_SCHEMA, "t") == 0


def test_ddl_rolls_back_with_its_transaction_exactly_when_transactional_ddl_is_supported(warehouse: Warehouse) -> None:
    with pytest.raises(RuntimeError), warehouse.transaction():
        warehouse.create_table(AUDIT_SCHEMA, "created_then_rolled_back", {"id": ColumnType("bigint")})
        raise RuntimeError("interrupted")
    rolled_back = not warehouse.table_exists(AUDIT_SCHEMA, "created_then_rolled_back")
    assert rolled_back == warehouse.capabilities.supports_transactional_ddl


def test_driver_errors_become_warehouse_errors(warehouse: Warehouse) -> None:
    with pytest.raises(WarehouseError, match="SELEC"):
        warehouse.execute("SELEC 1")
    with pytest.raises(WarehouseError):
        warehouse.fetch_all("SELECT * FROM no_such_table")
    with pytest.raises(WarehouseError), warehouse.transaction():
        warehouse.execute("SELEC 1")
    assert warehouse.fetch_all("SELECT 1") == [(1,)], "the connection is usable after an error"


# --- tables -----------------------------------------------------------------------------------------------------

EVERY_TYPE = {name: ColumnType.parse(name) for name in SIMPLE_TYPES} | {"decimal": ColumnType.parse("decimal(12,2)")}
SOME_VALUES = {
    "integer": 2_000_000_000,
    "bigint": 9_000_000_000_000,
    "double": 1.5,
    "boolean": True,
    "text": "naïve 'quoted' %s ?",
    "date": date(2026, 11, 1),
    "timestamp": datetime(2026, 11, 1, 23, 59, 59, 123456),
    "timestamptz": datetime(2026, 11, 1, 23, 30, tzinfo=timezone(timedelta(hours=2))),
    "decimal": Decimal("1234567890.12"),
}


def test_append_arrow_round_trips_every_portable_type_with_nulls_and_time_zones(warehouse: Warehouse) -> None:
    assert set(SOME_VALUES) == set(EVERY_TYPE), "a portable type was added: give it a value here"
    warehouse.create_table(AUDIT_SCHEMA, "typed", {"row": ColumnType("integer"), **EVERY_TYPE})
    arrow_schema = pa.schema([("row", pa.int32()), *((name, kind.arrow) for name, kind in EVERY_TYPE.items())])
    rows = [{"row": 1, **SOME_VALUES}, {"row": 2, **dict.fromkeys(EVERY_TYPE)}]
    table = pa.Table.from_pylist(rows, schema=arrow_schema)

    warehouse.append_arrow(AUDIT_SCHEMA, "typed", pa.RecordBatchReader.from_batches(arrow_schema, table.to_batches()))

    columns = ", ".join(warehouse.quote(name) for name in EVERY_TYPE)
    loaded = warehouse.fetch_all(f"SELECT {columns} FROM {warehouse.qualified(AUDIT_SCHEMA, 'typed')} ORDER BY 1")
    assert loaded[0] == tuple(SOME_VALUES.values())  # aware datetimes compare as instants
    assert loaded[1] == (None,) * len(EVERY_TYPE)
    instant = loaded[0][list(EVERY_TYPE).index("timestamptz")]
    assert instant.utcoffset() == timedelta(0), "sessions read time zones in UTC"
    assert instant == datetime(2026, 11, 1, 21, 30, tzinfo=UTC)


@pytest.mark.parametrize("fault", [TransientError("API answered 503"), SourceError("API answered 404")])
def test_append_arrow_raises_the_streams_own_error_and_keeps_no_rows(warehouse: Warehouse, fault: Exception) -> None:
    warehouse.create_table(AUDIT_SCHEMA, "streamed", {"id": ColumnType("bigint")})
    schema = pa.schema([("id", pa.int64())])

    def failing_midway() -> Iterator[pa.RecordBatch]:
        yield pa.record_batch([pa.array([1, 2])], schema=schema)
        raise fault

    with pytest.raises(type(fault)) as raised:
        warehouse.append_arrow(AUDIT_SCHEMA, "streamed", pa.RecordBatchReader.from_batches(schema, failing_midway()))

    assert raised.value is fault, "the source's error, not the driver's restatement of it"
    assert raised.value.__context__ is None
    assert warehouse.row_count(AUDIT_SCHEMA, "streamed") == 0


def test_a_scratch_table_holds_rows_and_is_unlogged_exactly_when_supported(warehouse: Warehouse) -> None:
    warehouse.create_table(AUDIT_SCHEMA, "scratch", {"id": ColumnType("bigint")}, scratch=True)
    warehouse.execute(f"INSERT INTO {warehouse.qualified(AUDIT_SCHEMA, 'scratch')} VALUES (?)", [1])
    assert warehouse.row_count(AUDIT_SCHEMA, "scratch") == 1

    unlogged = f"CREATE UNLOGGED TABLE {warehouse.qualified(AUDIT_SCHEMA, 'unlogged')} (id bigint)"
    if warehouse.capabilities.supports_unlogged_tables:
        warehouse.execute(unlogged)
    else:
        with pytest.raises(WarehouseError):
            warehouse.execute(unlogged)


def test_schemas_tables_and_columns_are_introspected(warehouse: Warehouse) -> None:
    assert not warehouse.schema_exists("reporting")
    warehouse.ensure_schema("reporting")
    warehouse.ensure_schema("reporting")  # a second time is a no-op
    assert warehouse.schema_exists("reporting")
    warehouse.create_table("reporting", "b_table", {"zeta": ColumnType("text"), "alpha": ColumnType("date")})
    warehouse.create_table_as("reporting", "a_table", "SELECT 1 AS one")

    assert warehouse.list_tables("reporting") == ["a_table", "b_table"]
    assert warehouse.table_exists("reporting", "b_table")
    assert warehouse.table_columns("reporting", "b_table") == ["zeta", "alpha"]  # declared order, not sorted
    assert warehouse.row_count("reporting", "a_table") == 1
    warehouse.drop_table("reporting", "a_table")
    warehouse.drop_table("reporting", "a_table")  # dropping a missing table is a no-op
    assert warehouse.list_tables("reporting") == ["b_table"]


# --- publish DML ------------------------------------------------------------------------------------------------

ORDERS = {"region": ColumnType("text"), "order_id": ColumnType("bigint"), "order_date": ColumnType("date")}


def _orders(warehouse: Warehouse, table: str, rows: list[tuple[str, int, date]]) -> None:
    warehouse.create_table(AUDIT_SCHEMA, table, ORDERS)
    for row in rows:
        warehouse.execute(f"INSERT INTO {warehouse.qualified(AUDIT_SCHEMA, table)} VALUES (?, ?, ?)", list(row))


def _published(warehouse: Warehouse) -> list[tuple[object, ...]]:
    return warehouse.fetch_all(f"SELECT * FROM {warehouse.qualified('analytics', 'orders')} ORDER BY 1, 2")


def test_create_published_table_makes_an_empty_copy_once(warehouse: Warehouse) -> None:
    _orders(warehouse, "staged", [("eu", 1, date(2026, 11, 1))])
    warehouse.ensure_schema("analytics")

    warehouse.create_published_table("analytics", "orders", AUDIT_SCHEMA, "staged")
    warehouse.insert_from("analytics", "orders", AUDIT_SCHEMA, "staged", ["order_id", "region", "order_date"])
    warehouse.create_published_table("analytics", "orders", AUDIT_SCHEMA, "staged")  # exists: left as it is

    assert warehouse.table_columns("analytics", "orders") == list(ORDERS)
    assert _published(warehouse) == [("eu", 1, date(2026, 11, 1))]


def test_range_key_and_full_deletes_remove_exactly_their_scope_and_the_counts_count_it(warehouse: Warehouse) -> None:
    """The audit gate counts a scope (`count_*`) before the publish deletes it: both must agree."""
    days = [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)]
    _orders(warehouse, "staged", [("eu", n, day) for n, day in enumerate(days)] + [("us", 0, days[0])])
    warehouse.ensure_schema("analytics")
    warehouse.create_published_table("analytics", "orders", AUDIT_SCHEMA, "staged")
    warehouse.insert_from("analytics", "orders", AUDIT_SCHEMA, "staged", list(ORDERS))
    assert warehouse.count_range("analytics", "orders", "order_date", days[0], days[1]) == 2

    assert warehouse.count_range("analytics", "orders", "order_date", days[1], days[2]) == 1
    warehouse.delete_range("analytics", "orders", "order_date", days[1], days[2])  # [start, end): day 2 only
    assert _published(warehouse) == [("eu", 0, days[0]), ("eu", 2, days[2]), ("us", 0, days[0])]
    assert warehouse.count_range("analytics", "orders", "order_date", days[1], days[2]) == 0

    _orders(warehouse, "keys", [("us", 0, days[2]), ("eu", 9, days[2])])
    keys = ["region", "order_id"]
    assert warehouse.count_matching_keys("analytics", "orders", AUDIT_SCHEMA, "keys", keys) == 1
    warehouse.delete_matching_keys("analytics", "orders", AUDIT_SCHEMA, "keys", keys)
    assert _published(warehouse) == [("eu", 0, days[0]), ("eu", 2, days[2])]
    assert warehouse.count_matching_keys("analytics", "orders", AUDIT_SCHEMA, "keys", keys) == 0

    warehouse.delete_all("analytics", "orders")
    assert _published(warehouse) == []


def test_null_and_repeated_keys_are_counted_over_every_key_column(warehouse: Warehouse) -> None:
    """What the merge-key checks at the audit gate measure: NULL in any key column; a repeat of all of them."""
    day = date(2026, 11, 1)
    rows = [("eu", 1, day), ("eu", 1, day), ("eu", 1, day), ("us", 1, day), ("us", 2, day), ("us", 2, day)]
    _orders(warehouse, "staged", [*rows, ("eu", 3, day)])
    warehouse.execute(
        f"INSERT INTO {warehouse.qualified(AUDIT_SCHEMA, 'staged')} VALUES (NULL, 4, ?), ('eu', NULL, ?), "
        "(NULL, NULL, ?), (NULL, NULL, ?)",
        [day, day, day, day],
    )
    keys = ["region", "order_id"]

    assert warehouse.count_null_keys(AUDIT_SCHEMA, "staged", keys) == 4
    assert warehouse.count_repeated_keys(AUDIT_SCHEMA, "staged", keys) == (2, 5)  # (eu, 1) x3, (us, 2) x2
    assert warehouse.count_null_keys(AUDIT_SCHEMA, "staged", ["order_date"]) == 0
    assert warehouse.count_repeated_keys(AUDIT_SCHEMA, "staged", ["order_date"]) == (1, 11)


# --- conditional update -----------------------------------------------------------------------------------------


def test_conditional_update_changes_once_and_then_reports_no_change(warehouse: Warehouse) -> None:
    warehouse.execute(
        f"CREATE TABLE {warehouse.qualified(AUDIT_SCHEMA, 'state')} (name text, kind text, is_open boolean, note text)"
    )
    warehouse.execute(f"INSERT INTO {warehouse.qualified(AUDIT_SCHEMA, 'state')} VALUES ('p', 'k', false, '')")

    def update(is_open: bool, note: str, kind: str = "k") -> bool:
        return warehouse.conditional_update(
            AUDIT_SCHEMA, "state", {"name": "p", "kind": kind}, {"is_open": is_open, "note": note}, ["is_open"]
        )

    assert update(True, "opened")
    assert not update(True, "opened")
    assert not update(True, "only the note differs")  # `note` is set along, never compared
    assert not update(False, "no such row", kind="other")
    assert warehouse.fetch_all(f"SELECT is_open, note FROM {warehouse.qualified(AUDIT_SCHEMA, 'state')}") == [
        (True, "opened")
    ]
    assert update(False, "resolved")


def test_returning_and_merge_work_exactly_when_declared(warehouse: Warehouse) -> None:
    table = warehouse.qualified(AUDIT_SCHEMA, "kv")
    warehouse.execute(f"CREATE TABLE {table} (k bigint, v bigint)")
    warehouse.execute(f"INSERT INTO {table} VALUES (1, 1)")
    statements = {
        "supports_returning": f"UPDATE {table} SET v = 2 WHERE k = 1 RETURNING k",
        "supports_merge": f"MERGE INTO {table} AS t USING (SELECT 1 AS k, 3 AS v) AS s ON t.k = s.k "
        "WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.k, s.v)",
    }
    for flag, statement in statements.items():
        if getattr(warehouse.capabilities, flag):
            warehouse.execute(statement)
        else:
            with pytest.raises(WarehouseError):
                warehouse.execute(statement)


def test_partition_exchange_is_declared_exactly_when_implemented(warehouse: Warehouse) -> None:
    """The flag and the `PartitionExchange` interface agree: shared code trusts the flag (`partition_exchange`)."""
    assert warehouse.capabilities.supports_partition_exchange == isinstance(warehouse, PartitionExchange)
    assert warehouse.capabilities.supports_partition_exchange == hasattr(warehouse, "exchange_partition")


# --- named locks ------------------------------------------------------------------------------------------------


def _second_holder_takes(fresh: FreshWarehouse, warehouse: Warehouse, names: list[str]) -> bool:
    """Whether a second holder gets `names`: another process where the engine has cross-process locks,
    else another connection in this process (such an engine admits one process per warehouse)."""
    if warehouse.capabilities.supports_advisory_locks:
        answer = _run_python(
            f"""
            from shipshape.warehouses import open_warehouse
            with open_warehouse({fresh.url!r}) as warehouse, warehouse.exclusive({names!r}) as held:
                print(held)
            """
        )
        return answer == "True"
    with open_warehouse(fresh.url) as second, second.exclusive(names) as held:
        return held


def test_a_named_lock_is_refused_to_a_second_holder_until_released(fresh: FreshWarehouse, warehouse: Warehouse) -> None:
    assert warehouse.capabilities.supports_advisory_locks == isinstance(warehouse, AdvisoryLocks)
    with warehouse.exclusive(["shop:2026-11-01"]) as held:
        assert held
        assert not _second_holder_takes(fresh, warehouse, ["shop:2026-11-01"])
        assert _second_holder_takes(fresh, warehouse, ["shop:2026-11-02"])
    assert _second_holder_takes(fresh, warehouse, ["shop:2026-11-01"])


def test_a_lock_held_until_commit_keeps_other_processes_out_exactly_when_they_could_come_in(
    fresh: FreshWarehouse, warehouse: Warehouse
) -> None:
    with warehouse.transaction():
        warehouse.hold_until_commit("analytics.fct_orders")
        others_kept_out = not _second_holder_takes(fresh, warehouse, ["analytics.fct_orders"])
        assert others_kept_out == warehouse.capabilities.supports_advisory_locks
        assert _second_holder_takes(fresh, warehouse, ["analytics.other"])
    assert _second_holder_takes(fresh, warehouse, ["analytics.fct_orders"])


def test_locks_are_taken_in_sorted_order_and_a_refusal_keeps_none(fresh: FreshWarehouse, warehouse: Warehouse) -> None:
    with open_warehouse(fresh.url) as second:
        with warehouse.exclusive(["b"]), second.exclusive(["c", "b", "a"]) as refused:
            assert not refused
            # "a" sorts before "b", so it was taken and then given back; "c" was never reached.
            assert _second_holder_takes(fresh, warehouse, ["a", "c"])
        with second.exclusive(["c", "a", "b", "a"]) as all_of_them:
            assert all_of_them


def test_a_claim_holds_while_its_session_holds_the_locks_and_not_once_that_session_ends(
    fresh: FreshWarehouse, warehouse: Warehouse
) -> None:
    """Asked from another connection (a publish), as a run's partition locks live on the run's own connection."""
    names = ["shop:2026-11-01", "shop:2026-11-02"]
    with open_warehouse(fresh.url) as publisher:
        with warehouse.exclusive(names) as held:
            assert held
            claim = warehouse.claim(names)
            assert publisher.still_holds(claim)
            assert (claim.session is not None) == warehouse.capabilities.supports_advisory_locks
            if claim.session is None:
                return  # process-local locks: nothing outside this process can drop them
            assert not publisher.still_holds(warehouse.claim([*names, "shop:2026-11-03"]))  # one is not held
            warehouse.close()  # the engine releases the session's locks; a dropped one: test_publish_concurrency
            # The server ends the session a moment after the client closes it: until then its locks are held.
            wait_until(lambda: not publisher.still_holds(claim), "the closed session's locks are released")
        # Leaving `exclusive` on the closed connection raised nothing and kept no name locked in this process.
        with publisher.exclusive(names) as taken_again:
            assert taken_again


# --- roles ------------------------------------------------------------------------------------------------------


@pytest.fixture
def role_names(warehouse: Warehouse) -> Iterator[list[str]]:
    """Two cluster-wide role names no other test uses; dropped (with what they own or were granted) afterwards."""
    names = [f"shipshape_conformance_{uuid.uuid4().hex[:8]}_{purpose}" for purpose in ("owner", "grantee")]
    yield names
    if warehouse.capabilities.supports_roles:
        for name in [name for name in names if warehouse.role_exists(name)]:
            warehouse.execute(f"DROP OWNED BY {warehouse.quote(name)}")
            warehouse.execute(f"DROP ROLE {warehouse.quote(name)}")


def test_roles_grants_and_default_privileges_exactly_when_supported(
    warehouse: Warehouse, role_names: list[str]
) -> None:
    owner, grantee = role_names
    if not warehouse.capabilities.supports_roles:
        with pytest.raises(WarehouseError, match="supports_roles is False"):
            warehouse.role_exists(owner)
        return

    assert not warehouse.role_exists(owner)
    warehouse.create_login_role(owner, "first password")
    warehouse.create_login_role(grantee, "grantee password")
    assert warehouse.role_exists(owner)
    assert warehouse.password_matches(owner, "first password")
    assert not warehouse.password_matches(owner, "another password")
    warehouse.set_password(owner, "another password")
    assert warehouse.password_matches(owner, "another password")

    warehouse.create_table(AUDIT_SCHEMA, "granted", {"id": ColumnType("bigint")})
    grants = [
        Grant("database", (warehouse.current_database(),), grantee, ("CONNECT",)),
        Grant("schema", (AUDIT_SCHEMA,), grantee, ("USAGE", "CREATE")),
        Grant("table", (AUDIT_SCHEMA, "granted"), grantee, ("SELECT", "INSERT")),
    ]
    for grant in grants:
        warehouse.grant_privileges(grant)
        assert warehouse.missing_privileges(grant) == []
    not_yet = Grant("table", (AUDIT_SCHEMA, "granted"), grantee, ("DELETE", "SELECT"))
    assert warehouse.missing_privileges(not_yet) == ["DELETE"]

    default = DefaultPrivilege(owner, AUDIT_SCHEMA, grantee, ("SELECT",))
    assert warehouse.missing_default_privileges(default) == ["SELECT"]
    warehouse.grant_default_privileges(default)
    assert warehouse.missing_default_privileges(default) == []


# --- the audit gate ---------------------------------------------------------------------------------------------

CONTRACT_COLUMNS = {
    "order_id": ColumnType("bigint"),
    "customer_id": ColumnType("bigint"),
    "amount": ColumnType.parse("decimal(12,2)"),
    "status": ColumnType("text"),
    "order_date": ColumnType("date"),
    "updated_at": ColumnType("timestamptz"),
}


def test_the_soda_target_verifies_a_contract_on_a_table(warehouse: Warehouse) -> None:
    warehouse.create_table(AUDIT_SCHEMA, "orders_out", CONTRACT_COLUMNS)
    rows = [
        {
            "order_id": n,
            "customer_id": n % 3,
            "amount": Decimal("10.50") + n,
            "status": "new",
            "order_date": date(2026, 11, 1),
            "updated_at": datetime(2026, 11, 1, 12, tzinfo=UTC),
        }
        for n in range(1, 6)
    ]
    schema = pa.schema([(name, kind.arrow) for name, kind in CONTRACT_COLUMNS.items()])
    batches = pa.Table.from_pylist(rows, schema=schema).to_batches()
    warehouse.append_arrow(AUDIT_SCHEMA, "orders_out", pa.RecordBatchReader.from_batches(schema, batches))

    result = verify_contract(
        CONTRACT, warehouse.soda_target(), AUDIT_SCHEMA, "orders_out", datetime(2026, 11, 2, tzinfo=UTC)
    )

    assert result.passed, result.failed_summary()
    assert {check.outcome for check in result.checks} == {"passed"}
    assert [check.measured for check in result.checks if check.name == "row_count"] == [5]


# --- usage statistics (shipshape.usage) -------------------------------------------------------------------------


def test_table_sizes_cover_every_table_of_the_schema_and_grow_with_its_rows(fresh: FreshWarehouse) -> None:
    """What the monitor charges storage by: bytes per table, read from a new session (as the monitor's is), for
    every table of the schema; a table with many more rows takes more room. Counters are the engine's or none."""
    with open_warehouse(fresh.url) as writer:
        writer.ensure_schema(AUDIT_SCHEMA)
        for table, rows in (("small", 10), ("large", 200_000)):
            writer.create_table(AUDIT_SCHEMA, table, {"id": ColumnType("bigint")})
            noise = random.Random(rows)  # values no engine compresses away
            ids = pa.table({"id": pa.array([noise.getrandbits(62) for _ in range(rows)], pa.int64())})
            writer.append_arrow(AUDIT_SCHEMA, table, ids.to_reader())
    with open_warehouse(fresh.url) as monitor:
        sizes = monitor.table_sizes(AUDIT_SCHEMA)
        counters = monitor.read_counters(AUDIT_SCHEMA, ["large", "absent"], [])

    assert set(sizes) == {"small", "large"}
    assert sizes["large"] > sizes["small"] >= 0
    assert "absent" not in counters, "no counter is made up for a table the engine does not know"
    assert all(counter.value >= 0 and counter.method in ("statements", "scans") for counter in counters.values())
