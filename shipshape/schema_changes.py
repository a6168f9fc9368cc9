"""Classifies what a change to a pipeline does to its published table's readers, and what the next run does.

WHY: a column removed, renamed or narrowed breaks every query that reads it, and so far it surfaced only when the
publish failed in production. Comparing what a pipeline publishes before and after a change (`PublishedShape`:
the destination, the derived output columns, the contract's checks) says, before merge, whether the change is
additive (readers keep working), breaking (they do not: bump `destination.version`, which publishes a new table
and keeps the old one for a declared period) or a contract change (the gate blocks more, or less, from the next
run). A breaking change with a version bump is versioned: readers of the old table are not affected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from shipshape.column_types import ColumnType
from shipshape.declaration import Destination, Partition
from shipshape.names import versioned_table
from shipshape.output_columns import OutputColumns

ChangeKind = Literal["additive", "breaking", "contract-tightening", "contract-loosening", "pipeline-removed"]

# A type change readers survive: every value of the old type is a value of the new one (and compares the same).
_WIDER_INTEGER = {"integer": {"bigint", "double"}, "bigint": {"double"}}
_INTEGER_DIGITS = {"integer": 10, "bigint": 19}


@dataclass(frozen=True)
class SchemaChange:
    """One change to one pipeline's published table, its class, and what the next run does about it."""

    pipeline: str
    kind: ChangeKind
    subject: str  # "column status removed"
    next_run: str  # what happens on the next run, or the fix
    versioned: bool = False  # a breaking change that a destination.version bump takes care of

    @property
    def blocks_merge(self) -> bool:
        """An unversioned breaking change: readers of the published table would break."""
        return self.kind == "breaking" and not self.versioned

    def line(self) -> str:
        label = "breaking, versioned" if self.kind == "breaking" and self.versioned else self.kind
        return f"{label:<20} {self.pipeline}: {self.subject}: {self.next_run}"


@dataclass(frozen=True)
class PublishedShape:
    """What a pipeline publishes, as far as its readers can tell: where, which columns, and what the gate checks."""

    pipeline: str
    destination: Destination
    partition: Partition | None
    columns: OutputColumns
    checks: dict[str, str]  # contract check (`missing check on column status`) -> its settings, canonical text

    @property
    def target(self) -> str:
        return f"{self.destination.schema_name}.{self.destination.published_table}"


def new_pipeline(head: PublishedShape) -> list[SchemaChange]:
    return [SchemaChange(head.pipeline, "additive", "new pipeline", f"the first run creates {head.target}")]


def removed_pipeline(base: PublishedShape) -> list[SchemaChange]:
    """Reported, not refused: removing a pipeline is deliberate, and its table's data stays where it is."""
    return [
        SchemaChange(
            base.pipeline,
            "pipeline-removed",
            "pipeline removed",
            f"{base.target} is no longer published (its data stays); make apply prunes its deployment and alerts",
        )
    ]


def compare(base: PublishedShape, head: PublishedShape, today: date) -> list[SchemaChange]:
    """Every change from `base` to `head` of one pipeline, in the order a reviewer reads them."""
    bumped = head.destination.version > base.destination.version
    changes = _destination_changes(base, head, today)
    changes += _column_changes(base, head, bumped, today)
    changes += _contract_changes(base, head)
    return changes


def _destination_changes(base: PublishedShape, head: PublishedShape, today: date) -> list[SchemaChange]:
    old, new, name = base.destination, head.destination, head.pipeline
    changes: list[SchemaChange] = []
    if (old.schema_name, old.table) != (new.schema_name, new.table):
        changes.append(
            SchemaChange(
                name,
                "breaking",
                f"destination moved from {base.target} to {head.target}",
                f"readers of {base.target} stop getting new data; keep destination.table and schema and bump "
                f"destination.version to {old.version + 1} instead",
            )
        )
    if new.version < old.version:
        changes.append(
            SchemaChange(
                name,
                "breaking",
                f"destination.version lowered from {old.version} to {new.version}",
                f"readers of {base.target} stop getting new data; versions only go up",
            )
        )
    elif new.version > old.version:
        changes.append(
            SchemaChange(
                name,
                "additive",
                f"destination.version {old.version} -> {new.version}",
                f"the next run publishes {head.target}, only the partitions it runs: backfill the history into it "
                f"(mode=all); {base.target} keeps its data and grants until {new.previous_version_until}, then "
                "make apply drops it",
            )
        )
    if (base.partition and (base.partition.column, base.partition.grain)) != (
        head.partition and (head.partition.column, head.partition.grain)
    ):
        changes.append(
            _breaking(
                name,
                "partition changed",
                "what a re-run replaces in the published table no longer matches what was published",
                head,
                new.version > old.version,
                today,
            )
        )
    return changes


def _column_changes(base: PublishedShape, head: PublishedShape, bumped: bool, today: date) -> list[SchemaChange]:
    name, target = head.pipeline, head.target
    removed = [column for column in base.columns if column not in head.columns]
    added = [column for column in head.columns if column not in base.columns]
    changes: list[SchemaChange] = []
    for column in removed:
        renamed = [new for new in added if head.columns[new] == base.columns[column]]
        hint = f" (renamed to {renamed[0]}?)" if len(renamed) == 1 else ""
        effect = f"readers of {base.target} selecting it would fail, and the next publish is refused"
        changes.append(_breaking(name, f"column {column} removed{hint}", effect, head, bumped, today))
    for column in added:
        effect = (
            f"{target} has it from its first publish"
            if bumped
            else f"{target} gains it on the next publish; earlier partitions read NULL until re-run"
        )
        changes.append(SchemaChange(name, "additive", f"column {column} added ({head.columns[column]})", effect))
    for column in base.columns:
        old, new = base.columns[column], head.columns.get(column)
        if column not in head.columns or old is None or new is None or old == new:
            continue
        subject = f"column {column} type {old} -> {new}"
        if widens(old, new):
            effect = f"readers keep working; {target} keeps {old} values in partitions published before"
            changes.append(SchemaChange(name, "additive", f"{subject} (widened)", effect))
        else:
            effect = f"readers of {base.target} comparing or casting it may fail or change results"
            changes.append(_breaking(name, f"{subject} (narrowed or changed)", effect, head, bumped, today))
    return changes


def _breaking(
    pipeline: str, subject: str, effect: str, head: PublishedShape, bumped: bool, today: date
) -> SchemaChange:
    """A breaking change: handled by the version bump if there is one, else the fix to apply."""
    destination = head.destination
    if bumped:
        kept = f"{destination.schema_name}.{destination.previous_table}"
        return SchemaChange(
            pipeline,
            "breaking",
            subject,
            f"{head.target} is built without the old shape; {kept} keeps it for its readers until "
            f"{destination.previous_version_until}",
            versioned=True,
        )
    return SchemaChange(pipeline, "breaking", subject, f"{effect}. Fix: {version_bump(pipeline, destination, today)}")


def version_bump(pipeline: str, destination: Destination, today: date) -> str:
    """The fix for a breaking change, in words: the next version, where it publishes, what happens to this one."""
    schema, current = destination.schema_name, destination.published_table
    following = versioned_table(destination.table, destination.version + 1)
    return (
        f"bump destination.version to {destination.version + 1} with previous_version_until (e.g. "
        f"{today + timedelta(days=30)}) in pipelines/{pipeline}.yaml: the next runs publish {schema}.{following} "
        f"and {schema}.{current} keeps its data and grants until that date"
    )


def widens(old: ColumnType, new: ColumnType) -> bool:
    """Every value of `old` is a value of `new`: integer -> bigint, a decimal with more room on both sides."""
    if new.name in _WIDER_INTEGER.get(old.name, set()):
        return True
    if new.name != "decimal" or new.precision is None or new.scale is None:
        return False
    new_integer_digits = new.precision - new.scale
    if old.name in _INTEGER_DIGITS:
        return new_integer_digits >= _INTEGER_DIGITS[old.name]
    if old.name == "decimal" and old.precision is not None and old.scale is not None:
        return new.scale >= old.scale and new_integer_digits >= old.precision - old.scale
    return False


def _contract_changes(base: PublishedShape, head: PublishedShape) -> list[SchemaChange]:
    """Checks added or changed tighten the gate (conservatively: a changed threshold may block more); checks
    removed loosen it. Published partitions are never re-checked by a contract change."""
    name, changes = head.pipeline, list[SchemaChange]()
    for check in head.checks:
        if check not in base.checks:
            effect = "the gate applies it from the next run; published partitions are not re-checked until re-run"
            changes.append(SchemaChange(name, "contract-tightening", f"{check} added", effect))
        elif head.checks[check] != base.checks[check]:
            effect = "treated as tightening: from the next run it may block a partition that passed before"
            changes.append(SchemaChange(name, "contract-tightening", f"{check} changed", effect))
    for check in base.checks:
        if check not in head.checks:
            effect = "the next run's gate no longer checks it"
            changes.append(SchemaChange(name, "contract-loosening", f"{check} removed", effect))
    return changes
