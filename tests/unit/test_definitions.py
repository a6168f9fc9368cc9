"""Definitions load: every declaration, contract, deployment entry and entrypoint is valid together."""

from __future__ import annotations

import importlib

import yaml
from prefect import Flow

from deployments.generate import stale_files
from shipshape.audit import check_contract
from shipshape.catalog import load_all
from shipshape.settings import PACKAGE_ROOT


def test_generated_files_match_the_current_declarations() -> None:
    stale = [str(path.relative_to(PACKAGE_ROOT)) for path in stale_files(PACKAGE_ROOT)]
    assert stale == [], "run `make generate` and commit the generated files"


def test_every_deployment_entrypoint_is_a_flow() -> None:
    document = yaml.safe_load((PACKAGE_ROOT / "prefect.yaml").read_text())
    for deployment in document["deployments"]:
        module_path, function = deployment["entrypoint"].split(":")
        module = importlib.import_module(module_path.removesuffix(".py").replace("/", "."))
        assert isinstance(getattr(module, function), Flow), deployment["name"]


def test_every_declared_pipeline_has_a_scheduled_deployment() -> None:
    document = yaml.safe_load((PACKAGE_ROOT / "prefect.yaml").read_text())
    scheduled = {
        entry["parameters"]["pipeline"]: entry["schedules"][0]["cron"]
        for entry in document["deployments"]
        if "parameters" in entry
    }
    assert scheduled == {declared.name: declared.spec.schedule.cron for declared in load_all(PACKAGE_ROOT)}


def test_every_contract_parses() -> None:
    for declared in load_all(PACKAGE_ROOT):
        check_contract(declared.contract_path)
