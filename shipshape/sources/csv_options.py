"""How a landed CSV file is written: `csv:` under a file source, and the pyarrow options that read it so.

Real files differ from the defaults in a few ways only — delimiter, quote, encoding, the text that stands
for a missing value, a header row or none — so those are declared, and everything else (type inference,
trimming, guessing) stays off: values arrive as text and type conversion decides what they mean.
"""

from __future__ import annotations

import codecs
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pa_csv
from pydantic import Field, field_validator, model_validator

from shipshape.declaration_base import StrictModel

Encoding = Literal["utf-8", "latin-1", "cp1252"]
# Python's canonical codec name → the declared one; `utf-8-sig` is UTF-8 with a BOM, which the reader drops.
_ENCODINGS: dict[str, Encoding] = {"utf-8": "utf-8", "utf-8-sig": "utf-8", "iso8859-1": "latin-1", "cp1252": "cp1252"}
_LINE_BREAKS = ("\n", "\r")


class CsvOptions(StrictModel):
    """`csv:` of a file source with `format: csv`. The defaults read RFC 4180 files in UTF-8 with a header."""

    delimiter: str = Field(",", description="One character between fields, e.g. `;` or a tab.")
    quote: str = Field('"', description="One character around a field holding delimiters, quotes or line breaks.")
    encoding: Encoding = Field("utf-8", description="`utf-8` (with or without BOM), `latin-1` or `cp1252`.")
    null_markers: list[str] = Field(
        default_factory=lambda: [""],
        description='Unquoted field texts that mean NULL, e.g. `["", "NA"]`; a quoted field is always text.',
    )
    header: bool = Field(True, description="False: the file has no header; columns are in declared order.")

    @field_validator("delimiter", "quote")
    @classmethod
    def _one_character(cls, value: str) -> str:
        if len(value) != 1 or value in _LINE_BREAKS:
            raise ValueError("must be exactly one character other than a line break, e.g. ';' or '\\t'")
        return value

    @field_validator("encoding", mode="before")
    @classmethod
    def _known_encoding(cls, value: object) -> object:
        """Any spelling Python knows (`UTF8`, `ISO-8859-1`, `windows-1252`) names one of the supported three."""
        if not isinstance(value, str):
            return value
        try:
            canonical = codecs.lookup(value).name
        except LookupError:
            canonical = value
        if canonical not in _ENCODINGS:
            raise ValueError(f"unsupported encoding; expected one of {', '.join(sorted(set(_ENCODINGS.values())))}")
        return _ENCODINGS[canonical]

    @field_validator("null_markers")
    @classmethod
    def _plain_markers(cls, markers: list[str]) -> list[str]:
        for marker in markers:
            if any(line_break in marker for line_break in _LINE_BREAKS):
                raise ValueError(f"null marker {marker!r} holds a line break; a field's text cannot match it")
        return markers

    @model_validator(mode="after")
    def _distinct_delimiter_and_quote(self) -> CsvOptions:
        if self.delimiter == self.quote:
            raise ValueError(f"delimiter and quote are both {self.delimiter!r}; they must differ")
        for marker in self.null_markers:
            if self.delimiter in marker or self.quote in marker:
                raise ValueError(
                    f"null marker {marker!r} holds the delimiter or quote; an unquoted field's text cannot match it"
                )
        return self

    def read_options(self, block_bytes: int, column_names: list[str] | None = None) -> pa_csv.ReadOptions:
        """Blocks of `block_bytes`; a non-UTF-8 file is transcoded as it streams (pyarrow drops a UTF-8 BOM).

        `column_names`: the names of a header-less file's columns, in file order.
        """
        return pa_csv.ReadOptions(
            block_size=block_bytes,
            encoding="utf8" if self.encoding == "utf-8" else self.encoding,
            column_names=column_names,
        )

    def parse_options(self) -> pa_csv.ParseOptions:
        return pa_csv.ParseOptions(delimiter=self.delimiter, quote_char=self.quote)

    def convert_options(self, columns: list[str]) -> pa_csv.ConvertOptions:
        """`columns` as text, in that order. Only an unquoted marker is NULL: `"NA"` in quotes is the text NA,
        as R, PostgreSQL (`""` is an empty string) and pandas write it."""
        return pa_csv.ConvertOptions(
            include_columns=columns,
            column_types=dict.fromkeys(columns, pa.string()),
            null_values=self.null_markers,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )
