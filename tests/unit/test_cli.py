"""The command line: one clear line per user mistake, never a traceback; exit codes CI can rely on."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from demo.shop_app import generate
from runtime.kept_api import RECORD
from shipshape.settings import PACKAGE_ROOT
from tests.support.project import FIRST_DAY, copy_example


def shipshape(*args: str, cwd: Path = PACKAGE_ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={**os.environ, **env},
    )


def test_validate_passes_the_shipped_declarations() -> None:
    result = shipshape("validate")
    assert result.returncode == 0, result.stderr
    assert "ok    " in result.stdout and "0 invalid" in result.stdout


def test_validate_reports_a_bad_declaration_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "pipelines" / "broken.yaml"
    bad.parent.mkdir()
    bad.write_text("name: broken\nowner: {team: x, slack_channel: '#x'}\nshedule: {cron: '* * * * *'}\n")
    result = shipshape("validate", str(bad))
    assert result.returncode == 1
    assert "unknown key 'shedule'; did you mean 'schedule'?" in result.stderr
    assert "Traceback" not in result.stderr
    assert "0 valid, 1 invalid" in result.stdout


def test_run_of_an_unknown_pipeline_names_the_known_ones(tmp_path: Path) -> None:
    result = shipshape("run", "no_such_pipeline", "--start-date", "2026-11-01", PREFECT_HOME=str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("error: pipelines/no_such_pipeline.yaml: no pipeline named 'no_such_pipeline'")
    assert "Starting temporary server" not in result.stderr, "a bad name fails before Prefect starts"
    assert not (tmp_path / RECORD).exists(), "a bad name starts no local API"
    assert "shop_orders" in result.stderr and "Traceback" not in result.stderr


def test_validate_live_compares_the_source_with_the_declaration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate(tmp_path / "shop.db", FIRST_DAY, 1)
    monkeypatch.setenv("SHIPSHAPE_DATA_DIR", str(tmp_path))
    result = shipshape("validate", "--live", "--date", FIRST_DAY.isoformat())
    assert result.returncode == 0, result.stderr
    assert "undeclared source columns ignored: coupon_code" in result.stdout


def test_validate_live_fails_on_a_renamed_source_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generate(tmp_path / "shop.db", FIRST_DAY, 1)
    with sqlite3.connect(tmp_path / "shop.db") as connection:
        connection.execute("ALTER TABLE orders RENAME COLUMN amount TO total")
    monkeypatch.setenv("SHIPSHAPE_DATA_DIR", str(tmp_path))
    result = shipshape("validate", "--live", "--date", FIRST_DAY.isoformat())
    assert result.returncode == 1
    assert "column 'amount' declared as decimal(12,2) is missing" in result.stderr


def test_validate_also_checks_the_contract(tmp_path: Path) -> None:
    project = tmp_path / "project"
    for relative in ["pipelines/shop_orders.yaml", "pipelines/shop_orders/fct_orders.sql", "checks/fct_orders.yaml"]:
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text((PACKAGE_ROOT / relative).read_text())
    contract = project / "checks" / "fct_orders.yaml"
    contract.write_text(contract.read_text().replace("must_be_greater_than: 0", "must_be_grater_than: 0"))
    result = subprocess.run(
        [sys.executable, "-m", "cli", "validate"], cwd=PACKAGE_ROOT, capture_output=True, text=True,
        timeout=120, env={**os.environ, "SHIPSHAPE_PROJECT_DIR": str(project)},
    )
    assert result.returncode == 1
    assert "checks/fct_orders.yaml" in result.stderr and "Traceback" not in result.stderr


def test_validate_refuses_a_transform_whose_output_cannot_be_derived(tmp_path: Path) -> None:
    copy_example(tmp_path)
    sql = tmp_path / "pipelines" / "shop_orders" / "fct_orders.sql"
    sql.write_text(sql.read_text().replace("    status,\n", "    coupon_code,\n"))
    result = subprocess.run(
        [sys.executable, "-m", "cli", "validate"],
        cwd=PACKAGE_ROOT,
        env={**os.environ, "SHIPSHAPE_PROJECT_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "pipelines/shop_orders/fct_orders.sql: cannot derive the transform's output columns" in result.stderr
    assert "coupon_code" in result.stderr and "Traceback" not in result.stderr
