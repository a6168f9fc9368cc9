"""CSV files as real tools write them, read through the file source with their declared `csv:` options.

pandas, R, a spreadsheet in cp1252 and PostgreSQL's COPY each write missing values, quotes, delimiters and
text differently; each file below is byte for byte what that tool writes (COPY's is produced by a real server).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from runtime.secrets import prefect_secret
from shipshape.errors import SchemaDriftError, SourceError
from shipshape.partitions import Window
from shipshape.sources.factory import check_drift, open_source
from shipshape.sources.files import FileSource, PartitionFileSource

DAY = Window("2024-01-02", datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC))
PATH = "{data_dir}/landing/{start:%Y-%m-%d}.csv"


def _land(data_dir: Path, content: bytes) -> Path:
    path = data_dir / "landing" / f"{DAY.key}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _spec(columns: dict[str, str], **csv: Any) -> FileSource:
    return FileSource.model_validate({"kind": "file", "path": PATH, "format": "csv", "columns": columns, "csv": csv})


def _source(data_dir: Path, columns: dict[str, str], block_bytes: int = 1024 * 1024, **csv: Any) -> PartitionFileSource:
    return PartitionFileSource(_spec(columns, **csv), data_dir, chunk_rows=1000, block_bytes=block_bytes)


def _rows(source: PartitionFileSource) -> list[dict[str, Any]]:
    return pa.Table.from_batches(list(source.batches(DAY))).to_pylist()


def _drift(data_dir: Path, spec: FileSource) -> list[str]:
    """What a run does before extracting: the live columns against the declared ones."""
    observed = open_source(spec, data_dir, prefect_secret).observed_columns(DAY)
    return check_drift(spec.column_types(), observed, "landed csv")


# `df.to_csv(path, index=False, na_rep="NA")`: NaN/None as bare NA, quotes only where needed, "\n" lines.
PANDAS = (
    b'id,amount,note,city\n'
    b'1,12.5,plain,Lisboa\n'
    b'2,NA,"has, a comma",NA\n'
    b'3,7.25,"say ""hi""",Porto\n'
    b'4,0.1,NA,\n'
)
PANDAS_COLUMNS = {"id": "bigint", "amount": "double", "note": "text", "city": "text"}


def test_pandas_na_is_null_once_declared(tmp_path: Path) -> None:
    _land(tmp_path, PANDAS)

    rows = _rows(_source(tmp_path, PANDAS_COLUMNS, null_markers=["", "NA"]))

    assert rows == [
        {"id": "1", "amount": "12.5", "note": "plain", "city": "Lisboa"},
        {"id": "2", "amount": None, "note": "has, a comma", "city": None},
        {"id": "3", "amount": "7.25", "note": 'say "hi"', "city": "Porto"},
        {"id": "4", "amount": "0.1", "note": None, "city": None},
    ]


def test_without_declared_markers_na_stays_text(tmp_path: Path) -> None:
    _land(tmp_path, PANDAS)

    assert [row["amount"] for row in _rows(_source(tmp_path, PANDAS_COLUMNS))] == ["12.5", "NA", "7.25", "0.1"]


# `write.csv(df, path)`: a row-name column headed "", every string and header quoted, missing values as bare NA
# (a string that is literally "NA" stays quoted), logicals TRUE/FALSE, "\n" lines, UTF-8 on Linux.
R_WRITE_CSV = (
    b'"","id","name","score","passed"\n'
    b'"1",1,"Jos\xc3\xa9",12.5,TRUE\n'
    b'"2",2,NA,NA,FALSE\n'
    b'"3",3,"NA",3,NA\n'
)


def test_r_write_csv_quoted_na_is_text_bare_na_is_null(tmp_path: Path) -> None:
    _land(tmp_path, R_WRITE_CSV)
    columns = {"id": "bigint", "name": "text", "score": "double", "passed": "boolean"}
    spec = _spec(columns, null_markers=["NA"])

    rows = _rows(PartitionFileSource(spec, tmp_path))

    assert rows == [
        {"id": "1", "name": "José", "score": "12.5", "passed": "TRUE"},
        {"id": "2", "name": None, "score": None, "passed": "FALSE"},
        {"id": "3", "name": "NA", "score": "3", "passed": None},
    ]
    assert _drift(tmp_path, spec) == [""]  # R's row-name column: undeclared, so never read


# Excel's "CSV (semicolon-delimited)" on a Western-European Windows: cp1252 (€ is 0x80), ";", CRLF lines,
# quotes only around a field holding ";" — with the point as decimal separator here (see README).
SPREADSHEET = "sku;label;price;currency\r\n101;Café crème;3.50;€\r\n102;\"Thé; menthe\";12.00;€\r\n103;Crêpe;;\r\n"
SPREADSHEET_COLUMNS = {"sku": "bigint", "label": "text", "price": "decimal(8,2)", "currency": "text"}


def test_spreadsheet_export_in_cp1252_with_semicolons_keeps_accents(tmp_path: Path) -> None:
    _land(tmp_path, SPREADSHEET.encode("cp1252"))

    rows = _rows(_source(tmp_path, SPREADSHEET_COLUMNS, delimiter=";", encoding="cp1252"))

    assert rows == [
        {"sku": "101", "label": "Café crème", "price": "3.50", "currency": "€"},
        {"sku": "102", "label": "Thé; menthe", "price": "12.00", "currency": "€"},
        {"sku": "103", "label": "Crêpe", "price": None, "currency": None},
    ]


def test_latin1_file_reads_its_accents_once_declared(tmp_path: Path) -> None:
    _land(tmp_path, "id,name\n1,Zoë Ångström\n".encode("latin-1"))

    assert _rows(_source(tmp_path, {"id": "bigint", "name": "text"}, encoding="latin-1")) == [
        {"id": "1", "name": "Zoë Ångström"}
    ]


def test_undeclared_non_utf8_file_is_an_error_naming_the_encoding_option(tmp_path: Path) -> None:
    path = _land(tmp_path, "id,name\n1,Zoë\n".encode("latin-1"))

    with pytest.raises(SourceError) as raised:
        _rows(_source(tmp_path, {"id": "bigint", "name": "text"}))

    assert str(raised.value).startswith(f"file source: cannot read {path}: ")
    assert "declare its encoding as source.csv.encoding (latin-1 or cp1252)" in str(raised.value)


def test_drift_check_reads_the_header_with_the_declared_delimiter(tmp_path: Path) -> None:
    _land(tmp_path, "sku;title;price;currency\r\n1;x;1.00;€\r\n".encode("cp1252"))
    spec = _spec(SPREADSHEET_COLUMNS, delimiter=";", encoding="cp1252")

    with pytest.raises(SchemaDriftError) as raised:
        _drift(tmp_path, spec)

    assert "column 'label' declared as text is missing from landed csv; found columns: currency, price, sku, title" in (
        str(raised.value)
    )


@pytest.fixture
def copy_csv(postgres_url: str) -> bytes:
    """`COPY (SELECT …) TO STDOUT WITH (FORMAT csv, HEADER)` from the real server: NULL is an empty unquoted field,
    an empty string is `""`, text with a delimiter, quote or line break is quoted."""
    query = """
        COPY (
            SELECT * FROM (VALUES
                (1, 'Zoë', 'plain', 10.50::numeric(10,2)),
                (2, NULL, '', NULL),
                (3, 'a,b', E'two\\nlines', 0.00),
                (4, 'say "hi"', NULL, 1.25)
            ) AS t(id, name, note, amount) ORDER BY id
        ) TO STDOUT WITH (FORMAT csv, HEADER)
    """
    with psycopg.connect(postgres_url) as connection, connection.cursor() as cursor, cursor.copy(query) as copy:
        return b"".join(bytes(chunk) for chunk in copy)


def test_postgres_copy_csv_null_and_empty_string_stay_distinct(tmp_path: Path, copy_csv: bytes) -> None:
    assert b'\n2,,"",\n' in copy_csv  # what COPY wrote: NULL bare, the empty string quoted
    _land(tmp_path, copy_csv)

    rows = _rows(_source(tmp_path, {"id": "bigint", "name": "text", "note": "text", "amount": "decimal(10,2)"}))

    assert rows == [
        {"id": "1", "name": "Zoë", "note": "plain", "amount": "10.50"},
        {"id": "2", "name": None, "note": "", "amount": None},
        {"id": "3", "name": "a,b", "note": "two\nlines", "amount": "0.00"},
        {"id": "4", "name": 'say "hi"', "note": None, "amount": "1.25"},
    ]


def test_utf8_bom_stays_out_of_the_first_column_name(tmp_path: Path) -> None:
    _land(tmp_path, "\ufeffid,name\n1,Zoë\n".encode())
    spec = _spec({"id": "bigint", "name": "text"})

    assert _drift(tmp_path, spec) == []
    assert _rows(PartitionFileSource(spec, tmp_path)) == [{"id": "1", "name": "Zoë"}]


def test_headerless_file_takes_the_declared_column_order(tmp_path: Path) -> None:
    _land(tmp_path, b"\xef\xbb\xbf7|x|NULL\n8|NULL|z\n")
    spec = _spec({"id": "bigint", "a": "text", "b": "text"}, delimiter="|", header=False, null_markers=["NULL"])

    assert _drift(tmp_path, spec) == []
    assert _rows(PartitionFileSource(spec, tmp_path)) == [
        {"id": "7", "a": "x", "b": None},
        {"id": "8", "a": None, "b": "z"},
    ]


def test_headerless_file_with_an_extra_column_ignores_it_and_a_short_one_drifts(tmp_path: Path) -> None:
    _land(tmp_path, b"7,x,extra\n8,y,extra\n")
    spec = _spec({"id": "bigint", "a": "text"}, header=False)

    assert _drift(tmp_path, spec) == ["(column 3)"]
    assert _rows(PartitionFileSource(spec, tmp_path)) == [{"id": "7", "a": "x"}, {"id": "8", "a": "y"}]

    short = _spec({"id": "bigint", "a": "text", "b": "text", "c": "text"}, header=False)
    with pytest.raises(SchemaDriftError, match="column 'c' declared as text is missing"):
        _drift(tmp_path, short)


def _peaks(batches: Iterator[pa.RecordBatch]) -> tuple[int, int, int]:
    """(rows, peak Arrow bytes above the start, peak Python bytes) while reading, each batch dropped once seen."""
    tracemalloc.start()
    baseline, arrow_peak, rows = pa.total_allocated_bytes(), 0, 0
    try:
        for batch in batches:
            rows += batch.num_rows
            arrow_peak = max(arrow_peak, pa.total_allocated_bytes() - baseline)
        return rows, arrow_peak, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_transcoded_file_streams_in_bounded_memory(tmp_path: Path) -> None:
    """pyarrow transcodes cp1252 through Python's incremental decoder: both its Arrow and its Python memory stay
    far below the file, so the decoder never holds the whole file."""
    lines = "".join(f"{i};Crème brûlée n°{i} {'é' * 30};{i}.25;€\r\n" for i in range(150_000))
    path = _land(tmp_path, ("sku;label;price;currency\r\n" + lines).encode("cp1252"))
    del lines
    source = _source(tmp_path, SPREADSHEET_COLUMNS, 16 * 1024, delimiter=";", encoding="cp1252")

    rows, arrow_peak, python_peak = _peaks(source.batches(DAY))

    assert rows == 150_000
    assert arrow_peak < path.stat().st_size / 4
    assert python_peak < path.stat().st_size / 4
