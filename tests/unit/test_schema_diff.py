"""`shipshape diff` on a real git repository holding a copy of the example project: each change classified, the
next run described, exit 1 only on an unversioned breaking change; and the parts it is built from."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml

from shipshape.catalog import load_pipeline
from shipshape.column_types import ColumnType
from shipshape.errors import DeclarationError
from shipshape.output_columns import output_columns
from shipshape.schema_changes import widens
from tests.support.project import copy_example

SQL = "pipelines/shop_orders/fct_orders.sql"
CONTRACT = "checks/fct_orders.yaml"
DECLARATION = "pipelines/shop_orders.yaml"
V2 = {"table": "fct_orders", "version": 2, "previous_version_until": "2027-01-31"}


def git(repo: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", *args]
    return subprocess.run(command, cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The example project committed on main, then a feature branch checked out: what a pull request starts from."""
    root = tmp_path / "repo"
    copy_example(root)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "the example")
    git(root, "checkout", "-qb", "feature")
    return root


def diff(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "SHIPSHAPE_PROJECT_DIR": str(repo), "HOME": str(repo.parent)}
    return subprocess.run(
        [sys.executable, "-m", "cli", "diff", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )


def edit(repo: Path, relative: str, old: str, new: str) -> None:
    path = repo / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new))


def remove_status(repo: Path) -> None:
    """Drop `status` from the output and its checks from the contract (what an owner removing it would do)."""
    edit(repo, SQL, "    status,\n", "")
    contract = yaml.safe_load((repo / CONTRACT).read_text())
    contract["columns"] = [column for column in contract["columns"] if column["name"] != "status"]
    (repo / CONTRACT).write_text(yaml.safe_dump(contract, sort_keys=False))


def set_destination(repo: Path, destination: dict[str, object]) -> None:
    data = yaml.safe_load((repo / DECLARATION).read_text())
    data["destination"] = destination
    (repo / DECLARATION).write_text(yaml.safe_dump(data, sort_keys=False))


def lines_about(output: str, needle: str) -> list[str]:
    return [line for line in output.splitlines() if needle in line]


def test_removing_a_column_without_a_version_bump_fails_naming_the_column_and_the_fix(repo: Path) -> None:
    remove_status(repo)
    result = diff(repo)
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = lines_about(result.stdout, ": column status removed")
    assert line.startswith("breaking ")
    assert "bump destination.version to 2" in line and "analytics.fct_orders_v2" in line
    assert "1 unversioned breaking" in result.stdout
    # The contract lost status's checks: reported as loosening, which alone would not fail.
    assert lines_about(result.stdout, "contract-loosening   shop_orders: invalid check on column status removed")


def test_the_same_removal_with_version_2_is_versioned_and_passes(repo: Path) -> None:
    remove_status(repo)
    set_destination(repo, V2)
    result = diff(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    [line] = lines_about(result.stdout, ": column status removed")
    assert line.startswith("breaking, versioned ")
    assert "analytics.fct_orders keeps it for its readers until 2027-01-31" in line
    [bump] = lines_about(result.stdout, "destination.version 1 -> 2")
    assert "the next run publishes analytics.fct_orders_v2" in bump and "backfill" in bump


def test_adding_a_column_is_additive_and_exits_0(repo: Path) -> None:
    edit(repo, SQL, "    status,\n", "    status,\n    amount > 100 AS big_order,\n")
    result = diff(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    [line] = lines_about(result.stdout, "big_order")
    assert line == (
        "additive             shop_orders: column big_order added (boolean): analytics.fct_orders gains it on the "
        "next publish; earlier partitions read NULL until re-run"
    )
    assert "1 change(s), 0 unversioned breaking" in result.stdout


def test_a_narrowed_type_is_breaking_a_widened_one_additive(repo: Path) -> None:
    edit(repo, DECLARATION, "amount: decimal(12,2)", "amount: decimal(10,2)")
    edit(repo, DECLARATION, "customer_id: bigint", "customer_id: integer")
    narrowed = diff(repo)
    assert narrowed.returncode == 1
    assert lines_about(narrowed.stdout, "breaking             shop_orders: column amount type decimal(12,2) -> ")
    assert lines_about(narrowed.stdout, "breaking             shop_orders: column customer_id type bigint -> integer")
    git(repo, "commit", "-qam", "narrow")
    edit(repo, DECLARATION, "amount: decimal(10,2)", "amount: decimal(14,2)")
    widened = diff(repo, "--base", "HEAD")
    assert widened.returncode == 0, widened.stdout
    [line] = lines_about(widened.stdout, "shop_orders: column amount type decimal(10,2) -> decimal(14,2) (widened)")
    assert line.startswith("additive ")


def test_a_renamed_column_is_breaking_and_hints_at_the_rename(repo: Path) -> None:
    edit(repo, SQL, "    status,\n", "    status AS order_status,\n")
    result = diff(repo)
    assert result.returncode == 1
    assert lines_about(result.stdout, "column status removed (renamed to order_status?)")
    assert lines_about(result.stdout, "additive             shop_orders: column order_status added (text)")


def test_contract_changes_tighten_or_loosen_the_gate_and_do_not_fail(repo: Path) -> None:
    edit(repo, CONTRACT, "valid_max: 100000", "valid_max: 5000")
    edit(repo, CONTRACT, "  - name: created_at\n    data_type: timestamp with time zone\n",
         "  - name: created_at\n    data_type: timestamp with time zone\n    checks:\n      - missing:\n")
    edit(repo, CONTRACT, "      - duplicate:\n", "")
    result = diff(repo)
    assert result.returncode == 0, result.stdout
    assert lines_about(result.stdout, "contract-tightening  shop_orders: invalid check on column amount changed")
    [added] = lines_about(result.stdout, "missing check on column created_at added")
    assert added.startswith("contract-tightening ") and "published partitions are not re-checked" in added
    assert lines_about(result.stdout, "contract-loosening   shop_orders: duplicate check on column order_id removed")


def test_the_default_base_is_where_the_branch_started_not_main_now(repo: Path) -> None:
    git(repo, "checkout", "-q", "main")
    edit(repo, SQL, "    status,\n", "")  # main moves on: not this branch's change
    git(repo, "commit", "-qam", "main drops status")
    git(repo, "checkout", "-q", "feature")
    edit(repo, SQL, "    status,\n", "    status,\n    1 AS one,\n")
    result = diff(repo)
    assert result.returncode == 0, result.stdout
    assert "column one added" in result.stdout and "status" not in result.stdout


def test_uncommitted_and_committed_changes_both_count_and_nothing_is_a_clean_diff(repo: Path) -> None:
    assert diff(repo).stdout.splitlines()[-1] == "0 change(s), 0 unversioned breaking"
    remove_status(repo)
    git(repo, "commit", "-qam", "drop status")
    assert diff(repo).returncode == 1


def test_a_missing_base_is_one_line_naming_the_ref_and_the_fix(repo: Path) -> None:
    result = diff(repo, "--base", "origin/nowhere")
    assert result.returncode == 2
    assert result.stderr.startswith("error: shipshape diff: 'origin/nowhere' is not a commit")
    assert "fetch-depth: 0" in result.stderr and "Traceback" not in result.stderr


def test_a_new_pipeline_is_additive(repo: Path) -> None:
    git(repo, "rm", "-rq", "pipelines", "checks")
    git(repo, "commit", "-qm", "nothing yet")
    copy_example(repo)
    result = diff(repo, "--base", "HEAD")
    assert result.returncode == 0
    assert lines_about(result.stdout, "additive             shop_orders: new pipeline: the first run creates analytics")


def test_output_columns_follow_the_sql_the_source_types_and_pii_masking(repo: Path) -> None:
    declared = load_pipeline(repo / DECLARATION, repo)
    assert {name: str(kind) for name, kind in output_columns(declared).items()} == {
        "order_id": "bigint",
        "customer_id": "bigint",
        "customer_email_hash": "text",  # email is hashed before it is loaded
        "amount": "decimal(12,2)",
        "status": "text",
        "order_date": "date",
        "created_at": "timestamptz",
        "updated_at": "timestamptz",
    }


def test_sql_reading_an_undeclared_column_is_an_error_naming_the_file(repo: Path) -> None:
    edit(repo, SQL, "    status,\n", "    coupon_code,\n")
    with pytest.raises(DeclarationError) as error:
        output_columns(load_pipeline(repo / DECLARATION, repo))
    assert str(error.value).startswith(f"{SQL}: cannot derive the transform's output columns")
    assert "coupon_code" in str(error.value)


@pytest.mark.parametrize(
    ("old", "new", "wider"),
    [
        ("integer", "bigint", True),
        ("bigint", "integer", False),
        ("integer", "decimal(10,0)", True),
        ("integer", "decimal(9,0)", False),
        ("decimal(12,2)", "decimal(14,3)", True),
        ("decimal(12,2)", "decimal(12,3)", False),
        ("decimal(12,2)", "decimal(12,1)", False),
        ("text", "integer", False),
        ("date", "timestamp", False),
        ("timestamp", "timestamptz", False),
    ],
)
def test_widening_keeps_every_value_of_the_old_type(old: str, new: str, wider: bool) -> None:
    assert widens(ColumnType.parse(old), ColumnType.parse(new)) is wider


def test_a_version_bump_needs_a_deprecation_date_and_versions_are_named_in_one_place(repo: Path) -> None:
    set_destination(repo, {"table": "fct_orders", "version": 2})
    with pytest.raises(DeclarationError) as error:
        load_pipeline(repo / DECLARATION, repo)
    assert "destination.version 2 needs 'previous_version_until'" in str(error.value)
    set_destination(repo, {**V2, "version": 3})
    destination = load_pipeline(repo / DECLARATION, repo).spec.destination
    assert (destination.published_table, destination.previous_table) == ("fct_orders_v3", "fct_orders_v2")
    assert destination.retired_tables(date(2027, 1, 31)) == ["fct_orders"]  # older than the previous version
    assert destination.retired_tables(date(2027, 2, 1)) == ["fct_orders", "fct_orders_v2"]
    assert destination.versions_note(date(2027, 1, 31)) == (
        "analytics.fct_orders_v3; v2 analytics.fct_orders_v2 kept until 2027-01-31"
    )
    assert destination.versions_note(date(2027, 2, 1)).endswith("retired 2027-01-31 (make apply drops it)")


def test_steps_chain_and_one_engines_own_syntax_is_derived_in_that_dialect(repo: Path) -> None:
    (repo / "pipelines" / "shop_orders" / "base.sql").write_text(
        "SELECT * EXCLUDE (email), customer_id // 2 AS half FROM {{ raw }}"  # `//`: DuckDB only
    )
    edit(repo, DECLARATION, "  - pipelines/shop_orders/fct_orders.sql", "  - pipelines/shop_orders/base.sql")
    data = yaml.safe_load((repo / DECLARATION).read_text())
    data["transform"].append(SQL)
    data["pii"]["columns"] = {"email": "drop"}
    (repo / DECLARATION).write_text(yaml.safe_dump(data, sort_keys=False))
    edit(repo, SQL, "    email AS customer_email_hash,\n", "    half,\n")
    edit(repo, SQL, "FROM {{ raw }}", "FROM {{ base }}")
    columns = output_columns(load_pipeline(repo / DECLARATION, repo))
    assert (str(columns["half"]), str(columns["status"])) == ("bigint", "text")
    assert "customer_email_hash" not in columns and "email" not in columns


def test_a_removed_pipeline_is_reported_not_refused_and_a_lowered_version_is_breaking(repo: Path) -> None:
    set_destination(repo, V2)
    git(repo, "commit", "-qam", "version 2")
    set_destination(repo, {"table": "fct_orders"})
    lowered = diff(repo, "--base", "HEAD")
    assert lowered.returncode == 1
    assert lines_about(lowered.stdout, "breaking             shop_orders: destination.version lowered from 2 to 1")
    git(repo, "rm", "-rqf", "pipelines", "checks")
    removed = diff(repo, "--base", "HEAD")
    assert removed.returncode == 0, removed.stdout
    [line] = lines_about(removed.stdout, "pipeline removed")
    assert line.startswith("pipeline-removed ") and "analytics.fct_orders_v2 is no longer published" in line
