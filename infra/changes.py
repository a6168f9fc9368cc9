"""What reconciling infrastructure would change (plan) or did change (apply): one line per object.

Plan and apply report the same `Change` values, so a plan reads exactly like the apply that follows
it, and an apply that finds nothing to do returns an empty list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["create", "update", "delete"]
_SYMBOLS: dict[Action, str] = {"create": "+", "update": "~", "delete": "-"}


@dataclass(frozen=True)
class Change:
    """One object brought to its declared state, e.g. `+ role shipshape_staging_loader`."""

    kind: str  # "schema", "table", "role", "password", "grant", "default privilege", ...
    name: str
    action: Action
    detail: str = ""

    def __str__(self) -> str:
        line = f"{_SYMBOLS[self.action]} {self.kind} {self.name}"
        return f"{line} ({self.detail})" if self.detail else line
