"""Breaking changes against the warehouse, on DuckDB and PostgreSQL: a run and `validate --live` refuse a published
column the transform no longer makes (before anything is loaded), and `destination.version: 2` publishes
`fct_orders_v2` while `fct_orders` keeps its rows and columns."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.main import main
from demo.shop_app import orders_per_day
from deployments.environments import Environment
from flows.run_pipeline import run_pipeline
from infra.warehouse import reconcile
from shipshape.errors import BreakingChangeError
from shipshape.ledger import entries
from shipshape.warehouses import AUDIT_SCHEMA, open_warehouse
from tasks.backfill_ledger import plan_days
from tests.support.project import FIRST_DAY, Project, make_project

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:soda_.*")

PIPELINE, SCHEMA, V1, V2 = "shop_orders", "analytics", "fct_orders", "fct_orders_v2"
SECOND_DAY = FIRST_DAY + timedelta(days=1)


@pytest.fixture
def project(tmp_path: Path, warehouse_url: str, monkeypatch: pytest.MonkeyPatch, prefect_api: str) -> Project:
    made = make_project(tmp_path, warehouse_url, monkeypatch)
    state = run_pipeline(PIPELINE, start_date=FIRST_DAY, end_date=FIRST_DAY, return_state=True)
    assert state.is_completed(), state.message
    return made


def remove_status(project: Project) -> None:
    """The transform stops selecting `status`, and the contract stops declaring it."""
    sql = project.root / "pipelines" / "shop_orders" / "fct_orders.sql"
    sql.write_text(sql.read_text().replace("    status,\n", ""))
    contract_path = project.root / "checks" / "fct_orders.yaml"
    contract = yaml.safe_load(contract_path.read_text())
    contract["columns"] = [column for column in contract["columns"] if column["name"] != "status"]
    contract_path.write_text(yaml.safe_dump(contract, sort_keys=False))


def table(project: Project, name: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    with open_warehouse(project.warehouse_url) as warehouse:
        columns = warehouse.table_columns(SCHEMA, name)
        rows = warehouse.fetch_all(f"SELECT * FROM {warehouse.qualified(SCHEMA, name)} ORDER BY order_id")
        return columns, rows


def test_a_removed_column_is_refused_before_loading_by_the_run_and_by_validate(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    before = table(project, V1)
    remove_status(project)

    assert main(["validate", "--live", "--date", FIRST_DAY.isoformat()]) == 1
    refused = capsys.readouterr().err
    assert f"{SCHEMA}.{V1} has column(s) status that the transform" in refused
    assert "bump destination.version to 2" in refused and f"{SCHEMA}.{V2}" in refused

    state = run_pipeline(PIPELINE, start_date=SECOND_DAY, end_date=SECOND_DAY, return_state=True)
    assert state.is_failed()
    with pytest.raises(BreakingChangeError, match="has column\\(s\\) status that the transform"):
        state.result()
    assert "Nothing was loaded" in (state.message or "")
    with open_warehouse(project.warehouse_url) as warehouse:
        assert not [name for name in warehouse.list_tables(AUDIT_SCHEMA) if SECOND_DAY.strftime("%Y%m%d") in name]
        assert [entry.partition_key for entry in entries(warehouse, PIPELINE)] == [FIRST_DAY.isoformat()]
    assert table(project, V1) == before


def test_version_2_publishes_a_new_table_and_leaves_version_1_as_it_was(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    before = table(project, V1)
    remove_status(project)
    project.edit_declaration(
        lambda data: data["destination"].update(version=2, previous_version_until="2027-01-31")
    )

    state = run_pipeline(PIPELINE, start_date=FIRST_DAY, end_date=SECOND_DAY, return_state=True)
    assert state.is_completed(), state.message

    columns, rows = table(project, V2)
    assert "status" not in columns and "order_status" not in columns and "order_id" in columns
    assert len(rows) == orders_per_day(FIRST_DAY) + orders_per_day(SECOND_DAY)
    assert table(project, V1) == before
    assert "status" in before[0] and len(before[1]) == orders_per_day(FIRST_DAY)
    assert main(["validate", "--live", "--date", FIRST_DAY.isoformat()]) == 0, capsys.readouterr().err


def test_after_a_bump_a_missing_backfill_plans_every_day_and_its_runs_fill_version_2(project: Project) -> None:
    """Version 1 published FIRST_DAY (the fixture), but to the backfill of version 2 every day is missing; the
    runs the backfill starts for them (one per batch, publish_mode per_partition) publish into fct_orders_v2."""
    before = table(project, V1)
    remove_status(project)
    project.edit_declaration(lambda data: data["destination"].update(version=2, previous_version_until="2027-01-31"))

    plans = plan_days(PIPELINE, FIRST_DAY, SECOND_DAY)
    assert [(plan.day, plan.status) for plan in plans] == [(FIRST_DAY, "missing"), (SECOND_DAY, "missing")]
    selected = [plan.day for plan in plans if plan.selected_by("missing")]
    assert selected == [FIRST_DAY, SECOND_DAY]
    state = run_pipeline(
        PIPELINE, start_date=selected[0], end_date=selected[-1], publish_mode="per_partition", return_state=True
    )
    assert state.is_completed(), state.message

    assert len(table(project, V2)[1]) == orders_per_day(FIRST_DAY) + orders_per_day(SECOND_DAY)
    assert table(project, V1) == before
    assert [plan.status for plan in plan_days(PIPELINE, FIRST_DAY, SECOND_DAY)] == ["published", "published"]
    with open_warehouse(project.warehouse_url) as warehouse:
        destinations = sorted((e.partition_key, e.destination or "") for e in entries(warehouse, PIPELINE))
    assert destinations == [
        (FIRST_DAY.isoformat(), f"{SCHEMA}.{V1}"),
        (FIRST_DAY.isoformat(), f"{SCHEMA}.{V2}"),
        (SECOND_DAY.isoformat(), f"{SCHEMA}.{V2}"),
    ]


def test_without_roles_apply_drops_the_earlier_version_only_once_its_date_has_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    project = make_project(tmp_path, url, monkeypatch)
    project.edit_declaration(lambda data: data["destination"].update(version=2, previous_version_until="2027-01-31"))
    with open_warehouse(url) as admin:
        admin.ensure_schema(SCHEMA)
        for name in (V1, V2):
            admin.execute(f"CREATE TABLE {SCHEMA}.{name} (order_id bigint)")
    env = Environment("versions", "process", False, 1)

    reconcile(url, env, {}, dry_run=False, today=date(2027, 1, 31))
    with open_warehouse(url) as admin:
        assert admin.list_tables(SCHEMA) == [V1, V2]
    changes = reconcile(url, env, {}, dry_run=False, today=date(2027, 2, 1))
    assert [str(change) for change in changes] == [
        f"- table {SCHEMA}.{V1} (earlier destination.version, deprecation period over)"
    ]
    with open_warehouse(url) as admin:
        assert admin.list_tables(SCHEMA) == [V2]
