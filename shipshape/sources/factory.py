"""Opens the `Source` a declaration names, and compares what a live source offers with what was declared.

Drift is checked before extracting so a renamed or retyped upstream column stops the run with
one message listing every problem, instead of loading nulls or failing deep inside conversion.
"""

from __future__ import annotations

from pathlib import Path

from shipshape.column_types import ColumnType
from shipshape.errors import SchemaDriftError
from shipshape.secrets import SecretResolver
from shipshape.sources.base import Source
from shipshape.sources.kind import SourceBase
from shipshape.sources.registry import source_kind

# Families that carry no type information: CSV text, JSON strings, all-null Parquet columns.
_UNTYPED = {None, "null"}


def open_source(spec: SourceBase, data_dir: Path, secrets: SecretResolver) -> Source:
    """The reader of the registered kind `spec.kind`; `data_dir` fills `{data_dir}` in SQL URLs and file paths."""
    return source_kind(spec).open(spec, data_dir, secrets)


def check_drift(declared: dict[str, ColumnType], observed: dict[str, str | None], where: str) -> list[str]:
    """Undeclared columns the source now offers (sorted; the caller logs them, extraction ignores them).

    Raises `SchemaDriftError` listing every declared column that is missing and every one whose type
    family changed. Compatible: same family, untyped observed values, or integers where numbers are declared.
    """
    found = ", ".join(sorted(observed)) or "(none)"
    problems = []
    for name, column_type in declared.items():
        if name not in observed:
            problems.append(
                f"column {name!r} declared as {column_type} is missing from {where}; found columns: {found}"
            )
        elif not _compatible(column_type.family, observed[name]):
            problems.append(f"column {name!r}: declared {column_type} ({column_type.family}), found {observed[name]}")
    if problems:
        raise SchemaDriftError(
            f"schema drift in {where}: " + "; ".join(problems)
            + ". Fix the source, or update source.columns in the declaration (and the contract) to match it."
        )
    return sorted(set(observed) - set(declared))


def _compatible(declared_family: str, observed_family: str | None) -> bool:
    return (
        observed_family in _UNTYPED
        or observed_family == declared_family
        or (declared_family, observed_family) == ("number", "integer")
    )
