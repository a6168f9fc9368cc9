"""A newcomer's first `make demo`: a fresh Prefect home, no API URL, and a machine that is busy with other work.

Prefect then starts a temporary API that migrates a new SQLite database before it answers; on a busy
2-core machine that took longer than Prefect's default start limit (20 s), so the very first run failed.
The demo runs exactly as `make demo` runs it (the Makefile's command and exported environment).
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.cpu_load import busy_cores
from tests.support.make import make, newcomer_environment

DEMO_TIMEOUT_SECONDS = 600
"""A hung demo fails the test instead of the whole CI job; a healthy one ends well within this even under load."""
DAYS = 7


def test_first_demo_on_a_fresh_prefect_home_succeeds_while_every_core_is_busy(tmp_path: Path) -> None:
    prefect_home = tmp_path / "prefect-home"
    prefect_home.mkdir()
    env = newcomer_environment(PREFECT_HOME=str(prefect_home), SHIPSHAPE_DATA_DIR=str(tmp_path / "data"))
    with busy_cores():
        demo = make("demo", env=env, timeout=DEMO_TIMEOUT_SECONDS)
    assert demo.returncode == 0, demo.stdout[-6000:]
    assert "4. The gate blocked it" in demo.stdout
    assert "— unchanged" in demo.stdout
    assert re.search(r"^partition +rows +checks +status$", demo.stdout, re.MULTILINE), demo.stdout[-3000:]
    # The summary's last column, one line per day: every day published but the one the gate blocked.
    statuses = re.findall(r"^\d{4}-\d\d-\d\d +\d+ +\d+/\d+ +(\w+)$", demo.stdout, re.MULTILINE)
    assert sorted(statuses) == ["blocked"] + ["published"] * (DAYS - 1), demo.stdout[-3000:]
