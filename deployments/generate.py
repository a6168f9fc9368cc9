"""Writes every file generated from the declarations; `--check` exits 1 when any is stale (the tests run it).

One entry point so a new pipeline means one command: `python -m deployments.generate` (`make generate`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from deployments import codeowners, prefect_yaml, runbooks
from shipshape.catalog import load_all
from shipshape.settings import load_settings


def generated_files(project_dir: Path) -> dict[Path, str]:
    """Every generated file of the project (path → content); runbooks keep their hand-written sections."""
    pipelines = load_all(project_dir)
    files = {
        project_dir / "prefect.yaml": prefect_yaml.render(pipelines),
        project_dir / codeowners.CODEOWNERS_PATH: codeowners.render(pipelines),
    }
    for declared in pipelines:
        runbook = project_dir / runbooks.runbook_path(declared.name)
        files[runbook] = runbooks.render(declared, runbook.read_text() if runbook.exists() else None)
    return files


def stale_files(project_dir: Path) -> list[Path]:
    files = generated_files(project_dir)
    return [path for path, text in files.items() if not path.exists() or path.read_text() != text]


def main(argv: list[str]) -> int:
    project_dir = load_settings().project_dir
    if "--check" in argv:
        stale = stale_files(project_dir)
        for path in stale:
            print(f"{path.relative_to(project_dir)} is stale: run `make generate` and commit it", file=sys.stderr)
        return 1 if stale else 0
    for path, text in generated_files(project_dir).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
