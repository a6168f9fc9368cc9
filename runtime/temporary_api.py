"""The one Prefect setting a first local run needs a different default for: the temporary API's start limit."""

from __future__ import annotations

import os

from prefect.context import refresh_global_settings_context
from prefect.settings import get_current_settings

TEMPORARY_API_START_SECONDS = 300
"""How long a run without `PREFECT_API_URL` waits for the temporary Prefect API it starts.

Prefect's own limit (20 s) is shorter than the first start on a fresh `PREFECT_HOME` takes: migrating the new
SQLite database took 25-32 s on an idle 2-core machine and 124 s with both cores oversubscribed (load average ~9),
so a newcomer's first `make demo` or `shipshape run` failed with "Timed out while attempting to connect to
ephemeral Prefect API server". Prefect does not notice a temporary API that died, so a broken start also waits
this long: generous, not unbounded.
"""
_TEMPORARY_API_START_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


def allow_slow_temporary_api_start() -> None:
    """Give Prefect's temporary API `TEMPORARY_API_START_SECONDS` to start, unless the user chose a limit.

    Called by every command that runs flows (`shipshape run`, `make demo`) before its first flow. A limit set in the
    environment, a Prefect profile or a settings file is kept. Prefect reads its settings once, when imported, so
    they are re-read after the change (which also reaches child processes through the environment).
    """
    if "startup_timeout_seconds" in get_current_settings().server.ephemeral.model_fields_set:
        return
    os.environ[_TEMPORARY_API_START_SETTING] = str(TEMPORARY_API_START_SECONDS)
    refresh_global_settings_context()
