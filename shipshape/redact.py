"""Masks credentials and row values in text bound for people: error messages, the ledger, run states, Slack.

Drivers echo what they were given: libpq repeats a connection URL, or just the fragment it could not parse
(`invalid percent-encoded token: "s3cr%zzet"` is the password), when it cannot use it; databases quote the value
a cast or a constraint failed on (`invalid input syntax for type bigint: "123-45-6789"`), which may be PII.
Every adapter passes its driver's error text through `redact_driver_error` — with the URL it connected with and
its dialect's patterns for echoed values — so one function decides what leaves the adapter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote

MASK = "***"
VALUE_MASK = "<value>"
# Shorter "passwords" are not masked where they appear alone: masking every `a` would destroy the message.
_MIN_SECRET_LENGTH = 4

# `scheme://user:password@host` (the password may hold anything but `@`, `/` and whitespace).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@/\s]*(?P<at>@)")
# libpq key/value connection strings and URL query parameters: `password=…`, `sslpassword=…`, `?password=…`.
_KEY_PASSWORD = re.compile(r"(?P<head>\b(?:ssl)?password\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'|[^\s&;,)]+)", re.I)
# The password of a URL as libpq reads it: everything between `user:` and the last `@`.
_URL_USERINFO_PASSWORD = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.-]*://[^:/@]*:(?P<value>.*)@")


def mask_credentials(text: str, connected_with: str = "") -> str:
    """`text` with every URL password and `password=` value replaced by `***`, and, when the URL or connection
    string `connected_with` is given, its passwords masked wherever they appear (raw or percent-decoded)."""
    for secret in sorted(_passwords(connected_with), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(rf"\g<head>{MASK}\g<at>", text)
    return _KEY_PASSWORD.sub(rf"\g<head>{MASK}", text)


def _passwords(connection: str) -> set[str]:
    found = [match.group("value").strip("'") for match in _KEY_PASSWORD.finditer(connection)]
    if (userinfo := _URL_USERINFO_PASSWORD.match(connection)) is not None:
        found.append(userinfo.group("value"))
    return {form for secret in found for form in (secret, unquote(secret)) if len(form) >= _MIN_SECRET_LENGTH}


def redact_driver_error(text: str, *, connected_with: str = "", value_echoes: Sequence[re.Pattern[str]] = ()) -> str:
    """A driver's error text without credentials and without the row values its dialect quotes.

    `value_echoes` are the adapter's patterns, each with a `value` group: what the database says about a value
    (the column, the type, the constraint) stays, the value becomes `<value>`.
    """
    for pattern in value_echoes:
        text = pattern.sub(_without_value, text)
    return mask_credentials(text, connected_with)


def _without_value(match: re.Match[str]) -> str:
    start, whole = match.start(), match.group(0)
    return whole[: match.start("value") - start] + VALUE_MASK + whole[match.end("value") - start :]
