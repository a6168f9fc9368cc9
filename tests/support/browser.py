"""A real browser for UI checks: Debian's headless Chromium renders the page, scripts and API calls included.

`--dump-dom` after a virtual-time budget returns the DOM once the single-page app has fetched and drawn its
data, so a test reads what a user would see. Flags keep Chromium off the closed network and out of the
host's profile.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.sync.client import ClientConnection, connect

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)


def rendered_text(url: str, budget_ms: int = 15000, password: str | None = None) -> str:
    """The page's visible text (tags stripped, whitespace collapsed) after its scripts have run.

    With `password`, for a Prefect UI whose API asks for one: signed in first, in the same browser profile.
    """
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        if password is not None:
            _sign_in("{0.scheme}://{0.netloc}".format(urlsplit(url)), password, profile)
        result = subprocess.run(
            [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
             "--dump-dom", url],
            capture_output=True, text=True, timeout=120, check=False,
        )
    assert result.returncode == 0, f"chromium exited {result.returncode}: {result.stderr[-2000:]}"
    parser = _TextOnly()
    parser.feed(result.stdout)
    return " ".join(" ".join(parser.parts).split())


def _sign_in(origin: str, password: str, profile: str) -> None:
    """What the Prefect UI's login form does with the password a user types: keeps it, base64-encoded, in the
    origin's localStorage as `prefect-password`. Chromium writes the profile to disk as it closes."""
    with subprocess.Popen(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    ) as chromium:
        with connect(_devtools_url(chromium), max_size=None) as devtools:
            page = _DevTools(devtools)
            page.open(f"{origin}/robots.txt")  # any page of the origin gives its localStorage
            stored = base64.b64encode(password.encode()).decode()
            page.call("Runtime.evaluate", expression=f"localStorage.setItem('prefect-password', '{stored}')")
            page.close_browser()
        assert chromium.wait(timeout=60) == 0, "chromium did not close cleanly, so the sign-in may not be saved"


def _chromium() -> str:
    chromium = shutil.which("chromium") or shutil.which("google-chrome")  # Debian here; GitHub's runners ship Chrome
    if chromium is None:
        pytest.fail("UI tests need Debian's chromium: run .ci/run (it installs it) or `apt-get install chromium`")
    return chromium


def _devtools_url(chromium: subprocess.Popen[str]) -> str:
    """Chromium prints its DevTools address on stderr once it listens."""
    assert chromium.stderr is not None
    for line in chromium.stderr:
        if line.startswith("DevTools listening on "):
            return line.removeprefix("DevTools listening on ").strip()
    raise AssertionError(f"chromium exited {chromium.wait()} before listening for DevTools")


class _DevTools:
    """One page of the browser over the DevTools protocol: calls answered in order, events waited for by name."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection, self._ids = connection, itertools.count(1)
        target = self._send("Target.createTarget", None, url="about:blank")["targetId"]
        self._session = self._send("Target.attachToTarget", None, targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self._wait_for("Page.loadEventFired")

    def close_browser(self) -> None:
        self._send("Browser.close", None)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self._send(method, self._session, **params)

    def _wait_for(self, event: str) -> None:
        while json.loads(self._connection.recv(timeout=120)).get("method") != event:
            pass

    def _send(self, method: str, session: str | None, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        message = {"id": call_id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        self._connection.send(json.dumps(message))
        while (answer := json.loads(self._connection.recv(timeout=120))).get("id") != call_id:
            pass
        assert "error" not in answer, f"{method}: {answer['error']}"
        result: dict[str, Any] = answer["result"]
        return result


class _TextOnly(HTMLParser):
    """Collects text nodes; script and style bodies are text to the parser too, but never contain UI labels."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
