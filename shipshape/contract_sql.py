"""The SQL a Soda contract carries (`query:`, `keys_query:`, `expression:`, `filter:`) is held to the user-SQL rule.

WHY: Soda pastes these texts into the statements it sends with the loader's connection, without parameters, so on
PostgreSQL a `;` in them would run a second statement (the simple protocol runs them all). A query must be one
read-only SELECT; an expression or a filter must stay one within the SELECT Soda builds around it.
"""

from __future__ import annotations

import re

from shipshape.user_sql import FIX, select_problem_in_any

# Soda's `${var.x}` / `${env.X}` references, filled in as text before the SQL runs: read as a name here.
_VARIABLE = re.compile(r"\$\{[^}]*\}")

# Where each kind of text lands in Soda's SQL, as a complete query to parse.
_WRAPPERS = {
    "query": "{}",
    "keys_query": "{}",
    "expression": "SELECT ({})",
    "filter": "SELECT 1 WHERE ({})",
}


def custom_sql_problems(node: object, where: str = "") -> list[str]:
    """Every custom SQL text in a parsed contract that is not one read-only query, by its place in the file."""
    problems: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            place = f"{where}.{key}" if where else str(key)
            if key in _WRAPPERS and isinstance(value, str):
                sql = _WRAPPERS[key].format(_VARIABLE.sub("soda_variable", value))
                if (problem := select_problem_in_any(sql)) is not None:
                    problems.append(f"'{place}': {value.strip()[:80]!r} is not one read-only query: {problem}; {FIX}")
            else:
                problems += custom_sql_problems(value, place)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            problems += custom_sql_problems(item, f"{where}[{index}]")
    return problems
