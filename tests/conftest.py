"""Shared fixtures: a throwaway PostgreSQL database on the local server, Prefect's test API, a Docker engine.

PostgreSQL is required, never skipped (tests/support/postgres.py says how to provide it).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling

from tests.support.docker_engine import (
    Engine,
    EngineError,
    build_image,
    connect_engine,
    ensure_standin_base,
    git_sha,
    prune_old_project_images,
    require_tools,
    start_engine,
    stop_engine,
)
from tests.support.postgres import database_url, databases

SHARING_THE_MACHINE = frozenset(
    {"test_alerts", "test_backfill", "test_deploy", "test_first_run", "test_image", "test_local_platform"}
)
"""Test modules that use what one machine has only once: PostgreSQL's cluster-wide roles of a real environment
(`shipshape_dev_loader`…, created by `infra apply`), the private Docker engine and its data root, or every core
(`busy_cores`). Under `pytest -n 2` (`make test`) they run one after another, in file order, on one worker, never
beside each other. Tests that apply roles under an environment name of their own (`t<random>`, as
test_warehouse_roles' `env` fixture) and drop them after share nothing and stay out."""


class MachineSharingScheduling(LoadScopeScheduling):
    """Every test is a unit of its own, except the modules of SHARING_THE_MACHINE: together one unit.

    xdist's own `--dist loadgroup` would do this from an `xdist_group` mark, but pytest-xdist 3.8 renames the
    item through `Item._nodeid`, which pytest 9 no longer reads: every test is scheduled alone. Scopes are
    sent largest first (`loadscopereorder`), so one worker takes this unit at the start and the other worker
    all the rest until it is nearly done."""

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
        return "sharing-the-machine" if module in SHARING_THE_MACHINE else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> MachineSharingScheduling:
    return MachineSharingScheduling(config, log)


@pytest.fixture(scope="session", autouse=True)
def no_kept_api_outlives_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`shipshape run` and `make demo` keep their local Prefect API for the next command (runtime/kept_api.py);
    the ones started on this session's Prefect homes stop with the session instead of after their idle time."""
    from runtime.kept_api import RECORD, stop_recorded

    yield
    for record in tmp_path_factory.getbasetemp().rglob(RECORD):
        stop_recorded(record.parent)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of a fresh, empty database; dropped (with everything in it) after the test."""
    name = f"shipshape_test_{uuid.uuid4().hex[:10]}"
    with databases([name]):
        yield database_url(name)


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A real (temporary) Prefect API for the whole session; yields its URL for subprocesses."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield PREFECT_API_URL.value()


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """Each WAP test runs on both warehouses: the embedded default and the real local PostgreSQL."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Engine]:
    """A private Docker engine for the session (no engine runs here); stopped by PID at the end.

    Its data root persists (SHIPSHAPE_DOCKER_ROOT, default /var/tmp/shipshape-docker) so the layer cache survives
    between runs. With --bridge=none, containers need `--network host` (or network_mode="host").
    """
    require_tools()
    try:
        engine = connect_engine() or start_engine()
    except EngineError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield engine
    finally:
        stop_engine(engine)


@pytest.fixture(scope="session")
def docker_host(docker_engine: Engine) -> str:
    """DOCKER_HOST (unix://...) of the session's engine, for subprocesses and the Docker SDK (prefect-docker)."""
    return docker_engine.host


@pytest.fixture(scope="session")
def project_image(docker_engine: Engine) -> str:
    """Tag of the production image, built once per session with `make image` on the stand-in python:3.11-slim."""
    tag = f"shipshape:test-{git_sha(short=True)}"
    try:
        ensure_standin_base(docker_engine)
        prune_old_project_images(docker_engine, keep=tag)
        docker_engine.timings["project_image_build"] = build_image(docker_engine, tag).seconds
    except EngineError as error:
        pytest.fail(str(error), pytrace=False)
    return tag
