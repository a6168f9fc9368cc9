"""User SQL (transform steps, contract queries) must be exactly one read-only query: one SELECT or WITH … SELECT.

WHY: the platform wraps user SQL in its own statement (`CREATE TABLE … AS <sql>`, Soda's `failed_rows` query) and
runs it with the loader's rights. A `;` followed by a second statement, a data-modifying CTE, `SELECT … INTO`, or DDL
(a function or view in the audit schema that the publisher later reads with its own rights) would escape that
wrapper. Parsing with sqlglot turns every such text into a refusal that names what was found, before a warehouse
sees it. This is one layer: the adapters also refuse a second statement at the engine (`Warehouse.execute_one`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

# The sqlglot dialects of the engines user SQL may run on; a declaration is loaded before a warehouse is chosen.
DIALECTS = ("postgres", "duckdb")

# What a read-only query may not contain anywhere in its tree. `Command` is sqlglot's "statement I do not model"
# (DO, CALL, SET, RESET, ...), so it is refused rather than trusted.
_REFUSED: tuple[type[exp.Expr], ...] = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.Copy,
    exp.Into,
    exp.Lock,
    exp.Set,
    exp.Command,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Pragma,
    exp.Use,
    exp.Grant,
    exp.Revoke,
    exp.Attach,
    exp.Detach,
    exp.Install,
)

FIX = (
    "expected exactly one SELECT (or WITH … SELECT) that only reads; the platform creates and fills the tables "
    "itself, so remove every other statement"
)


def select_problem(sql: str, dialect: str) -> str | None:
    """None when `sql` is one read-only query in `dialect`; otherwise what was found, in words a person can act on."""
    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its "falling back to Command" warning is our refusal
    try:
        statements = [statement for statement in sqlglot.parse(sql, read=dialect) if statement is not None]
    except SqlglotError as error:
        return f"it could not be parsed as {dialect} SQL ({str(error).splitlines()[0]})"
    if len(statements) != 1:
        found = ", ".join(_name(statement) for statement in statements) or "nothing"
        return f"it holds {len(statements)} statements ({found})"
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        return f"it is a {_name(statement)} statement"
    for node in statement.walk():
        if isinstance(node, _REFUSED):
            return f"it contains {_name(node)} ({node.sql(dialect=dialect)[:80]!r})"
    return None


def select_problem_in_any(sql: str, dialects: Iterable[str] = DIALECTS) -> str | None:
    """None if `sql` is one read-only query in some dialect; else the problem in the first one.

    Used when loading a declaration, before a warehouse is chosen: a query in one engine's own syntax is accepted
    here, and checked again in that engine's dialect right before it runs.
    """
    problems = [select_problem(sql, dialect) for dialect in dialects]
    return None if None in problems else problems[0]


def _name(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    return node.key.upper()
