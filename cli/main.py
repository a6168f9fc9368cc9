"""`shipshape` command line: a thin layer that parses arguments and calls the platform.

User mistakes print one clear line and exit 2; tracebacks only with --debug.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from shipshape.errors import ShipshapeError

if TYPE_CHECKING:
    from shipshape.catalog import DeclaredPipeline


def console() -> None:
    """The `shipshape` executable: `main`, then an exit that skips Python's teardown of the imported libraries.

    Tearing down pandas, Arrow, DuckDB, Soda and Prefect takes about a second after the last output, as long as
    a one-day run's publishing; nothing is left to do by then. Every exit handler still runs first (Prefect's
    services send their last logs and events before any of them, and this one is registered before all others so
    it runs last); only the freeing of objects the process is about to lose anyway is skipped. Only for the
    command: tests call `main` in their own process.
    """
    status = _ExitStatus()
    atexit.register(status.exit_now)
    try:
        status.code = main()
    except SystemExit as stop:  # argparse: --help, a usage error
        status.code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        raise
    except KeyboardInterrupt:
        status.code = 130
        raise
    sys.exit(status.code)


class _ExitStatus:
    code = 1  # what an exception escaping `main` exits with

    def exit_now(self) -> None:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # closed, or a pipe nobody reads any more
                stream.flush()
        os._exit(self.code)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.command(args)
    except ShipshapeError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2


def _validate(args: argparse.Namespace) -> int:
    from shipshape.audit import check_contract
    from shipshape.catalog import check_unique_destinations, load_pipeline, pipeline_files
    from shipshape.output_columns import output_columns

    files = [Path(file) for file in args.files] or pipeline_files()
    failures = 0
    loaded: list[DeclaredPipeline] = []
    for file in files:
        try:
            declared = load_pipeline(file.resolve())
            check_contract(declared.contract_path)
            output_columns(declared)  # what `diff` and a run's preflight derive: an unknown column fails here
            if args.live:
                _check_live(declared, args.date)
                _check_published(declared)
            loaded.append(declared)
            print(f"ok    {file}")
        except ShipshapeError as error:
            failures += 1
            print(f"error {error}", file=sys.stderr)
    try:
        check_unique_destinations(loaded)  # across the files: two pipelines may not publish one table
    except ShipshapeError as error:
        failures += 1
        print(f"error {error}", file=sys.stderr)
    print(f"{len(files) - failures} valid, {failures} invalid")
    return 1 if failures else 0


def _check_live(declared: DeclaredPipeline, partition_day: date) -> None:
    """Compare the live source's columns with the declaration (for CI), without loading anything."""
    from runtime.secrets import prefect_secret
    from shipshape.partitions import plan_windows
    from shipshape.settings import load_settings
    from shipshape.sources.factory import check_drift, open_source

    spec = declared.spec
    window = plan_windows(spec.grain, partition_day, partition_day)[0]
    source = open_source(spec.source, load_settings().data_dir, prefect_secret)
    new_columns = check_drift(
        spec.column_types,
        source.observed_columns(window),
        where=f"the live {spec.source.kind} source of pipelines/{spec.name}.yaml",
    )
    if new_columns:
        print(f"note  {declared.file.name}: undeclared source columns ignored: {', '.join(new_columns)}")


def _check_published(declared: DeclaredPipeline) -> None:
    """The published table still has only columns the transform makes (no unversioned breaking change)."""
    from runtime.connections import connect
    from shipshape.schema_guard import check_published

    with connect() as warehouse:
        check_published(warehouse, declared)


def _diff(args: argparse.Namespace) -> int:
    """Each change to what the pipelines publish since the base, classified; exit 1 on an unversioned breaking one."""
    from shipshape.schema_diff import diff_project
    from shipshape.settings import load_settings

    diff = diff_project(load_settings().project_dir, args.base)
    print(f"compared with {diff.base}" + ("" if args.base else " (the merge base with main)"))
    for line in [*(change.line() for change in diff.changes), *(f"note {note}" for note in diff.notes)]:
        print(line)
    blocking = len(diff.blocking)
    print(f"{len(diff.changes)} change(s), {blocking} unversioned breaking")
    return 1 if blocking else 0


def _run(args: argparse.Namespace) -> int:
    from shipshape.catalog import find_pipeline

    declared = find_pipeline(args.pipeline)  # a bad name or declaration fails here, before any server starts
    from runtime.local_api import local_api

    api = local_api()  # a new local API starts now, while the rest is imported
    from prefect import tags

    from cli.progress_bar import partition_progress
    from flows.run_pipeline import import_run_libraries, run_pipeline
    from runtime.console_logging import hide_user_error_tracebacks
    from shipshape.names import run_tags
    from shipshape.settings import environment_name

    if not args.debug:
        hide_user_error_tracebacks()
    import_run_libraries()
    api.wait_ready()
    print(f"flows run on {api.description}", file=sys.stderr)
    started = time.perf_counter()
    # The tags deployed runs get from their deployment: `shipshape status` counts local runs the same way.
    with tags(*run_tags(args.pipeline, environment_name())), partition_progress(
        declared.spec, args.start_date, args.end_date
    ):
        rows = run_pipeline(
            args.pipeline, start_date=args.start_date, end_date=args.end_date, reuse_raw=args.reuse_raw
        )
    for row in rows:
        print("  ".join(f"{key}={value}" for key, value in row.items()))
    print(f"ran {len(rows)} partition(s) of {args.pipeline} in {time.perf_counter() - started:.2f} s")
    return 0


def _stop_api(args: argparse.Namespace) -> int:
    """The kept local API of this Prefect home, stopped now instead of after its idle time."""
    from runtime.kept_api import prefect_home, stop_recorded

    home = prefect_home()
    url = stop_recorded(home)
    print(f"stopped the local Prefect API at {url}" if url else f"no local Prefect API is kept for {home}")
    return 0


def _status(args: argparse.Namespace) -> int:
    """Where every pipeline (or one) stands against its SLOs in an environment: a table, a detail view or JSON."""
    from cli import status
    from runtime.slo_sources import slo_reports
    from shipshape.catalog import find_pipeline

    name = _enter_environment(args.env)
    only = [find_pipeline(args.pipeline).name] if args.pipeline else None
    _history_api(name)
    reports = slo_reports(datetime.now(UTC), name, only)
    if args.json:
        print(status.as_json(name, reports))
    elif not reports:
        print(f"environment {name}: no pipelines declared")
    else:
        colour = status.use_colour(sys.stdout)
        print(f"environment {name}")
        print(status.detail(reports[0], colour) if args.pipeline else status.summary(reports, colour))
    return 0


def _report(args: argparse.Namespace) -> int:
    """One self-contained HTML page of an environment: freshness, error budgets, volume bands, cost, lineage."""
    from runtime.cost_sources import recent_months
    from runtime.report_sources import COST_MONTHS, environment_history
    from shipshape import report_page

    name = _enter_environment(args.env)
    _history_api(name)
    now = datetime.now(UTC)
    history = environment_history(now, name, recent_months(name, now, COST_MONTHS))
    path = report_page.write(history, args.out or report_page.default_path(name))
    print(f"environment {name}: report written to {path} ({path.stat().st_size / 1e6:.1f} MB); open {path.as_uri()}")
    return 0


def _cost(args: argparse.Namespace) -> int:
    """Each pipeline's month in an environment: compute, storage, cost, projection, budget, reads, cost per read."""
    from cli import cost, status
    from runtime.cost_sources import pipeline_months
    from shipshape.cost import Month

    name = _enter_environment(args.env)
    month = Month.parse(args.month) if args.month else Month.of(datetime.now(UTC))
    _history_api(name)
    months = pipeline_months(month, name, datetime.now(UTC))
    if args.json:
        print(cost.as_json(name, str(month), months))
    elif not months:
        print(f"environment {name}, {month}: no pipelines declared or nothing ran yet")
    else:
        print(f"environment {name}, {month} ({months[0].currency}; storage: the month's average)")
        print(cost.summary(months, status.use_colour(sys.stdout)))
    return 0


def _enter_environment(env: str | None) -> str:
    """Read as `env`'s deployments run (its name and warehouse block); None keeps this process's (SHIPSHAPE_ENV)."""
    from shipshape.settings import LOCAL_ENVIRONMENT, environment_name

    if env and env != LOCAL_ENVIRONMENT:
        from deployments.environments import environment

        os.environ.update(environment(env).job_env())  # what its deployments' runs get: name, warehouse block
    elif env:  # local runs: no deployment's name or block (they read URLs or the embedded default)
        for variable in ("SHIPSHAPE_ENV", "SHIPSHAPE_WAREHOUSE_BLOCK"):
            os.environ.pop(variable, None)
    return environment_name()


def _history_api(environment: str) -> None:
    """A deployed environment's run history is on its own API; only local runs may be read from a temporary one."""
    from runtime.local_api import local_api
    from shipshape.settings import LOCAL_ENVIRONMENT

    local_api(temporary=environment == LOCAL_ENVIRONMENT).wait_ready()


def _rollback(args: argparse.Namespace) -> int:
    """Put a partition (or every partition a run published) back as an earlier publish left it, as the publisher."""
    from runtime.connections import connect
    from shipshape.catalog import find_pipeline
    from shipshape.rollback import roll_back

    spec = find_pipeline(args.pipeline).spec
    with connect("publisher") as warehouse:
        restored = roll_back(warehouse, spec, partition=args.partition, to=args.to, run=args.run)
    print(_table([partition.as_row() for partition in restored]))
    print(f"rolled back {len(restored)} partition(s) of {args.pipeline}")
    return 0


def _table(rows: list[dict[str, object]]) -> str:
    """Left-aligned columns under a header rule; every row has the first row's keys."""
    columns = list(rows[0])
    widths = [max(len(column), *(len(str(row[column])) for row in rows)) for column in columns]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines.append("-" * len(lines[0]))
    lines += ["  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _environment_names() -> list[str]:
    from shipshape.names import ENVIRONMENTS
    from shipshape.settings import LOCAL_ENVIRONMENT

    return [LOCAL_ENVIRONMENT, *ENVIRONMENTS]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shipshape", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(required=True)

    validate = commands.add_parser("validate", help="check pipeline declarations (and, with --live, their sources)")
    validate.add_argument("files", nargs="*", help="declaration files (default: pipelines/*.yaml)")
    validate.add_argument(
        "--live", action="store_true", help="also compare the live source schema with the declaration"
    )
    validate.add_argument(
        "--date",
        type=date.fromisoformat,
        default=(datetime.now(UTC) - timedelta(days=1)).date(),
        help="partition day to inspect with --live (default: yesterday)",
    )
    validate.set_defaults(command=_validate)

    diff = commands.add_parser(
        "diff", help="classify changes to what the pipelines publish since a git base (exit 1: unversioned breaking)"
    )
    diff.add_argument("--base", help="git ref to compare with (default: the merge base of HEAD with main)")
    diff.set_defaults(command=_diff)

    run = commands.add_parser("run", help="run a pipeline over a date range")
    run.add_argument("pipeline")
    run.add_argument("--start-date", type=date.fromisoformat)
    run.add_argument("--end-date", type=date.fromisoformat)
    run.add_argument("--reuse-raw", action="store_true", help="re-transform kept raw data instead of extracting")
    run.set_defaults(command=_run)

    status = commands.add_parser(
        "status", help="freshness, SLOs, error budgets and burn rates of every pipeline in an environment"
    )
    _environment_option(status)
    status.add_argument("--pipeline", help="one pipeline, every figure")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(command=_status)
    report = commands.add_parser(
        "report", help="write one self-contained HTML page of an environment's pipelines: charts and lineage"
    )
    _environment_option(report)
    report.add_argument("--out", type=Path, help="the file to write (default: <data folder>/reports/report-<env>.html)")
    report.set_defaults(command=_report)
    cost = commands.add_parser(
        "cost", help="compute, storage, cost, budget and consumer reads of every pipeline in an environment, per month"
    )
    _environment_option(cost)
    cost.add_argument("--month", help="YYYY-MM (default: this month, projected to its end)")
    cost.add_argument("--json", action="store_true", help="machine-readable output")
    cost.set_defaults(command=_cost)
    _rollback_parser(commands)
    stop_api = commands.add_parser(
        "stop-api", help="stop the local Prefect API that `run` and `make demo` keep for the next command"
    )
    stop_api.set_defaults(command=_stop_api)
    return parser


def _environment_option(command: argparse.ArgumentParser) -> None:
    """`--env`, as every command reading an environment's history takes it."""
    command.add_argument(
        "--env", choices=_environment_names(), help="the environment (default: SHIPSHAPE_ENV, else local)"
    )


def _rollback_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rollback = commands.add_parser(
        "rollback", help="restore a partition as an earlier publish left it (kept for the pipeline's history.retention)"
    )
    rollback.add_argument("pipeline")
    which = rollback.add_mutually_exclusive_group(required=True)
    which.add_argument("--partition", help="the partition key as in the ledger, e.g. 2026-11-01 or 2026-11-01T05")
    which.add_argument("--run", help="undo everything this flow run (id) published")
    rollback.add_argument("--to", help="the ledger entry id of the publish to restore (default: the one before)")
    rollback.set_defaults(command=_rollback)

