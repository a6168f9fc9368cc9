"""The building blocks every declaration model shares: strictness, secret references, identifiers.

Apart from `declaration.py` because each source kind's model (under `shipshape/sources/`) is built from
them, and `declaration.py` imports those models through the source registry: a kind module importing
`declaration.py` back would be a cycle.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

IDENTIFIER = r"^[a-z_][a-z0-9_]*$"


class StrictModel(BaseModel):
    """Base for declaration models: unknown keys are rejected, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(StrictModel):
    """Where a secret comes from: an environment variable, a Prefect Secret block, or both — never the repo.

    With both, a set variable wins (local runs, CI) and deployed runs read the block. `{env}` in a block
    name is the run's environment (SHIPSHAPE_ENV), so one declaration serves dev, staging and prod.
    """

    env: str | None = None
    block: Annotated[str, Field(pattern=r"^[a-z0-9-]*(\{env\})?[a-z0-9-]*$")] | None = None

    @model_validator(mode="after")
    def _somewhere(self) -> SecretRef:
        if self.env is None and self.block is None:
            raise ValueError("give 'env' (variable name), 'block' (Prefect Secret block name) or both")
        return self

    def block_name(self, environment: str) -> str | None:
        return self.block.replace("{env}", environment) if self.block else None
