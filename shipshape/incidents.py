"""Incidents: one open/closed state per pipeline and kind, so an alert fires once and its recovery once.

Monitors evaluate every few minutes and every published partition; only a change of state is worth a
message. The state lives in the warehouse next to the ledger (`platform.incidents`), and a change is one
conditional update (`Warehouse.conditional_update`), so two runs that see the same breach at the same moment
open it once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeAlias

from shipshape.alerts import Transition, incident_triggers
from shipshape.ledger import INCIDENT_TABLE
from shipshape.warehouses import PLATFORM_SCHEMA, Warehouse

Kind: TypeAlias = str
"""An incident kind: the anchor of an alert kind with an `IncidentTrigger` (`shipshape.alerts`)."""


def check_kind(kind: str) -> None:
    """A `ValueError` naming the registered incident kinds for any other: no row for an alert nobody can send."""
    known = incident_triggers()
    if kind not in known:
        raise ValueError(f"unknown incident kind {kind!r}; registered in shipshape/alerts.py: {', '.join(known)}")


def transition(warehouse: Warehouse, pipeline: str, kind: Kind, breached: bool, detail: str) -> Transition | None:
    """Record the latest observation; returns "opened"/"resolved" when it changed the state, else None."""
    check_kind(kind)
    table = warehouse.qualified(PLATFORM_SCHEMA, INCIDENT_TABLE)
    warehouse.execute(
        f"INSERT INTO {table} (pipeline, kind, is_open, changed_at, detail) SELECT ?, ?, false, ?, '' "
        f"WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE pipeline = ? AND kind = ?)",
        [pipeline, kind, datetime.now(UTC), pipeline, kind],
    )
    changed = warehouse.conditional_update(
        PLATFORM_SCHEMA,
        INCIDENT_TABLE,
        key={"pipeline": pipeline, "kind": kind},
        values={"is_open": breached, "changed_at": datetime.now(UTC), "detail": detail},
        compared=["is_open"],
    )
    if not changed:
        return None
    return "opened" if breached else "resolved"

