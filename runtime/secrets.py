"""Secret references resolved as a deployed run resolves them: the variable if set, else the Secret block."""

from __future__ import annotations

from prefect.blocks.system import Secret

from runtime.blocks import load_block
from shipshape.declaration_base import SecretRef
from shipshape.secrets import resolve_secret


def read_secret_block(name: str) -> str:
    """The value of Secret block `name` on this process's Prefect API; KeyError when it does not exist."""
    try:
        return str(load_block(Secret, name).get())
    except ValueError:
        raise KeyError(name) from None


def prefect_secret(ref: SecretRef, purpose: str) -> str:
    """A `shipshape.secrets.SecretResolver` that reads Secret blocks from the Prefect API."""
    return resolve_secret(ref, purpose, read_secret_block)
