"""Which publishes a rollback undid: freshness and SLOs then judge the restored publish (`ledger.undone_entries`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shipshape.ledger import PublishedChange, undone_entries

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def change(entry_id: str, minutes: int, restores: str | None = None, key: str = "2026-11-01") -> PublishedChange:
    status = "published" if restores is None else "rolled_back"
    return PublishedChange(entry_id, key, f"run-{entry_id}", status, T0 + timedelta(minutes=minutes), restores)


def test_a_rollback_undoes_every_version_between_the_one_it_restores_and_itself() -> None:
    changes = [change("a", 1), change("b", 2), change("c", 3), change("r", 4, restores="a"), change("d", 5)]

    assert undone_entries(changes) == {"b", "c"}


def test_rolling_back_a_rollback_brings_the_undone_version_back() -> None:
    changes = [change("a", 1), change("b", 2), change("r1", 3, restores="a"), change("r2", 4, restores="b")]

    assert undone_entries(changes) == {"r1"}, "b counts again; r1 (a rollback) was never a publish instant"


def test_a_rollback_of_one_partition_leaves_the_other_partitions_publishes_alone() -> None:
    changes = [
        change("a1", 1), change("a2", 1, key="2026-11-02"),
        change("b1", 2), change("b2", 2, key="2026-11-02"),
        change("r", 3, restores="a1"),
    ]  # fmt: skip

    assert undone_entries(changes) == {"b1"}


def test_input_order_does_not_matter() -> None:
    changes = [change("r", 4, restores="a"), change("c", 3), change("a", 1), change("b", 2)]

    assert undone_entries(changes) == {"b", "c"}
