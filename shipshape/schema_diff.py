"""`shipshape diff`: every pipeline's published shape now against a git base, classified (`schema_changes`).

WHY here and not in the CLI: CI runs it on each pull request and its verdict (exit 1 on an unversioned breaking
change) must be testable without a terminal. Shapes come from the declarations, the SQL (`output_columns`) and the
contracts, on both sides the same way, so a difference is a change of the branch, never of the tool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from shipshape.catalog import DeclaredPipeline, load_all, load_pipeline, pipeline_files
from shipshape.errors import DeclarationError
from shipshape.git_base import default_base, project_at
from shipshape.output_columns import output_columns
from shipshape.schema_changes import PublishedShape, SchemaChange, compare, new_pipeline, removed_pipeline

_COLUMN_SCHEMA_KEYS = ("data_type", "numeric_precision", "numeric_scale", "character_maximum_length", "optional")


@dataclass(frozen=True)
class Diff:
    """The base compared with, every change, and what could not be compared (a base that no longer loads)."""

    base: str
    changes: list[SchemaChange]
    notes: list[str]

    @property
    def blocking(self) -> list[SchemaChange]:
        return [change for change in self.changes if change.blocks_merge]


def diff_project(project_dir: Path, base_ref: str | None = None) -> Diff:
    """Compare the working tree's pipelines with those at `base_ref` (default: the merge base with main)."""
    ref = base_ref or default_base(project_dir)
    head = {declared.name: shape_of(declared) for declared in load_all(project_dir)}
    notes: list[str] = []
    with project_at(project_dir, ref) as base_dir:
        base = _base_shapes(base_dir, notes)
    today = datetime.now(UTC).date()
    changes: list[SchemaChange] = []
    for name in sorted(head.keys() | base.keys()):
        if name not in base:
            changes += new_pipeline(head[name])
        elif name not in head:
            changes += removed_pipeline(base[name])
        else:
            changes += compare(base[name], head[name], today)
    return Diff(ref, changes, notes)


def _base_shapes(base_dir: Path, notes: list[str]) -> dict[str, PublishedShape]:
    """Each base pipeline that still loads with today's rules; one that does not is compared as new (noted)."""
    shapes = {}
    for file in pipeline_files(base_dir):
        try:
            declared = load_pipeline(file, base_dir)
            shapes[declared.name] = shape_of(declared)
        except DeclarationError as error:
            notes.append(f"the base's {file.stem} could not be read ({error}); compared as a new pipeline")
    return shapes


def shape_of(declared: DeclaredPipeline) -> PublishedShape:
    spec = declared.spec
    return PublishedShape(
        pipeline=spec.name,
        destination=spec.destination,
        partition=spec.partition,
        columns=output_columns(declared),
        checks=contract_checks(declared.contract_path),
    )


def contract_checks(path: Path) -> dict[str, str]:
    """Each check of a Soda v4 contract under a name a person recognises, with its settings as canonical JSON.

    A column's declared type (`data_type`, …) counts as a check: the contract's `schema` check enforces it.
    """
    contract = yaml.safe_load(path.read_text())
    if not isinstance(contract, dict):
        raise DeclarationError(path.name, ["expected a Soda contract: a mapping with dataset:, columns:, checks:"])
    checks: dict[str, str] = {}
    if contract.get("filter") is not None:
        checks["contract filter"] = _canonical(contract["filter"])
    for column in contract.get("columns") or []:
        name = column.get("name")
        declared_type = {key: column[key] for key in _COLUMN_SCHEMA_KEYS if key in column}
        if declared_type:
            checks[f"declared type of column {name}"] = _canonical(declared_type)
        checks |= _named_checks(column.get("checks"), f"on column {name}")
    checks |= _named_checks(contract.get("checks"), "on the dataset")
    return checks


def _named_checks(items: Any, where: str) -> dict[str, str]:
    named: dict[str, str] = {}
    for item in items or []:
        for kind, settings in (item or {}).items():
            qualifier = settings.get("qualifier") if isinstance(settings, dict) else None
            label = f"{kind} check {where}" + (f" ({qualifier})" if qualifier else "")
            named[label] = _canonical(settings)
    return named


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
