"""Waiting for a condition another process will reach (a backend waiting on a lock, a session gone), polled
with a deadline: the server offers no event to await for these."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import pytest

WAIT_SECONDS = 90


def wait_until(condition: Callable[[], bool], what: str, process: subprocess.Popen[str] | None = None) -> None:
    """Poll `condition`; fail naming `what` at the deadline, or with the process's output if it exits first."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if process is not None and process.poll() is not None:
            stderr = process.stderr.read() if process.stderr else ""
            pytest.fail(f"the process exited ({process.returncode}) before {what}: {stderr}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.02)
