"""Partition locks: a second holder is refused while the first holds any overlapping partition."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from shipshape.warehouses import open_warehouse


def test_overlapping_partitions_are_refused_until_released(warehouse_url: str) -> None:
    with open_warehouse(warehouse_url) as first, open_warehouse(warehouse_url) as second:
        with first.exclusive(["shop:2026-11-01", "shop:2026-11-02"]) as held:
            assert held
            with second.exclusive(["shop:2026-11-02", "shop:2026-11-03"]) as also:
                assert not also
            with second.exclusive(["shop:2026-11-03"]) as disjoint:
                assert disjoint
        with second.exclusive(["shop:2026-11-02", "shop:2026-11-03"]) as after_release:
            assert after_release


def test_a_refused_holder_keeps_nothing(warehouse_url: str) -> None:
    """Locks taken before the refusal are released, so a third run can take them."""
    with open_warehouse(warehouse_url) as first, open_warehouse(warehouse_url) as second:
        with first.exclusive(["p:2"]), second.exclusive(["p:1", "p:2"]) as refused:
            assert not refused
        with first.exclusive(["p:1"]) as free:
            assert free


def test_a_lost_connection_neither_hides_the_error_nor_leaves_the_partition_busy(postgres_url: str) -> None:
    """The database restarting under a run ends the session holding its locks: the server drops them, and
    releasing them fails. The run must fail with its own error, and this process must not keep the name taken."""
    with (
        open_warehouse(postgres_url) as run,
        pytest.raises(ValueError, match="the run's own error"),
        run.exclusive(["p:lost"]) as held,
    ):
        assert held
        with open_warehouse(postgres_url) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        raise ValueError("the run's own error")
    with open_warehouse(postgres_url) as next_run, next_run.exclusive(["p:lost"]) as taken:
        assert taken


def test_duckdb_file_in_use_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    holder = duckdb.connect(str(path))
    try:
        result = subprocess.run(
            [sys.executable, "-c", f"from shipshape.warehouses import open_warehouse; open_warehouse('duckdb:///{path}')"],
            capture_output=True, text=True, timeout=60, env=os.environ,
        )
    finally:
        holder.close()
    assert result.returncode != 0
    assert f"{path} is in use by another process" in result.stderr
    assert "use PostgreSQL" in result.stderr
