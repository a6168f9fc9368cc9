"""Retry only what may heal by itself: transient errors, with exponential backoff and jitter."""

from __future__ import annotations

from typing import Any, ParamSpec, TypeVar

from prefect import Task
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import exponential_backoff

from shipshape.declaration import Retries
from shipshape.errors import TransientError

JITTER_FACTOR = 0.5


def is_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Permanent errors (bad SQL, 4xx, contract violations) fail at once; only TransientError retries."""
    return isinstance(state.result(raise_on_failure=False), TransientError)


P = ParamSpec("P")
R = TypeVar("R")


def with_declared_retries(task: Task[P, R], retries: Retries) -> Task[P, R]:
    """The task with the pipeline's declared retry budget (attempts, base delay doubling each time)."""
    return task.with_options(
        retries=retries.attempts,
        retry_delay_seconds=exponential_backoff(backoff_factor=retries.delay_seconds),
        retry_jitter_factor=JITTER_FACTOR,
        retry_condition_fn=is_transient,
    )
