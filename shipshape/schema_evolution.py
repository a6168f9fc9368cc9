"""Additive schema evolution: which differences between a published table and a new transform output publish may
make itself (a new column, a wider type), and which it must refuse (a removed, narrowed or otherwise changed column).

A new column is added inside the publish transaction, so earlier partitions read NULL in it until re-run; a wider
type holds every value the narrower one held, so nothing already published changes meaning. Anything else would
drop or reinterpret published data that consumers rely on: a person decides (`shipshape diff` says so before
merge), not the run. Columns are compared as both engines describe them in `information_schema.columns`
(`Warehouse.column_shapes`), so one rule serves DuckDB and PostgreSQL; PostgreSQL's owner functions hold the same
rule once more, in SQL, because the publisher may call them directly (`shipshape.warehouses.postgres_ddl`).
`shipshape.schema_changes` classifies the same kinds of change before merge, on declared types; what it calls a
widening, publish makes (and a little more that only warehouse types can say: varchar lengths, real, smallint).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shipshape.audit import CheckOutcome

# Ranks within a family: a type widens to any of higher rank. Both engines' spellings, lower case.
_INTEGER_RANKS = {"smallint": 1, "integer": 2, "bigint": 3, "hugeint": 4}
_FLOAT_RANKS = {"real": 1, "float": 1, "double precision": 2, "double": 2}
_DOUBLES = {"double precision", "double"}
_INTEGER_DIGITS = {"smallint": 5, "integer": 10, "bigint": 19, "hugeint": 39}
_DECIMALS = {"numeric", "decimal"}
_STRINGS = {"character varying", "varchar", "text"}

CHECK_TYPE = "schema_change"
"""`CheckOutcome.check_type` of the ledger outcomes that record a change publish made to the published table."""


@dataclass(frozen=True)
class ColumnShape:
    """One column as `information_schema.columns` describes it (`data_type` lower case, sizes where they apply)."""

    name: str
    data_type: str
    length: int | None = None  # character_maximum_length: varchar(n); None for text and DuckDB's VARCHAR
    precision: int | None = None  # numeric_precision/scale: only read for decimals (None: unconstrained)
    scale: int | None = None

    @property
    def type_text(self) -> str:
        if self.data_type in _DECIMALS and self.precision is not None:
            return f"{self.data_type}({self.precision},{self.scale})"
        if self.data_type in _STRINGS:  # unbounded: DuckDB's VARCHAR and PostgreSQL's text are the same type
            return "text" if self.length is None else f"{self.data_type}({self.length})"
        return self.data_type

    def same_type(self, other: ColumnShape) -> bool:
        return self.type_text == other.type_text


def widens(old: ColumnShape, new: ColumnShape) -> bool:
    """Whether `new`'s type holds every value of `old`'s and differs from it (smallint → integer → bigint,
    real → double, decimal with no fewer integer or fractional digits, varchar longer or text; and, as
    `shipshape diff` classifies declared types (`schema_changes.widens`), an integer to double or to a decimal
    with room for its digits)."""
    if old.same_type(new):
        return False
    if old.data_type in _INTEGER_DIGITS and new.data_type in _DOUBLES:
        return True
    if old.data_type in _INTEGER_DIGITS and new.data_type in _DECIMALS:
        if new.precision is None or new.scale is None:
            return True  # unconstrained
        return new.precision - new.scale >= _INTEGER_DIGITS[old.data_type]
    for ranks in (_INTEGER_RANKS, _FLOAT_RANKS):
        if old.data_type in ranks and new.data_type in ranks:
            return ranks[new.data_type] > ranks[old.data_type]
    if old.data_type in _DECIMALS and new.data_type in _DECIMALS:
        if old.precision is None or old.scale is None:
            return False  # unconstrained holds anything: nothing is wider
        if new.precision is None or new.scale is None:
            return True
        return new.scale >= old.scale and new.precision - new.scale >= old.precision - old.scale
    if old.data_type in _STRINGS and new.data_type in _STRINGS:
        return old.length is not None and (new.length is None or new.length > old.length)
    return False


@dataclass(frozen=True)
class TableEvolution:
    """How a transform output differs from the published table it is about to be published into."""

    added: tuple[ColumnShape, ...] = ()
    widened: tuple[tuple[ColumnShape, ColumnShape], ...] = ()
    removed: tuple[ColumnShape, ...] = ()
    changed: tuple[tuple[ColumnShape, ColumnShape], ...] = ()  # narrowed, or another type altogether

    @property
    def refused(self) -> bool:
        return bool(self.removed or self.changed)

    def __bool__(self) -> bool:
        return bool(self.added or self.widened or self.removed or self.changed)

    def describe(self) -> str:
        """One line, e.g. "added coupon_code (text); widened amount decimal(12,2) → decimal(14,2)"."""
        return "; ".join(
            [
                *(f"added {column.name} ({column.type_text})" for column in self.added),
                *(f"widened {old.name} {old.type_text} → {new.type_text}" for old, new in self.widened),
                *(f"removed {column.name} ({column.type_text})" for column in self.removed),
                *(f"changed {old.name} {old.type_text} → {new.type_text}" for old, new in self.changed),
            ]
        )

    def outcomes(self) -> list[CheckOutcome]:
        """What publish made, one ledger outcome per column (passed, never blocking): the change is on record
        next to the partition that brought it."""
        made = [(column.name, f"added ({column.type_text})") for column in self.added]
        made += [(old.name, f"widened {old.type_text} → {new.type_text}") for old, new in self.widened]
        return [
            CheckOutcome(f"{name} {CHECK_TYPE}", name, CHECK_TYPE, "passed", False, None, detail)
            for name, detail in made
        ]


def compare(published: Sequence[ColumnShape], produced: Sequence[ColumnShape]) -> TableEvolution:
    """The difference between the published table's columns and the transform output's (matched by name)."""
    by_name = {column.name: column for column in published}
    produced_names = {column.name for column in produced}
    pairs = [(by_name[column.name], column) for column in produced if column.name in by_name]
    return TableEvolution(
        added=tuple(column for column in produced if column.name not in by_name),
        widened=tuple((old, new) for old, new in pairs if widens(old, new)),
        removed=tuple(column for column in published if column.name not in produced_names),
        changed=tuple((old, new) for old, new in pairs if not old.same_type(new) and not widens(old, new)),
    )
