"""The terminal shows a user or source problem as one line; the Prefect API keeps the traceback.

Prefect's flow and task engines log every exception with its traceback, and its console handler prints
that to the terminal of `shipshape run` — above the CLI's own `error:` line, burying it. A
`ShipshapeError` is a problem with a declaration, a source, a secret or a login, which the user fixes
from its message: on the console its traceback is dropped (the log line itself stays), while the API
handler, which formats the record first and separately, still sends the full detail to the run's logs.
"""

from __future__ import annotations

import copy
import logging

from prefect.logging.handlers import PrefectConsoleHandler

from shipshape.errors import ShipshapeError


class _WithoutUserTracebacks(logging.Formatter):
    """Formats like `inner` minus a `ShipshapeError`'s traceback, on a copy: other handlers see the whole record."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self._inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and isinstance(record.exc_info[1], ShipshapeError):
            record = copy.copy(record)
            record.exc_info = None
            record.exc_text = None
        return self._inner.format(record)


def hide_user_error_tracebacks() -> None:
    """Wrap the formatter of every Prefect console handler on the root logger (where run logs reach the terminal)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not isinstance(handler.formatter, _WithoutUserTracebacks):
            handler.setFormatter(_WithoutUserTracebacks(handler.formatter))
