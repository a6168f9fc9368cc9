"""Finds and loads pipeline declarations, turning every mistake into a message a person can act on.

Errors name the file, the field, the value found and what is expected; an unknown key suggests the
closest valid one. Files a declaration points to (contract, SQL) must exist, and SQL placeholders
must be ones the platform fills in.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from shipshape.declaration import Pipeline
from shipshape.declaration_base import IDENTIFIER
from shipshape.errors import DeclarationError
from shipshape.settings import load_settings
from shipshape.unions import member_for, union_tags
from shipshape.user_sql import FIX, select_problem_in_any

CONTRACT_FOLDER = "checks"
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
BUILTIN_PLACEHOLDERS = frozenset({"raw", "this"})


@dataclass(frozen=True)
class DeclaredPipeline:
    """A validated declaration with the files it refers to, resolved against the project folder."""

    spec: Pipeline
    file: Path
    project_dir: Path

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def contract_path(self) -> Path:
        return self.project_dir / self.spec.contract

    @property
    def transform_paths(self) -> list[Path]:
        return [self.project_dir / path for path in self.spec.transform]


def load_pipeline(file: Path, project_dir: Path | None = None) -> DeclaredPipeline:
    """Load and fully validate one declaration file, or raise `DeclarationError` listing every problem."""
    project_dir = project_dir or load_settings().project_dir
    shown = _display_path(file, project_dir)
    try:
        raw = yaml.safe_load(file.read_text())
    except OSError as error:
        raise DeclarationError(shown, [f"cannot read the file: {error.strerror}"]) from None
    except yaml.YAMLError as error:
        raise DeclarationError(shown, [f"not valid YAML: {error}".replace("\n", " ")]) from None
    if not isinstance(raw, dict):
        raise DeclarationError(shown, ["expected a mapping of fields at the top level (name:, owner:, source:, ...)"])
    try:
        spec = Pipeline.model_validate(raw)
    except ValidationError as error:
        tags = union_tags(Pipeline)
        raise DeclarationError(shown, [_describe(item, raw, tags) for item in error.errors()]) from None
    problems = _file_problems(spec, project_dir)
    if spec.name != file.stem:
        problems.append(f"field 'name': got {spec.name!r}; expected the file name {file.stem!r}")
    if problems:
        raise DeclarationError(shown, problems)
    return DeclaredPipeline(spec=spec, file=file, project_dir=project_dir)


def pipeline_files(project_dir: Path | None = None) -> list[Path]:
    project_dir = project_dir or load_settings().project_dir
    return sorted((project_dir / "pipelines").glob("*.yaml"))


def load_all(project_dir: Path | None = None) -> list[DeclaredPipeline]:
    """Every declaration in the project; the first invalid one raises, as do two pipelines sharing a table."""
    declared = [load_pipeline(file, project_dir) for file in pipeline_files(project_dir)]
    check_unique_destinations(declared)
    return declared


def check_unique_destinations(declared: list[DeclaredPipeline]) -> None:
    """Two pipelines publishing to one table would overwrite each other's partitions and share its grants."""
    owners: dict[tuple[str, str], DeclaredPipeline] = {}
    for pipeline in declared:
        destination = pipeline.spec.destination
        target = (destination.schema_name, destination.table)
        first = owners.setdefault(target, pipeline)
        if first is not pipeline:
            raise DeclarationError(
                _display_path(pipeline.file, pipeline.project_dir),
                [
                    f"field 'destination': {target[0]}.{target[1]} is already the destination of "
                    f"{_display_path(first.file, first.project_dir)}; each pipeline publishes its own table — "
                    "change destination.table or destination.schema in one of them"
                ],
            )


def find_pipeline(name: str, project_dir: Path | None = None) -> DeclaredPipeline:
    """The pipeline called `name` (a flow parameter or CLI argument: an identifier, never a path)."""
    project_dir = project_dir or load_settings().project_dir
    if not re.fullmatch(IDENTIFIER, name):
        raise DeclarationError(
            "pipelines/",
            [f"pipeline name {name!r} is not a pipeline name; expected letters, digits and _ ({IDENTIFIER})"],
        )
    file = project_dir / "pipelines" / f"{name}.yaml"
    if not file.exists():
        known = [path.stem for path in pipeline_files(project_dir)]
        raise DeclarationError(
            _display_path(file, project_dir),
            [f"no pipeline named {name!r}; declared pipelines: {', '.join(known) or 'none'}"],
        )
    return load_pipeline(file, project_dir)


def _file_problems(spec: Pipeline, project_dir: Path) -> list[str]:
    problems = []
    contract_folder = project_dir / CONTRACT_FOLDER
    if not _inside(project_dir / spec.contract, contract_folder):
        problems.append(_outside("contract", spec.contract, f"{CONTRACT_FOLDER}/"))
    elif not (project_dir / spec.contract).is_file():
        problems.append(
            f"field 'contract': file {spec.contract!r} does not exist; expected a Soda contract under checks/"
        )
    sql_folder = project_dir / "pipelines" / spec.name
    step_names: set[str] = set()
    for index, sql_file in enumerate(spec.transform):
        path = project_dir / sql_file
        field = f"transform[{index}]"
        if not _inside(path, sql_folder):
            problems.append(_outside(field, sql_file, f"pipelines/{spec.name}/"))
            continue
        if not path.is_file():
            problems.append(f"field '{field}': file {sql_file!r} does not exist")
            continue
        allowed = BUILTIN_PLACEHOLDERS | step_names
        text = path.read_text()
        for placeholder in PLACEHOLDER.findall(text):
            if placeholder not in allowed:
                problems.append(
                    f"field '{field}': {sql_file} uses {{{{ {placeholder} }}}}; expected one of "
                    + ", ".join(f"{{{{ {name} }}}}" for name in sorted(allowed))
                )
        # Each placeholder stands for a table name, so its bare name parses as the table it will be.
        if (problem := select_problem_in_any(PLACEHOLDER.sub(r"\1", text))) is not None:
            problems.append(f"field '{field}': {sql_file} is not one read-only query: {problem}; {FIX}")
        step_names.add(path.stem)
    return problems


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path`, symlinks and `..` resolved, lies inside `folder`: a declaration reads only its own files."""
    return path.resolve().is_relative_to(folder.resolve())


def _outside(field: str, value: str, folder: str) -> str:
    return f"field {field!r}: got {value!r}; expected a file under {folder} (after resolving '..' and symlinks)"


def _describe(item: ErrorDetails, raw: dict[str, Any], tags: frozenset[str]) -> str:
    """One line for one pydantic error: field, value found, what is expected (without pydantic's union tags)."""
    location = [part for part in item["loc"] if not (isinstance(part, str) and part in tags)]
    field = ".".join(str(part) for part in location) or "(top level)"
    if item["type"] == "extra_forbidden":
        parent, key = location[:-1], location[-1]
        allowed = _allowed_keys(parent, raw)
        hint = difflib.get_close_matches(str(key), allowed, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else f"; allowed keys: {', '.join(allowed)}"
        return f"unknown key {field!r}{suggestion}"
    if item["type"] == "missing":
        return f"field {field!r} is required"
    message = item["msg"].removeprefix("Value error, ")
    return f"field {field!r}: got {item.get('input')!r}; {message}"


def _allowed_keys(parent: list[Any], raw: dict[str, Any]) -> list[str]:
    model: type[BaseModel] = Pipeline
    node: Any = raw
    for part in parent:
        node = node.get(part) if isinstance(node, dict) else None
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        member = member_for(field, node)
        if member is None:
            return []
        model = member
    return [field.alias or name for name, field in model.model_fields.items()]


def _display_path(file: Path, project_dir: Path) -> str:
    try:
        return str(file.resolve().relative_to(project_dir.resolve()))
    except ValueError:
        return str(file)
