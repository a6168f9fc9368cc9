"""Retries: transient errors are retried with backoff, terminal ones fail at once (real Prefect task runs);
every attempt ends at the run's deadline, even one blocked reading a socket."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName
from prefect.task_engine import TaskRunTimeoutError

from flows.retry_policy import with_declared_retries
from shipshape.declaration import Retries
from shipshape.errors import RunTimedOutError, SourceError, TransientError
from shipshape.run_timeout import Deadline
from tests.support.http_api import serve_json_api

NO_DELAY = Retries(attempts=3, delay_seconds=0)
AMPLE = timedelta(minutes=5)


def flaky(failures: list[Exception]):
    """A task that raises each of `failures` in turn, then succeeds; `calls` counts its attempts."""
    calls: list[int] = []

    @task
    def step() -> str:
        calls.append(1)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return "done"

    return step, calls


def test_transient_errors_are_retried_until_success(prefect_api: str) -> None:
    step, calls = flaky([TransientError("503"), TransientError("timeout")])

    @flow
    def run() -> str:
        return with_declared_retries(step, NO_DELAY, Deadline(AMPLE))()

    assert run() == "done"
    assert len(calls) == 3


def test_terminal_errors_fail_at_once(prefect_api: str) -> None:
    step, calls = flaky([SourceError("HTTP 401 from http://127.0.0.1/x")])

    @flow
    def run() -> str:
        return with_declared_retries(step, NO_DELAY, Deadline(AMPLE))()

    with pytest.raises(SourceError, match="401"):
        run()
    assert len(calls) == 1


def test_retries_stop_at_the_declared_budget(prefect_api: str) -> None:
    step, calls = flaky([TransientError("down")] * 10)

    @flow
    def run() -> str:
        return with_declared_retries(step, Retries(attempts=2, delay_seconds=0), Deadline(AMPLE))()

    with pytest.raises(TransientError):
        run()
    assert len(calls) == 3


def test_backoff_doubles_with_jitter() -> None:
    configured = with_declared_retries(flaky([])[0], Retries(attempts=3, delay_seconds=10), Deadline(AMPLE))
    assert configured.retry_delay_seconds == [10, 20, 40]
    assert configured.retry_jitter_factor == 0.5


def test_an_attempt_blocked_on_a_silent_server_ends_timed_out_at_the_deadline(prefect_api: str) -> None:
    with serve_json_api([]) as api:
        api.fail_next(1, "hang")

        @task(name="read-silent-api")
        def read() -> int:
            return httpx.get(api.url("/records"), timeout=120).status_code  # far beyond the deadline

        @flow
        def run() -> int:
            return with_declared_retries(read, NO_DELAY, Deadline(timedelta(seconds=2)))()

        started = time.monotonic()
        with pytest.raises(TaskRunTimeoutError):  # what run-pipeline turns into a TimedOut run
            run()
        assert time.monotonic() - started < 15  # ended by the deadline, not by the 120 s read timeout
        assert len(api.requests) == 1  # a timeout is not retried
    with get_client(sync_client=True) as client:
        named = TaskRunFilter(name=TaskRunFilterName(like_="read-silent-api"))
        [task_run] = client.read_task_runs(task_run_filter=named)
    assert task_run.state is not None and task_run.state.name == "TimedOut"


def test_no_attempt_starts_once_the_deadline_has_passed() -> None:
    step, calls = flaky([])
    spent = Deadline(AMPLE, started=time.monotonic() - AMPLE.total_seconds() - 1)
    with pytest.raises(RunTimedOutError, match="no time left to start step"):
        with_declared_retries(step, NO_DELAY, spent)
    assert calls == []
