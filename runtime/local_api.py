"""Which Prefect API a local command (`shipshape run`, `make demo`) runs its flows on, chosen in this order:

1. `PREFECT_API_URL` in the environment: the user's choice, untouched;
2. the API `make up` started, when its record (`api.env` in the platform folder) names one that answers with the
   recorded password: no server to start at all, and the runs show in the UI the user already has open;
3. the local API an earlier command on the same Prefect home started and kept (`runtime.kept_api`), when it
   answers with its recorded password;
4. a new local API (`runtime.temporary_api`), started before the flows are imported and kept for the next
   command, or stopped with this one when `SHIPSHAPE_LOCAL_API_IDLE_SECONDS=0`.

A Prefect profile naming an API also wins over the temporary one (checked once Prefect is imported).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from runtime import kept_api
from runtime.recorded_api import RecordedApi, record_fields, write_record
from runtime.temporary_api import TemporaryApi, allow_slow_temporary_api_start
from shipshape.errors import ConfigurationError
from shipshape.settings import PACKAGE_ROOT

API_RECORD = "api.env"


def platform_dir() -> Path:
    """Where `make up` keeps its state (SHIPSHAPE_PLATFORM_DIR, default `.platform` in the checkout)."""
    return Path(os.environ.get("SHIPSHAPE_PLATFORM_DIR", PACKAGE_ROOT / ".platform")).resolve()


def record_api(state_dir: Path, api: RecordedApi) -> None:
    """Written by `make up` once its API is healthy."""
    write_record(state_dir / API_RECORD, api)


def forget_api(state_dir: Path) -> None:
    (state_dir / API_RECORD).unlink(missing_ok=True)


def recorded_api(state_dir: Path) -> RecordedApi | None:
    path = state_dir / API_RECORD
    return RecordedApi.from_fields(record_fields(path.read_text())) if path.is_file() else None


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
    idle = kept_api.idle_seconds()
    if not idle:
        server = TemporaryApi()
        return _on_local_server(server, server.url, None, f"a temporary Prefect API at {server.url}")
    started, kept = _kept_server(idle)
    how = "started now, " if started else ""
    description = (
        f"the local Prefect API at {kept.url} ({how}kept {idle:g} s after each command; "
        f"{kept_api.IDLE_SETTING}=0: one per command)"
    )
    return _on_local_server(started, kept.url, kept.auth_string, description)


def _on_local_server(server: TemporaryApi | None, url: str, auth_string: str | None, description: str) -> LocalApi:
    """Use a local server (`server`: one started by this command, to wait for) unless Prefect's settings name an
    API, which only Prefect's import tells."""
    allow_slow_temporary_api_start()  # imports Prefect, while a new server imports its own
    if configured := _url_in_imported_prefect_settings():  # a profile or settings file names one
        if server:
            server.stop()
        return LocalApi(f"the Prefect API at {configured} (Prefect settings)")
    os.environ["PREFECT_UI_URL"] = ""  # it serves no UI: no "View at" links to a page that is not there
    _use(url, auth_string)
    return LocalApi(description, server)


def _kept_server(idle: float) -> tuple[TemporaryApi | None, kept_api.KeptApi]:
    """The Prefect home's kept server with a lease on it: the recorded one when it answers (no server object:
    nothing to wait for), else one started now."""
    home = kept_api.prefect_home()
    deciding = kept_api.deciding(home)
    try:
        if recorded := kept_api.leased(home):
            if RecordedApi(recorded.url, recorded.auth_string).answers():
                return None, recorded
            kept_api.release(recorded)
        settings = kept_api.server_environment(home, idle)
        server = TemporaryApi(settings, log=home / kept_api.LOG)
        return server, kept_api.lease_new(home, server.port, settings["PREFECT_SERVER_API_AUTH_STRING"])
    finally:
        os.close(deciding)


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
