"""What a kind of source is: the declaration model every kind extends, and the entry that registers a kind.

A kind is registered once (`shipshape.sources.registry`) and everything else is derived from the entry: the
`source:` union of the declaration, the reader `open_source` returns, the runbook's source line (`describe`)
and the secrets it needs (any `SecretRef` field).
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Literal, TypeVar, get_args, get_origin

from pydantic import Field, field_validator

from shipshape.column_types import ColumnType
from shipshape.declaration_base import IDENTIFIER, StrictModel
from shipshape.secrets import SecretResolver
from shipshape.sources.base import Source


class SourceBase(StrictModel):
    """The fields and duties every source kind shares; a kind adds `kind: Literal["<tag>"]` and its own fields."""

    columns: dict[str, str] = Field(min_length=1, description="Declared columns: name → portable type.")
    kind: str

    @field_validator("columns")
    @classmethod
    def _valid_columns(cls, columns: dict[str, str]) -> dict[str, str]:
        for name, type_text in columns.items():
            if not re.match(IDENTIFIER, name):
                raise ValueError(f"column name {name!r} must match {IDENTIFIER}")
            ColumnType.parse(type_text)
        return columns

    def column_types(self) -> dict[str, ColumnType]:
        return {name: ColumnType.parse(text) for name, text in self.columns.items()}

    @abstractmethod
    def describe(self) -> str:
        """One line for the runbook's "What it does" table, e.g. "SQL table `shop.orders`"."""

    def check_in_pipeline(self, partitioned: bool) -> None:
        """Rules that need the rest of the declaration; raise `ValueError` with the fix. Most kinds have none."""

    def read_tables(self) -> list[str]:
        """The database tables it reads, as `schema.table` where qualified (the report's lineage); files and APIs
        read none."""
        return []


SpecT = TypeVar("SpecT", bound=SourceBase)


@dataclass(frozen=True)
class SourceKind(Generic[SpecT]):
    """One kind of source: the model its declarations validate against and how to open its reader.

    `open` gets the validated declaration, the data folder (which fills `{data_dir}` in URLs and paths) and how
    to resolve the secrets it references (`shipshape.secrets.SecretResolver`).
    """

    model: type[SpecT]
    open: Callable[[SpecT, Path, SecretResolver], Source]

    @property
    def tag(self) -> str:
        """The value of `kind:` that selects this kind: the one value of the model's `kind` Literal."""
        annotation = self.model.model_fields["kind"].annotation
        values = get_args(annotation)
        if get_origin(annotation) is not Literal or len(values) != 1 or not isinstance(values[0], str):
            raise TypeError(f"{self.model.__name__}.kind must be Literal['<tag>'] with one tag; got {annotation}")
        return values[0]
