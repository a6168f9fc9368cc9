"""Partition names: one per partition key, readable, and always a valid PostgreSQL identifier."""

from __future__ import annotations

from shipshape.names import partition_table


def test_a_partition_is_named_after_its_table_and_the_digits_of_its_key() -> None:
    assert partition_table("fct_orders", "2026-11-01") == "fct_orders__p20261101"
    assert partition_table("fct_orders", "2026-11-01T05") == "fct_orders__p20261101T05"


def test_a_name_past_63_bytes_is_hashed_and_still_one_per_table_and_key() -> None:
    long_table = "t" * 60
    first, second = partition_table(long_table, "2026-11-01"), partition_table(long_table, "2026-11-02")
    assert len(first.encode()) <= 63 and first.startswith("p_")
    assert first != second and partition_table(long_table, "2026-11-01") == first
