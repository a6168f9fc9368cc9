"""Load progress, in this process: what the extract task reports per chunk reaches whoever listens here.

The CLI's progress bar listens; it runs the flow in its own process (tasks in its threads), so nothing needs to
travel through the API for it. The UI gets the same numbers from the task's progress artifact.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from shipshape.load_progress import LoadProgress

Listener = Callable[[LoadProgress], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Call `listener` with every progress report made while the block runs (from any thread)."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def report(progress: LoadProgress) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(progress)
