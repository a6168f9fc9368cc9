"""Retries: transient errors are retried with backoff, terminal ones fail at once (real Prefect task runs)."""

from __future__ import annotations

import pytest
from prefect import flow, task

from flows.retry_policy import with_declared_retries
from shipshape.declaration import Retries
from shipshape.errors import SourceError, TransientError

NO_DELAY = Retries(attempts=3, delay_seconds=0)


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
        return with_declared_retries(step, NO_DELAY)()

    assert run() == "done"
    assert len(calls) == 3


def test_terminal_errors_fail_at_once(prefect_api: str) -> None:
    step, calls = flaky([SourceError("HTTP 401 from http://127.0.0.1/x")])

    @flow
    def run() -> str:
        return with_declared_retries(step, NO_DELAY)()

    with pytest.raises(SourceError, match="401"):
        run()
    assert len(calls) == 1


def test_retries_stop_at_the_declared_budget(prefect_api: str) -> None:
    step, calls = flaky([TransientError("down")] * 10)

    @flow
    def run() -> str:
        return with_declared_retries(step, Retries(attempts=2, delay_seconds=0))()

    with pytest.raises(TransientError):
        run()
    assert len(calls) == 3


def test_backoff_doubles_with_jitter() -> None:
    configured = with_declared_retries(flaky([])[0], Retries(attempts=3, delay_seconds=10))
    assert configured.retry_delay_seconds == [10, 20, 40]
    assert configured.retry_jitter_factor == 0.5
