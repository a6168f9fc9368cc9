"""A merge publishes exactly one row per key: NULL and repeated keys in the transform output block at the gate.

`load.mode: merge` deletes the published rows whose keys match a new row, then inserts the new rows. A row with
a NULL key matches nothing (`=` is never true for NULL), so it is inserted again by every re-run; two new rows
with one key are both inserted. Both are counted in the audit output through the warehouse adapter and reported
as `CheckOutcome`s next to the contract's, so they block like any failed check, whatever the contract says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shipshape.audit import CheckOutcome
from shipshape.declaration import Load
from shipshape.warehouses import Warehouse

NULL_KEY_CHECK = "merge key: not NULL"
REPEATED_KEY_CHECK = "merge key: unique"


@dataclass(frozen=True)
class KeyCounts:
    """What is wrong with the keys of a merge's output: rows with a NULL key part, keys on more than one row."""

    null_rows: int
    repeated_keys: int
    repeated_rows: int  # all rows of the repeated keys (2 keys on 5 rows: 5)


def merge_key_checks(warehouse: Warehouse, load: Load, schema: str, table: str) -> list[CheckOutcome]:
    """The key checks of `schema.table` (a partition's audit output) when it is published by merge; none otherwise."""
    if load.mode != "merge":
        return []
    repeated_keys, repeated_rows = warehouse.count_repeated_keys(schema, table, load.key)
    counts = KeyCounts(warehouse.count_null_keys(schema, table, load.key), repeated_keys, repeated_rows)
    return key_checks(load.key, counts)


def key_checks(keys: Sequence[str], counts: KeyCounts) -> list[CheckOutcome]:
    """Both checks, passed or failed, so the ledger shows they ran."""
    named = f"merge key ({', '.join(keys)})"
    if counts.null_rows:
        null_detail = (
            f"{named} is NULL in {counts.null_rows} rows; a NULL key matches no published row, so every re-run "
            "would insert these rows again: fix the transform (or the key) so that no key column is NULL"
        )
    else:
        null_detail = f"{named} is never NULL"
    if counts.repeated_keys:
        repeated_detail = (
            f"{named} repeats: {counts.repeated_keys} keys, {counts.repeated_rows} rows; a merge publishes one row "
            "per key: make the transform return one row per key (e.g. the latest), or declare a finer key"
        )
    else:
        repeated_detail = f"{named} is unique"
    column = keys[0] if len(keys) == 1 else None
    return [
        _check(NULL_KEY_CHECK, column, counts.null_rows, null_detail),
        _check(REPEATED_KEY_CHECK, column, counts.repeated_keys, repeated_detail),
    ]


def _check(name: str, column: str | None, measured: int, detail: str) -> CheckOutcome:
    # No threshold text: the one-line summary of a failure then shows the detail, which says what to fix.
    return CheckOutcome(
        name=name,
        column=column,
        check_type="merge_key",
        outcome="failed" if measured else "passed",
        blocking=bool(measured),
        measured=measured,
        detail=detail,
    )
