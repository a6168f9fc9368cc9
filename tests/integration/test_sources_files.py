"""File source against real CSV and Parquet files: partition paths, declared columns, bounded memory, errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runtime.secrets import prefect_secret
from shipshape.errors import SchemaDriftError, SourceError
from shipshape.partitions import FULL_REFRESH, Window
from shipshape.sources.base import CHUNK_ROWS
from shipshape.sources.factory import check_drift, open_source
from shipshape.sources.files import CSV_BLOCK_BYTES, FileSource, PartitionFileSource

JAN_1 = Window("2024-01-01", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC))
JAN_2 = Window("2024-01-02", datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC))
COLUMNS = {"id": "bigint", "amount": "decimal(12,2)", "note": "text"}


def _spec(file_format: str, columns: dict[str, str] = COLUMNS) -> FileSource:
    path = f"{{data_dir}}/landing/orders/{{start:%Y-%m-%d}}.{file_format}"
    return FileSource(kind="file", path=path, format=file_format, columns=columns)


def _source(
    data_dir: Path,
    file_format: str,
    columns: dict[str, str] = COLUMNS,
    *,
    chunk_rows: int = CHUNK_ROWS,
    block_bytes: int = CSV_BLOCK_BYTES,
) -> PartitionFileSource:
    return PartitionFileSource(_spec(file_format, columns), data_dir, chunk_rows=chunk_rows, block_bytes=block_bytes)


def _landing(data_dir: Path, window: Window, file_format: str) -> Path:
    folder = data_dir / "landing" / "orders"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{window.key}.{file_format}"


def _write_csv(data_dir: Path, window: Window, text: str) -> Path:
    path = _landing(data_dir, window, "csv")
    path.write_text(text)
    return path


def _write_parquet(data_dir: Path, window: Window, table: pa.Table, row_group_size: int | None = None) -> Path:
    path = _landing(data_dir, window, "parquet")
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def _read(source: PartitionFileSource, window: Window) -> pa.Table:
    return pa.Table.from_batches(list(source.batches(window)))


def _peak_arrow_bytes(batches: Iterator[pa.RecordBatch]) -> tuple[int, int]:
    """(rows read, highest Arrow memory in use above the start while reading) — each batch dropped once seen."""
    baseline, peak, rows = pa.total_allocated_bytes(), 0, 0
    for batch in batches:
        rows += batch.num_rows
        peak = max(peak, pa.total_allocated_bytes() - baseline)
    return rows, peak


def test_csv_reads_the_file_of_the_requested_partition(tmp_path: Path) -> None:
    _write_csv(tmp_path, JAN_1, "id,amount,note\n1,1.00,jan 1\n")
    _write_csv(tmp_path, JAN_2, "id,amount,note\n2,2.00,jan 2\n3,3.00,jan 2\n")

    assert _read(_source(tmp_path, "csv"), JAN_2).column("id").to_pylist() == ["2", "3"]


def test_csv_reads_only_declared_columns_as_text_in_declared_order(tmp_path: Path) -> None:
    _write_csv(tmp_path, JAN_2, "internal,note,id,amount\nsecret,hello,7,12.50\n")

    table = _read(_source(tmp_path, "csv"), JAN_2)

    assert table.schema == pa.schema([("id", pa.string()), ("amount", pa.string()), ("note", pa.string())])
    assert table.to_pylist() == [{"id": "7", "amount": "12.50", "note": "hello"}]


def test_csv_only_an_empty_unquoted_field_is_null(tmp_path: Path) -> None:
    _write_csv(tmp_path, JAN_2, 'id,amount,note\n1,,NA\n2,3.00,""\n3,4.00,null\n')

    table = _read(_source(tmp_path, "csv"), JAN_2)

    assert table.column("amount").to_pylist() == [None, "3.00", "4.00"]
    assert table.column("note").to_pylist() == ["NA", "", "null"]


def test_csv_batches_hold_chunk_rows_across_small_blocks(tmp_path: Path) -> None:
    _write_csv(tmp_path, JAN_2, "id,amount,note\n" + "".join(f"{i},{i}.00,row {i}\n" for i in range(1050)))

    batches = list(_source(tmp_path, "csv", chunk_rows=100, block_bytes=1024).batches(JAN_2))

    assert [batch.num_rows for batch in batches] == [100] * 10 + [50]
    assert pa.Table.from_batches(batches).column("id").to_pylist() == [str(i) for i in range(1050)]


def test_csv_memory_stays_far_below_file_size(tmp_path: Path) -> None:
    path = _write_csv(tmp_path, JAN_2, "id,amount,note\n" + "".join(f"{i},{i}.25,{'x' * 40}\n" for i in range(200_000)))

    rows, peak = _peak_arrow_bytes(_source(tmp_path, "csv", chunk_rows=5_000, block_bytes=16 * 1024).batches(JAN_2))

    assert rows == 200_000
    assert peak < path.stat().st_size / 4


def test_parquet_reads_declared_columns_with_their_types(tmp_path: Path) -> None:
    _write_parquet(tmp_path, JAN_2, pa.table({"internal": ["x"], "note": ["hi"], "amount": [1.5], "id": [7]}))

    table = _read(_source(tmp_path, "parquet"), JAN_2)

    assert table.schema == pa.schema([("id", pa.int64()), ("amount", pa.float64()), ("note", pa.string())])
    assert table.to_pylist() == [{"id": 7, "amount": 1.5, "note": "hi"}]


def test_parquet_batches_never_exceed_chunk_rows(tmp_path: Path) -> None:
    ids = list(range(1050))
    _write_parquet(tmp_path, JAN_2, pa.table({"id": ids, "amount": [1.0] * 1050, "note": ["n"] * 1050}), 300)

    batches = list(_source(tmp_path, "parquet", chunk_rows=100).batches(JAN_2))

    assert max(batch.num_rows for batch in batches) == 100
    assert pa.Table.from_batches(batches).column("id").to_pylist() == ids


def test_parquet_memory_stays_far_below_the_whole_table(tmp_path: Path) -> None:
    rows = 400_000
    table = pa.table({"id": range(rows), "amount": [i / 4 for i in range(rows)], "note": [f"{i}" for i in range(rows)]})
    whole_table_bytes = table.nbytes
    _write_parquet(tmp_path, JAN_2, table, row_group_size=20_000)
    del table

    read, peak = _peak_arrow_bytes(_source(tmp_path, "parquet", chunk_rows=5_000).batches(JAN_2))

    assert read == rows
    assert peak < whole_table_bytes / 4


def test_missing_file_names_path_partition_and_template(tmp_path: Path) -> None:
    expected = tmp_path / "landing" / "orders" / "2024-01-02.csv"

    with pytest.raises(SourceError) as raised:
        list(_source(tmp_path, "csv").batches(JAN_2))

    assert str(raised.value).startswith(f"file source: {expected} does not exist (partition 2024-01-02); expected")
    assert "{data_dir}/landing/orders/{start:%Y-%m-%d}.csv" in str(raised.value)


def test_full_refresh_of_a_dated_template_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"cannot fill path template .* for partition full"):
        list(_source(tmp_path, "csv").batches(FULL_REFRESH))


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_declared_column_absent_from_file_is_a_source_error_naming_it(tmp_path: Path, file_format: str) -> None:
    if file_format == "csv":
        path = _write_csv(tmp_path, JAN_2, "id,amount\n1,2.00\n")
    else:
        path = _write_parquet(tmp_path, JAN_2, pa.table({"id": [1], "amount": [2.0]}))

    with pytest.raises(SourceError, match="note") as raised:
        list(_source(tmp_path, file_format).batches(JAN_2))
    assert str(path) in str(raised.value)


def test_malformed_csv_is_a_source_error_naming_the_file(tmp_path: Path) -> None:
    path = _write_csv(tmp_path, JAN_2, "id,amount,note\n1,2.00,ok\n2,3.00\n")

    with pytest.raises(SourceError, match="cannot read") as raised:
        list(_source(tmp_path, "csv").batches(JAN_2))
    assert str(path) in str(raised.value)


def test_csv_observed_columns_are_header_names_untyped(tmp_path: Path) -> None:
    _write_csv(tmp_path, JAN_2, "id,amount,note,extra\n1,2.00,x,y\n")

    assert _source(tmp_path, "csv").observed_columns(JAN_2) == {"id": None, "amount": None, "note": None, "extra": None}


def test_parquet_observed_columns_carry_type_families(tmp_path: Path) -> None:
    _write_parquet(tmp_path, JAN_2, pa.table({"id": [1], "amount": [2.5], "note": ["x"], "at": [datetime(2024, 1, 2)]}))

    assert _source(tmp_path, "parquet").observed_columns(JAN_2) == {
        "id": "integer", "amount": "number", "note": "text", "at": "timestamp",
    }


def _drift(data_dir: Path, file_format: str) -> list[str]:
    """What the pipeline does before extracting: open the declared source and compare its live columns."""
    spec = _spec(file_format)
    observed = open_source(spec, data_dir, prefect_secret).observed_columns(JAN_2)
    return check_drift(spec.column_types(), observed, f"orders {file_format}")


def test_drift_renamed_csv_column_is_reported_as_missing(tmp_path: Path) -> None:
    _write_csv(tmp_path, JAN_2, "id,amount_usd,note\n1,2.00,x\n")

    with pytest.raises(SchemaDriftError) as raised:
        _drift(tmp_path, "csv")

    assert "column 'amount' declared as decimal(12,2) is missing from orders csv" in str(raised.value)
    assert "found columns: amount_usd, id, note" in str(raised.value)


def test_drift_changed_parquet_type_is_reported(tmp_path: Path) -> None:
    _write_parquet(tmp_path, JAN_2, pa.table({"id": ["1"], "amount": [2.5], "note": ["x"]}))

    with pytest.raises(SchemaDriftError, match=r"column 'id': declared bigint \(integer\), found text"):
        _drift(tmp_path, "parquet")


def test_drift_new_parquet_column_is_returned_and_never_read(tmp_path: Path) -> None:
    _write_parquet(tmp_path, JAN_2, pa.table({"id": [1], "amount": [2.5], "note": ["x"], "channel": ["web"]}))

    assert _drift(tmp_path, "parquet") == ["channel"]
    assert _read(_source(tmp_path, "parquet"), JAN_2).schema.names == ["id", "amount", "note"]
