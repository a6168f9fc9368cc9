"""Alert kinds: every registered kind carries what its trigger needs, and one entry is all a new kind takes."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import get_args

import pytest

from deployments import runbooks
from shipshape.alerts import (
    ALERT_KINDS,
    RECOVERED,
    AlertKind,
    IncidentTrigger,
    RunStateTrigger,
    Transition,
    incident_triggers,
    run_state_alerts,
)
from shipshape.catalog import load_pipeline
from shipshape.incidents import check_kind
from shipshape.settings import PACKAGE_ROOT
from tests.support.markdown import github_anchors

FLOW_RUN_EVENT = "prefect.flow-run."


@pytest.mark.parametrize("kind", ALERT_KINDS.values(), ids=ALERT_KINDS.keys())
def test_every_alert_kind_has_its_section_and_what_its_trigger_needs(kind: AlertKind) -> None:
    assert github_anchors(f"### {kind.title}") == [kind.anchor], "the title's GitHub anchor is the alert's anchor"
    assert kind.means.strip()
    assert kind.steps and all(step.strip() for step in kind.steps)
    if isinstance(kind.trigger, IncidentTrigger):
        assert all(kind.trigger.headline(change).strip() for change in get_args(Transition))
        assert kind.trigger.opened != kind.trigger.resolved
    else:
        trigger = kind.trigger
        assert trigger.armed_by and trigger.fired_by and not trigger.armed_by & trigger.fired_by
        assert all(event.startswith(FLOW_RUN_EVENT) for event in trigger.armed_by | trigger.fired_by)
        assert trigger.when.strip() and trigger.subject.strip() and trigger.what.strip()


def test_incident_and_run_state_kinds_split_the_registry() -> None:
    assert list(incident_triggers()) == ["freshness-breach", "volume-anomaly", "fast-burn", "cost", "unused"]
    assert [kind.anchor for kind, _ in run_state_alerts()] == ["run-failed", "audit-blocked", RECOVERED]


def test_an_unregistered_incident_kind_is_refused_naming_the_registered_ones() -> None:
    check_kind("fast-burn")
    expected = "unknown incident kind 'late-data'; registered in shipshape/alerts.py: freshness-breach, " \
        "volume-anomaly, fast-burn, cost, unused"
    with pytest.raises(ValueError, match=re.escape(expected)):
        check_kind("late-data")


def test_a_new_alert_kind_is_one_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    late = AlertKind(
        anchor="late-upstream",
        title="Late upstream",
        means="The source of `{name}` delivered after the SLA ({sla}).",
        steps=("Ask upstream why `{destination}`'s source was late.",),
        trigger=IncidentTrigger(opened="Upstream late", resolved="Upstream on time again"),
    )
    monkeypatch.setitem(ALERT_KINDS, late.anchor, late)
    check_kind("late-upstream")
    assert incident_triggers()["late-upstream"].headline("resolved") == "Upstream on time again"
    text = runbooks.render(load_pipeline(PACKAGE_ROOT / "pipelines" / "shop_orders.yaml", PACKAGE_ROOT))
    assert (
        "### Late upstream\n\nThe source of `shop_orders` delivered after the SLA (26h).\n\nWhat to do:\n\n"
        "1. Ask upstream why `analytics.fct_orders`'s source was late.\n"
    ) in text
    assert runbooks.runbook_url("shop_orders", "late-upstream").endswith("/runbooks/shop_orders.md#late-upstream")


def test_the_registry_names_prefect_events_as_plain_strings_without_importing_prefect() -> None:
    failed = ALERT_KINDS["run-failed"].trigger
    assert isinstance(failed, RunStateTrigger)
    assert failed.fired_by == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut"}
    check = "import sys, shipshape.alerts; print(sorted(name for name in sys.modules if name.startswith('prefect')))"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
