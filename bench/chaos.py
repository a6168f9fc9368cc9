"""`make chaos`: does a partition run survive being killed, or its database crashing, at any moment?

On a private PostgreSQL server (`private_postgres.py`: the benchmark crashes it, so never the shared one) and one
Prefect server started once, a clean `shipshape run` of the 1M-row benchmark partition gives the reference: the
published table's checksum, and when each phase ran. Then, again and again, a run gets one fault at a random
moment inside one phase — SIGKILL of the whole `shipshape run` process group, or `pg_ctl restart -m immediate`
of the server — and is then re-run once, as an operator would; the re-run must succeed, and afterwards the published
table must equal the clean run's (checksum; lost and duplicated keys counted) and nothing of the faulty run may
remain: no audit table but the latest run's raw one, no advisory lock.

Phases are the flow's tasks; extract and load stream through one task (`extract-to-audit`), so its first half
counts as extract (opening the source, creating the raw table, the first batches) and its second half as load.
Each fault is aimed by the latest successful run's timing, from the end of the task before its phase, and which
phase it really hit is read back from the faulty run's own output (`run_output.py`), since timings drift.
The last line is `chaos: kills=<n> restarts=<n> identical=<n> lost_rows=<n> duplicated_rows=<n> orphans=<n>`.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from arguments import positive
from chaos_checks import Fingerprint, fingerprint, leftovers
from orders_data import orders, write_parquet
from private_postgres import PrivatePostgres, private_postgres
from run_output import FLOW_RUN_BEGAN, RunOutput
from wap_run import (
    CliRun,
    cli_argv,
    flow_runs_running,
    landing_path,
    latest_flow_run,
    run_cli,
    run_environment,
    task_name,
    task_runs,
    write_project,
)

from infra.local.server import prefect_server, stop_process_group
from shipshape.warehouses import open_warehouse

DATABASE = "shipshape_chaos"
PHASES = ("extract", "load", "transform", "audit", "publish")
PHASE_TASKS = {
    "extract-to-audit": ("extract", "load"),
    "transform-partition": ("transform",),
    "audit-partition": ("audit",),
    "publish-partitions": ("publish",),
}
"""The flow's tasks in run order and the phases each holds; a task with two holds each for half its run time."""
FAULTY_RUN_TIMEOUT_SECONDS = 300
"""A run that neither finishes nor fails this long after its fault is hung: a finding, and it is killed."""
SESSION_END_TIMEOUT_SECONDS = 120
MISSED_FAULT_ATTEMPTS = 3

STARTED = time.monotonic()
FaultKind = Literal["kill", "restart"]


@dataclass(frozen=True)
class Aim:
    """When a phase ran in the latest successful run: seconds after a milestone of the run's output
    (`run_output.py`), the previous task's end, so that the drift of earlier phases does not add up."""

    anchor: str
    start: float
    end: float


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    phase: str
    """Where it was aimed; `Outcome.hit` says where it landed."""


@dataclass(frozen=True)
class Outcome:
    fault: Fault
    hit: str
    faulty_end: str
    """How the faulty run ended: killed, or its exit code and last output line (after a restart)."""
    delay: float
    """Seconds after its aim's anchor."""
    waited_seconds: float
    """How long the killed client's server sessions outlived it (the partition lock is held until they end)."""
    recovery: CliRun
    published: Fingerprint
    orphans: list[str]


@dataclass
class Tally:
    reference: Fingerprint
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, kind: FaultKind) -> int:
        return sum(outcome.fault.kind == kind for outcome in self.outcomes)

    @property
    def identical(self) -> int:
        return sum(outcome.published == self.reference for outcome in self.outcomes)

    @property
    def lost_rows(self) -> int:
        return sum(max(self.reference.keys - outcome.published.keys, 0) for outcome in self.outcomes)

    @property
    def duplicated_rows(self) -> int:
        return sum(outcome.published.rows - outcome.published.keys for outcome in self.outcomes)

    @property
    def orphans(self) -> int:
        return sum(len(outcome.orphans) for outcome in self.outcomes)

    def last_line(self) -> str:
        return (
            f"chaos: kills={self.count('kill')} restarts={self.count('restart')} identical={self.identical} "
            f"lost_rows={self.lost_rows} duplicated_rows={self.duplicated_rows} orphans={self.orphans}"
        )

    def on_target(self) -> bool:
        return self.identical == len(self.outcomes) and self.lost_rows == self.duplicated_rows == self.orphans == 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    rng = random.Random(args.seed)
    with ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="shipshape-chaos-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        _progress("starting a private PostgreSQL server")
        server = cleanup.enter_context(private_postgres())
        with open_warehouse(server.url) as admin:
            admin.execute(f"CREATE DATABASE {admin.quote(DATABASE)}")
        url = server.url.rsplit("/", 1)[0] + f"/{DATABASE}"
        _progress(f"generating {args.rows:,} orders")
        write_parquet([orders(args.rows)], landing_path(workdir / "data"))
        write_project(workdir / "project")
        _progress("starting a Prefect server for the pipeline runs")
        api_url = cleanup.enter_context(prefect_server(workdir / "prefect", workdir / "prefect-server.log"))
        env = run_environment(workdir / "project", workdir / "data", url, workdir / "prefect", api_url)
        logs = workdir / "logs"
        logs.mkdir()

        run_cli(env, api_url, logs / "clean-1.log")  # creates the table; the second run is the steady state
        run_cli(env, api_url, logs / "clean-2.log")
        aims = _latest_run_aims(api_url)
        with open_warehouse(url) as warehouse:
            tally = Tally(fingerprint(warehouse))
        _progress("clean run phases (s after the previous task's end): " + _describe(aims))
        faults = _plan(args.kills, args.restarts, rng)
        for number, fault in enumerate(faults, start=1):
            outcome = _inject_and_recover(fault, aims, rng, server, env, api_url, url, logs / f"fault-{number}")
            aims = _latest_run_aims(api_url)
            tally.outcomes.append(outcome)
            _report_outcome(f"{number}/{len(faults)}", outcome, tally)
        running = flow_runs_running(api_url)
    _summarise(tally, running)
    print(tally.last_line())
    return 0 if tally.on_target() else 1


def _exit_cleanly(signum: int, _: object) -> None:
    """Stopped like Ctrl-C (SIGINT raises KeyboardInterrupt): the `finally`s stop both servers, remove the files."""
    raise SystemExit(128 + signum)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=positive, default=1_000_000, help="rows of the partition (default 1,000,000)")
    parser.add_argument("--kills", type=positive, default=20, help="SIGKILLs of a run, spread over the phases")
    parser.add_argument("--restarts", type=int, default=3, help="immediate restarts of PostgreSQL during a run")
    parser.add_argument("--seed", type=int, default=None, help="for the moments and phases (default: random)")
    return parser


def _latest_run_aims(api_url: str) -> dict[str, Aim]:
    """Where each phase lay in the latest (successful) run, from its task runs' start and end times.

    Re-read after every recovery run: on a shared machine the phases stretch and shrink with its load."""
    flow_run = latest_flow_run(api_url)
    by_name = {task_name(task_run): task_run for task_run in task_runs(api_url, flow_run["id"])}
    anchor, anchor_time = FLOW_RUN_BEGAN, _instant(flow_run["start_time"])
    aims: dict[str, Aim] = {}
    for task, phases in PHASE_TASKS.items():
        start = _instant(by_name[task]["start_time"]) - anchor_time
        end = _instant(by_name[task]["end_time"]) - anchor_time
        step = (end - start) / len(phases)
        for index, phase in enumerate(phases):
            aims[phase] = Aim(anchor, start + index * step, start + (index + 1) * step)
        anchor, anchor_time = task, _instant(by_name[task]["end_time"])
    return aims


def _plan(kills: int, restarts: int, rng: random.Random) -> list[Fault]:
    """Kills round-robin over the phases (so each gets its share), restarts in random phases, in random order."""
    faults = [Fault("kill", PHASES[index % len(PHASES)]) for index in range(kills)]
    faults += [Fault("restart", rng.choice(PHASES)) for _ in range(restarts)]
    rng.shuffle(faults)
    return faults


def _inject_and_recover(
    fault: Fault,
    aims: dict[str, Aim],
    rng: random.Random,
    server: PrivatePostgres,
    env: dict[str, str],
    api_url: str,
    url: str,
    log_stem: Path,
) -> Outcome:
    """One faulty run, then a re-run that must succeed; what the published table and the audit area hold then."""
    for attempt in range(1, MISSED_FAULT_ATTEMPTS + 1):
        aim = aims[fault.phase]
        delay = rng.uniform(aim.start, aim.end)
        faulty = _faulty_run(fault, aim.anchor, delay, aims, server, env, log_stem.with_suffix(".log"))
        if faulty is not None:
            break
        _progress(f"the run got past {fault.phase} before its {fault.kind} (attempt {attempt}); another moment")
    else:
        raise RuntimeError(f"{MISSED_FAULT_ATTEMPTS} runs got past the moment of their {fault}: are the aims stale?")
    waited = _wait_for_other_sessions_to_end(url)
    recovery = run_cli(env, api_url, log_stem.with_name(f"{log_stem.name}-rerun.log"))
    with open_warehouse(url) as warehouse:
        published, left = fingerprint(warehouse), leftovers(warehouse)
    orphans = left.audit_tables + [f"advisory lock x{left.advisory_locks}"] * (left.advisory_locks > 0)
    hit, faulty_end = faulty
    return Outcome(fault, hit, faulty_end, delay, waited, recovery, published, orphans)


def _faulty_run(
    fault: Fault,
    anchor: str,
    delay: float,
    aims: dict[str, Aim],
    server: PrivatePostgres,
    env: dict[str, str],
    log_path: Path,
) -> tuple[str, str] | None:
    """Run, and fault the run `delay` seconds after `anchor`; the phase the fault hit and how the run ended, or None
    if the fault came too late (the run got past the anchor before it showed, or ended)."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            cli_argv(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        assert process.stdout is not None
        output = RunOutput(process.stdout, log)
        try:
            anchored = output.wait_for(anchor, FAULTY_RUN_TIMEOUT_SECONDS)
            if anchored is None:
                return None
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(anchored + delay - time.time(), 0))
                return None
            faulted = time.time()
            if fault.kind == "kill":
                os.killpg(process.pid, signal.SIGKILL)
            else:
                server.restart_immediately()
            process.wait(timeout=FAULTY_RUN_TIMEOUT_SECONDS)
            output.join()
        finally:
            stop_process_group(process.pid, grace_seconds=0)
    lines = log_path.read_text(errors="replace").splitlines() or [""]
    end = "killed" if fault.kind == "kill" else f"exit {process.returncode}: {lines[-1][:160]}"
    return _phase_hit(output, faulted, aims), end


def _phase_hit(output: RunOutput, faulted: float, aims: dict[str, Aim]) -> str:
    """The phase of the first task whose end had not shown when the fault came; extract, load and the flow's setup
    before them are told apart by the clean run's timing (extract and load stream through one task)."""
    finished = output.finished_before(faulted)
    pending = [task for task in PHASE_TASKS if task not in finished]
    if not pending:
        return "after publish"
    phases = PHASE_TASKS[pending[0]]
    if len(phases) == 1:
        return phases[0]
    began = output.wait_for(FLOW_RUN_BEGAN, 0)
    assert began is not None  # every aim is at or after the flow run's start
    since_began = faulted - began
    if since_began < aims[phases[0]].start:
        return "flow setup"
    return phases[0] if since_began < aims[phases[1]].start else phases[1]


def _wait_for_other_sessions_to_end(url: str) -> float:
    """A killed client's server session lives on until its statement ends (PostgreSQL notices the closed socket
    only when it next reads or writes), holding the partition lock; a re-run before that is refused as busy."""
    started = time.monotonic()
    with open_warehouse(url) as warehouse:
        while time.monotonic() - started < SESSION_END_TIMEOUT_SECONDS:
            [(others,)] = warehouse.fetch_all(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
            if others == 0:
                return time.monotonic() - started
            time.sleep(0.1)
    raise RuntimeError(f"sessions of the faulty run still open after {SESSION_END_TIMEOUT_SECONDS} s")


def _instant(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


def _describe(aims: dict[str, Aim]) -> str:
    return ", ".join(f"{phase} {aims[phase].start:.2f}-{aims[phase].end:.2f}" for phase in PHASES)


def _report_outcome(number: str, outcome: Outcome, tally: Tally) -> None:
    published = "identical" if outcome.published == tally.reference else f"DIFFERENT {outcome.published}"
    orphans = f"orphans {outcome.orphans}" if outcome.orphans else "no orphans"
    _progress(
        f"fault {number}: {outcome.fault.kind} aimed at {outcome.fault.phase}, hit {outcome.hit} "
        f"({outcome.faulty_end}), "
        f"{outcome.delay:.2f} s after its anchor; sessions ended {outcome.waited_seconds:.2f} s later; "
        f"re-run {outcome.recovery.run_seconds:.2f} s: {published}, {orphans}"
    )


def _summarise(tally: Tally, running: int) -> None:
    hits: Counter[tuple[str, FaultKind]] = Counter((outcome.hit, outcome.fault.kind) for outcome in tally.outcomes)
    phases = [*PHASES, *sorted({phase for phase, _ in hits} - set(PHASES))]
    print("faults by phase hit: " + ", ".join(
        f"{phase} {hits[phase, 'kill']}k+{hits[phase, 'restart']}r" for phase in phases
    ))
    longest = max((outcome.waited_seconds for outcome in tally.outcomes), default=0.0)
    print(f"the server sessions of a faulty run ended at most {longest:.2f} s after it (until then a re-run is busy)")
    print(f"flow runs the Prefect server still shows as Running (killed runs, nothing marks them Crashed): {running}")


def _progress(message: str) -> None:
    print(f"  {time.monotonic() - STARTED:6.1f} s  {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
