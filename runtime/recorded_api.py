"""A Prefect API named by a record (`make up`'s `api.env`, the kept local API's `local-api.env`): its URL and
password, and whether it answers with them."""

from __future__ import annotations

import base64
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PROBE_SECONDS = 10.0
"""A server that is down refuses at once; a live one answers in milliseconds, or seconds on a busy machine, and
waiting for it beats starting a temporary API (5-30 s)."""


@dataclass(frozen=True)
class RecordedApi:
    url: str
    auth_string: str

    def answers(self) -> bool:
        """One authenticated call: a server that is down, another program on the port or a changed password
        all answer something else than 200."""
        token = base64.b64encode(self.auth_string.encode()).decode()
        request = urllib.request.Request(f"{self.url}/admin/version", headers={"Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(request, timeout=PROBE_SECONDS) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> RecordedApi | None:
        """The API a record's fields name, or None when its URL or password is missing."""
        url, auth = fields.get("PREFECT_API_URL"), fields.get("PREFECT_API_AUTH_STRING")
        return cls(url, auth) if url and auth else None


def write_record(path: Path, api: RecordedApi, **extra: str) -> None:
    """`NAME=value` lines naming `api` (and `extra`), readable by this user only (they hold the API password); whole
    or not at all, for a reader at the same moment."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    fields = {"PREFECT_API_URL": api.url, "PREFECT_API_AUTH_STRING": api.auth_string, **extra}
    with os.fdopen(descriptor, "w") as file:
        file.write("".join(f"{name}={value}\n" for name, value in fields.items()))
    os.replace(partial, path)


def record_fields(text: str) -> dict[str, str]:
    """A record's `NAME=value` lines."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
