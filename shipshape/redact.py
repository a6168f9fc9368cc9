"""Masks credentials in text bound for people: error messages, the ledger, run states, Slack.

Drivers echo what they were given: libpq repeats a connection URL (or a fragment of it) when it cannot parse
or reach it, SQLAlchemy and DuckDB quote the statement or path they failed on. Every adapter and source passes
its error text through `mask_credentials` before raising, so one rule decides what a password looks like.
"""

from __future__ import annotations

import re

MASK = "***"

# `scheme://user:password@host` (the password may hold anything but `@`, `/` and whitespace).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@/\s]*(?P<at>@)")
# libpq key/value connection strings and URL query parameters: `password=…`, `sslpassword=…`, `?password=…`.
_KEY_PASSWORD = re.compile(r"(?P<head>\b(?:ssl)?password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s&;,)]+)", re.IGNORECASE)


def mask_credentials(text: str) -> str:
    """`text` with every URL password and `password=` value replaced by `***`; everything else kept."""
    text = _URL_PASSWORD.sub(rf"\g<head>{MASK}\g<at>", text)
    return _KEY_PASSWORD.sub(rf"\g<head>{MASK}", text)
