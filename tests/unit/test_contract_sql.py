"""A contract's custom SQL is one read-only query: a second statement in it is refused before any data is read."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shipshape.audit import check_contract
from shipshape.errors import DeclarationError
from shipshape.settings import PACKAGE_ROOT


def _contract_with(tmp_path: Path, check: dict[str, object]) -> Path:
    contract = yaml.safe_load((PACKAGE_ROOT / "checks" / "fct_orders.yaml").read_text())
    contract["checks"].append(check)
    path = tmp_path / "fct_orders.yaml"
    path.write_text(yaml.safe_dump(contract, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("check", "found"),
    [
        (
            {"failed_rows": {"query": "SELECT * FROM ${var.dataset_path}; DELETE FROM analytics.fct_orders"}},
            "'checks[3].failed_rows.query': 'SELECT * FROM ${var.dataset_path}; DELETE FROM analytics.fct_orders' "
            "is not one read-only query: it holds 2 statements (SELECT, DELETE)",
        ),
        (
            {"failed_rows": {"expression": "amount < 0); CREATE FUNCTION audit.f() RETURNS int AS 'x'; --"}},
            "'checks[3].failed_rows.expression'",
        ),
        (
            {"metric": {"query": "WITH gone AS (DELETE FROM platform.publish_ledger RETURNING 1) SELECT 1",
                        "threshold": {"must_be": 0}}},
            "contains DELETE",
        ),
    ],
)  # fmt: skip
def test_custom_sql_that_escapes_one_select_is_refused(tmp_path: Path, check: dict[str, object], found: str) -> None:
    with pytest.raises(DeclarationError) as caught:
        check_contract(_contract_with(tmp_path, check))
    assert "fct_orders.yaml" in str(caught.value)
    assert found in str(caught.value)
    assert "expected exactly one SELECT (or WITH … SELECT)" in str(caught.value)


def test_a_read_only_failed_rows_query_is_accepted(tmp_path: Path) -> None:
    query = "SELECT * FROM ${var.dataset_path} WHERE amount < 0 AND status <> 'cancelled;'"
    check_contract(_contract_with(tmp_path, {"failed_rows": {"query": query}}))
