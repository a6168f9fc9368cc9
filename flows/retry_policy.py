"""Retry only what may heal by itself: transient errors, with exponential backoff and jitter; and only while the
run has time left — each attempt is cut off at the run's deadline."""

from __future__ import annotations

from typing import Any, ParamSpec, TypeVar

from prefect import Task
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import exponential_backoff

from shipshape.declaration import Retries
from shipshape.errors import RunTimedOutError, TransientError
from shipshape.run_timeout import Deadline

JITTER_FACTOR = 0.5


def is_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Permanent errors (bad SQL, 4xx, contract violations) fail at once; only TransientError retries."""
    return isinstance(state.result(raise_on_failure=False), TransientError)


P = ParamSpec("P")
R = TypeVar("R")


def with_declared_retries(task: Task[P, R], retries: Retries, deadline: Deadline) -> Task[P, R]:
    """The task with the pipeline's declared retry budget (attempts, base delay doubling each time), each attempt
    limited to the time the run has left.

    Prefect enforces `timeout_seconds` with SIGALRM when the task runs in the flow's (main) thread, which also
    interrupts a read blocked in a socket; the attempt then ends `TimedOut` and raises `TaskRunTimeoutError`.
    A retry starts only before the deadline, but runs with the limit computed here: a retry that starts late may
    overrun the deadline by at most that limit.
    """

    if deadline.passed:  # a zero timeout would mean none at all to Prefect
        raise RunTimedOutError(f"no time left to start {task.name}")

    def transient_and_in_time(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
        return not deadline.passed and is_transient(task, task_run, state)

    return task.with_options(
        retries=retries.attempts,
        retry_delay_seconds=exponential_backoff(backoff_factor=retries.delay_seconds),
        retry_jitter_factor=JITTER_FACTOR,
        retry_condition_fn=transient_and_in_time,
        timeout_seconds=deadline.remaining_seconds(),
    )
