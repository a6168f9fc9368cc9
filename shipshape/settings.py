"""Where things are: project folder, data folder, environment name — from the environment, with embedded defaults.

The defaults make `make demo` work on a bare machine (DuckDB file in the data folder); every
deployment overrides them through environment variables, never by editing code.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from shipshape.errors import ConfigurationError

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
LOCAL_ENVIRONMENT = "local"  # runs outside any deployment: secrets come from variables, no `make apply`


@dataclass(frozen=True)
class Settings:
    project_dir: Path
    data_dir: Path

    def local_secret_file(self, variable: str) -> Path:
        """Where `make demo` keeps a secret it made up for local runs (the PII key), outside the repo."""
        return self.data_dir / f".local_{variable.lower()}"


def load_settings() -> Settings:
    """Read settings now (not at import) so tests and deployments can point them elsewhere."""
    project_dir = Path(os.environ.get("SHIPSHAPE_PROJECT_DIR", PACKAGE_ROOT)).resolve()
    data_dir = Path(os.environ.get("SHIPSHAPE_DATA_DIR", project_dir / "data")).resolve()
    return Settings(project_dir=project_dir, data_dir=data_dir)


@dataclass(frozen=True)
class SessionTimeouts:
    """Limits on every warehouse session, in seconds, so no statement can hold a run (and its locks) forever.

    `statement` is generous: a big transform or COPY is legitimate; the run's own timeout is the tighter bound.
    `lock` is short: a run waiting on a table lock someone else holds should fail (and retry) rather than queue
    behind it. `connect` bounds reaching a warehouse that does not answer.
    """

    connect: int = 10
    statement: int = 1800
    lock: int = 60


_SESSION_TIMEOUT_VARIABLES = {
    "connect": "SHIPSHAPE_WAREHOUSE_CONNECT_TIMEOUT_SECONDS",
    "statement": "SHIPSHAPE_WAREHOUSE_STATEMENT_TIMEOUT_SECONDS",
    "lock": "SHIPSHAPE_WAREHOUSE_LOCK_TIMEOUT_SECONDS",
}


def session_timeouts() -> SessionTimeouts:
    """The defaults, each overridable by its environment variable (a whole number of seconds above 0)."""
    values: dict[str, int] = {}
    for field_name, variable in _SESSION_TIMEOUT_VARIABLES.items():
        text = os.environ.get(variable)
        if text is None:
            continue
        if not text.strip().isdigit() or int(text) == 0:
            raise ConfigurationError(
                f"{variable}={text!r} is not a timeout: give a whole number of seconds above 0, or unset it "
                f"(default {getattr(SessionTimeouts(), field_name)})"
            )
        values[field_name] = int(text)
    return SessionTimeouts(**values)


DATA_ROOTS_VARIABLE = "SHIPSHAPE_DATA_ROOTS"


def data_roots() -> tuple[Path, ...]:
    """Folders besides the data folder that file sources may read (a landing mount), resolved.

    Declared by the platform where the worker runs (SHIPSHAPE_DATA_ROOTS, absolute paths joined by `:`), never by a
    declaration: a pipeline team names a file, the platform decides which folders a file may be in.
    """
    text = os.environ.get(DATA_ROOTS_VARIABLE, "")
    roots = [Path(part) for part in text.split(os.pathsep) if part]
    relative = [str(root) for root in roots if not root.is_absolute()]
    if relative:
        raise ConfigurationError(
            f"{DATA_ROOTS_VARIABLE}={text!r}: {', '.join(relative)} is not an absolute path; list absolute folders "
            f"joined by {os.pathsep!r}, e.g. /mnt/landing{os.pathsep}/srv/exports, or unset it"
        )
    return tuple(root.resolve() for root in roots)


def environment_name() -> str:
    """The environment a run belongs to (dev, staging, prod), set by its deployment; `local` otherwise."""
    return os.environ.get("SHIPSHAPE_ENV", LOCAL_ENVIRONMENT)


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
