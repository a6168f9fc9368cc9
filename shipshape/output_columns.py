"""The columns and portable types a pipeline publishes, derived from its declaration and SQL without a warehouse.

WHY: a breaking change (a column removed, renamed or narrowed) should be caught in the pull request, not by the
nightly publish. The published table is exactly the last transform step's output, and that output follows from
the declared source columns (after PII masking: hashed columns are text, dropped ones gone) and the SQL, so
sqlglot can type it: each step is qualified and annotated against the tables it reads (`{{ raw }}`, earlier
steps). `{{ this }}` (the published table) has no declared columns: what a step reads from it is untyped (None).
"""

from __future__ import annotations

from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from shipshape.catalog import PLACEHOLDER, DeclaredPipeline
from shipshape.column_types import ColumnType
from shipshape.errors import DeclarationError
from shipshape.pii import HASHED_TYPE
from shipshape.user_sql import DIALECTS

OutputColumns = dict[str, ColumnType | None]

_SIMPLE: dict[exp.DType, str] = {
    exp.DType.TINYINT: "integer",
    exp.DType.SMALLINT: "integer",
    exp.DType.INT: "integer",
    exp.DType.BIGINT: "bigint",
    exp.DType.FLOAT: "double",
    exp.DType.DOUBLE: "double",
    exp.DType.BOOLEAN: "boolean",
    exp.DType.TEXT: "text",
    exp.DType.VARCHAR: "text",
    exp.DType.CHAR: "text",
    exp.DType.DATE: "date",
    exp.DType.TIMESTAMP: "timestamp",
    exp.DType.TIMESTAMPTZ: "timestamptz",
}


def loaded_columns(declared: DeclaredPipeline) -> OutputColumns:
    """What `{{ raw }}` holds: the declared source columns after PII masking."""
    rules = declared.spec.pii.columns if declared.spec.pii else {}
    return {
        name: HASHED_TYPE if rules.get(name) == "hash" else kind
        for name, kind in declared.spec.column_types.items()
        if rules.get(name) != "drop"
    }


def output_columns(declared: DeclaredPipeline) -> OutputColumns:
    """The published columns in order, each with its portable type (None where sqlglot cannot tell).

    Raises `DeclarationError` naming the SQL file when a step cannot be derived (a column the tables it reads do
    not have, SQL sqlglot cannot parse): the run would fail on it too.
    """
    tables: dict[str, OutputColumns] = {"raw": loaded_columns(declared)}
    output = tables["raw"]
    for path in declared.transform_paths:
        output = _step_columns(declared, path, tables)
        tables[path.stem] = output
    return output


def _step_columns(declared: DeclaredPipeline, path: Path, tables: dict[str, OutputColumns]) -> OutputColumns:
    """One step's output, typed in the first engine dialect that reads it (a step may use one engine's syntax)."""
    text = PLACEHOLDER.sub(lambda match: match.group(1), path.read_text().strip().rstrip(";"))
    schema: dict[str, object] = {
        name: {column: str(kind or "unknown") for column, kind in cols.items()} for name, cols in tables.items()
    }
    problems = []
    for dialect in DIALECTS:
        try:
            query = qualify(sqlglot.parse_one(text, read=dialect), schema=schema, dialect=dialect)
            typed = annotate_types(query, schema=schema, dialect=dialect)
        except SqlglotError as error:
            problems.append(str(error).splitlines()[0])
            continue
        if isinstance(typed, exp.Query):  # loading the declaration checked it is one query; this tells mypy
            return {select.alias_or_name: portable_type(select.type) for select in typed.selects}
        problems.append("it is not a query")
    shown = path.relative_to(declared.project_dir) if path.is_relative_to(declared.project_dir) else path
    raise DeclarationError(
        str(shown),
        [
            f"cannot derive the transform's output columns ({problems[0]}); each column must come from a declared "
            "source column or an earlier step"
        ],
    )


def portable_type(data_type: exp.DataType | None) -> ColumnType | None:
    """sqlglot's type as the declaration vocabulary (`column_types`); None for a type outside it or unknown."""
    if data_type is None:
        return None
    if data_type.this == exp.DType.DECIMAL:
        params = [param.this.this for param in data_type.expressions if isinstance(param.this, exp.Literal)]
        if len(params) == 2:
            return ColumnType("decimal", int(params[0]), int(params[1]))
        return None
    name = _SIMPLE.get(data_type.this)
    return ColumnType(name) if name else None
