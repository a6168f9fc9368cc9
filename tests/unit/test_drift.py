"""Source factory: drift names every missing or retyped declared column at once; readers are chosen by kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.secrets import prefect_secret
from shipshape.column_types import ColumnType
from shipshape.errors import SchemaDriftError
from shipshape.sources.factory import check_drift, open_source
from shipshape.sources.files import FileSource, PartitionFileSource
from shipshape.sources.http import HttpJsonSource, HttpSource
from shipshape.sources.sql import SqlSource, SqlTableSource

DECLARED = {name: ColumnType.parse(text) for name, text in
            {"id": "bigint", "amount": "decimal(12,2)", "created_at": "timestamptz", "note": "text"}.items()}
MATCHING = {"id": "integer", "amount": "number", "created_at": "timestamp", "note": "text"}


def test_matching_source_passes_and_reports_no_new_columns() -> None:
    assert check_drift(DECLARED, MATCHING, "table orders") == []


def test_new_columns_are_returned_sorted_not_raised() -> None:
    observed = {**MATCHING, "zeta": "text", "alpha": None}

    assert check_drift(DECLARED, observed, "table orders") == ["alpha", "zeta"]


def test_missing_column_is_named_with_its_type_and_the_columns_found() -> None:
    observed = {name: family for name, family in MATCHING.items() if name != "note"}

    with pytest.raises(SchemaDriftError) as raised:
        check_drift(DECLARED, observed, "table orders")

    assert "column 'note' declared as text is missing from table orders; found columns: amount, created_at, id" in str(
        raised.value
    )


def test_renamed_column_fails_as_missing_and_names_the_new_name_among_found() -> None:
    observed = {**{k: v for k, v in MATCHING.items() if k != "amount"}, "amount_usd": "number"}

    with pytest.raises(SchemaDriftError) as raised:
        check_drift(DECLARED, observed, "orders.csv")

    message = str(raised.value)
    assert "column 'amount' declared as decimal(12,2) is missing from orders.csv" in message
    assert "amount_usd" in message


def test_changed_type_names_declared_type_family_and_found_family() -> None:
    with pytest.raises(SchemaDriftError) as raised:
        check_drift(DECLARED, {**MATCHING, "amount": "text"}, "table orders")

    assert "column 'amount': declared decimal(12,2) (number), found text" in str(raised.value)


def test_every_problem_is_reported_in_one_error() -> None:
    observed = {"amount": "text", "created_at": "boolean", "note": "text"}

    with pytest.raises(SchemaDriftError) as raised:
        check_drift(DECLARED, observed, "table orders")

    message = str(raised.value)
    assert "column 'id' declared as bigint is missing" in message
    assert "column 'amount': declared decimal(12,2) (number), found text" in message
    assert "column 'created_at': declared timestamptz (timestamp), found boolean" in message


@pytest.mark.parametrize(
    ("declared", "observed"),
    [("double", "integer"), ("decimal(10,2)", "integer"), ("bigint", None), ("date", None), ("bigint", "null")],
)
def test_compatible_families_pass(declared: str, observed: str | None) -> None:
    assert check_drift({"x": ColumnType.parse(declared)}, {"x": observed}, "source") == []


@pytest.mark.parametrize(
    ("declared", "observed"),
    [("bigint", "number"), ("integer", "text"), ("timestamp", "date"), ("text", "integer"), ("boolean", "json")],
)
def test_incompatible_families_fail(declared: str, observed: str) -> None:
    with pytest.raises(SchemaDriftError, match=f"found {observed}"):
        check_drift({"x": ColumnType.parse(declared)}, {"x": observed}, "source")


@pytest.mark.parametrize(
    ("spec", "reader"),
    [
        (SqlSource(kind="sql", url="sqlite:///{data_dir}/x.db", table="t", columns={"a": "text"}), SqlTableSource),
        (FileSource(kind="file", path="{data_dir}/a.csv", format="csv", columns={"a": "text"}), PartitionFileSource),
        (HttpSource(kind="http", url="https://api.example.com/a", columns={"a": "text"}), HttpJsonSource),
    ],
)
def test_open_source_picks_the_reader_for_the_kind(spec: SqlSource | FileSource | HttpSource, reader: type) -> None:
    assert isinstance(open_source(spec, Path("/data"), prefect_secret), reader)
