"""Renders .github/CODEOWNERS from the declarations: a pipeline's owners review every change to its files.

Written by `python -m deployments.generate` (CI fails when it is stale), so ownership is declared once, in
`owner.github` / `owner.person`, and GitHub requests the right reviewers for a declaration, its SQL, its
contract and its runbook. Everything else is platform code, owned by `PLATFORM_OWNER`.

A declaration only names paths, so it must not make its team the owner of code it does not own: a line is
written only for a path inside the pipeline's own places (`owns`), whatever the declaration says — the
catalog refuses such a declaration too, this holds even for one built past it. And the platform's folders are
claimed again last, so no earlier line, generated or not, can take them over (the last match wins).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from deployments.runbooks import runbook_path
from shipshape.catalog import CONTRACT_FOLDER, DeclaredPipeline

# The team that reviews platform code (engine, tasks, flows, deployments, infra, tests). A constant, not a guess
# from metadata: change it here when the repository moves to its real organisation.
PLATFORM_OWNER = "@example-org/platform"
CODEOWNERS_PATH = ".github/CODEOWNERS"
# Platform code and configuration: reviewed by the platform team only, whatever a pipeline declares.
PLATFORM_PATHS = (
    ".ci/", ".github/", "bench/", "cli/", "demo/", "deployments/", "flows/", "infra/", "runtime/", "shipshape/",
    "tasks/", "tests/", "Dockerfile", "Makefile", "prefect.yaml", "pyproject.toml", "requirements.lock",
    "requirements-dev.lock", "ARCHITECTURE.md", "SECURITY.md",
)
# CODEOWNERS pattern syntax: a declared path holding one would own whatever the pattern matches.
_PATTERN_CHARACTERS = frozenset("*?[]!#\\")
HEADER = """\
# Generated from pipelines/*.yaml by `python -m deployments.generate` (`make generate`). Do not edit by hand:
# change `owner.github` / `owner.person` in the declaration instead. The last matching line wins, so the
# platform default comes first, each pipeline's files follow, and the platform's own folders close the file.
"""


def owned_paths(declared: DeclaredPipeline) -> list[str]:
    """The repository paths a pipeline's owners review: declaration, folder, contract, SQL and runbook —
    only those inside the pipeline's own places (`owns`); anything else a declaration names stays the platform's.
    """
    name = declared.name
    paths = [f"pipelines/{name}.yaml", f"pipelines/{name}/", declared.spec.contract, *declared.spec.transform]
    paths.append(runbook_path(name))
    return [path for path in dict.fromkeys(paths) if owns(name, path)]


def owns(name: str, path: str) -> bool:
    """Whether pipeline `name` may own `path`: its declaration, its folder, its runbook, or a contract under checks/.

    No `..`, no absolute path, no wildcard: a line is a pattern GitHub matches, so it must name exactly one place.
    """
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or _PATTERN_CHARACTERS & set(path):
        return False
    return (
        path in (f"pipelines/{name}.yaml", runbook_path(name))
        or path.startswith(f"pipelines/{name}/")
        or (pure.parts[:1] == (CONTRACT_FOLDER,) and len(pure.parts) > 1)
    )


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
    platform = ["# platform code: last, so no line above can claim it"]
    platform += [f"/{path}  {PLATFORM_OWNER}" for path in PLATFORM_PATHS]
    sections.append("\n".join(platform) + "\n")
    return HEADER + "\n" + "\n".join(sections)


def _escaped(path: str) -> str:
    """CODEOWNERS separates owners with whitespace, so a space inside a path needs a backslash."""
    return path.replace(" ", "\\ ")
