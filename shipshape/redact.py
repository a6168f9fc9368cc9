"""Masks credentials in text bound for people: error messages, the ledger, run states, Slack.

Drivers echo what they were given: libpq repeats a connection URL, or just the fragment it could not parse
(`invalid percent-encoded token: "s3cr%zzet"` is the password), when it cannot use it. Every adapter and source
passes its error text through `mask_credentials`, with the URL it connected with, so one rule decides what a
password looks like.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"
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
