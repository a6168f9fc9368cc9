"""`shipshape run` on user and source problems: one `error:` line, no traceback unless --debug, and a fix that works.

Separate processes, as a user runs them, against the session's Prefect API (no temporary server each).
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterLevel
from prefect.client.schemas.sorting import LogSort

from demo.__main__ import ensure_demo_pii_key
from shipshape.settings import load_settings
from tests.support.postgres import as_role
from tests.support.project import FIRST_DAY, Project, make_project

DAY = FIRST_DAY.isoformat()
RUN = ["run", "shop_orders", "--start-date", DAY, "--end-date", DAY]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_api: str) -> Project:
    return make_project(tmp_path, f"duckdb:///{tmp_path / 'warehouse.duckdb'}", monkeypatch)


def shipshape(project: Project, prefect_api: str, *args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    """`shipshape <args>` in the project; `env` overrides the project's variables (None unsets one)."""
    merged = {**os.environ, **project.env(), "PREFECT_API_URL": prefect_api, **env}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], env={k: v for k, v in merged.items() if v is not None},
        capture_output=True, text=True, timeout=180,
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str], expected: str) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return errors[0]


def test_source_drift_is_one_line_and_its_traceback_only_with_debug(project: Project, prefect_api: str) -> None:
    with sqlite3.connect(project.shop_db) as connection:
        connection.execute("ALTER TABLE orders DROP COLUMN status")
    assert_one_error_line(shipshape(project, prefect_api, *RUN), "column 'status' declared as text is missing")
    with get_client(sync_client=True) as client:  # the run's logs on the API keep the full detail
        errors = client.read_logs(LogFilter(level=LogFilterLevel(ge_=logging.ERROR)), sort=LogSort.TIMESTAMP_DESC)
    assert any("Traceback" in log.message and "column 'status'" in log.message for log in errors)
    debug = shipshape(project, prefect_api, "--debug", *RUN)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "SchemaDriftError" in debug.stderr


def test_refused_login_is_one_line(project: Project, prefect_api: str, postgres_url: str) -> None:
    wrong_user = as_role(postgres_url, "no_such_role")
    result = shipshape(project, prefect_api, *RUN, SHIPSHAPE_WAREHOUSE_URL=wrong_user)
    assert_one_error_line(result, "the loader connection comes from SHIPSHAPE_WAREHOUSE_URL")


def test_bad_declaration_is_one_line(project: Project, prefect_api: str) -> None:
    project.edit_declaration(lambda data: data.update(shedule=data.pop("schedule")))
    assert_one_error_line(shipshape(project, prefect_api, *RUN), "did you mean 'schedule'?")


def test_missing_pii_key_after_the_demo_suggests_a_command_that_works(
    project: Project, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PII_HASH_KEY")
    ensure_demo_pii_key(load_settings())  # what `make demo` leaves in the data folder
    monkeypatch.delenv("PII_HASH_KEY")
    line = assert_one_error_line(shipshape(project, prefect_api, *RUN, PII_HASH_KEY=None), "PII_HASH_KEY")
    assert "make apply" not in line, "a local run has no environment to apply"
    assert_suggestion_works(line, project, prefect_api, without="PII_HASH_KEY")


def test_missing_warehouse_block_on_a_local_run_suggests_a_command_that_works(
    project: Project, prefect_api: str
) -> None:
    missing = {"SHIPSHAPE_WAREHOUSE_BLOCK": "warehouse-nowhere"}
    line = assert_one_error_line(shipshape(project, prefect_api, *RUN, **missing), "'warehouse-nowhere'")
    assert_suggestion_works(line, project, prefect_api, **missing)


def assert_suggestion_works(
    line: str, project: Project, prefect_api: str, without: str | None = None, **provoked: str
) -> None:
    """Run the message's shell command (`export …`, `unset …`) as written, then the same `shipshape run`."""
    suggestion = re.search(r"`((?:export|unset) [^`]+)`", line)
    assert suggestion, line
    env = {**os.environ, **project.env(), "PREFECT_API_URL": prefect_api, **provoked}
    followed = subprocess.run(
        ["bash", "-c", f"{suggestion[1]} && {sys.executable} -m cli {' '.join(RUN)}"],
        env={name: value for name, value in env.items() if name != without},
        capture_output=True, text=True, timeout=180,
    )
    assert followed.returncode == 0, followed.stderr
    assert "ran 1 partition(s) of shop_orders" in followed.stdout
