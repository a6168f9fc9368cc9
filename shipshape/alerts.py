"""Every kind of alert, registered once: its runbook section, what it means, what to do, and how it fires.

Everything else is derived from `ALERT_KINDS`: the incident kinds `shipshape.incidents` records, the
headlines `runtime.incidents` announces, the runbook's alert sections (`deployments.runbooks`) and the
Prefect automations that post them (`infra.automations`). Adding an alert kind is one entry here, plus the
code that measures it (a monitor calling `shipshape.incidents.transition`), or none for a run-state alert.

Triggers are plain data (Prefect event names as strings) so the engine never imports Prefect.
Texts are templates filled by the runbook (`{name}`, `{destination}`, ...); steps may link to the runbook's
procedures (`deployments/runbook_text.py`) by their anchors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shipshape.errors import AUDIT_FAILED_STATE

Transition = Literal["opened", "resolved"]

COMPLETED = frozenset({"prefect.flow-run.Completed"})
ENDED_BADLY = frozenset({"prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut"})
BLOCKED = frozenset({f"prefect.flow-run.{AUDIT_FAILED_STATE}"})

# Slack mrkdwn reads `<…>` as a link or a mention (`<!channel>`, `<https://evil|Re-run here>`) and `&` as an entity;
# its rules: escape exactly these three. Prefect's Slack block posts the text as it is.
_SLACK_ESCAPES = " | replace('&', '&amp;') | replace('<', '&lt;') | replace('>', '&gt;')"

RUN_FAILED = "run-failed"
AUDIT_BLOCKED = "audit-blocked"
FRESHNESS_BREACH = "freshness-breach"
VOLUME_ANOMALY = "volume-anomaly"
FAST_BURN = "fast-burn"
COST = "cost"
UNUSED = "unused"
RECOVERED = "recovered"


def run_value(expression: str) -> str:
    """A Jinja placeholder for text a run produced (its state message, name, an event's summary), escaped for Slack.

    Such text is written by whoever controls the data or the declaration — an error can quote a source value — so
    in an alert it must read as text: never ping the channel or turn into a link.
    """
    return "{{ " + expression + _SLACK_ESCAPES + " }}"


@dataclass(frozen=True)
class RunStateTrigger:
    """Fires on the first run of a pipeline's deployment ending in `fired_by` after one ending in `armed_by`.

    Firing disarms it until the next `armed_by` run, so a pipeline failing every hour alerts once.
    `subject`, `what` and `detail` are the message's parts (Jinja over Prefect's flow run); `when` says in
    the automation's description what it reacts to.
    """

    when: str
    armed_by: frozenset[str]
    fired_by: frozenset[str]
    subject: str
    what: str
    detail: str = ""


@dataclass(frozen=True)
class IncidentTrigger:
    """Opened and resolved by a monitor (`shipshape.incidents.transition`), announced once per change."""

    opened: str
    resolved: str

    def headline(self, change: Transition) -> str:
        return self.opened if change == "opened" else self.resolved


@dataclass(frozen=True)
class AlertKind:
    """An alert a pipeline can raise. `title` is its runbook heading, whose GitHub anchor is `anchor`."""

    anchor: str
    title: str
    means: str
    steps: tuple[str, ...]
    trigger: RunStateTrigger | IncidentTrigger


_RUN_FAILED_ALERT = AlertKind(
    anchor=RUN_FAILED,
    title="Run failed",
    means=(
        "A run of `{name}-<env>` ended Failed, Crashed or TimedOut (retries of transient errors used up). "
        "Nothing of that run was published; the ledger has a `failed` row for the partition it stopped on."
    ),
    steps=(
        "Open the flow run from the alert (or Flow Runs in the UI, tag `pipeline:{name}`) and read the first "
        "error in its logs. The ledger keeps it too: `SELECT partition_key, message, finished_at FROM "
        "platform.publish_ledger WHERE pipeline = '{name}' AND status = 'failed' ORDER BY finished_at DESC LIMIT 5;`",
        "Transient (network, 5xx, locks, a busy database) and retries ran out: once the source or warehouse is "
        "healthy again, [re-run the partition](#re-run-a-partition).",
        "Schema drift (a source column renamed, removed or retyped): change `source.columns` in "
        "`pipelines/{name}.yaml`, check it with `shipshape validate --live`, merge, deploy, re-run.",
        "Too many rejected rows (values that fail type conversion): read the [dead letters](#dead-letters), get "
        "the source fixed or correct the declared type, re-run.",
        '"another run is processing … this run changed nothing": a run of the same partition was still going; '
        "let it finish.",
        "TimedOut: the message names the step that ran out of time and the run's timeout. A source that hangs "
        "(an API or database not answering) is the usual cause: check it, then re-run. If runs are really this "
        "slow now, raise `timeout` in `pipelines/{name}.yaml`.",
        "Crashed (worker, container, memory): check that work pool `shipshape-<env>` has a healthy worker "
        "(Work Pools in the UI), then re-run. Several partitions failed: [backfill](#backfill) with mode `failed`.",
    ),
    trigger=RunStateTrigger(
        when="a run failed, crashed or timed out",
        armed_by=COMPLETED,
        fired_by=ENDED_BADLY,
        subject="run {{ flow_run.state.name }}",
        what="the run ended {{ flow_run.state.name }}.",
        detail="Error: " + run_value("flow_run.state.message | truncate(600)"),
    ),
)

_AUDIT_BLOCKED_ALERT = AlertKind(
    anchor=AUDIT_BLOCKED,
    title="Audit blocked",
    means=(
        "The contract `{contract}` (or a volume rule: the bounds, an empty partition, a publish that would shrink "
        "what it replaces; or, for a merge, a NULL or repeated key) failed for a partition: nothing was published, "
        "`{destination}` is unchanged, and the partition's audit tables are quarantined for inspection."
    ),
    steps=(
        "See which checks failed and their measured values: the run's Artifacts tab in the UI, or the ledger "
        "([inspect the quarantine](#inspect-the-quarantine)).",
        "Query the quarantined output table to find the offending rows.",
        "Bad data at the source: get it fixed upstream, then [re-run the partition](#re-run-a-partition).",
        "`volume: not empty` or `volume: shrink within max_shrink` failed: the source answered with no rows, or far "
        "fewer than are published now — usually an outage or a wrong window upstream, so check the source first. "
        "If it is really so, say it in `pipelines/{name}.yaml` (`volume.allow_empty: true`, a higher "
        "`volume.max_shrink`; 1 allows any shrink) in a pull request, then re-run.",
        "`merge key: not NULL` or `merge key: unique` failed: the transform returned rows without a key, or "
        "several rows for one key; make it return one row per key (e.g. the latest) or declare the right "
        "`load.key`, in a pull request.",
        "A wrong check or transform: fix it in a pull request; once deployed, re-run with `-p reuse_raw=true` "
        "(re-transforms and re-audits the kept raw data without extracting again; locally `--reuse-raw`).",
        "Never publish around the gate: a check that is wrong changes in the contract, reviewed like code.",
    ),
    trigger=RunStateTrigger(
        when="the audit gate blocked a publish",
        armed_by=COMPLETED,
        fired_by=BLOCKED,
        subject="audit gate blocked the publish",
        what="the contract failed, nothing was published.",
        detail="Failed checks: " + run_value("flow_run.state.message | truncate(1500)"),
    ),
)

_FRESHNESS_BREACH_ALERT = AlertKind(
    anchor=FRESHNESS_BREACH,
    title="Freshness breach",
    means=(
        "The latest publish of `{destination}` is older than the freshness SLA ({sla}): consumers read stale "
        "data."
    ),
    steps=(
        "Did runs fail or get blocked? Flow Runs in the UI with tags `pipeline:{name}` and `env:<env>`; such a "
        "run has its own alert — follow it.",
        "Is the schedule active? `prefect deployment schedule ls \"run-pipeline/{name}-$ENV\"` "
        "([pause and resume](#pause-and-resume-the-schedule)).",
        "Are runs Late? Then no worker polls work pool `shipshape-<env>` (Work Pools in the UI).",
        "The last publishes: `SELECT partition_key, row_count, finished_at FROM platform.publish_ledger "
        "WHERE pipeline = '{name}' AND status = 'published' ORDER BY finished_at DESC LIMIT 5;`",
        "Catch up the partitions that never published: [backfill](#backfill) with mode `missing`.",
    ),
    trigger=IncidentTrigger(opened="Freshness SLA breached", resolved="Fresh again"),
)

_VOLUME_ANOMALY_ALERT = AlertKind(
    anchor=VOLUME_ANOMALY,
    title="Volume anomaly",
    means=(
        "A partition was published, but its row count is outside the band of its recent partitions "
        "({anomaly}). A warning only: the data is published."
    ),
    steps=(
        "Compare with recent partitions: `SELECT partition_key, row_count, rejected_rows, finished_at FROM "
        "platform.publish_ledger WHERE pipeline = '{name}' AND status = 'published' "
        "ORDER BY partition_key DESC LIMIT 30;`",
        "Explained by the business (a sale, a holiday, an outage upstream): nothing to fix; write it under the "
        "owners' notes below.",
        "Source data missing or duplicated: once the source is complete, [re-run the partition](#re-run-a-partition) "
        "— a re-run {replaces}.",
        "Volume really changed: adjust `volume` in `pipelines/{name}.yaml` (`min_rows`/`max_rows` block, "
        "`anomaly` warns).",
    ),
    trigger=IncidentTrigger(opened="Volume anomaly (warning)", resolved="Volume back to normal"),
)

_FAST_BURN_ALERT = AlertKind(
    anchor=FAST_BURN,
    title="Fast burn",
    means=(
        "Over the last {fast_burn_window} an SLO's error budget burnt at {fast_burn_rate}x the sustainable "
        "rate or faster: at that pace the {window} budget is gone in {budget_gone_in}."
    ),
    steps=(
        "See which SLO burns: [Status and SLOs](#status-and-slos).",
        "Success rate burning: runs keep failing or being blocked — [Run failed](#run-failed), "
        "[Audit blocked](#audit-blocked).",
        "Freshness burning: [Freshness breach](#freshness-breach).",
        "If failing runs only add noise while the cause is fixed, "
        "[pause the schedule](#pause-and-resume-the-schedule); resume it afterwards and [backfill](#backfill) what "
        "was missed.",
    ),
    trigger=IncidentTrigger(opened="Error budget burning fast", resolved="Error budget burn back to normal"),
)

_COST_ALERT = AlertKind(
    anchor=COST,
    title="Cost",
    means=(
        "This month's projected cost of `{name}` (compute from its runs, storage of its tables, priced by the "
        "environment's cost model) passes `cost.budget_per_month` in `pipelines/{name}.yaml`."
    ),
    steps=(
        "Budget: {budget}. See where the money goes: `shipshape cost --env <env>` (compute, storage by area, "
        "reads, cost per read).",
        "Compute: runs longer or more frequent than needed? Check the schedule, failed runs re-trying, backfills "
        "run twice ([backfill](#backfill) plans only missing days).",
        "Storage: history kept too long (`history.retention`), quarantined audit tables left behind, old versions "
        "of the table (`destination.previous_version_until`).",
        "Nobody reads it (few reads, high cost per read): [pause the schedule](#pause-and-resume-the-schedule) "
        "or retire the pipeline.",
        "The cost is right and the budget too low: raise `cost.budget_per_month` in a pull request; the next "
        "monitor run resolves the incident.",
    ),
    trigger=IncidentTrigger(opened="Projected cost over budget", resolved="Projected cost within budget"),
)

_UNUSED_ALERT = AlertKind(
    anchor=UNUSED,
    title="Unused",
    means=(
        "No consumer read `{destination}` for {unread_after} (`value.unread_after`) since its first publish: the "
        "pipeline costs compute and storage for data nobody uses."
    ),
    steps=(
        "Ask the readers you know of (the consumers of the environment's warehouse) whether they still need it; "
        "`shipshape cost --env <env>` shows its reads and cost per read.",
        "Not needed for now: [pause the schedule](#pause-and-resume-the-schedule).",
        "Not needed at all: retire the pipeline (remove `pipelines/{name}.yaml` in a pull request; `make apply` "
        "removes its deployment and alerts).",
        "Read in a way the warehouse does not count (a rare quarterly report): raise `value.unread_after`.",
        "The next consumer read resolves the incident.",
    ),
    trigger=IncidentTrigger(opened="Nobody reads the published table", resolved="Read again"),
)

_RECOVERED_ALERT = AlertKind(
    anchor=RECOVERED,
    title="Recovered",
    means=(
        "What alerted is over: a later run completed and the pipeline is within its SLA again."
    ),
    steps=(
        "Check that nothing was left behind: [backfill](#backfill) with mode `missing` and `dry_run` on.",
        "Resume the schedule if you paused it ([pause and resume](#pause-and-resume-the-schedule)).",
        "Write the cause and the fix under the owners' notes below, for the next person.",
    ),
    trigger=RunStateTrigger(
        when="the first completed run after a failure",
        armed_by=ENDED_BADLY | BLOCKED,
        fired_by=COMPLETED,
        subject="recovered",
        what="completed and published after a failure.",
    ),
)

# In the order of the runbook's sections.
ALERT_KINDS: dict[str, AlertKind] = {
    kind.anchor: kind
    for kind in (
        _RUN_FAILED_ALERT,
        _AUDIT_BLOCKED_ALERT,
        _FRESHNESS_BREACH_ALERT,
        _VOLUME_ANOMALY_ALERT,
        _FAST_BURN_ALERT,
        _COST_ALERT,
        _UNUSED_ALERT,
        _RECOVERED_ALERT,
    )
}


def run_state_alerts() -> list[tuple[AlertKind, RunStateTrigger]]:
    """The kinds a pipeline's run states fire, with their triggers, in registry order."""
    return [(kind, kind.trigger) for kind in ALERT_KINDS.values() if isinstance(kind.trigger, RunStateTrigger)]


def incident_triggers() -> dict[str, IncidentTrigger]:
    """Anchor → trigger of the kinds monitors open and resolve: the incident kinds."""
    return {
        kind.anchor: kind.trigger for kind in ALERT_KINDS.values() if isinstance(kind.trigger, IncidentTrigger)
    }
