"""Run a Makefile target the way a user types it, from a clean environment, and stop it whole if it hangs."""

from __future__ import annotations

import os
import signal
import subprocess

from shipshape.settings import PACKAGE_ROOT


def newcomer_environment(**settings: str) -> dict[str, str]:
    """This process's environment without any Prefect or shipshape setting, plus `settings`.

    Whatever points the test's own shell at an API, a warehouse or a start limit would hide what a fresh clone does.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith(("PREFECT_", "SHIPSHAPE_"))}
    return env | settings


def make(target: str, *variables: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """`make target VAR=value...` in the project (its commands and exported settings), output and errors together.

    `--assume-old=install` skips the install step (the suite already runs in the installed `.venv`). The target
    runs in its own session, so on a timeout its whole process group (and whatever servers it started) is killed.
    """
    command = ["make", "--no-print-directory", "-C", str(PACKAGE_ROOT), "--assume-old=install", target, *variables]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    return subprocess.CompletedProcess(command, process.returncode, output)
