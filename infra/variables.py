"""Values infrastructure reads from the environment (a CI environment's secrets, a secret store) — never the repo."""

from __future__ import annotations

import os

from shipshape.errors import ConfigurationError


def required(name: str, purpose: str) -> str:
    """The variable's value, or an error naming it, what it is for and how `make apply` expects it."""
    value = os.environ.get(name)
    if not value:
        raise ConfigurationError(
            f"{name} is not set: `make apply` needs it for {purpose}. Export it from your secret store "
            "or CI environment (never commit it)"
        )
    return value
