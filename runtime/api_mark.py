"""Which environment a Prefect API belongs to: the mark `make apply` sets, and the check every block load makes.

Each environment has its own Prefect API (PREFECT_API_URL). Nothing on an API said which environment it serves, so
one wrong URL was enough for a dev apply to overwrite prod's blocks, or a dev run to load prod's warehouse. The
mark is a Prefect variable (`names.API_ENVIRONMENT_VARIABLE`) holding the environment's name.
"""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

from shipshape import names
from shipshape.errors import ConfigurationError


def api_environment() -> str | None:
    """The environment the current Prefect API is marked for; None before its first `make apply`."""
    with get_client(sync_client=True) as client:
        variable = client.read_variable_by_name(names.API_ENVIRONMENT_VARIABLE)
    return None if variable is None or variable.value is None else str(variable.value)


def api_url() -> str:
    return PREFECT_API_URL.value() or "(none: PREFECT_API_URL is unset, Prefect's temporary API)"


def another_environments_api(owner: str, environment: str, what: str) -> ConfigurationError:
    """The one error for using one environment's Prefect API for another: which API, whose it is, and the fix."""
    return ConfigurationError(
        f"the Prefect API at {api_url()} belongs to environment {owner!r} (Prefect variable "
        f"{names.API_ENVIRONMENT_VARIABLE!r}), but {what} is for {environment!r}; refused before anything was "
        f"read or changed: point PREFECT_API_URL at the {environment!r} environment's own Prefect API"
    )


def refuse_another_environments_api(environment: str, what: str = "this run (SHIPSHAPE_ENV)") -> None:
    """A run (or deploy) of `environment` on an API marked for another one stops before it reads or writes there."""
    owner = api_environment()
    if owner is not None and owner != environment:
        raise another_environments_api(owner, environment, what)
