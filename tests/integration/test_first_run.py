"""A newcomer's first `make demo`, then first `shipshape run`: each on a fresh Prefect home, no API URL, and a
machine that is busy with other work.

Prefect then starts a temporary API that migrates a new SQLite database before it answers; on a busy
2-core machine that took longer than Prefect's default start limit (20 s), so the very first run failed.
The demo runs exactly as `make demo` runs it (the Makefile's command and exported environment); the run as the
README's next step says, with the PII key the demo made.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from demo.__main__ import DAYS, FIRST_DAY
from shipshape.names import PII_KEY_VARIABLE
from shipshape.settings import Settings
from tests.support.cpu_load import busy_cores
from tests.support.make import make, newcomer_environment
from tests.support.platform import cli

DEMO_TIMEOUT_SECONDS = 600
"""A hung demo fails the test instead of the whole CI job; a healthy one ends well within this even under load."""


def test_first_demo_then_first_run_each_on_a_fresh_prefect_home_succeed_while_every_core_is_busy(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    for home in ("demo-home", "run-home"):
        (tmp_path / home).mkdir()
    env = newcomer_environment(PREFECT_HOME=str(tmp_path / "demo-home"), SHIPSHAPE_DATA_DIR=str(data_dir))
    with busy_cores():
        demo = make("demo", env=env, timeout=DEMO_TIMEOUT_SECONDS)
    assert demo.returncode == 0, demo.stdout[-6000:]
    assert "4. The gate blocked it" in demo.stdout
    assert "— unchanged" in demo.stdout
    assert re.search(r"^partition +rows +checks +status$", demo.stdout, re.MULTILINE), demo.stdout[-3000:]
    # The summary's last column, one line per day: every day published but the one the gate blocked.
    statuses = re.findall(r"^\d{4}-\d\d-\d\d +\d+ +\d+/\d+ +(\w+)$", demo.stdout, re.MULTILINE)
    assert sorted(statuses) == ["blocked"] + ["published"] * (DAYS - 1), demo.stdout[-3000:]

    # The README's next step: `shipshape run` with the PII key the demo made, on a Prefect home of its own.
    key = Settings(project_dir=tmp_path, data_dir=data_dir).local_secret_file(PII_KEY_VARIABLE).read_text().strip()
    run_env = env | {"PREFECT_HOME": str(tmp_path / "run-home"), PII_KEY_VARIABLE: key}
    command = [cli("shipshape"), "run", "shop_orders", "--start-date", FIRST_DAY.isoformat()]
    with busy_cores():
        run = subprocess.run(command, env=run_env, capture_output=True, text=True, timeout=DEMO_TIMEOUT_SECONDS)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert re.search(rf"^partition={FIRST_DAY} .*status=published", run.stdout, re.MULTILINE), run.stdout
    assert "ran 1 partition(s) of shop_orders" in run.stdout
