"""User SQL is one read-only query: every way out of the platform's `CREATE TABLE … AS` wrapper is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shipshape.catalog import load_pipeline
from shipshape.errors import DeclarationError
from shipshape.settings import PACKAGE_ROOT
from shipshape.user_sql import DIALECTS, select_problem

EXAMPLE = PACKAGE_ROOT / "pipelines" / "shop_orders.yaml"

ESCAPES = {
    "second statement": ("SELECT 1; DROP TABLE analytics.fct_orders", "holds 2 statements (SELECT, DROP)"),
    "data-modifying CTE": ("WITH d AS (DELETE FROM analytics.t RETURNING *) SELECT * FROM d", "contains DELETE"),
    "insert CTE": ("WITH d AS (INSERT INTO platform.ledger VALUES (1) RETURNING *) SELECT 1", "contains INSERT"),
    "select into": ("SELECT * INTO audit.copy FROM analytics.t", "contains INTO"),
    "function": ("CREATE FUNCTION audit.f() RETURNS int AS 'SELECT 1' LANGUAGE sql", "is a CREATE statement"),
    "view": ("CREATE VIEW audit.v AS SELECT 1", "is a CREATE statement"),
    "copy": ("COPY analytics.t TO '/tmp/out.csv'", "is a COPY statement"),
    "set role": ("SET ROLE shipshape_publisher", "is a SET statement"),
    "reset": ("RESET ROLE", "is a RESET statement"),
    "call": ("CALL audit.p()", "is a CALL statement"),
    "row lock": ("SELECT * FROM analytics.t FOR UPDATE", "contains LOCK"),
}


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("case", ESCAPES)
def test_an_escape_from_one_select_is_named(case: str, dialect: str) -> None:
    sql, found = ESCAPES[case]
    assert found in (select_problem(sql, dialect) or "")


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1;",
        "WITH a AS (SELECT 1 AS x) SELECT x FROM a",
        "(SELECT 1) UNION ALL SELECT 2",
        "SELECT ';DROP TABLE t' AS text, 'a''; b' AS quoted",
    ],
)
def test_a_read_only_query_passes(sql: str, dialect: str) -> None:
    assert select_problem(sql, dialect) is None


def test_do_block_is_refused_in_every_dialect() -> None:
    assert all(select_problem("DO $$ BEGIN DROP TABLE t; END $$", dialect) for dialect in DIALECTS)


def test_validate_names_the_file_what_was_found_and_the_fix(tmp_path: Path) -> None:
    for relative in ["checks/fct_orders.yaml", "pipelines/shop_orders/fct_orders.sql"]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text((PACKAGE_ROOT / relative).read_text())
    file = tmp_path / "pipelines" / "shop_orders.yaml"
    file.write_text(yaml.safe_dump(yaml.safe_load(EXAMPLE.read_text())))
    (tmp_path / "pipelines/shop_orders/fct_orders.sql").write_text(
        "SELECT * FROM {{ raw }};\nCREATE FUNCTION audit.f() RETURNS int AS 'SELECT 1' LANGUAGE sql"
    )
    with pytest.raises(DeclarationError) as caught:
        load_pipeline(file, tmp_path)
    message = str(caught.value)
    assert "pipelines/shop_orders.yaml" in message
    assert "field 'transform[0]': pipelines/shop_orders/fct_orders.sql is not one read-only query" in message
    assert "holds 2 statements (SELECT, CREATE)" in message
    assert "expected exactly one SELECT (or WITH … SELECT)" in message
