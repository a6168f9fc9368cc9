"""Resolves secret references at run time, so secret values never sit in declarations, images or parameters."""

from __future__ import annotations

import os

from shipshape.declaration import SecretRef
from shipshape.errors import ConfigurationError
from shipshape.settings import environment_name


def resolve_secret(ref: SecretRef, purpose: str) -> str:
    """The secret's value, or a `ConfigurationError` saying exactly where it was looked for and how to set it."""
    if ref.env is not None and (value := os.environ.get(ref.env)):
        return value
    block = ref.block_name(environment_name())
    if block is None:
        raise ConfigurationError(
            f"{purpose}: environment variable {ref.env} is not set; "
            "export it (or reference a Prefect Secret block with 'block:')"
        )
    from prefect.blocks.system import Secret

    try:
        return Secret.load(block).get()
    except ValueError:
        unset = f" and environment variable {ref.env} is not set" if ref.env else ""
        raise ConfigurationError(
            f"{purpose}: Prefect Secret block {block!r} was not found{unset}; create it with "
            f"`make apply ENV={environment_name()}` (value from {secret_variable(ref)}) "
            f"or Secret(value=...).save({block!r})"
        ) from None


def secret_variable(ref: SecretRef) -> str:
    """Where `make apply` reads a Secret block's value: `pii-hash-key-{env}` → SHIPSHAPE_SECRET_PII_HASH_KEY."""
    stem = (ref.block or "").replace("{env}", "").strip("-")
    return "SHIPSHAPE_SECRET_" + stem.upper().replace("-", "_")
