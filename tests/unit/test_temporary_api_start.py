"""The temporary Prefect API's start limit: raised for a fresh home on a busy machine, never over the user's choice;
and a fresh home's database, copied from a template this installation migrated once.

Each limit case runs in a new interpreter, as a command would: Prefect reads its settings once per process.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.temporary_api import TEMPORARY_API_START_SECONDS, keep_as_template, seed_database

SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
LIMIT_SEEN_BY_PREFECT = """
from runtime.temporary_api import allow_slow_temporary_api_start
allow_slow_temporary_api_start()
from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS
print(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
"""
"""The setting Prefect's temporary API start reads (`SubprocessASGIServer.start` in prefect/server/api/server.py)."""


def limit_seen_by_prefect(prefect_home: Path, setting: str | None = None, *, prefect_first: bool = False) -> int:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(prefect_home)
    if setting is not None:
        env[SETTING] = setting
    # Whether Prefect was imported before the call must not matter: its settings are re-read.
    script = ("import prefect\n" if prefect_first else "") + LIMIT_SEEN_BY_PREFECT
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


@pytest.mark.parametrize("prefect_first", [False, True], ids=["before-prefect-import", "after-prefect-import"])
def test_a_fresh_home_gets_the_longer_limit(tmp_path: Path, prefect_first: bool) -> None:
    assert limit_seen_by_prefect(tmp_path, prefect_first=prefect_first) == TEMPORARY_API_START_SECONDS


def test_a_limit_in_the_environment_is_kept(tmp_path: Path) -> None:
    assert limit_seen_by_prefect(tmp_path, "45") == 45


def test_a_limit_in_the_active_prefect_profile_is_kept(tmp_path: Path) -> None:
    (tmp_path / "profiles.toml").write_text(f'active = "mine"\n[profiles.mine]\n{SETTING} = 300\n')
    assert limit_seen_by_prefect(tmp_path) == 300


def _database_with(path: Path, version: str) -> None:
    with sqlite3.connect(path) as database:
        database.execute("CREATE TABLE alembic_version (version_num TEXT)")
        database.execute("INSERT INTO alembic_version VALUES (?)", [version])
    database.close()


def _version(path: Path) -> str:
    with sqlite3.connect(path) as database:
        [(version,)] = database.execute("SELECT version_num FROM alembic_version").fetchall()
    database.close()
    return str(version)


def test_a_fresh_home_gets_a_copy_of_the_migrated_template(tmp_path: Path) -> None:
    template, home_database = tmp_path / "template.db", tmp_path / "home" / "prefect.db"
    _database_with(template, "head-of-3.8.8")
    assert seed_database(home_database, template)
    assert _version(home_database) == "head-of-3.8.8"


def test_a_used_home_is_never_replaced_and_no_template_means_migrating(tmp_path: Path) -> None:
    template, used = tmp_path / "template.db", tmp_path / "used.db"
    _database_with(template, "head")
    _database_with(used, "older, with the user's run history")
    assert not seed_database(used, template)
    assert _version(used) == "older, with the user's run history"
    assert not seed_database(tmp_path / "fresh.db", tmp_path / "no-template.db")
    assert not (tmp_path / "fresh.db").exists()  # left for the server to create and migrate


def test_keeping_a_template_where_the_installation_is_read_only_is_skipped(tmp_path: Path) -> None:
    migrated = tmp_path / "prefect.db"
    _database_with(migrated, "head")
    (tmp_path / "not-a-folder").write_text("")
    keep_as_template(migrated, tmp_path / "not-a-folder" / "template.db")  # cannot be written: no error
    keep_as_template(migrated, tmp_path / "var" / "template.db")
    assert _version(tmp_path / "var" / "template.db") == "head"
    assert [p.name for p in (tmp_path / "var").iterdir()] == ["template.db"]  # no partial copy left behind
