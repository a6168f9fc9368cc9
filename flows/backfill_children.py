"""Backfill children: one `run-pipeline` flow run per batch of days, launched idempotently and throttled.

Each child runs its batch in per-partition publish mode: a day that passes is published whatever its
neighbours do, so batching changes how many processes start, not which days get published.

Throttle: a global concurrency limit per target deployment, held for each child's whole lifetime
(acquire → create the run → wait until it is final → release). Unlike a deployment concurrency limit,
whose queued runs are re-checked only every ~30 s, a freed slot is taken at once; it also bounds several
backfills of the same pipeline together and shows in the UI (Concurrency → Global). The slot is a lease
renewed every few minutes by the holder, so a crashed backfill frees its slots when the lease expires.
The environment's work pool limit caps all runs of the environment on top of it.

A small backfill runs its one batch in its own process instead (`flows.backfill_in_process`): the same child run,
created by `launch_child` in a state no worker picks up, under the same slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.concurrency.asyncio import concurrency
from prefect.deployments import arun_deployment
from prefect.exceptions import ObjectNotFound
from prefect.flow_runs import wait_for_flow_run

from shipshape.backfill_plan import Batch
from shipshape.errors import ConfigurationError
from shipshape.names import BACKFILL_TAG, PIPELINE_FLOW, backfill_limit
from shipshape.settings import environment_name


@dataclass(frozen=True)
class Fanout:
    """Where a backfill's children go and how many may live at once."""

    deployment: str  # the pipeline's deployment in this environment, e.g. shop_orders-dev
    max_concurrent: int

    @property
    def limit_name(self) -> str:
        return backfill_limit(self.deployment)

    async def prepare(self) -> int:
        """Fail before launching anything when the deployment is missing; (re)size the concurrency limit.

        Returns how many children can really run at once: `max_concurrent`, or fewer when the deployment's work
        queue allows fewer (the dev pipelines' queue runs two), so that batches are sized for the slots there are.
        """
        async with get_client() as client:
            try:
                deployment = await client.read_deployment_by_name(f"{PIPELINE_FLOW}/{self.deployment}")
            except ObjectNotFound:
                raise ConfigurationError(
                    f"deployment {PIPELINE_FLOW}/{self.deployment} does not exist on this Prefect API: a backfill "
                    f"runs the pipeline's own deployment; register it with `make deploy ENV={environment_name()}`. "
                    "Nothing was run"
                ) from None
            await client.upsert_global_concurrency_limit_by_name(self.limit_name, self.max_concurrent)
            queue = await client.read_work_queue_by_name(deployment.work_queue_name or "default",
                                                         work_pool_name=deployment.work_pool_name)
        return min(self.max_concurrent, queue.concurrency_limit or self.max_concurrent)

    async def run_all(
        self,
        batches: list[Batch],
        start: Callable[[str, Batch], Awaitable[FlowRun]],
        on_end: Callable[[Batch, FlowRun], Awaitable[None]],
    ) -> list[FlowRun]:
        """Every child, awaited concurrently; returns them final, in batch order, calling `on_end` as each one
        ends. A failed child stops no other. `start` makes a batch's run go (`launch_child`: scheduled for a
        worker; `run_in_this_process`: run here) while it holds one slot, until the run is final."""
        # Waiters queue here rather than polling the limit: the server answers a full limit with a Retry-After
        # of up to 30 s, the local queue hands a freed slot over at once.
        local = asyncio.Semaphore(self.max_concurrent)
        return await asyncio.gather(*(self._run_one(batch, local, start, on_end) for batch in batches))

    async def _run_one(
        self,
        batch: Batch,
        local: asyncio.Semaphore,
        start: Callable[[str, Batch], Awaitable[FlowRun]],
        on_end: Callable[[Batch, FlowRun], Awaitable[None]],
    ) -> FlowRun:
        async with local, concurrency(self.limit_name, occupy=1, strict=True):
            flow_run = await start(self.deployment, batch)
            final = flow_run if _is_final(flow_run) else await wait_for_flow_run(flow_run.id, timeout=None)
        await on_end(batch, final)
        return final


def _is_final(flow_run: FlowRun) -> bool:
    """A run that `start` ran to its end here needs no event subscription to wait for it."""
    return flow_run.state is not None and flow_run.state.is_final()


def idempotency_key(deployment: str, batch: Batch) -> str:
    """Same key while the batch's days and their ledger are unchanged (a double submit or a parent retry reuses
    the run); a new one once a run has written the ledger of any of them, so a later backfill runs them again."""
    return f"backfill:{deployment}:{batch.key}:{batch.marker}"


ChildCreator = Callable[[str, dict[str, Any], str, list[str]], Awaitable[FlowRun]]
"""Creates (or finds, by idempotency key) a run of deployment `name` with parameters, key and tags, linked to
the calling flow run."""


async def scheduled_for_a_worker(name: str, parameters: dict[str, Any], key: str, tags: list[str]) -> FlowRun:
    """The run as `run_deployment` makes it: Scheduled now, for a worker of the deployment's pool."""
    return await arun_deployment(name, parameters=parameters, idempotency_key=key, timeout=0, tags=tags,
                                 as_subflow=True)


async def launch_child(deployment: str, batch: Batch, create: ChildCreator = scheduled_for_a_worker) -> FlowRun:
    """Create (or find, by idempotency key) the batch's run, linked to the calling flow run.

    An existing run that ended without completing and without changing the ledger (e.g. Crashed before its
    first write) would be returned forever under the same key: a new run is created after it instead.
    """
    key = idempotency_key(deployment, batch)
    while True:
        flow_run = await create(
            f"{PIPELINE_FLOW}/{deployment}",
            {"start_date": batch.first, "end_date": batch.last, "publish_mode": "per_partition"},
            key,
            [BACKFILL_TAG, f"partition:{batch.key}"],
        )
        state = flow_run.state
        if state is None or not state.is_final() or state.is_completed():
            return flow_run
        key = f"{idempotency_key(deployment, batch)}:after-{flow_run.id}"
