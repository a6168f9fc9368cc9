"""Extract → convert → mask PII → bulk-load into the run's raw audit table, streaming in bounded chunks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import cast
from uuid import UUID

import pyarrow as pa
from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from runtime.connections import connect
from runtime.progress import report
from runtime.secrets import prefect_secret
from shipshape.audit_area import RunTables
from shipshape.catalog import DeclaredPipeline
from shipshape.convert import BatchConverter, RejectedRow
from shipshape.declaration import Pipeline
from shipshape.ledger import (
    LEDGER_TABLE,
    PublishedTable,
    missing_platform_tables,
    published_row_counts_before,
    write_dead_letters,
)
from shipshape.load_progress import LoadProgress, expected_rows
from shipshape.outcomes import LoadReport
from shipshape.pii import PiiMasker
from shipshape.rejects import early_stop_limit, enforce_threshold
from shipshape.settings import load_settings
from shipshape.sources.factory import check_drift, open_source
from shipshape.warehouses import AUDIT_SCHEMA, Warehouse

USUAL_SIZE_PARTITIONS = 7
"""Latest publishes whose median is a partition's usual size, the 100% of its progress artifact."""


@task(name="extract-to-audit", cache_policy=NO_CACHE)
def extract_to_audit(declared: DeclaredPipeline, run: RunTables) -> LoadReport:
    """Land the partition's rows in the audit area; rejects go to the dead-letter table, never dropped."""
    logger = get_run_logger()
    spec = declared.spec
    settings = load_settings()
    source = open_source(spec.source, settings.data_dir, prefect_secret)
    undeclared = check_drift(
        spec.column_types,
        source.observed_columns(run.window),
        where=f"the {spec.source.kind} source of pipelines/{spec.name}.yaml",
    )
    if undeclared:
        logger.warning(
            "Ignoring undeclared source columns %s; declare them in %s to load them", undeclared, declared.file.name
        )
    masker = (
        PiiMasker(spec.pii.columns, prefect_secret(spec.pii.key, f"pipeline {spec.name} PII hash key"))
        if spec.pii
        else None
    )
    converter = BatchConverter(spec.column_types, redact=masker.mask_record if masker else None)
    columns = masker.masked_columns(spec.column_types) if masker else spec.column_types
    with connect() as warehouse:
        progress = LoadProgress(spec.name, run.window.key, _usual_rows(warehouse, spec, run), time.monotonic())
        on_chunk = _ProgressReporter(progress, logger)
        stream = _TypedStream(source.batches(run.window), converter, masker, early_stop_limit(spec.rejects), on_chunk)
        warehouse.ensure_schema(AUDIT_SCHEMA)
        warehouse.create_table(AUDIT_SCHEMA, run.raw, columns, scratch=True)
        schema = pa.schema([(name, kind.arrow) for name, kind in columns.items()])
        try:
            warehouse.append_arrow(AUDIT_SCHEMA, run.raw, pa.RecordBatchReader.from_batches(schema, stream))
        finally:
            write_dead_letters(warehouse, spec.name, run.window.key, run.run_tag, stream.rejected)
    if stream.rejected:
        enforce_threshold(
            spec.rejects,
            len(stream.rejected),
            stream.rows,
            stream.rejected[0].reason,
            where=f"pipeline {spec.name}, partition {run.window.key}",
            run_tag=run.run_tag,
        )
    on_chunk.finish()
    logger.info(
        "Loaded %s rows of %s into audit table %s (%s rejected)",
        stream.rows,
        run.window.key,
        run.raw,
        len(stream.rejected),
    )
    return LoadReport(stream.rows, len(stream.rejected))


def _usual_rows(warehouse: Warehouse, spec: Pipeline, run: RunTables) -> int | None:
    if run.window.start is None or LEDGER_TABLE in missing_platform_tables(warehouse):
        return None  # a full refresh, or a warehouse where nothing was published yet
    baseline = published_row_counts_before(warehouse, PublishedTable.of(spec), run.window.start, USUAL_SIZE_PARTITIONS)
    return expected_rows(baseline)


class _ProgressReporter:
    """After each chunk the warehouse took: a log line, the task's progress artifact, and in-process listeners."""

    def __init__(self, progress: LoadProgress, logger: logging.Logger | logging.LoggerAdapter[logging.Logger]) -> None:
        self._progress, self._logger = progress, logger
        self._artifact = cast(UUID, create_progress_artifact(0.0, description=progress.describe()))

    def __call__(self, rows: int) -> None:
        self._progress.add_chunk(rows, time.monotonic())
        self._logger.info(
            "Chunk %s of %s: %s rows so far, %s rows/s",
            self._progress.chunks, self._progress.partition, f"{self._progress.rows:,}",
            f"{self._progress.rows_per_second:,.0f}",
        )  # fmt: skip
        self._publish()

    def finish(self) -> None:
        self._progress.finish(time.monotonic())
        self._publish()

    def _publish(self) -> None:
        update_progress_artifact(self._artifact, self._progress.percent, description=self._progress.describe())
        report(self._progress)


class _TypedStream:
    """Iterates typed (and masked) batches, counting rows and collecting rejects as the load consumes it."""

    def __init__(
        self,
        raw: Iterator[pa.RecordBatch],
        converter: BatchConverter,
        masker: PiiMasker | None,
        limit: int | None,
        on_chunk: Callable[[int], None],
    ) -> None:
        self._raw, self._converter, self._masker, self._limit = raw, converter, masker, limit
        self._on_chunk = on_chunk
        self.rows = 0
        self.rejected: list[RejectedRow] = []

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for raw in self._raw:
            typed, rejected = self._converter.convert(raw)
            self.rejected += rejected
            if self._limit is not None and len(self.rejected) > self._limit:
                return  # over the absolute limit: stop reading, the threshold check fails the run
            self.rows += typed.num_rows
            yield self._masker.apply(typed) if self._masker else typed
            self._on_chunk(typed.num_rows)  # the load asked for the next chunk: it has taken this one
