"""Milestones of a running `shipshape run`, read from its output as it comes: when the flow run began, when each
task finished.

The chaos benchmark aims its faults by them and tells afterwards which phase a fault hit. Not from the Prefect
API: a task run's states reach the server as events sent in the background, which a SIGKILLed process may never
send. Each milestone is stamped with the time its line arrived; the whole output also goes to a log file.
"""

from __future__ import annotations

import re
import threading
import time
from typing import IO

FLOW_RUN_BEGAN = "flow run began"
TASK_FINISHED = re.compile(rb"Task run '(?P<name>[\w-]+)-\w+' - Finished in state ")
"""Prefect's line at each task's end (task_engine.py); task run names are "<task name>-<3 random characters>"."""
_BEGAN = b"Beginning flow run"


class RunOutput:
    """Copies the run's output to `log` in a thread of its own, noting the milestones it passes."""

    def __init__(self, output: IO[bytes], log: IO[bytes]) -> None:
        self._output, self._log = output, log
        self._seen: dict[str, float] = {}
        self._changed = threading.Condition()
        self._ended = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def wait_for(self, milestone: str, timeout: float) -> float | None:
        """When `milestone` (FLOW_RUN_BEGAN or a task's name) came; None if the output ended or time ran out first."""
        with self._changed:
            self._changed.wait_for(lambda: milestone in self._seen or self._ended, timeout)
            return self._seen.get(milestone)

    def finished_before(self, instant: float) -> set[str]:
        """The tasks whose end was seen before `instant`."""
        with self._changed:
            return {name for name, seen in self._seen.items() if seen <= instant and name != FLOW_RUN_BEGAN}

    def join(self) -> None:
        self._reader.join()

    def _read(self) -> None:
        for line in self._output:
            self._log.write(line)
            milestone = FLOW_RUN_BEGAN if _BEGAN in line else None
            if match := TASK_FINISHED.search(line):
                milestone = match["name"].decode()
            if milestone:
                with self._changed:
                    self._seen.setdefault(milestone, time.time())
                    self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()
