"""Announce incident changes as Prefect events; the pipeline's automation (infra/automations.py) posts them.

The text is written here, where the measurement is; routing (owner's channel), owner and runbook link
are added by the automation, so a declaration change needs `make apply`, not new code.
"""

from __future__ import annotations

from prefect.events import emit_event

from shipshape.alerts import RECOVERED, Transition, incident_triggers
from shipshape.catalog import DeclaredPipeline
from shipshape.incidents import Kind
from shipshape.names import INCIDENT_EVENT_PREFIX, pipeline_resource_id
from shipshape.settings import environment_name


def announce(declared: DeclaredPipeline, kind: Kind, change: Transition, summary: str) -> None:
    """Emit `shipshape.incident.opened|resolved` for the pipeline; payload carries the message parts.

    The headline is the alert kind's (`shipshape.alerts`); a resolved incident links to the Recovered section.
    """
    environment = environment_name()
    emit_event(
        event=f"{INCIDENT_EVENT_PREFIX}.{change}",
        resource={
            "prefect.resource.id": pipeline_resource_id(environment, declared.name),
            "prefect.resource.name": declared.name,
            "shipshape.incident.kind": kind,
        },
        payload={
            "kind": kind,
            "headline": incident_triggers()[kind].headline(change),
            "summary": summary,
            "anchor": kind if change == "opened" else RECOVERED,
        },
    )
