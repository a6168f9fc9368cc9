"""A Prefect API named by a record (`make up`'s `api.env`, the kept local API's `local-api.env`): its URL and
password, and whether it answers with them."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from dataclasses import dataclass

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
