"""Renders .github/CODEOWNERS from the declarations: a pipeline's owners review every change to its files.

Written by `python -m deployments.generate` (CI fails when it is stale), so ownership is declared once, in
`owner.github` / `owner.person`, and GitHub requests the right reviewers for a declaration, its SQL, its
contract and its runbook. Everything else is platform code, owned by `PLATFORM_OWNER`.
"""

from __future__ import annotations

from deployments.runbooks import runbook_path
from shipshape.catalog import DeclaredPipeline

# The team that reviews platform code (engine, tasks, flows, deployments, infra, tests). A constant, not a guess
# from metadata: change it here when the repository moves to its real organisation.
PLATFORM_OWNER = "@example-org/platform"
CODEOWNERS_PATH = ".github/CODEOWNERS"
HEADER = """\
# Generated from pipelines/*.yaml by `python -m deployments.generate` (`make generate`). Do not edit by hand:
# change `owner.github` / `owner.person` in the declaration instead. The last matching line wins, so the
# platform default comes first and each pipeline's files follow.
"""


def owned_paths(declared: DeclaredPipeline) -> list[str]:
    """The repository paths a pipeline's owners review: declaration, folder, contract, SQL and runbook."""
    name = declared.name
    paths = [f"pipelines/{name}.yaml", f"pipelines/{name}/", declared.spec.contract, *declared.spec.transform]
    paths.append(runbook_path(name))
    return list(dict.fromkeys(paths))


def render(pipelines: list[DeclaredPipeline]) -> str:
    """CODEOWNERS text; a file shared by several pipelines (a contract, say) is owned by all of their owners."""
    owners: dict[str, list[str]] = {}
    for declared in pipelines:
        for path in owned_paths(declared):
            owners.setdefault(path, [])
            owners[path] = list(dict.fromkeys([*owners[path], *declared.spec.owner.reviewers]))
    sections = [f"*  {PLATFORM_OWNER}\n"]
    for declared in pipelines:
        lines = [f"# {declared.name} (team {declared.spec.owner.team})"]
        lines += [f"/{_escaped(path)}  {' '.join(owners[path])}" for path in owned_paths(declared)]
        sections.append("\n".join(lines) + "\n")
    return HEADER + "\n" + "\n".join(sections)


def _escaped(path: str) -> str:
    """CODEOWNERS separates owners with whitespace, so a space inside a path needs a backslash."""
    return path.replace(" ", "\\ ")
