"""The project as it was at a git ref: its `pipelines/` and `checks/`, written to a temporary folder.

WHY: `shipshape diff` compares what the pipelines publish now with what they published at the pull request's base.
Only those two folders make up a declaration (a declaration may not point outside them), so they are read with
`git show` from the ref, never by checking out or touching the working tree. The default base is the merge base
with `main` (or `origin/main` in a CI clone): what the branch changed, not what main changed since.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

from shipshape.errors import ConfigurationError

DECLARATION_FOLDERS = ("pipelines", "checks")
DEFAULT_BRANCHES = ("main", "origin/main")


def default_base(project_dir: Path) -> str:
    """The merge base of HEAD with main (or origin/main): the commit the branch started from."""
    for branch in DEFAULT_BRANCHES:
        result = _git(project_dir, "merge-base", "HEAD", branch, check=False)
        if result.returncode == 0:
            return result.stdout.strip()
    raise ConfigurationError(
        f"shipshape diff: no base to compare with in {project_dir}: neither {' nor '.join(DEFAULT_BRANCHES)} "
        "is in this clone; pass --base <git ref> (in CI, check out with fetch-depth: 0)"
    )


@contextmanager
def project_at(project_dir: Path, ref: str) -> Iterator[Path]:
    """A temporary project folder holding `pipelines/` and `checks/` as they were at `ref`; removed on exit."""
    commit = _git(project_dir, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    if commit.returncode != 0:
        raise ConfigurationError(
            f"shipshape diff: {ref!r} is not a commit in the git repository of {project_dir}; pass an existing "
            "branch, tag or sha with --base (in CI, check out with fetch-depth: 0 so the base is there)"
        )
    sha = commit.stdout.strip()
    prefix = _git(project_dir, "rev-parse", "--show-prefix").stdout.strip()
    listed = _git(project_dir, "ls-tree", "-r", "--name-only", sha, "--", *(prefix + f for f in DECLARATION_FOLDERS))
    with TemporaryDirectory(prefix="shipshape-base-") as folder:
        root = Path(folder)
        for name in listed.stdout.splitlines():
            target = root / name.removeprefix(prefix)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_git_bytes(project_dir, "show", f"{sha}:{name}"))
        yield root


def _git(project_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(["git", *args], cwd=project_dir, capture_output=True, text=True, check=False)
    except OSError as error:
        raise ConfigurationError(f"shipshape diff needs git on PATH: {error.strerror}") from None
    if check and result.returncode != 0:
        raise ConfigurationError(
            f"shipshape diff: git {args[0]} failed in {project_dir} ({result.stderr.strip().splitlines()[-1:]}); "
            "run it inside the project's git repository"
        )
    return result


def _git_bytes(project_dir: Path, *args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=project_dir, capture_output=True, check=True).stdout
