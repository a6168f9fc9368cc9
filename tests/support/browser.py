"""A real browser for UI checks: Debian's headless Chromium renders the page, scripts and API calls included.

`--dump-dom` after a virtual-time budget returns the DOM once the single-page app has fetched and drawn its
data, so a test reads what a user would see. Flags keep Chromium off the closed network and out of the
host's profile.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import pytest

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)


def rendered_text(url: str, budget_ms: int = 15000) -> str:
    """The page's visible text (tags stripped, whitespace collapsed) after its scripts have run."""
    chromium = shutil.which("chromium") or shutil.which("google-chrome")  # Debian here; GitHub's runners ship Chrome
    if chromium is None:
        pytest.fail("UI tests need Debian's chromium: run .ci/run (it installs it) or `apt-get install chromium`")
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        result = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
             "--dump-dom", url],
            capture_output=True, text=True, timeout=120, check=False,
        )
    assert result.returncode == 0, f"chromium exited {result.returncode}: {result.stderr[-2000:]}"
    parser = _TextOnly()
    parser.feed(result.stdout)
    return " ".join(" ".join(parser.parts).split())


class _TextOnly(HTMLParser):
    """Collects text nodes; script and style bodies are text to the parser too, but never contain UI labels."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
