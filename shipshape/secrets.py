"""Resolves secret references at run time, so secret values never sit in declarations, images or parameters.

A reference names an environment variable, a Secret block, or both (a set variable wins). The engine reads
variables itself; blocks live on the Prefect API, which only the runtime layer talks to, so it hands the engine
a `BlockReader` (`runtime.secrets`). Readers that need a secret (an SQL URL, an API token) take a
`SecretResolver` from whoever opens them, never a global.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterator

from pydantic import BaseModel

from shipshape.declaration_base import SecretRef
from shipshape.errors import ConfigurationError
from shipshape.names import secret_block_variable
from shipshape.settings import LOCAL_ENVIRONMENT, environment_name, load_settings

# Block name → its value; raises KeyError when there is no such block.
BlockReader = Callable[[str], str]
# (reference, what it is for) → the value; raises ConfigurationError saying where it looked.
SecretResolver = Callable[[SecretRef, str], str]


def resolve_secret(ref: SecretRef, purpose: str, read_block: BlockReader) -> str:
    """The secret's value, or a `ConfigurationError` saying exactly where it was looked for and how to set it."""
    if ref.env is not None and (value := os.environ.get(ref.env)):
        return value
    block = ref.block_name(environment_name())
    if block is None:
        raise ConfigurationError(
            f"{purpose}: environment variable {ref.env} is not set; "
            "export it (or reference a Prefect Secret block with 'block:')"
        )
    try:
        return read_block(block)
    except KeyError:
        unset = f" and environment variable {ref.env} is not set" if ref.env else ""
        raise ConfigurationError(
            f"{purpose}: Prefect Secret block {block!r} was not found{unset}; {_how_to_provide(ref, block)}"
        ) from None


def _how_to_provide(ref: SecretRef, block: str) -> str:
    """A fix that works where the run is: `make apply` exists only for deployed environments, not local runs."""
    environment = environment_name()
    if environment != LOCAL_ENVIRONMENT:
        return (
            f"create it with `make apply ENV={environment}` (value from {secret_block_variable(ref.block or '')}) "
            f"or Secret(value=...).save({block!r})"
        )
    if ref.env is None:
        return f"a local run has no `make apply`: save it with Secret(value=...).save({block!r})"
    made_up = load_settings().local_secret_file(ref.env)
    if made_up.exists():
        return f"use the one `make demo` made: `export {ref.env}=\"$(cat {shlex.quote(str(made_up))})\"`"
    return f"export it for local runs (`export {ref.env}=...` with your value)"



def secret_refs(declaration: BaseModel) -> list[SecretRef]:
    """Every `SecretRef` a validated declaration holds, wherever it sits, in field order, each distinct one once.

    Found by walking the values rather than by field name, so a new source kind's secret field (or any
    other) is provisioned by `make apply` without anyone listing it. References without a block (variable
    only) are kept: callers decide what they need.
    """
    return list(dict.fromkeys(_walk(declaration)))


def _walk(value: object) -> Iterator[SecretRef]:
    if isinstance(value, SecretRef):
        yield value
    elif isinstance(value, BaseModel):
        for field in type(value).model_fields:
            yield from _walk(getattr(value, field))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _walk(item)
