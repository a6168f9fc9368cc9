"""Which Prefect API a local command (`shipshape run`, `make demo`) runs its flows on, chosen in this order:

1. `PREFECT_API_URL` in the environment: the user's choice, untouched;
2. the API `make up` started, when its record (`api.env` in the platform folder) names one that answers with the
   recorded password: no server to start at all, and the runs show in the UI the user already has open;
3. a temporary API for this command (`runtime.temporary_api`), started before the flows are imported.

A Prefect profile naming an API also wins over the temporary one (checked once Prefect is imported).
"""

from __future__ import annotations

import base64
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from runtime.temporary_api import TemporaryApi, allow_slow_temporary_api_start
from shipshape.errors import ConfigurationError
from shipshape.settings import PACKAGE_ROOT

API_RECORD = "api.env"
PROBE_SECONDS = 10.0
"""A server that is down refuses at once; a live one answers in milliseconds, or seconds on a busy machine, and
waiting for it beats starting a temporary API (5-30 s)."""


def platform_dir() -> Path:
    """Where `make up` keeps its state (SHIPSHAPE_PLATFORM_DIR, default `.platform` in the checkout)."""
    return Path(os.environ.get("SHIPSHAPE_PLATFORM_DIR", PACKAGE_ROOT / ".platform")).resolve()


@dataclass(frozen=True)
class RecordedApi:
    url: str
    auth_string: str

    def answers(self) -> bool:
        """One authenticated call: a server that is down, another program on the port or a changed password
        all answer something else than 200."""
        token = base64.b64encode(self.auth_string.encode()).decode()
        request = urllib.request.Request(f"{self.url}/admin/version", headers={"Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(request, timeout=PROBE_SECONDS) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False


def record_api(state_dir: Path, api: RecordedApi) -> None:
    """Written by `make up` once its API is healthy; readable by this user only (it holds the API password)."""
    path = state_dir / API_RECORD
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(f"PREFECT_API_URL={api.url}\nPREFECT_API_AUTH_STRING={api.auth_string}\n")


def forget_api(state_dir: Path) -> None:
    (state_dir / API_RECORD).unlink(missing_ok=True)


def recorded_api(state_dir: Path) -> RecordedApi | None:
    path = state_dir / API_RECORD
    if not path.is_file():
        return None
    values = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    url, auth = values.get("PREFECT_API_URL"), values.get("PREFECT_API_AUTH_STRING")
    return RecordedApi(url, auth) if url and auth else None


class LocalApi:
    """The API chosen for this process (`description` tells the user where the runs go); `wait_ready` before the
    first flow (a no-op unless it is temporary)."""

    def __init__(self, description: str, temporary: TemporaryApi | None = None) -> None:
        self.description = description
        self._temporary = temporary

    def wait_ready(self) -> None:
        if self._temporary is None:
            return
        from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

        self._temporary.wait_ready(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())


def local_api(temporary: bool = True) -> LocalApi:
    """Point this process (and its children) at a Prefect API for the rest of its life; see the module's order.

    Import the flows after this call and before `wait_ready`: they import while a temporary API starts. Without
    `temporary`, finding no API is an error (a command that reads an environment's history needs its real API).
    """
    if url := os.environ.get("PREFECT_API_URL") or _url_in_imported_prefect_settings():
        return LocalApi(f"the Prefect API at {url}")
    if (recorded := recorded_api(platform_dir())) and recorded.answers():
        _use(recorded.url, recorded.auth_string)
        return LocalApi(f"the local platform's Prefect API at {recorded.url} (make up)")
    if not temporary:
        raise ConfigurationError(
            f"no Prefect API to read: PREFECT_API_URL is not set and no local platform answers (record "
            f"{platform_dir() / API_RECORD}); set PREFECT_API_URL to that environment's Prefect API "
            "(`make up` serves dev)"
        )
    server = TemporaryApi()
    allow_slow_temporary_api_start()  # imports Prefect, while the server imports its own
    if configured := _url_in_imported_prefect_settings():  # a profile or settings file names one
        server.stop()
        return LocalApi(f"the Prefect API at {configured} (Prefect settings)")
    os.environ["PREFECT_UI_URL"] = ""  # it serves no UI: no "View at" links to a page that is not there
    _use(server.url, None)
    return LocalApi(f"a temporary Prefect API at {server.url}", server)


def _url_in_imported_prefect_settings() -> str | None:
    """Prefect's settings name an API (a profile, a test harness) — only asked once Prefect is imported anyway."""
    if "prefect.settings" not in sys.modules:
        return None
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


def _use(url: str, auth_string: str | None) -> None:
    """Environment first (child processes inherit it), then Prefect's settings, which it read when imported."""
    os.environ["PREFECT_API_URL"] = url
    if auth_string:
        os.environ["PREFECT_API_AUTH_STRING"] = auth_string
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()
