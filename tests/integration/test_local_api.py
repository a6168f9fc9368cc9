"""Which Prefect API `shipshape run` uses with no PREFECT_API_URL, and what it shows while it runs.

`make up`'s API (a real `prefect server start` with its password, recorded as `up` records it) is used when it
answers; a stale record (server gone, password changed) falls back to a local API. That one is kept for the next
command on the same Prefect home, served to every command holding its lease and stopped once idle; with
`SHIPSHAPE_LOCAL_API_IDLE_SECONDS=0` it goes away with the command, even a killed one. Progress: the extract's
artifact and the terminal's progress bar.
"""

from __future__ import annotations

import os
import pty
import re
import secrets
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterType, FlowRunFilter, FlowRunFilterTags
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

from infra.local.server import start_server, stop_process_group
from runtime.kept_api import IDLE_SETTING, RECORD, prefect_version, stop_recorded
from runtime.local_api import record_api
from runtime.recorded_api import RecordedApi, record_fields
from tests.support.make import newcomer_environment
from tests.support.platform import cli
from tests.support.project import DAYS, FIRST_DAY, Project, copy_example
from tests.support.waiting import wait_until

RUN_SECONDS = 300
VIEW_AT = re.compile(r"View at http://127\.0\.0\.1:(\d+)/")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    from demo.shop_app import generate

    root = tmp_path / "project"
    copy_example(root)
    project = Project(root, tmp_path / "data", f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    generate(project.shop_db, FIRST_DAY, DAYS)
    return project


@pytest.fixture(scope="module")
def platform_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordedApi]:
    """A password-protected server as `make up` starts it (on SQLite: no roles, nothing cluster-wide)."""
    home = tmp_path_factory.mktemp("platform-server")
    auth = secrets.token_urlsafe(16)
    server, url = start_server(home, home / "server.log", auth_string=auth)
    try:
        yield RecordedApi(url, auth)
    finally:
        stop_process_group(server.pid)
        server.wait()


@pytest.fixture(autouse=True)
def no_kept_api_left(tmp_path: Path) -> Iterator[None]:
    """Whatever a test leaves kept on its Prefect home is stopped with the test."""
    yield
    stop_recorded(tmp_path / "home")


def environment(project: Project, tmp_path: Path, **settings: str) -> dict[str, str]:
    """A newcomer's shell (no Prefect or shipshape settings) on the test project, its own Prefect home."""
    (tmp_path / "home").mkdir(exist_ok=True)
    return newcomer_environment(
        **project.env(), PREFECT_HOME=str(tmp_path / "home"), SHIPSHAPE_PLATFORM_DIR=str(tmp_path / "platform"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false", **settings,
    )  # fmt: skip


def shipshape_run(env: dict[str, str], *dates: str) -> subprocess.CompletedProcess[str]:
    days = dates or (FIRST_DAY.isoformat(),)
    command = [cli("shipshape"), "run", "shop_orders", "--start-date", days[0], "--end-date", days[-1]]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_SECONDS)


@contextmanager
def client_of(api: RecordedApi) -> Iterator[SyncPrefectClient]:
    settings = {PREFECT_API_URL: api.url, PREFECT_API_AUTH_STRING: api.auth_string}
    with temporary_settings(settings), get_client(sync_client=True) as client:  # the client reads the settings
        yield client


def runs_on(api: RecordedApi) -> list[str]:
    wanted = FlowRunFilter(tags=FlowRunFilterTags(all_=["pipeline:shop_orders"]))
    with client_of(api) as client:
        return [run.name for run in client.read_flow_runs(flow_run_filter=wanted)]


def temporary_apis(prefect_home: Path) -> list[int]:
    """PIDs of the temporary API servers serving `prefect_home` (this user's processes, read from /proc)."""
    found = []
    for process in Path("/proc").glob("[0-9]*"):
        try:
            command = (process / "cmdline").read_bytes().split(b"\0")
            environment = (process / "environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours
            continue
        if b"runtime.temporary_api" in command and f"PREFECT_HOME={prefect_home}".encode() in environment:
            found.append(int(process.name))
    return found


def test_run_uses_the_local_platforms_api_when_it_answers(
    project: Project, tmp_path: Path, platform_api: RecordedApi
) -> None:
    (tmp_path / "platform").mkdir()
    record_api(tmp_path / "platform", platform_api)
    before = runs_on(platform_api)

    result = shipshape_run(environment(project, tmp_path))

    assert result.returncode == 0, result.stderr[-3000:]
    assert "status=published" in result.stdout
    after = runs_on(platform_api)
    assert len(after) == len(before) + 1 and f"shop_orders {FIRST_DAY}" in after
    port = platform_api.url.split(":")[2].split("/")[0]
    assert set(VIEW_AT.findall(result.stderr)) == {port}  # the run's link points at the platform, not elsewhere


@pytest.mark.parametrize("stale", ["wrong password", "server gone"])
def test_a_stale_record_falls_back_to_a_temporary_api_that_ends_with_the_command_when_none_is_kept(
    project: Project, tmp_path: Path, platform_api: RecordedApi, stale: str
) -> None:
    (tmp_path / "platform").mkdir()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{closed.getsockname()[1]}/api"
    recorded = RecordedApi(platform_api.url, "not-the-password") if stale == "wrong password" else RecordedApi(
        gone, platform_api.auth_string
    )
    record_api(tmp_path / "platform", recorded)
    before = runs_on(platform_api)

    result = shipshape_run(environment(project, tmp_path, **{IDLE_SETTING: "0"}))

    assert result.returncode == 0, result.stderr[-3000:]
    assert "status=published" in result.stdout
    assert runs_on(platform_api) == before  # nothing went to the recorded server
    assert "View at" not in result.stderr  # a temporary API has no UI to link to
    assert temporary_apis(tmp_path / "home") == []  # it stopped with the command


def test_a_killed_run_takes_its_temporary_api_with_it_when_none_is_kept(project: Project, tmp_path: Path) -> None:
    env = environment(project, tmp_path, **{IDLE_SETTING: "0"})
    command = [cli("shipshape"), "run", "shop_orders", "--start-date", FIRST_DAY.isoformat()]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        assert any("Beginning flow run" in line for line in process.stderr), "the run never started"
        assert len(temporary_apis(tmp_path / "home")) == 1
        process.send_signal(signal.SIGKILL)
        process.wait()
        wait_until(lambda: not temporary_apis(tmp_path / "home"), "the orphaned temporary API stops")
    finally:
        if process.poll() is None:
            process.kill()


def kept_api_of(home: Path) -> RecordedApi:
    named = RecordedApi.from_fields(record_fields((home / RECORD).read_text()))
    assert named is not None, (home / RECORD).read_text()
    return named


def test_the_next_run_reuses_the_kept_api_whose_runs_it_shows_and_which_refuses_anyone_without_its_password(
    project: Project, tmp_path: Path
) -> None:
    env = environment(project, tmp_path)

    first = shipshape_run(env, FIRST_DAY.isoformat())
    kept = kept_api_of(tmp_path / "home")
    second = shipshape_run(env, (FIRST_DAY + timedelta(days=1)).isoformat())

    assert first.returncode == 0 and second.returncode == 0, first.stderr[-2000:] + second.stderr[-2000:]
    assert f"the local Prefect API at {kept.url} (started now, kept 600 s" in first.stderr
    assert f"the local Prefect API at {kept.url} (kept 600 s" in second.stderr  # reused: nothing started
    [server] = temporary_apis(tmp_path / "home")
    inherited = Path(f"/proc/{server}/environ").read_bytes().split(b"\0")
    assert not [v for v in inherited if v.startswith((b"PII_HASH_KEY=", b"SHIPSHAPE_WAREHOUSE", b"SHIPSHAPE_DATA"))]
    assert sorted(runs_on(kept)) == [f"shop_orders {FIRST_DAY}", f"shop_orders {FIRST_DAY + timedelta(days=1)}"]
    assert not RecordedApi(kept.url, "not-the-password").answers()
    assert oct((tmp_path / "home" / RECORD).stat().st_mode & 0o777) == "0o600"  # it holds the password

    stopped = subprocess.run([cli("shipshape"), "stop-api"], env=env, capture_output=True, text=True, timeout=60)

    assert stopped.stdout.strip() == f"stopped the local Prefect API at {kept.url}"
    wait_until(lambda: not temporary_apis(tmp_path / "home"), "the stopped API's process ends")


def test_a_run_longer_than_the_idle_time_keeps_its_api_which_stops_once_no_command_uses_it(
    project: Project, tmp_path: Path
) -> None:
    env = environment(project, tmp_path, **{IDLE_SETTING: "1"})
    last_day = (FIRST_DAY + timedelta(days=DAYS - 1)).isoformat()

    result = shipshape_run(env, FIRST_DAY.isoformat(), last_day)  # several seconds of work, no new command

    assert result.returncode == 0, result.stderr[-3000:]
    assert f"ran {DAYS} partition(s)" in result.stdout
    wait_until(lambda: not temporary_apis(tmp_path / "home"), "the idle API stops by itself")
    assert not (tmp_path / "home" / RECORD).exists()


def test_a_recorded_api_that_does_not_answer_or_runs_another_prefect_is_replaced(
    project: Project, tmp_path: Path
) -> None:
    env = environment(project, tmp_path)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{closed.getsockname()[1]}/api"
    (tmp_path / "home" / RECORD).write_text(
        f"PREFECT_API_URL={gone}\nPREFECT_API_AUTH_STRING=x\nPREFECT_VERSION={prefect_version()}\nPID=0\n"
    )

    result = shipshape_run(env)

    assert result.returncode == 0, result.stderr[-3000:]
    kept = kept_api_of(tmp_path / "home")
    assert kept.url != gone and f"the local Prefect API at {kept.url} (started now" in result.stderr
    (tmp_path / "home" / RECORD).write_text(
        (tmp_path / "home" / RECORD).read_text().replace(f"PREFECT_VERSION={prefect_version()}", "PREFECT_VERSION=0")
    )

    again = shipshape_run(env)

    assert again.returncode == 0, again.stderr[-3000:]
    assert kept_api_of(tmp_path / "home").url != kept.url  # another Prefect's server is never reused
    wait_until(lambda: len(temporary_apis(tmp_path / "home")) == 1, "the superseded API stops once unused")


def test_an_idle_time_that_is_not_a_number_is_refused_naming_the_setting(project: Project, tmp_path: Path) -> None:
    result = shipshape_run(environment(project, tmp_path, **{IDLE_SETTING: "ten minutes"}))

    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {IDLE_SETTING}='ten minutes' is not a number of seconds: set it to how long the local Prefect API "
        "waits for the next command (default 600), or 0 to stop it with each command"
    )
    assert temporary_apis(tmp_path / "home") == []


def test_extract_reports_its_progress_as_an_artifact_and_the_terminal_shows_days_done(
    project: Project, tmp_path: Path, platform_api: RecordedApi
) -> None:
    (tmp_path / "platform").mkdir()
    record_api(tmp_path / "platform", platform_api)  # the artifacts are then read from a server that stays up
    env = environment(project, tmp_path, COLUMNS="160")
    last_day = (FIRST_DAY + timedelta(days=DAYS - 1)).isoformat()
    command = [cli("shipshape"), "run", "shop_orders", "--start-date", FIRST_DAY.isoformat(), "--end-date", last_day]

    output = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", _run_in_terminal(command, env))  # as read, without colours

    assert f"ran {DAYS} partition(s)" in output, output[-3000:]
    assert set(VIEW_AT.findall(output)) == {platform_api.url.split(":")[2].split("/")[0]}  # ran on the platform
    assert re.search(rf"\b{DAYS}/{DAYS}\b", output), output[-3000:]  # the bar: partitions loaded of N
    assert re.search(r"Chunk 1 of 2026-11-0\d: [\d,]+ rows so far, [\d,]+ rows/s", output)
    with client_of(platform_api) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["progress"])))
    described = [a.description or "" for a in artifacts if "shop_orders 2026-11-0" in (a.description or "")]
    finished = [a for a in artifacts if a.data == 100 and "loaded" in (a.description or "")]
    assert len(described) >= DAYS and len(finished) >= DAYS, described
    assert all(re.search(r"loaded [\d,]+ rows .* rows/s", a.description or "") for a in finished)


def _run_in_terminal(command: list[str], env: dict[str, str]) -> str:
    """Run `command` with a pseudo-terminal as its stdout and stderr (what a user sees); returns all it wrote."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: every process writing to it has exited
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=RUN_SECONDS) == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode(errors="replace")
