"""The building blocks every declaration model shares: strictness, secret references, identifiers.

Apart from `declaration.py` because each source kind's model (under `shipshape/sources/`) is built from
them, and `declaration.py` imports those models through the source registry: a kind module importing
`declaration.py` back would be a cycle.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shipshape.names import PLATFORM_SECRET_VARIABLES, SECRET_VARIABLE_PREFIX, declarable_secret_variable

IDENTIFIER = r"^[a-z_][a-z0-9_]*$"


class StrictModel(BaseModel):
    """Base for declaration models: unknown keys are rejected, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(StrictModel):
    """Where a secret comes from: an environment variable, a Prefect Secret block, or both — never the repo.

    With both, a set variable wins (local runs, CI) and deployed runs read the block. `{env}` in a block
    name is the run's environment (SHIPSHAPE_ENV), so one declaration serves dev, staging and prod.
    `env` is confined to `SHIPSHAPE_SECRET_*` (and the platform's own allow-list): the worker's environment also
    holds its Prefect API credentials and warehouse URLs, which a declaration must never be able to send anywhere.
    """

    env: str | None = None
    block: Annotated[str, Field(pattern=r"^[a-z0-9-]*(\{env\})?[a-z0-9-]*$")] | None = None

    @field_validator("env")
    @classmethod
    def _declarable(cls, variable: str | None) -> str | None:
        if variable is not None and not declarable_secret_variable(variable):
            allowed = ", ".join(sorted(PLATFORM_SECRET_VARIABLES))
            raise ValueError(
                f"a secret variable must be named {SECRET_VARIABLE_PREFIX}<NAME> (or one of: {allowed}); "
                f"rename the variable (e.g. {SECRET_VARIABLE_PREFIX}ORDERS_API_TOKEN) or use 'block:'"
            )
        return variable

    @model_validator(mode="after")
    def _somewhere(self) -> SecretRef:
        if self.env is None and self.block is None:
            raise ValueError("give 'env' (variable name), 'block' (Prefect Secret block name) or both")
        return self

    def block_name(self, environment: str) -> str | None:
        return self.block.replace("{env}", environment) if self.block else None
