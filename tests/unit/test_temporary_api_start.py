"""The temporary Prefect API's start limit: raised for a fresh home on a busy machine, never over the user's choice.

Each case runs in a new interpreter, as a command would: Prefect reads its settings once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.temporary_api import TEMPORARY_API_START_SECONDS

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
