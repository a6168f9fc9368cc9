"""The production image, built by `make image` on a private engine: metadata, user, contents, runtime, secrets.

These are the checks a registry-bound image must pass before a worker may run it; the build itself happens once per
session in the `project_image` fixture (tests/conftest.py, tests/support/docker_engine.py).
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from tests.support.docker_engine import DOCKER, REPO_ROOT, Build, Engine, EngineError, build_image, git_sha

PROJECT_DIR = "/opt/shipshape"
# Local state, secrets and dev-only trees that must never ship under the project folder.
NEVER_SHIPPED = {".git", ".env", ".prefect", "data", "tests", ".venv"}
# About 0.87 GB on the stand-in base today; a compiler toolchain or a stray cache would cross this.
MAX_IMAGE_BYTES = 1024**3


def run_in(engine: Engine, image: str, *command: str) -> subprocess.CompletedProcess[str]:
    return engine.docker("run", "--rm", "--network", "host", image, *command, check=False, timeout=120)


def project_version() -> str:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_labels_carry_the_pyproject_version_and_the_git_revision(docker_engine: Engine, project_image: str) -> None:
    labels = json.loads(docker_engine.docker("image", "inspect", "--format", "{{json .Config.Labels}}",
                                             project_image).stdout)
    assert labels["org.opencontainers.image.version"] == project_version()
    assert labels["org.opencontainers.image.revision"] == git_sha()


def test_the_container_runs_as_uid_10001_not_root(docker_engine: Engine, project_image: str) -> None:
    result = run_in(docker_engine, project_image, "id", "-u")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "10001"


def test_make_image_check_validates_the_declarations_inside_the_image(
    docker_engine: Engine, project_image: str
) -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO_ROOT), "image-check", f"IMAGE={project_image}",
         f"DOCKER={DOCKER}"],
        env=docker_engine.env(), capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^[1-9]\d* valid, 0 invalid$", result.stdout, re.MULTILINE), result.stdout


def test_pip_check_finds_no_broken_requirements_in_the_image(docker_engine: Engine, project_image: str) -> None:
    result = run_in(docker_engine, project_image, "pip", "check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_flow_and_the_worker_and_slack_integrations_import_in_the_image(
    docker_engine: Engine, project_image: str
) -> None:
    imports = "import flows.run_pipeline, prefect_docker, prefect_slack"
    result = run_in(docker_engine, project_image, "python", "-c", imports)
    assert result.returncode == 0, result.stderr


def test_the_project_folder_holds_no_git_env_prefect_data_tests_or_venv(
    docker_engine: Engine, project_image: str
) -> None:
    result = run_in(docker_engine, project_image, "find", PROJECT_DIR)
    assert result.returncode == 0, result.stderr
    paths = result.stdout.split()
    assert f"{PROJECT_DIR}/flows/run_pipeline.py" in paths  # the listing is real, so an absence below means something
    shipped = {part for path in paths for part in Path(path).relative_to(PROJECT_DIR).parts}
    assert shipped.isdisjoint(NEVER_SHIPPED), sorted(shipped & NEVER_SHIPPED)


def test_the_image_stays_under_one_gigabyte(docker_engine: Engine, project_image: str) -> None:
    size = int(docker_engine.docker("image", "inspect", "--format", "{{.Size}}", project_image).stdout)
    assert size < MAX_IMAGE_BYTES, f"{size / 1e6:.0f} MB"


def test_the_docker_sdk_a_prefect_docker_worker_uses_runs_the_image(docker_host: str, project_image: str) -> None:
    client = docker.DockerClient(base_url=docker_host)
    try:
        output = client.containers.run(project_image, ["shipshape", "--help"], network_mode="host", remove=True)
    finally:
        client.close()
    assert b"validate" in output


@dataclass(frozen=True)
class CanaryBuild:
    canary: str
    tag: str
    build: Build


@pytest.fixture(scope="module")
def canary_build(docker_engine: Engine, project_image: str, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[CanaryBuild]:
    """Rebuild from a copy of the context salted with a canary secret, also set in the build's environment.

    The copy gets the files a developer really has (.env, a Prefect profile, data, a venv, git config) and the
    canary in PII_HASH_KEY and SHIPSHAPE_SECRET_X; the build args are the project image's, so only a leak (or
    a cache miss, tested below) makes this build differ from it.
    """
    canary = f"canary-{secrets.token_hex(16)}"
    context = tmp_path_factory.mktemp("context")
    shutil.copytree(REPO_ROOT, context, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".prefect", "data", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache"))
    for relative in (".env", ".env.production", "pipelines/.env", ".prefect/profiles.toml", "data/shop.db",
                     ".venv/pyvenv.cfg", ".git/config", "tests/secret.txt", "shipshape/__pycache__/secret.pyc"):
        (context / relative).parent.mkdir(parents=True, exist_ok=True)
        (context / relative).write_text(f"PII_HASH_KEY={canary}\n")
    tag = f"shipshape:canary-{secrets.token_hex(4)}"
    try:
        build = build_image(docker_engine, tag, context=context, make_vars=[f"GIT_SHA={git_sha()}"],
                            extra_env={"PII_HASH_KEY": canary, "SHIPSHAPE_SECRET_X": canary})
    except EngineError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield CanaryBuild(canary=canary, tag=tag, build=build)
    finally:
        docker_engine.docker("image", "rm", tag, check=False)


def test_a_rebuild_with_an_unchanged_lock_reuses_the_cached_dependency_layer(canary_build: CanaryBuild) -> None:
    install = r"RUN pip install --require-hashes --no-deps -r requirements\.lock"
    step = re.search(rf"^#(\d+) \[[^\]]*\] {install}$", canary_build.build.log, re.MULTILINE)
    assert step, canary_build.build.log[-3000:]
    assert re.search(rf"^#{step.group(1)} CACHED$", canary_build.build.log, re.MULTILINE), canary_build.build.log


def _stream_contains(argv: list[str], env: dict[str, str], needles: list[bytes]) -> set[bytes]:
    """Which needles occur in a command's (large) output, read in chunks that overlap by the longest needle."""
    found: set[bytes] = set()
    overlap = max(map(len, needles)) - 1
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        carry = b""
        while chunk := process.stdout.read(8 << 20):
            window = carry + chunk
            found.update(needle for needle in needles if needle in window)
            carry = window[-overlap:]
        error = process.stderr.read().decode(errors="replace")
    assert process.returncode == 0, error
    return found


def test_a_canary_secret_in_the_build_environment_and_context_reaches_no_layer_or_metadata(
    docker_engine: Engine, canary_build: CanaryBuild
) -> None:
    canary = canary_build.canary.encode()
    revision = git_sha().encode()  # known to be in the image config: proves the scan reads what it should
    found = _stream_contains([str(DOCKER), "save", canary_build.tag], docker_engine.env(), [canary, revision])
    assert revision in found
    assert canary not in found, "the canary secret is in `docker save` output (a layer or the image config)"
    inspect = docker_engine.docker("image", "inspect", canary_build.tag).stdout
    history = docker_engine.docker("history", "--no-trunc", canary_build.tag).stdout
    assert canary_build.canary not in inspect
    assert canary_build.canary not in history
