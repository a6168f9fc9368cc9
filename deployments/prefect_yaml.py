"""Generates prefect.yaml from the pipeline declarations: one source of truth for schedules and owners.

`python -m deployments.prefect_yaml` rewrites it; `--check` exits 1 when it is stale (CI runs that),
so adding a pipeline never means hand-editing prefect.yaml. Each entry is written once for every
environment: names, pool and tags carry `{{ $DEPLOY_ENV }}`, and the environment's image, run
environment and schedule state come from the `deploy_settings` build step (deployments/environments.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from shipshape.catalog import DeclaredPipeline, load_all
from shipshape.settings import PACKAGE_ROOT

ENTRYPOINT = "flows/run_pipeline.py:run_pipeline"
ENV = "{{ $DEPLOY_ENV }}"
HEADER = """\
# Generated from pipelines/*.yaml by `python -m deployments.prefect_yaml`. Do not edit by hand.
# Deploy one environment at a time: `DEPLOY_ENV=staging SHIPSHAPE_IMAGE=<image> prefect deploy --all`
# (or `make deploy ENV=staging IMAGE=<image>`). Environments are defined in deployments/environments.py.
"""


def render(pipelines: list[DeclaredPipeline]) -> str:
    document: dict[str, Any] = {
        "name": "shipshape",
        "prefect-version": "3.8.8",
        "build": [
            {"deployments.environments.deploy_settings": {"id": "environment", "environment_name": ENV}},
        ],
        "push": None,
        "pull": [{"deployments.pull.enter_project_dir": {}}],
        "deployments": [_scheduled(declared) for declared in pipelines] + [_date_range()],
    }
    return HEADER + yaml.safe_dump(document, sort_keys=False)


def _scheduled(declared: DeclaredPipeline) -> dict[str, Any]:
    spec = declared.spec
    schedule = {
        "cron": spec.schedule.cron,
        "timezone": spec.schedule.timezone,
        "active": "{{ environment.schedules_active }}",
    }
    return {
        "name": f"{spec.name}-{ENV}",
        "description": spec.description,
        "entrypoint": ENTRYPOINT,
        "parameters": {"pipeline": spec.name},
        "schedules": [schedule],
        "tags": ["shipshape", f"env:{ENV}", f"team:{spec.owner.team}", f"pipeline:{spec.name}"],
        "work_pool": _work_pool(),
    }


def _date_range() -> dict[str, Any]:
    """The ad-hoc entry: any pipeline over any dates, from the UI's Custom Run form."""
    return {
        "name": f"date-range-{ENV}",
        "description": "Run any declared pipeline over a date range (start_date..end_date, both included).",
        "entrypoint": ENTRYPOINT,
        "tags": ["shipshape", f"env:{ENV}"],
        "work_pool": _work_pool(),
    }


def _work_pool() -> dict[str, Any]:
    job_variables = {"image": "{{ environment.image }}", "env": "{{ environment.env }}"}
    return {"name": f"shipshape-{ENV}", "job_variables": job_variables}


def main(argv: list[str]) -> int:
    target = PACKAGE_ROOT / "prefect.yaml"
    expected = render(load_all(PACKAGE_ROOT))
    if "--check" in argv:
        if not target.exists() or target.read_text() != expected:
            print("prefect.yaml is stale: run `python -m deployments.prefect_yaml`", file=sys.stderr)
            return 1
        return 0
    Path(target).write_text(expected)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
