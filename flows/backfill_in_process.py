"""A backfill's one batch run in the backfill's own process: the same child run, executed here, not by a worker.

A child on a process worker waits for a poll and pays a process start, imports and Prefect's engine (~3 s)
before its first row; the backfill's process has paid all that already. So when `runs_in_this_process` says
the days end sooner here, the child run is created exactly as `launch_child` creates one (the pipeline's
deployment, its parameters, idempotency key and tags, linked under the backfill) but Pending, a state workers
never pick up (they take Scheduled runs). Because the run belongs to the deployment, the automations matching
runs related to it, `shipshape status`/cost (tags) and the freshness trigger see it like any child.

Whoever claims the run (Pending → `IN_PROCESS`, a transition the server grants once, as it does to the first
worker submitting a run) executes it with Prefect's engine as `python -m prefect.engine` does: in the main
thread, where Prefect enforces a task's `timeout_seconds` with SIGALRM (a worker thread could only stop a step
once a blocking call in it returns), and with an empty contextvars context, so the engine sees no parent flow run
and runs it as the deployment's own run, not as a subflow of the backfill. The backfill's event loop waits
meanwhile, which `runs_in_this_process` bounds (`IN_PROCESS_MAX_SECONDS`). A re-submit that finds the run
claimed or final by key only waits.

No worker knows the run, so nobody else ends it when the backfill's process stops mid-run: a backfill cancelled
from the UI (or stopped with its worker) ends it Cancelled (or Crashed) on its way out. A process that dies at
once (killed, out of memory) cannot, and the run stays Running. The claim names the backfill run, so the next
backfill of the same days that finds the run by key and sees that backfill ended marks it Crashed (firing the
environment's crash alerts) and runs the days in a new one, instead of waiting forever for a run nobody runs.
"""

from __future__ import annotations

import contextvars
from typing import Any
from uuid import UUID

from prefect import Task
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.objects import FlowRun, State
from prefect.client.schemas.responses import SetStateStatus
from prefect.runtime import flow_run as this_flow_run
from prefect.states import Cancelled, Crashed, Pending

from flows.backfill_children import launch_child
from shipshape.backfill_plan import Batch

IN_PROCESS = "InProcess"
"""Name of the Pending state a backfill's process claims a child run with before executing it."""
CLAIMED_BY = "claimed by backfill run "
"""The claim's message: this, then the id of the backfill run whose process executes the child."""


async def run_in_this_process(deployment: str, batch: Batch) -> FlowRun:
    """Create (or find) the batch's child run and, once this process has claimed it, run it here to its end.

    Returns the run as it ended here, or as created or found when this process could not claim it; the caller
    then waits for its final state (a run claimed by another backfill ends in that backfill's process)."""
    flow_run = await launch_child(deployment, batch, pending_for_this_process)
    if await _crashed_if_abandoned(flow_run):
        flow_run = await launch_child(deployment, batch, pending_for_this_process)  # a new run, after the crashed one
    backfill = UUID(str(this_flow_run.id))
    if not await _claimed(flow_run, backfill):
        return flow_run
    contextvars.Context().run(_execute, flow_run.id, backfill)  # blocking, on purpose: see the module's docstring
    async with get_client() as client:
        return await client.read_flow_run(flow_run.id)


async def pending_for_this_process(name: str, parameters: dict[str, Any], key: str, tags: list[str]) -> FlowRun:
    """The run as `run_deployment` makes it (linked to the calling flow run by a placeholder task run), but
    Pending instead of Scheduled, so that no worker starts it."""
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(name)
        link = Task(name=name, fn=_runs_in_its_own_flow_run, version=deployment.version)
        link_run = await link.create_run(parameters=parameters)
        return await client.create_flow_run_from_deployment(
            deployment.id, parameters=parameters, state=Pending(), tags=tags, idempotency_key=key,
            parent_task_run_id=link_run.id,
        )


def _runs_in_its_own_flow_run() -> None:
    """The placeholder task's body, never called: the task run only shows the child under the backfill."""


async def _claimed(flow_run: FlowRun, backfill: UUID) -> bool:
    """Whether this process may execute the run: it is not started yet and the server granted our claim."""
    if flow_run.state is None or not (flow_run.state.is_pending() or flow_run.state.is_scheduled()):
        return False
    claim: State[None] = Pending(name=IN_PROCESS, message=f"{CLAIMED_BY}{backfill}")
    async with get_client() as client:
        return (await client.set_flow_run_state(flow_run.id, claim)).status == SetStateStatus.ACCEPT


async def _crashed_if_abandoned(flow_run: FlowRun) -> bool:
    """Mark the run Crashed when the backfill run that claimed it has ended while it has not: that backfill's
    process died with it. Returns whether it did."""
    if flow_run.state is None or flow_run.state.is_final():
        return False
    async with get_client() as client:
        claimer = await _claimer(client, flow_run)
        if claimer is None or claimer.state is None or not claimer.state.is_final():
            return False
        why = (f"its backfill run {claimer.name} ended {claimer.state.name} while executing it in its own process; "
               "a later backfill runs its days again")
        await client.set_flow_run_state(flow_run.id, Crashed(message=why), force=True)
    return True


async def _claimer(client: PrefectClient, flow_run: FlowRun) -> FlowRun | None:
    """The backfill run named by the run's claim (the server grants one per run), if a backfill claimed it."""
    for state in await client.read_flow_run_states(flow_run.id):
        if state.name == IN_PROCESS and state.message and state.message.startswith(CLAIMED_BY):
            return await client.read_flow_run(UUID(state.message.removeprefix(CLAIMED_BY)))
    return None


def _execute(flow_run_id: UUID, backfill: UUID) -> None:
    """What `python -m prefect.engine <id>` does with a run: load it and run its flow to a final state (the
    engine records failures in the run's state; it raises only on its own crash, or when this process is told to
    stop)."""
    from prefect.flow_engine import load_flow_run, run_flow

    from flows.run_pipeline import run_pipeline  # here: a backfill that fans out does not pay this import

    try:
        run_flow(run_pipeline, flow_run=load_flow_run(flow_run_id), return_type="state")
    except BaseException:
        _end_with_this_process(flow_run_id, backfill)
        raise


def _end_with_this_process(flow_run_id: UUID, backfill: UUID) -> None:
    """The engine stopped mid-run, most often because this process is being stopped (the backfill was cancelled
    from the UI, or its worker shuts down), and it leaves the run as it was. No worker knows the run, so nobody
    else would end it (a cancelled backfill's child would stay Cancelling): Cancelled with the backfill,
    Crashed otherwise."""
    with get_client(sync_client=True) as client:
        if (state := client.read_flow_run(flow_run_id).state) is not None and state.is_final():
            return
        parent = client.read_flow_run(backfill)
        if parent.state is not None and (parent.state.is_cancelling() or parent.state.is_cancelled()):
            end: State[None] = Cancelled(message=f"its backfill run {parent.name} was cancelled")
        else:
            end = Crashed(message=f"its backfill run {parent.name} stopped while executing it in its own process")
        client.set_flow_run_state(flow_run_id, end, force=True)
