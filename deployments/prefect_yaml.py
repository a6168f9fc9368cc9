"""Generates prefect.yaml from the pipeline declarations: one source of truth for schedules and owners.

`python -m deployments.prefect_yaml` rewrites it; `--check` exits 1 when it is stale (CI runs that),
so adding a pipeline never means hand-editing prefect.yaml.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from shipshape.catalog import DeclaredPipeline, load_all
from shipshape.settings import PACKAGE_ROOT

ENTRYPOINT = "flows/run_pipeline.py:run_pipeline"
WORK_POOL = "dev-process"
HEADER = "# Generated from pipelines/*.yaml by `python -m deployments.prefect_yaml`. Do not edit by hand.\n"


def render(pipelines: list[DeclaredPipeline]) -> str:
    document: dict[str, Any] = {
        "name": "shipshape",
        "prefect-version": "3.8.8",
        "build": None,
        "push": None,
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $SHIPSHAPE_PROJECT_DIR }}"}}],
        "deployments": [_scheduled(declared) for declared in pipelines] + [_date_range()],
    }
    return HEADER + yaml.safe_dump(document, sort_keys=False)


def _scheduled(declared: DeclaredPipeline) -> dict[str, Any]:
    spec = declared.spec
    return {
        "name": f"{spec.name}-dev",
        "description": spec.description,
        "entrypoint": ENTRYPOINT,
        "parameters": {"pipeline": spec.name},
        "schedules": [{"cron": spec.schedule.cron, "timezone": spec.schedule.timezone, "active": True}],
        "tags": ["shipshape", f"team:{spec.owner.team}", f"pipeline:{spec.name}"],
        "work_pool": {"name": WORK_POOL},
    }


def _date_range() -> dict[str, Any]:
    """The ad-hoc entry: any pipeline over any dates, from the UI's Custom Run form."""
    return {
        "name": "date-range-dev",
        "description": "Run any declared pipeline over a date range (start_date..end_date, both included).",
        "entrypoint": ENTRYPOINT,
        "tags": ["shipshape"],
        "work_pool": {"name": WORK_POOL},
    }


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
