"""Alerts as code: the Prefect automations of one environment, each posting to a Slack webhook block.

Per pipeline, to its owner's channel (`owner.slack_channel`), each message naming the pipeline, the
partition (the run name), the owner, what happened, the run and the runbook section to follow:
- one automation per run-state alert kind of `shipshape.alerts` (run failed, audit blocked, recovered),
  named after its anchor;
- `incidents`: the incident alert kinds (freshness breach, volume anomaly, fast burn), opened and resolved
  by the monitors (runtime/incidents.py), as `shipshape.incident.*` events.
Plus, to the environment's channel, failures of the platform's own flows (backfill, monitor).

One message per incident, not per failed run: `run-failed` and `audit-blocked` are armed by a Completed run
and disarmed when they fire (Prefect's `after`/`expect` buckets), `recovered` the other way round; the
monitors' events are sent only when an incident changes state. A pipeline that has never completed is
not armed: the freshness monitor reports it instead.
"""

from __future__ import annotations

from datetime import timedelta
from typing import get_args
from uuid import UUID

from prefect.automations import Automation, EventTrigger, Posture, ResourceSpecification, SendNotification
from prefect.client.orchestration import get_client
from prefect_slack import SlackWebhook
from pydantic import BaseModel

from deployments.environments import Environment
from deployments.runbooks import runbook_url
from infra.changes import Change
from infra.ownership import prune
from runtime.blocks import load_block
from shipshape import names
from shipshape.alerts import ALERT_KINDS, ENDED_BADLY, Transition, incident_triggers, run_state_alerts, run_value
from shipshape.catalog import DeclaredPipeline, load_all
from shipshape.names import INCIDENT_EVENT_PREFIX, PLATFORM_TAG, pipeline_resource_id

# How long a Completed run keeps a failure alert armed. Prefect sweeps older buckets; the next Completed
# run re-arms, so only a failure in the one run after a year of uninterrupted success would go unannounced.
ARMED_FOR = timedelta(days=365)
RUN_LINK = "Run: {{ flow_run|ui_url }}"


def desired_automations(env: Environment) -> list[Automation]:
    automations = [_platform_failed(env)]
    for declared in load_all():
        automations += _pipeline_alerts(env, declared)
    return automations


def reconcile(env: Environment, *, dry_run: bool) -> list[Change]:
    """Create, update or delete this environment's automations (`shipshape-<env>-*`) to match the declarations."""
    prefix = names.automation_prefix(env.name)
    with get_client(sync_client=True) as client:
        existing = {automation.name: automation for automation in client.read_automations()}
    changes: list[Change] = []
    desired = desired_automations(env)
    for automation in desired:
        current = existing.get(automation.name)
        if current is None:
            if not dry_run:
                automation.create()
            changes.append(Change("automation", automation.name, "create", automation.description))
        elif _comparable(current) != _comparable(automation):
            if not dry_run:
                automation.id = current.id
                automation.update()
            changes.append(Change("automation", automation.name, "update"))
    with get_client(sync_client=True) as client:
        return changes + prune(
            "automation",
            existing,
            {automation.name for automation in desired},
            owned=lambda name: name.startswith(prefix),
            delete=lambda automation: client.delete_automation(automation.id),
            dry_run=dry_run,
        )


def _pipeline_alerts(env: Environment, declared: DeclaredPipeline) -> list[Automation]:
    spec = declared.spec
    name, owner = spec.name, spec.owner
    channel = _block_id(env.channel_block(owner.channel_slug), env)
    deployment = names.deployment_name(name, env.name)
    runs = ResourceSpecification({"prefect.resource.role": "deployment", "prefect.resource.name": deployment})
    contact = f"Owner: {owner.team}" + (f" ({owner.person})" if owner.person else "") + f" · {owner.slack_channel}"
    prefix = f"[shipshape {env.name}] {name}"
    partition = run_value(f"flow_run.name | replace('{name} ', '')")  # run names are `<pipeline> <partition(s)>`
    incident_titles = ", ".join(ALERT_KINDS[anchor].title.lower() for anchor in incident_triggers())
    return [
        *(
            Automation(
                name=names.automation_name(env.name, name, alert.anchor),
                description=f"{name}: {trigger.when} ({deployment}) → {owner.slack_channel}",
                trigger=_armed_by(trigger.armed_by, trigger.fired_by, runs),
                actions=[_notify(channel, f"{prefix}: {trigger.subject}", "\n".join(line for line in (
                    f"Pipeline {name}, partition {partition}: {trigger.what}",
                    trigger.detail,
                    RUN_LINK,
                    contact,
                    f"Runbook: {runbook_url(name, alert.anchor)}",
                ) if line))],
            )
            for alert, trigger in run_state_alerts()
        ),
        Automation(
            name=names.automation_name(env.name, name, "incidents"),
            description=f"{name}: incidents ({incident_titles}) opened or resolved → {owner.slack_channel}",
            trigger=EventTrigger(
                expect={f"{INCIDENT_EVENT_PREFIX}.{change}" for change in get_args(Transition)},
                match=ResourceSpecification({"prefect.resource.id": pipeline_resource_id(env.name, name)}),
                posture=Posture.Reactive,
                threshold=1,
            ),
            actions=[_notify(channel, f"{prefix}: {run_value('event.payload.headline')}", (
                f"{run_value('event.payload.summary')}\n"
                f"{contact}\nRunbook: {runbook_url(name)}#{{{{ event.payload.anchor }}}}"
            ))],
        ),
    ]


def _platform_failed(env: Environment) -> Automation:
    """Backfill and monitor runs are the platform's, not a pipeline owner's: they go to the environment's channel."""
    return Automation(
        name=names.automation_name(env.name, "platform", "failed"),
        description=f"A backfill or monitor run in {env.name} failed or crashed → block {env.slack_block}",
        trigger=EventTrigger(
            expect=set(ENDED_BADLY),
            match_related=[_tag(names.env_tag(env.name)), _tag(PLATFORM_TAG)],
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[_notify(_block_id(env.slack_block, env), f"[shipshape {env.name}] {run_value('flow_run.name')} ended "
                         "{{ flow_run.state.name }}", (
            f"{{{{ flow.name }}}} run {run_value('flow_run.name')} of {{{{ deployment.name }}}} ended "
            f"{{{{ flow_run.state.name }}}}: {run_value('flow_run.state.message | truncate(600)')}\n" + RUN_LINK
        ))],
    )


def _tag(tag: str) -> ResourceSpecification:
    return ResourceSpecification({"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{tag}"})


def _armed_by(after: frozenset[str], expect: frozenset[str], runs: ResourceSpecification) -> EventTrigger:
    """Fires on the first `expect` event after an `after` event of the same deployment, then waits to be re-armed."""
    return EventTrigger(
        after=set(after),
        expect=set(expect),
        match_related=runs,
        for_each={"related:deployment:prefect.resource.id"},
        posture=Posture.Reactive,
        threshold=1,
        within=ARMED_FOR,
    )


def _notify(block_document_id: UUID, subject: str, body: str) -> SendNotification:
    return SendNotification(block_document_id=block_document_id, subject=subject, body=body)


def _block_id(name: str, env: Environment) -> UUID:
    """The Slack block's document id. Before the first apply there is none (apply saves blocks first): a plan
    then shows every automation as a create, and the nil id never reaches the server."""
    try:
        block_id: UUID = load_block(SlackWebhook, name, env.name)._block_document_id
    except ValueError:
        return UUID(int=0)
    return block_id


def _comparable(automation: BaseModel) -> dict[str, object]:
    """Python mode keeps `expect` a set: as JSON its order follows string hashing, which differs per process."""
    return automation.model_dump(mode="python", include={"name", "description", "enabled", "trigger", "actions"})
