"""Renders `runbooks/<pipeline>.md`: a generated part from the declaration, and the owners' own sections.

The generated part sits between two marker comments and says what the pipeline does, its service levels, and
for every alert kind (`shipshape.alerts`) what it means and what to do, with this project's real commands.
Everything outside the markers is hand-written and kept byte for byte when `python -m deployments.generate`
rewrites the file. Every alert links to its section: `runbook_url(pipeline, alert)`.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, metadata

from deployments.environments import ENVIRONMENTS
from deployments.runbook_text import PROCEDURES
from shipshape.alerts import ALERT_KINDS, AlertKind
from shipshape.catalog import DeclaredPipeline
from shipshape.declaration import Pipeline
from shipshape.errors import ConfigurationError
from shipshape.slo import format_duration, format_percent

BEGIN = "<!-- generated: do not edit between these markers; make generate -->"
END = "<!-- end generated -->"
STARTER = """

## Notes from the owners

Hand-written: `make generate` keeps everything outside the generated markers as it is. Add what the
declaration cannot say — quirks of the source, who to ask upstream, past incidents and their fixes.
"""
DEFAULT_BRANCH = "main"


def runbook_path(pipeline: str) -> str:
    """The runbook's path in the repository."""
    return f"runbooks/{pipeline}.md"


def runbook_url(pipeline: str, alert: str | None = None) -> str:
    """Link to a pipeline's runbook on the repository's default branch, at `alert`'s section if given.

    `alert` is a key of `ALERT_KINDS` (e.g. `FAST_BURN`); the repository is `[project.urls] Repository` of the
    installed package, so the link follows the project wherever it is hosted.
    """
    url = f"{repository_url()}/blob/{DEFAULT_BRANCH}/{runbook_path(pipeline)}"
    if alert is None:
        return url
    if alert not in ALERT_KINDS:
        raise ValueError(f"unknown alert {alert!r}; expected one of {', '.join(ALERT_KINDS)}")
    return f"{url}#{ALERT_KINDS[alert].anchor}"


@cache
def repository_url() -> str:
    """`Repository` from the installed package's metadata (pyproject.toml `[project.urls]`)."""
    fix = "add `Repository = \"https://github.com/<org>/shipshape\"` under [project.urls] in pyproject.toml and " \
        "reinstall (`pip install --no-deps -e .`, part of `make install`)"
    try:
        urls: list[str] = metadata("shipshape").get_all("Project-URL") or []
    except PackageNotFoundError:
        raise ConfigurationError(
            f"the shipshape package is not installed, so its repository URL is unknown; {fix}"
        ) from None
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip() == "Repository":
            return url.strip().rstrip("/")
    raise ConfigurationError(f"the installed shipshape package has no Repository URL; {fix}")


def render(declared: DeclaredPipeline, existing: str | None = None) -> str:
    """The runbook text: the generated part refreshed, `existing`'s hand-written parts kept byte for byte."""
    generated = f"{BEGIN}\n{_generated(declared.spec)}{END}"
    if existing is None:
        return generated + STARTER
    if existing.count(BEGIN) != 1 or existing.count(END) != 1 or existing.index(BEGIN) > existing.index(END):
        raise ConfigurationError(
            f"{runbook_path(declared.name)}: expected one line `{BEGIN}` and after it one line `{END}` around the "
            "generated part; put them back (`git diff` shows where they were), or delete the file and run "
            "`make generate` to start it again"
        )
    before, rest = existing.split(BEGIN)
    return before + generated + rest.split(END)[1]


def _generated(spec: Pipeline) -> str:
    context = _context(spec)
    sections = [
        f"# Runbook: {spec.name}\n\n{spec.description}\n",
        _what_it_does(spec, context),
        _owner(spec),
        _service_levels(spec, context),
        "## Alerts\n\nEvery alert links to its section here.\n",
        *(_alert_section(alert, context) for alert in ALERT_KINDS.values()),
        PROCEDURES.format(**context),
    ]
    return "\n".join(sections)


def _context(spec: Pipeline) -> dict[str, str]:
    """The values the alert and procedure texts are filled with."""
    slo = spec.slo
    day = spec.partition is not None
    anomaly = spec.volume.anomaly
    return {
        "name": spec.name,
        "contract": spec.contract,
        "destination": f"{spec.destination.schema_name}.{spec.destination.published_table}",
        "sla": spec.freshness.sla,
        "window": slo.window,
        "fast_burn_window": slo.fast_burn_window,
        "fast_burn_rate": f"{slo.fast_burn_rate:g}",
        "budget_gone_in": format_duration(slo.window_delta / slo.fast_burn_rate),
        "anomaly": f"{anomaly.method} over the last {anomaly.baseline_partitions} partitions"
        if anomaly
        else "this pipeline declares no `volume.anomaly`, so this alert does not fire",
        "run_params": " -p start_date=$DAY -p end_date=$DAY" if day else "",
        "run_args": " --start-date $DAY --end-date $DAY" if day else "",
        "partition_scope": _partition_scope(spec),
        "suffix": _table_suffix(spec),
        "replaces": _replaces(spec),
        "environments": ", ".join(ENVIRONMENTS),
        "budget": f"{spec.cost.budget_per_month:g} a month (`cost.budget_per_month`)"
        if spec.cost.budget_per_month is not None
        else "none declared (`cost.budget_per_month`), so this alert does not fire",
        "unread_after": spec.value.unread_after,
    }


def _what_it_does(spec: Pipeline, context: dict[str, str]) -> str:
    rows = [
        ("Source", spec.source.describe()),
        ("Destination", f"`{context['destination']}`"),
        ("Partitions", _partitions(spec)),
        ("Load mode", f"`{spec.load.mode}`: a re-run {context['replaces']}"),
        ("Transform", ", ".join(f"`{path}`" for path in spec.transform) or "none (the source rows as loaded)"),
        ("Contract", f"`{spec.contract}` (Soda; a failing check blocks publishing)"),
        ("Schedule", f"`{spec.schedule.cron}` ({spec.schedule.timezone})"),
        ("Deployments", ", ".join(f"`{spec.name}-{env}`" for env in ENVIRONMENTS)),
        ("Declaration", f"`pipelines/{spec.name}.yaml`"),
    ]
    return "## What it does\n\n" + _two_columns(rows)


def _owner(spec: Pipeline) -> str:
    owner = spec.owner
    rows = [
        ("Team", owner.team),
        ("Person", owner.person or "—"),
        ("GitHub", f"`{owner.github}`" if owner.github else "—"),
        ("Alerts go to", f"Slack `{owner.slack_channel}`"),
    ]
    return "## Owner\n\n" + _two_columns(rows)


def _service_levels(spec: Pipeline, context: dict[str, str]) -> str:
    slo = spec.slo
    rows = [
        ("Freshness SLA", f"{spec.freshness.sla} without a publish"),
        ("Success rate SLO", f"{format_percent(slo.success_rate)} of finished runs over {slo.window}"),
        ("Freshness SLO", f"within the SLA {format_percent(slo.freshness)} of the time over {slo.window}"),
        ("Fast burn", f"burn rate ≥ {context['fast_burn_rate']}x over {slo.fast_burn_window} alerts"),
        ("Volume", f"{_bounds(spec)} (blocks); anomaly: {context['anomaly']} (warns)"),
        ("Budget", context["budget"]),
        ("Unused after", f"{spec.value.unread_after} without a consumer read"),
    ]
    current = "Current numbers: see [Status and SLOs](#status-and-slos).\n"
    return "## Service levels\n\n" + _two_columns(rows) + "\n" + current


def _alert_section(alert: AlertKind, context: dict[str, str]) -> str:
    steps = "\n".join(f"{number}. {step}" for number, step in enumerate(alert.steps, start=1))
    return f"### {alert.title}\n\n{alert.means.format(**context)}\n\nWhat to do:\n\n{steps.format(**context)}\n"


def _two_columns(rows: list[tuple[str, str]]) -> str:
    return "| | |\n|---|---|\n" + "".join(f"| {label} | {value} |\n" for label, value in rows)


def _bounds(spec: Pipeline) -> str:
    volume = spec.volume
    low, high = volume.min_rows, volume.max_rows
    if low is None and high is None:
        bounds = "no row-count bounds"
    else:
        bounds = f"at least {low or 0}" + ("" if high is None else f", at most {high}") + " rows per partition"
    empty = "may be empty" if volume.allow_empty else "not empty"
    scope = "the partition" if spec.load.mode == "replace_partition" else "the table"
    shrink = (
        "any shrink"
        if volume.max_shrink >= 1
        else f"at most {format_percent(volume.max_shrink)} fewer rows than {scope} holds now"
    )
    return f"{bounds}, {empty}, {shrink}"


def _partitions(spec: Pipeline) -> str:
    if spec.partition is None:
        return "none: every run replaces the whole table"
    grain = "daily" if spec.partition.grain == "day" else "hourly"
    return f"{grain}, by `{spec.partition.column}`"


def _partition_scope(spec: Pipeline) -> str:
    if spec.partition is None:
        return "The pipeline has no partitions: a run reloads everything, so there are no dates to give."
    if spec.partition.grain == "hour":
        return "Dates are whole days: the run covers every hour of `$DAY` (both dates included)."
    return "Both dates are included; give a later `end_date` for several days."


def _table_suffix(spec: Pipeline) -> str:
    if spec.partition is None:
        return "`full`"
    if spec.partition.grain == "hour":
        return "the partition key's digits (hour `2026-11-05T03` → `2026110503`)"
    return "the partition key's digits (`2026-11-05` → `20261105`)"


def _replaces(spec: Pipeline) -> str:
    if spec.load.mode == "merge":
        return f"merges by key ({', '.join(spec.load.key)}), never duplicates"
    if spec.load.mode == "full_replace":
        return "replaces the whole table"
    return "replaces the partition, never appends to it"
