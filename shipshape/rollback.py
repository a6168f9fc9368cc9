"""`shipshape rollback`: put a partition back as an earlier publish left it, in one transaction, noted in the ledger.

A partition's published versions form a chain in the ledger (`published` and `rolled_back` entries, oldest
first). The rows an entry left behind are exactly what its successor replaced, and its successor kept them in
`history.h_<successor id>` (`shipshape.history`); the newest entry's rows are the published table's. So restoring
entry P means: keep the current rows (the rollback is itself undoable), delete them, insert P's successor's history
table by column name (columns added since come back NULL), and record a `rolled_back` entry naming P. Where
publishes exchange partitions (`partition_exchange.exchanging`) the same is done by moving tables: the current
partition goes to history, the successor's kept table becomes the partition (its note is removed: those rows are
current again).

It holds what a publish holds: the partition lock (a run processing the partition makes it refuse) and, inside the
transaction, the destination lock, so it never interleaves with a publish of the same table. Only
`replace_partition` and `full_replace` pipelines: a merge's history holds the rows it overwrote but not which
keys it added, so restoring it would keep those.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from shipshape.declaration import Pipeline
from shipshape.errors import RollbackError
from shipshape.history import find, forget, kept
from shipshape.ledger import PUBLISHED, LedgerEntry, PublishedTable, entries, record
from shipshape.names import destination_lock, partition_lock
from shipshape.partition_exchange import exchanging
from shipshape.partitions import Window
from shipshape.publish import exchange_partition, replace_scope
from shipshape.warehouses import HISTORY_SCHEMA, Warehouse

ROLLBACK_RUN_TAG = "rollback"
"""The `run_tag` of a `rolled_back` ledger entry: no run loaded anything, so no audit table or reject is its."""
_Choose = Callable[[list["LedgerEntry"]], "LedgerEntry"]
"""Picks, from a partition's chain of versions (oldest first), the one to restore."""


@dataclass(frozen=True)
class Restored:
    """One partition rolled back: the entry whose rows are back, the entry they replace, and the new ledger row."""

    partition_key: str
    restored: LedgerEntry
    replaced: LedgerEntry
    entry: LedgerEntry

    def as_row(self) -> dict[str, object]:
        return {
            "partition": self.partition_key,
            "restored": self.restored.entry_id,
            "published at": self.restored.finished_at.isoformat(timespec="seconds"),
            "rows": self.entry.row_count,
            "replaced": self.replaced.entry_id,
            "rollback entry": self.entry.entry_id,
        }


def roll_back(
    warehouse: Warehouse, spec: Pipeline, *, partition: str | None, to: str | None, run: str | None, by: str = ""
) -> list[Restored]:
    """What `shipshape rollback` and the rollback flow ask for: one partition (`to`: a version) or one run's.

    `by`: the rollback flow's run id, noted on the ledger rows it writes; empty from the command line.
    """
    if (partition is None) == (run is None):
        raise RollbackError(
            f"pipeline {spec.name}: give exactly one of a partition (with an optional target publish) or a flow run "
            "to undo, e.g. --partition 2026-11-01 [--to <ledger entry id>] or --run <flow run id>"
        )
    if run is not None:
        if to is not None:
            raise RollbackError(f"pipeline {spec.name}: --to applies to --partition; --run restores each partition "
                                "the run published to the version before it")
        return rollback_run(warehouse, spec, run, by)
    assert partition is not None
    return [rollback_partition(warehouse, spec, partition, to, by)]


def rollback_partition(
    warehouse: Warehouse, spec: Pipeline, partition_key: str, to: str | None, flow_run_id: str = ""
) -> Restored:
    """Restore `partition_key` to publish `to` (a ledger entry id), by default to the version before the newest.

    `flow_run_id`: the rollback flow's run, when one does it (the ledger row names it); empty from the CLI.
    """
    (restored,) = _rollback(warehouse, spec, [partition_key], lambda chain: _target(spec, chain, to), flow_run_id)
    return restored


def rollback_run(warehouse: Warehouse, spec: Pipeline, flow_run_id: str, by_flow_run_id: str = "") -> list[Restored]:
    """Undo everything flow run `flow_run_id` published: each of its partitions back to the version before it."""
    ledger = entries(warehouse, PublishedTable.of(spec))  # the current version's: a run of v1 is not rolled back
    published = [e for e in ledger if e.flow_run_id == flow_run_id and e.status == "published"]
    if not published:
        raise RollbackError(
            f"pipeline {spec.name}: flow run {flow_run_id!r} published nothing (no `published` ledger entry has that "
            "flow_run_id); check the id in the UI's run page or in `platform.publish_ledger`"
        )
    by_key = {entry.partition_key: entry for entry in published}

    def before_the_run(chain: list[LedgerEntry]) -> LedgerEntry:
        newest, ours = chain[-1], by_key[chain[-1].partition_key]
        if newest.entry_id != ours.entry_id:
            raise RollbackError(
                f"pipeline {spec.name}, partition {ours.partition_key}: changed again after flow run {flow_run_id} "
                f"(ledger entry {newest.entry_id}, {newest.status}); undoing the run would undo that too. Roll the "
                f"partition back on its own: shipshape rollback {spec.name} --partition {ours.partition_key} "
                f"--to <entry id>. Nothing was rolled back"
            )
        return _target(spec, chain, None)

    return _rollback(warehouse, spec, sorted(by_key), before_the_run, by_flow_run_id)


def _rollback(
    warehouse: Warehouse, spec: Pipeline, keys: list[str], target: _Choose, flow_run_id: str
) -> list[Restored]:
    if spec.load.mode == "merge":
        raise RollbackError(
            f"pipeline {spec.name}: load.mode 'merge' cannot be rolled back — its history holds the rows each merge "
            "overwrote, not which keys it added. Rollback supports replace_partition and full_replace"
        )
    locks = [partition_lock(spec.name, key) for key in keys]
    with warehouse.exclusive(locks) as held:
        if not held:
            raise RollbackError(
                f"pipeline {spec.name}, partition(s) {', '.join(keys)}: a run is processing them now; wait until it "
                "ends (its publish may be the one to roll back), then run the rollback again. Nothing was rolled back"
            )
        schema, table = spec.destination.schema_name, spec.destination.published_table
        with warehouse.transaction():
            warehouse.hold_until_commit(destination_lock(schema, table))
            # read under the lock: no publish of the table commits now
            ledger = entries(warehouse, PublishedTable.of(spec))
            restored = []
            for key in keys:
                chain = _chain(spec, ledger, key)
                restored.append(_restore(warehouse, spec, chain, target(chain), flow_run_id))
    return restored


def _restore(
    warehouse: Warehouse, spec: Pipeline, chain: list[LedgerEntry], to: LedgerEntry, flow_run_id: str
) -> Restored:
    """Inside the rollback's transaction: keep the current rows, put `to`'s back, record the `rolled_back` entry."""
    newest = chain[-1]
    successor = chain[[e.entry_id for e in chain].index(to.entry_id) + 1]
    source = find(warehouse, successor.entry_id)
    now = datetime.now(UTC)
    if source is None or source.expires_at <= now:
        state = f"expired {source.expires_at:%Y-%m-%d %H:%M} UTC" if source else "pruned, or kept by no publish then"
        raise RollbackError(
            f"pipeline {spec.name}, partition {to.partition_key}: the rows of publish {to.entry_id} are no longer "
            f"kept (history of {successor.entry_id}: {state}; history.retention is {spec.history.retention}). "
            "Re-run the partition with the code you want instead (shipshape run). Nothing was rolled back"
        )
    schema, table = spec.destination.schema_name, spec.destination.published_table
    entry = LedgerEntry(  # the restored publish's code and contract are what the table holds again
        pipeline=spec.name,
        partition_key=newest.partition_key,
        partition_start=newest.partition_start,
        partition_end=newest.partition_end,
        flow_run_id=flow_run_id,
        run_tag=ROLLBACK_RUN_TAG,
        code_version=to.code_version,
        contract_hash=to.contract_hash,
        row_count=source.row_count,
        rejected_rows=0,
        status="rolled_back",
        check_results=[],
        message=f"rolled back to {to.entry_id} (published {to.finished_at.isoformat(timespec='seconds')})",
        started_at=now,
        finished_at=now,
        restored_entry_id=to.entry_id,
        destination=PublishedTable.of(spec).destination,
    )
    window = Window(newest.partition_key, newest.partition_start, newest.partition_end)
    exchange = exchanging(warehouse, spec)
    if exchange is None:
        replace_scope(warehouse, spec, window, "", entry.entry_id)
        current = set(warehouse.table_columns(schema, table))
        columns = [c for c in warehouse.table_columns(HISTORY_SCHEMA, source.table) if c in current]
        warehouse.insert_from(schema, table, HISTORY_SCHEMA, source.table, columns)
        kept(warehouse, spec, entry)
    else:  # the kept table becomes the partition again (columns added since: NULL), the current one is kept
        kept_rows = exchange_partition(warehouse, exchange, spec, window, (HISTORY_SCHEMA, source.table), entry)
        forget(warehouse, successor.entry_id)
        kept(warehouse, spec, entry, kept_rows)
    record(warehouse, entry)
    return Restored(newest.partition_key, to, newest, entry)


def _target(spec: Pipeline, chain: list[LedgerEntry], to: str | None) -> LedgerEntry:
    """The version to restore: `to` if it is one of the partition's versions, else the one before the newest."""
    newest = chain[-1]
    where = f"pipeline {spec.name}, partition {newest.partition_key}"
    versions = ", ".join(f"{e.entry_id} ({e.status} {e.finished_at:%Y-%m-%d %H:%M})" for e in reversed(chain[-5:]))
    if to is None:
        if len(chain) < 2:
            raise RollbackError(
                f"{where}: published once ({newest.entry_id}), so there is no earlier version to restore. "
                "Nothing was rolled back"
            )
        return chain[-2]
    ids = [entry.entry_id for entry in chain]
    if to not in ids:
        raise RollbackError(
            f"{where}: no publish {to!r} of this partition; its latest versions, newest first: {versions}. "
            "Pass one of them to --to. Nothing was rolled back"
        )
    if to in (newest.entry_id, newest.restored_entry_id):
        raise RollbackError(f"{where}: {to} is already the published version. Nothing was rolled back")
    return chain[ids.index(to)]


@dataclass(frozen=True)
class Version:
    """One version of a partition, as the rollback form lists it: may it be restored, and until when. `current`: its
    rows are the published ones (the newest entry's, or the version that entry rolled back to)."""

    entry: LedgerEntry
    current: bool
    kept_until: datetime | None

    def as_row(self) -> dict[str, object]:
        restorable = "published now" if self.current else "no longer kept"
        if not self.current and self.kept_until is not None:
            restorable = f"until {self.kept_until.isoformat(timespec='minutes')}"
        return {
            "version (to_version)": self.entry.entry_id,
            "status": self.entry.status,
            "published at": self.entry.finished_at.isoformat(timespec="seconds"),
            "rows": self.entry.row_count,
            "code version": self.entry.code_version,
            "restorable": restorable,
        }


def versions(warehouse: Warehouse, spec: Pipeline, partition_key: str) -> list[Version]:
    """The partition's versions, newest first: a version's rows are restorable while its successor's history is kept.
    """
    chain = _chain(spec, entries(warehouse, PublishedTable.of(spec)), partition_key)
    now = datetime.now(UTC)
    listed = [Version(chain[-1], True, None)]
    for entry, successor in zip(reversed(chain[:-1]), reversed(chain[1:]), strict=True):
        if entry.entry_id == chain[-1].restored_entry_id:  # by partition exchange its kept table is the partition
            listed.append(Version(entry, True, None))
            continue
        source = find(warehouse, successor.entry_id)
        listed.append(Version(entry, False, source.expires_at if source and source.expires_at > now else None))
    return listed


def _chain(spec: Pipeline, ledger: list[LedgerEntry], partition_key: str) -> list[LedgerEntry]:
    """The partition's versions, oldest first: its entries that changed the published rows (at least one)."""
    chain = sorted(
        (e for e in ledger if e.partition_key == partition_key and e.status in PUBLISHED), key=lambda e: e.finished_at
    )
    if not chain:
        raise RollbackError(
            f"pipeline {spec.name}: partition {partition_key!r} was never published, so there is nothing to roll "
            "back; partitions are named as in the ledger, e.g. 2026-11-01 or 2026-11-01T05 (hourly)"
        )
    return chain
