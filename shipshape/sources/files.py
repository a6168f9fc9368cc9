"""Reads one landed file per partition (CSV or Parquet), streaming it in bounded batches.

Only the declared columns are read. CSV values all arrive as text — type conversion, not the
reader's guesswork, decides what a value means — and Parquet keeps its own types. Neither format
is ever read whole: CSV is parsed block by block (transcoded as it streams when it is not UTF-8),
Parquet batch by batch. How a CSV file is written (delimiter, encoding, NULL markers, header) is
declared under `csv:` (`shipshape.sources.csv_options`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from pydantic import Field, ValidationInfo, field_validator

from shipshape.column_types import family_of_arrow
from shipshape.errors import SourceError
from shipshape.partitions import Window
from shipshape.secrets import SecretResolver
from shipshape.settings import data_roots
from shipshape.sources.base import CHUNK_ROWS
from shipshape.sources.csv_options import CsvOptions
from shipshape.sources.kind import SourceBase, SourceKind
from shipshape.sources.path_template import FIX as TEMPLATE_FIX
from shipshape.sources.path_template import fill_path, template_problems

CSV_BLOCK_BYTES = 1024 * 1024
"""CSV bytes parsed at a time; must exceed the longest row. Arrow reads up to 32 blocks ahead in the
background, so this — not the file size — bounds the reader's memory (~32 MiB)."""
_ENCODING_HINT = " — the file is not UTF-8: declare its encoding as source.csv.encoding (latin-1 or cp1252)"


class FileSource(SourceBase):
    """`kind: file` in a declaration: one landed CSV or Parquet file per partition."""

    kind: Literal["file"]
    path: str = Field(
        description="Path under `{data_dir}/` (or absolute, under a root the platform declares in "
        "SHIPSHAPE_DATA_ROOTS); only `{data_dir}`, `{start:%Y-%m-%d}`, `{end:...}` are replaced."
    )
    format: Literal["csv", "parquet"]
    csv: CsvOptions = Field(default_factory=CsvOptions, description="How a CSV file is written; `format: csv` only.")

    @field_validator("path")
    @classmethod
    def _confined_template(cls, path: str) -> str:
        problems = template_problems(path)
        if problems:
            raise ValueError(f"{'; '.join(problems)}; {TEMPLATE_FIX}")
        return path

    @field_validator("csv")
    @classmethod
    def _only_for_csv(cls, options: CsvOptions, info: ValidationInfo) -> CsvOptions:
        file_format = info.data.get("format")
        if file_format not in ("csv", None):  # None: format itself is wrong, and reported
            raise ValueError(f"csv options apply only to format: csv (this source is {file_format}); remove source.csv")
        return options

    def describe(self) -> str:
        return f"{self.format} files `{self.path}`"


class PartitionFileSource:
    """A `Source` over the file `spec.path` names for each window (`{data_dir}`, `{start:...}`, `{end:...}`)."""

    def __init__(
        self, spec: FileSource, data_dir: Path, *, chunk_rows: int = CHUNK_ROWS, block_bytes: int = CSV_BLOCK_BYTES
    ) -> None:
        self._spec = spec
        self._data_dir = data_dir
        self._chunk_rows = chunk_rows
        self._block_bytes = block_bytes

    def observed_columns(self, window: Window) -> dict[str, str | None]:
        """CSV: the header's names, untyped (values are text). Parquet: the schema's names and type families."""
        path = self.path_for(window)
        with _read_errors(path):
            if self._spec.format == "parquet":
                schema = pq.read_schema(path)
                return {field.name: family_of_arrow(field.type) for field in schema}
            return dict.fromkeys(self._csv_column_names(path))

    def batches(self, window: Window) -> Iterator[pa.RecordBatch]:
        """The window's file as RecordBatches of at most `chunk_rows` rows, declared columns in declared order."""
        path = self.path_for(window)
        reader = self._parquet_batches if self._spec.format == "parquet" else self._csv_batches
        with _read_errors(path):
            yield from reader(path)

    def path_for(self, window: Window) -> Path:
        """The file holding the window's rows; a `SourceError` saying what was expected when it is absent."""
        path = fill_path(self._spec.path, self._data_dir, window, data_roots())
        if not path.is_file():
            raise SourceError(
                f"file source: {path} does not exist (partition {window.key}); expected the {self._spec.format} file "
                f"named by source.path {self._spec.path!r} — check that the upstream delivery landed it, "
                "or fix the path template"
            )
        return path

    def _csv_batches(self, path: Path) -> Iterator[pa.RecordBatch]:
        options = self._spec.csv
        names = None if options.header else self._csv_column_names(path)
        with pa_csv.open_csv(
            path,
            read_options=options.read_options(self._block_bytes, names),
            parse_options=options.parse_options(),
            convert_options=options.convert_options(list(self._spec.columns)),
        ) as reader:
            yield from _rechunk(reader, self._chunk_rows)

    def _csv_column_names(self, path: Path) -> list[str]:
        """The header's names; without a header, declared names by position and `(column N)` for any beyond them.

        A header-less file's extra trailing columns are thus new, undeclared columns (ignored, as in any source)
        and a shorter row of columns leaves the last declared ones missing — both seen by the drift check.
        """
        options = self._spec.csv
        read_options = options.read_options(self._block_bytes)
        read_options.autogenerate_column_names = not options.header
        with pa_csv.open_csv(path, read_options=read_options, parse_options=options.parse_options()) as reader:
            names: list[str] = reader.schema.names
        if options.header:
            return names
        declared = list(self._spec.columns)
        return [declared[i] if i < len(declared) else f"(column {i + 1})" for i in range(len(names))]

    def _parquet_batches(self, path: Path) -> Iterator[pa.RecordBatch]:
        declared = list(self._spec.columns)
        # pre_buffer (on by default) would read every row group up front: the whole file in memory.
        with pq.ParquetFile(path, pre_buffer=False) as parquet:
            missing = [name for name in declared if name not in parquet.schema_arrow.names]
            if missing:
                # iter_batches silently skips unknown columns; a missing declared column is an error.
                raise SourceError(
                    f"file source: {path} has no column(s) {', '.join(missing)}; "
                    f"found: {', '.join(parquet.schema_arrow.names)} — fix the file or source.columns"
                )
            for batch in parquet.iter_batches(batch_size=self._chunk_rows, columns=declared):
                yield batch.select(declared)


def _rechunk(blocks: Iterable[pa.RecordBatch], chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of exactly `chunk_rows` rows (the last one fewer) from CSV blocks of whatever size parsing gave."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for block in blocks:
        pending.append(block)
        pending_rows += block.num_rows
        while pending_rows >= chunk_rows:
            combined = pa.concat_batches(pending)
            yield combined.slice(0, chunk_rows)
            pending, pending_rows = [combined.slice(chunk_rows)], pending_rows - chunk_rows
    if pending_rows:
        yield pa.concat_batches(pending)


@contextmanager
def _read_errors(path: Path) -> Iterator[None]:
    """Arrow's parse and I/O errors as a `SourceError` that names the file."""
    try:
        yield
    except (pa.ArrowException, OSError) as error:
        hint = _ENCODING_HINT if "invalid UTF8" in str(error) else ""
        raise SourceError(f"file source: cannot read {path}: {error}{hint}") from error


def _open(spec: FileSource, data_dir: Path, secrets: SecretResolver) -> PartitionFileSource:
    """Files are read from the data folder; no secret is involved."""
    return PartitionFileSource(spec, data_dir)


FILE = SourceKind(FileSource, _open)
