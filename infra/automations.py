"""Automations as code: a failed or crashed run in an environment is posted to that environment's Slack block."""

from __future__ import annotations

from prefect.automations import Automation, EventTrigger, Posture, ResourceSpecification, SendNotification
from prefect_slack import SlackWebhook

from deployments.environments import Environment
from infra.changes import Change

BODY = (
    "{{ flow_run.name }} of {{ deployment.name }} ended {{ flow_run.state.name }}: {{ flow_run.state.message }}\n"
    "{{ flow_run|ui_url }}"
)


def reconcile(env: Environment, *, dry_run: bool) -> list[Change]:
    name = f"shipshape-{env.name}-run-failed"
    try:
        current: Automation | None = Automation.read(name=name)
    except ValueError:
        current = None
    if current is None:
        if not dry_run:
            _desired(env, name).create()
        return [Change("automation", name, "create", f"failed/crashed runs → block {env.slack_block}")]
    desired = _desired(env, name)
    if _comparable(current) == _comparable(desired):
        return []
    if not dry_run:
        desired.id = current.id
        desired.update()
    return [Change("automation", name, "update")]


def _desired(env: Environment, name: str) -> Automation:
    """Runs are tagged `env:<name>` by their deployment, so the trigger matches that tag as a related resource."""
    slack = SlackWebhook.load(env.slack_block)
    return Automation(
        name=name,
        description=f"Posts every failed or crashed shipshape run in {env.name} to Slack ({env.slack_block}).",
        enabled=True,
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match_related=ResourceSpecification(
                {"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.env:{env.name}"}
            ),
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[
            SendNotification(
                block_document_id=slack._block_document_id,
                subject=f"[shipshape {env.name}] run {{{{ flow_run.state.name }}}}",
                body=BODY,
            )
        ],
    )


def _comparable(automation: Automation) -> dict[str, object]:
    """Python mode keeps `expect` a set: as JSON its order follows string hashing, which differs per process."""
    return automation.model_dump(mode="python", include={"name", "description", "enabled", "trigger", "actions"})
