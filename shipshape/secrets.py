"""Resolves secret references at run time, so secret values never sit in declarations, images or parameters."""

from __future__ import annotations

import os

from shipshape.declaration import SecretRef
from shipshape.errors import ConfigurationError


def resolve_secret(ref: SecretRef, purpose: str) -> str:
    """The secret's value, or a `ConfigurationError` saying exactly where it was looked for and how to set it."""
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if not value:
            raise ConfigurationError(
                f"{purpose}: environment variable {ref.env} is not set; "
                "export it (or reference a Prefect Secret block with 'block:')"
            )
        return value
    from prefect.blocks.system import Secret

    try:
        return Secret.load(ref.block).get()
    except ValueError:
        raise ConfigurationError(
            f"{purpose}: Prefect Secret block {ref.block!r} was not found; create it with "
            f"`prefect block create secret` or Secret(value=...).save({ref.block!r})"
        ) from None
