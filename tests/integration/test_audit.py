"""The audit gate on real warehouses: one contract file, DuckDB and PostgreSQL, clean and broken data.

Every data test runs on both engines because the contract form and Soda's per-engine behaviour (dataset path,
type names, silently unevaluated schema checks) are exactly what differs between them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import psycopg
import pytest

from shipshape.audit import AuditResult, CheckOutcome, check_contract, verify_contract
from shipshape.errors import ConfigurationError, DeclarationError
from shipshape.warehouses.duckdb_soda import DuckDBTarget
from shipshape.warehouses.postgres_soda import PostgresTarget

# Soda warns about its own use of its own internal helpers (raw SQL, UNION ALL) on every run.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:soda_.*")

CONTRACT = Path(__file__).parents[1] / "support" / "contracts" / "orders.yml"
SCHEMA, TABLE = "audit", "fct_orders_daily_20261101_ab12cd34_out"
PARTITION_END = datetime(2026, 11, 2, tzinfo=UTC)
ROWS = 20
# Spelled so both engines accept the same DDL; they report the types differently (numeric vs DECIMAL(12,2)).
COLUMNS = (
    "order_id bigint, customer_id bigint, amount numeric(12,2), status text, order_date date, updated_at timestamptz"
)


class Warehouse:
    """A real warehouse holding one clean audit table of ROWS orders, with SQL access to break it."""

    def __init__(self, target: DuckDBTarget | PostgresTarget, run_sql: Callable[[str], object]) -> None:
        self.target = target
        self.run_sql = run_sql
        run_sql(f"CREATE SCHEMA {SCHEMA}")
        run_sql(f"CREATE TABLE {SCHEMA}.{TABLE} ({COLUMNS})")
        run_sql(
            f"INSERT INTO {SCHEMA}.{TABLE} SELECT i, i % 7, 10.50 + i, CASE WHEN i % 2 = 0 THEN 'new' ELSE 'shipped'"
            f" END, DATE '2026-11-01', TIMESTAMPTZ '2026-11-01 12:00:00+00' FROM generate_series(1, {ROWS}) AS s(i)"
        )

    def verify(self, table: str = TABLE, data_timestamp: datetime = PARTITION_END) -> AuditResult:
        return verify_contract(CONTRACT, self.target, SCHEMA, table, data_timestamp)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    if request.param == "duckdb":
        with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as connection:
            yield Warehouse(DuckDBTarget(connection), connection.execute)
        return
    url = request.getfixturevalue("postgres_url")
    with psycopg.connect(url, autocommit=True) as connection:
        yield Warehouse(PostgresTarget.from_url(url), connection.execute)


def outcome(result: AuditResult, name: str) -> CheckOutcome:
    (check,) = [check for check in result.checks if check.name == name]
    return check


def test_clean_data_passes_with_every_check_evaluated(warehouse: Warehouse) -> None:
    result = warehouse.verify()

    assert result.passed, result.failed_summary()
    assert {check.outcome for check in result.checks} == {"passed"}
    # The schema check is the one Soda skips silently when the dataset path has the wrong shape.
    assert outcome(result, "schema").outcome == "passed"
    assert outcome(result, "row_count").measured == ROWS
    assert result.failed_summary() == ""
    json.dumps([check.as_row() for check in result.checks])


@pytest.mark.parametrize(
    ("sql", "check_name", "measured"),
    [
        (f"INSERT INTO {SCHEMA}.{TABLE} SELECT * FROM {SCHEMA}.{TABLE} WHERE order_id <= 3", "order_id duplicate", 3),
        (f"UPDATE {SCHEMA}.{TABLE} SET order_id = NULL WHERE order_id IN (1, 2)", "order_id missing", 2),
        (f"UPDATE {SCHEMA}.{TABLE} SET amount = -1 WHERE order_id <= 3", "amount invalid", 3),
        (f"UPDATE {SCHEMA}.{TABLE} SET amount = 100000.01 WHERE order_id = 1", "amount invalid", 1),
        (f"UPDATE {SCHEMA}.{TABLE} SET status = 'lost' WHERE order_id = 5", "status invalid", 1),
        (f"DELETE FROM {SCHEMA}.{TABLE}", "row_count", 0),
        (f"ALTER TABLE {SCHEMA}.{TABLE} ADD COLUMN note text", "schema", 1),
        (f"ALTER TABLE {SCHEMA}.{TABLE} ALTER COLUMN amount TYPE numeric(10,2)", "schema", 1),
        (f"ALTER TABLE {SCHEMA}.{TABLE} ALTER COLUMN updated_at TYPE timestamp", "schema", 1),
    ],
    ids=[
        "duplicate",
        "missing",
        "below-min",
        "above-max",
        "not-in-values",
        "empty",
        "extra-column",
        "other-precision",
        "lost-time-zone",
    ],
)
def test_bad_data_fails_the_right_check_with_its_measured_value(
    warehouse: Warehouse, sql: str, check_name: str, measured: int
) -> None:
    warehouse.run_sql(sql)

    result = warehouse.verify()

    check = outcome(result, check_name)
    assert (check.outcome, check.blocking, check.measured) == ("failed", True, measured)
    assert not result.passed
    assert f"{check_name}={measured} (" in result.failed_summary()


def test_schema_failure_names_the_column(warehouse: Warehouse) -> None:
    warehouse.run_sql(f"ALTER TABLE {SCHEMA}.{TABLE} ADD COLUMN note text")

    assert "note" in warehouse.verify().failed_summary()


def test_warn_level_check_reports_but_does_not_block(warehouse: Warehouse) -> None:
    warehouse.run_sql(f"UPDATE {SCHEMA}.{TABLE} SET customer_id = NULL WHERE order_id <= 4")

    result = warehouse.verify()

    check = outcome(result, "customer_id missing")
    assert (check.outcome, check.blocking, check.measured) == ("warned", False, 4)
    assert result.passed


def test_check_on_a_vanished_column_is_not_evaluated_and_blocks(warehouse: Warehouse) -> None:
    warehouse.run_sql(f"ALTER TABLE {SCHEMA}.{TABLE} DROP COLUMN status")

    result = warehouse.verify()

    check = outcome(result, "status invalid")
    assert (check.outcome, check.blocking, check.measured) == ("not_evaluated", True, None)
    assert outcome(result, "contract").outcome == "error"
    assert not result.passed


def test_missing_table_blocks_with_an_error_naming_it(warehouse: Warehouse) -> None:
    result = warehouse.verify(table="never_loaded")

    error = outcome(result, "contract")
    assert (error.outcome, error.blocking) == ("error", True)
    assert "never_loaded" in error.detail
    assert not result.passed


def test_freshness_is_measured_from_the_given_data_timestamp(warehouse: Warehouse) -> None:
    """Rows updated 2026-11-01 12:00 are 12 h old at the partition end, whenever the audit actually runs."""
    on_time = warehouse.verify(data_timestamp=PARTITION_END)
    late = warehouse.verify(data_timestamp=datetime(2026, 11, 5, tzinfo=UTC))

    assert (outcome(on_time, "freshness").outcome, outcome(on_time, "freshness").measured) == ("passed", 12)
    assert (outcome(late, "freshness").outcome, outcome(late, "freshness").measured) == ("failed", 84)


def test_concurrent_verifications_from_threads_all_complete(warehouse: Warehouse) -> None:
    results: list[AuditResult] = []
    errors: list[BaseException] = []

    def verify() -> None:
        try:
            results.append(warehouse.verify())
        except BaseException as error:  # reported by the assertion below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=verify) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert [result.passed for result in results] == [True] * 8


def test_duckdb_connection_stays_usable_inside_the_callers_transaction(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as connection:
        connection.execute("BEGIN")
        connection.execute("CREATE TABLE kept (x integer)")

        result = verify_contract(CONTRACT, DuckDBTarget(connection), SCHEMA, "never_loaded", PARTITION_END)

        connection.execute("INSERT INTO kept VALUES (1)")
        connection.execute("COMMIT")
        assert not result.passed
        assert connection.execute("SELECT count(*) FROM kept").fetchone() == (1,)


def test_no_soda_log_capture_stays_active_in_the_thread(tmp_path: Path) -> None:
    """Soda leaves its log collector active after a run, where it would keep every later record of the thread."""
    from soda_core.common.logs import _active_logs

    before = _active_logs.get()
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as connection:
        verify_contract(CONTRACT, DuckDBTarget(connection), SCHEMA, "never_loaded", PARTITION_END)

    assert _active_logs.get() is before


def test_unreachable_postgres_blocks_with_an_error() -> None:
    target = PostgresTarget(host="127.0.0.1", port=1, database="nowhere", user="postgres")

    result = verify_contract(CONTRACT, target, SCHEMA, TABLE, PARTITION_END)

    assert not result.passed
    assert outcome(result, "contract").outcome == "error"


VALID_HEAD = "dataset: warehouse/${var.dataset_path}\nvariables:\n  dataset_path:\n    default: analytics/orders\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (VALID_HEAD + "columns:\n  - name: [order_id\n", "YAML syntax error"),
        ("- just\n- a list\n", "root must be an object"),
        (VALID_HEAD + "checks:\n  - row_count:\n", "missing the required 'columns'"),
        (VALID_HEAD + "columns:\n  - name: order_id\n    checks:\n      - missng:\n", "Invalid check type 'missng'"),
        (
            VALID_HEAD + "columns:\n  - name: id\nchecks:\n  - row_count:\n      threshold:\n"
            "        must_be_greater_than: 0\n        must_be_less_than: 100\n",
            "does not specify exactly one comparison",
        ),
        (
            VALID_HEAD + "columns:\n  - name: id\nchecks:\n  - row_count:\n      threshold:\n"
            "        must_be_greather_than: 5\n",
            "'must_be_greather_than' is not a known threshold key",
        ),
        ("dataset: warehouse/analytics/orders\ncolumns:\n  - name: id\n", "'dataset' must be exactly"),
        ("dataset: warehouse/${var.elsewhere}\ncolumns:\n  - name: id\n", "'dataset' must be exactly"),
    ],
    ids=[
        "syntax",
        "not-a-mapping",
        "no-columns",
        "unknown-check",
        "two-flat-comparisons",
        "misspelt-key",
        "hard-coded-dataset",
        "other-variable",
    ],
)
def test_broken_contract_raises_declaration_error_naming_the_file(tmp_path: Path, text: str, problem: str) -> None:
    contract = tmp_path / "broken.yml"
    contract.write_text(text)

    with duckdb.connect() as connection, pytest.raises(DeclarationError) as raised:
        verify_contract(contract, DuckDBTarget(connection), SCHEMA, TABLE, PARTITION_END)

    assert raised.value.file == str(contract)
    assert problem in str(raised.value)


def test_missing_contract_file_raises_declaration_error(tmp_path: Path) -> None:
    with pytest.raises(DeclarationError, match="cannot read the contract"):
        check_contract(tmp_path / "absent.yml")


def test_example_contract_is_valid() -> None:
    check_contract(CONTRACT)


def test_naive_data_timestamp_is_refused() -> None:
    with duckdb.connect() as connection, pytest.raises(ValueError, match="timezone-aware"):
        verify_contract(CONTRACT, DuckDBTarget(connection), SCHEMA, TABLE, datetime(2026, 11, 2))


def test_postgres_target_from_url_keeps_the_password_out_of_repr() -> None:
    target = PostgresTarget.from_url("postgresql://us%40er:s3cr%3At@db.example:6543/wh?sslmode=require")

    assert (target.host, target.port, target.database, target.user) == ("db.example", 6543, "wh", "us@er")
    assert (target.password, dict(target.options)) == ("s3cr:t", {"sslmode": "require"})
    assert "s3cr" not in repr(target)
    assert PostgresTarget.from_url("postgresql://postgres@127.0.0.1/wh").password is None


@pytest.mark.parametrize("url", ["postgresql://127.0.0.1/wh", "postgresql://u@127.0.0.1", "postgresql://u:p%zz@h/d"])
def test_postgres_target_from_bad_url_is_a_configuration_error_without_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        PostgresTarget.from_url(url)

    assert "p%zz" not in str(raised.value)
