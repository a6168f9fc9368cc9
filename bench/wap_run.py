"""A full write-audit-publish partition run, timed as a user sees it: `shipshape run` in a subprocess.

The run goes through `peak_rss.py`, which times it and reports that one process's peak RSS (see there why
the benchmark process cannot measure it directly).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from orders_data import COLUMNS, DAY

from shipshape.catalog import load_pipeline

PEAK_RSS_WRAPPER = Path(__file__).with_name("peak_rss.py")
PIPELINE = "bench_orders"
DESTINATION_SCHEMA = "analytics"
DESTINATION_TABLE = "fct_bench_orders"
PATH_TEMPLATE = "{data_dir}/landing/{start:%Y-%m-%d}.parquet"
OUTPUT_TAIL_LINES = 40
RAN_LINE = re.compile(r"^ran \d+ partition\(s\) of \w+ in ([0-9.]+) s$", re.MULTILINE)

CONTRACT = f"""\
# Contract of the benchmark pipeline: the checks a typical daily fact table has.
dataset: warehouse/${{var.dataset_path}}
variables:
  dataset_path:
    default: {DESTINATION_SCHEMA}/{DESTINATION_TABLE}
columns:
  - name: order_id
    data_type: bigint
    checks:
      - missing:
      - duplicate:
  - name: customer_id
    data_type: bigint
  - name: amount
    data_type: decimal
    numeric_precision: 12
    numeric_scale: 2
    checks:
      - invalid:
          valid_min: 0
  - name: status
    data_type: text
    checks:
      - invalid:
          valid_values: [placed, paid, shipped, delivered, cancelled]
  - name: order_date
    data_type: date
    checks:
      - missing:
  - name: updated_at
    data_type: timestamp with time zone
  - name: email
    data_type: text
checks:
  - schema:
  - row_count:
      threshold:
        must_be_greater_than: 0
"""


class WapRunError(Exception):
    """The pipeline failed or published wrong rows: a finding about the pipeline, reported in place of its figures."""


@dataclass(frozen=True)
class CliRun:
    """One `shipshape run`: wall time from spawn to exit, the process's peak RSS, Prefect's own durations."""

    wall_seconds: float
    run_seconds: float
    """The pipeline run as `shipshape run` times it: the flow call, extract to publish, without interpreter start."""
    peak_rss_mib: float
    flow_seconds: float
    """The flow run's own duration as the Prefect server recorded it (no interpreter start, no imports)."""
    task_seconds: dict[str, float]


def write_project(project_dir: Path) -> None:
    """A one-pipeline project: Parquet file source → fct_bench_orders, daily, replace_partition, 7 checks."""
    declaration = {
        "name": PIPELINE,
        "description": "Benchmark: one day of generated orders from a landed Parquet file.",
        "owner": {"team": "platform", "github": "@example-org/platform", "slack_channel": "#platform-bench"},
        "source": {"kind": "file", "format": "parquet", "path": PATH_TEMPLATE, "columns": COLUMNS},
        "destination": {"table": DESTINATION_TABLE, "schema": DESTINATION_SCHEMA},
        "partition": {"column": "order_date", "grain": "day"},
        "load": {"mode": "replace_partition"},
        "contract": f"checks/{PIPELINE}.yaml",
        "freshness": {"sla": "26h"},
        "schedule": {"cron": "0 3 * * *"},
        # A transient fault should fail the benchmark, not hide in its timing as retries with backoff.
        "retries": {"attempts": 0},
        "rejects": {"max_rows": 0},
    }
    declaration_path = project_dir / "pipelines" / f"{PIPELINE}.yaml"
    declaration_path.parent.mkdir(parents=True)
    declaration_path.write_text(yaml.safe_dump(declaration, sort_keys=False))
    (project_dir / "checks").mkdir()
    (project_dir / "checks" / f"{PIPELINE}.yaml").write_text(CONTRACT)
    load_pipeline(declaration_path, project_dir)  # a mistake here should fail now, not look like a pipeline bug


def landing_path(data_dir: Path) -> Path:
    """Where the declaration's path template points for the benchmark day."""
    return Path(PATH_TEMPLATE.format(data_dir=data_dir, start=DAY))


def run_environment(
    project_dir: Path, data_dir: Path, warehouse_url: str, prefect_home: Path, api_url: str
) -> dict[str, str]:
    """What `shipshape run` needs to run the benchmark project against `warehouse_url` and a running Prefect API."""
    return {
        **os.environ,
        "SHIPSHAPE_PROJECT_DIR": str(project_dir),
        "SHIPSHAPE_DATA_DIR": str(data_dir),
        "SHIPSHAPE_WAREHOUSE_URL": warehouse_url,
        "SODA_CORE_TELEMETRY_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_API_URL": api_url,
    }


def cli_argv() -> list[str]:
    """`shipshape run` of the benchmark pipeline for DAY, with this interpreter."""
    day = DAY.isoformat()
    return [sys.executable, "-m", "cli", "run", PIPELINE, "--start-date", day, "--end-date", day]


def run_cli(env: dict[str, str], api_url: str, log_path: Path) -> CliRun:
    """Run the pipeline for DAY; raise `WapRunError` with the output's end if it fails."""
    argv = cli_argv()
    result_path = log_path.with_suffix(".json")
    with log_path.open("wb") as log:
        # -I -S: the wrapper needs only the standard library, and stays small without site-packages.
        wrapper = [sys.executable, "-I", "-S", str(PEAK_RSS_WRAPPER), str(result_path), *argv]
        subprocess.run(wrapper, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    measured = json.loads(result_path.read_text())
    if measured["exit_code"] != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-OUTPUT_TAIL_LINES:])
        raise WapRunError(f"`python {' '.join(argv[1:])}` exited with {measured['exit_code']}; its last lines:\n{tail}")
    flow_seconds, task_seconds = _latest_flow_run_durations(api_url)
    run_seconds = float(RAN_LINE.findall(log_path.read_text(errors="replace"))[-1])
    return CliRun(measured["wall_seconds"], run_seconds, measured["peak_rss_kib"] / 1024, flow_seconds, task_seconds)


def _latest_flow_run_durations(api_url: str) -> tuple[float, dict[str, float]]:
    """The run just finished is the newest on the benchmark's own server; its tasks in start order."""
    flow_run = latest_flow_run(api_url)
    tasks = {task_name(task_run): float(task_run["total_run_time"]) for task_run in task_runs(api_url, flow_run["id"])}
    return float(flow_run["total_run_time"]), tasks


def latest_flow_run(api_url: str) -> dict[str, Any]:
    """The newest flow run on the benchmark's own server (the one a benchmark just ran, nothing else runs there)."""
    [flow_run] = _post(api_url, "/flow_runs/filter", {"sort": "START_TIME_DESC", "limit": 1})
    return flow_run


def flow_runs_running(api_url: str) -> int:
    """Flow runs the server still shows as Running: after a SIGKILL nothing tells it otherwise."""
    return len(_post(api_url, "/flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": ["RUNNING"]}}}}))


def task_runs(api_url: str, flow_run_id: str) -> list[dict[str, Any]]:
    """The flow run's task runs in start order."""
    of_flow_run = {"flow_runs": {"id": {"any_": [flow_run_id]}}}
    return _post(api_url, "/task_runs/filter", {**of_flow_run, "sort": "EXPECTED_START_TIME_ASC"})


def task_name(task_run: dict[str, Any]) -> str:
    """Task run names are "<task name>-<3 random characters>"."""
    return str(task_run["name"]).rsplit("-", 1)[0]


def _post(api_url: str, path: str, body: dict[str, object]) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        f"{api_url}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        runs: list[dict[str, Any]] = json.loads(response.read())
    return runs
