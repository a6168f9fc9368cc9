"""A terminal progress bar for `shipshape run`: partitions loaded of N, and the current one's rows and rows/s.

Fed by the extract task's reports in this process (`runtime.progress`). Only on a terminal: piped output and CI
logs keep the plain log lines, which carry the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from runtime.progress import listening
from shipshape.declaration import Pipeline
from shipshape.load_progress import LoadProgress
from shipshape.partitions import windows_for


@contextmanager
def partition_progress(spec: Pipeline, start_date: date | None, end_date: date | None) -> Iterator[None]:
    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    total = len(windows_for(spec.grain, start_date, end_date, datetime.now(UTC)))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"{spec.name}: partitions loaded", total=total)
        loaded: set[str] = set()  # a retried extract reports its partition again: count it once

        def show(progress: LoadProgress) -> None:
            if progress.done:
                loaded.add(progress.partition)
            bar.update(task, completed=len(loaded), description=progress.describe())

        with listening(show):
            yield
