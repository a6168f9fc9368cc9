"""Where things are: project folder, data folder, environment name — from the environment, with embedded defaults.

Also the one Prefect setting a first local run needs a different default for (the temporary API's start limit).

The defaults make `make demo` work on a bare machine (DuckDB file in the data folder); every
deployment overrides them through environment variables, never by editing code.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]

TEMPORARY_API_START_SECONDS = 300
"""How long a run without `PREFECT_API_URL` waits for the temporary Prefect API it starts.

Prefect's own limit (20 s) is shorter than the first start on a fresh `PREFECT_HOME` takes: migrating the new
SQLite database took 25-32 s on an idle 2-core machine and 124 s with both cores oversubscribed (load average ~9),
so a newcomer's first `make demo` or `shipshape run` failed with "Timed out while attempting to connect to
ephemeral Prefect API server". Prefect does not notice a temporary API that died, so a broken start also waits
this long: generous, not unbounded.
"""
_TEMPORARY_API_START_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


@dataclass(frozen=True)
class Settings:
    project_dir: Path
    data_dir: Path


def load_settings() -> Settings:
    """Read settings now (not at import) so tests and deployments can point them elsewhere."""
    project_dir = Path(os.environ.get("SHIPSHAPE_PROJECT_DIR", PACKAGE_ROOT)).resolve()
    data_dir = Path(os.environ.get("SHIPSHAPE_DATA_DIR", project_dir / "data")).resolve()
    return Settings(project_dir=project_dir, data_dir=data_dir)


def environment_name() -> str:
    """The environment a run belongs to (dev, staging, prod), set by its deployment; `local` otherwise."""
    return os.environ.get("SHIPSHAPE_ENV", "local")


def allow_slow_temporary_api_start() -> None:
    """Give Prefect's temporary API `TEMPORARY_API_START_SECONDS` to start, unless the user chose a limit.

    Called by every command that runs flows (`shipshape run`, `make demo`) before its first flow. A limit set in the
    environment, a Prefect profile or a settings file is kept. Prefect reads its settings once, when imported, so
    they are re-read after the change (which also reaches child processes through the environment).
    """
    from prefect.context import refresh_global_settings_context
    from prefect.settings import get_current_settings

    if "startup_timeout_seconds" in get_current_settings().server.ephemeral.model_fields_set:
        return
    os.environ[_TEMPORARY_API_START_SETTING] = str(TEMPORARY_API_START_SECONDS)
    refresh_global_settings_context()


@cache
def code_version() -> str:
    """The code version recorded in the ledger: the image's baked-in sha, else git, else the package version."""
    if version := os.environ.get("SHIPSHAPE_CODE_VERSION"):
        return version
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=PACKAGE_ROOT, capture_output=True, text=True, check=True, timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        from shipshape import __version__

        return __version__
