"""Recoveries inside the worker: take recovery tasks (any worker process may hold one, under a
lease; ``LOOK_EVERY_POLLS`` says when a worker looks) and walk each, requeueing its failed
deliveries oldest first at no more than ``HOOKLINE_RECOVERY_RATE`` per second. The store does
each step in one transaction (``hookline.store.tasks``); this module only paces the steps,
renews leases while it waits, and gives its tasks back when the worker stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math

from hookline.config import Settings
from hookline.store import Store, TaskRow

log = logging.getLogger("hookline.recovery")

#: Tasks one worker walks at a time; others wait, queued, for a worker with room.
MAX_TASKS = 4
#: Steps per second at most: above this rate each step requeues a small batch.
STEPS_PER_S = 20.0
#: Unprompted, a worker looks for a task every this many poll intervals. A task queued or
#: given back by this process prompts it at once, and on PostgreSQL so does one from any
#: process (NOTIFY). Prompted, it looks at most once per poll interval or ``PROMPTED_GAP_S``,
#: whichever is shorter (NOTIFYs come with every new delivery: hundreds a second).
LOOK_EVERY_POLLS = 5
PROMPTED_GAP_S = 1.0


def pace(rate: float) -> tuple[int, float]:
    """(deliveries per step, seconds between steps) that requeue ``rate`` per second."""
    batch = max(1, math.ceil(rate / STEPS_PER_S))
    return batch, batch / rate


class Recovery:
    """Takes and walks recovery tasks for one worker until stopped."""

    def __init__(self, store: Store, settings: Settings, worker: str, wake: asyncio.Event) -> None:
        self.store = store
        self.settings = settings
        self.worker = worker
        self.wake = wake  #: the worker's: set when deliveries were requeued
        self._stopping = asyncio.Event()
        self._prompted = asyncio.Event()  # a task may be waiting: look soon
        self._walking: dict[str, asyncio.Task[None]] = {}

    def stop(self) -> None:
        """Stop taking tasks; run() then gives back those under way and returns."""
        self._stopping.set()
        self._prompted.set()

    def prompt(self) -> None:
        """A task may be waiting (one was queued, or given back, or a NOTIFY came): look
        within a poll interval or ``PROMPTED_GAP_S``, whichever is shorter."""
        self._prompted.set()

    async def run(self) -> None:
        """Take tasks as they come until stop(): when prompted, or every few poll intervals."""
        loop = asyncio.get_running_loop()
        poll_s = self.settings.poll_interval_s
        gap_s = min(poll_s, PROMPTED_GAP_S)
        unwatch = self.store.watch_tasks(self.prompt)
        next_look = loop.time()
        try:
            while not self._stopping.is_set():
                if len(self._walking) < MAX_TASKS:
                    await self._sleep(next_look - loop.time())  # prompts come in bursts
                    if self._stopping.is_set():
                        break
                    self._prompted.clear()
                    next_look = loop.time() + gap_s
                    try:
                        task = await self.store.take_task(self.worker)
                    except Exception:
                        log.exception("taking a task failed; trying again later")
                        task = None
                    # (One we are walking already, whose lease ran out during a stall, goes on
                    # in that walk.)
                    if task is not None and task.id not in self._walking:
                        walk = asyncio.create_task(self._walk(task), name=f"recovery-{task.id}")
                        self._walking[task.id] = walk
                        walk.add_done_callback(self._forget)
                        next_look = loop.time()
                        continue  # there may be more waiting
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._prompted.wait(), poll_s * LOOK_EVERY_POLLS)
        finally:
            unwatch()
            if self._walking:
                await asyncio.gather(*self._walking.values(), return_exceptions=True)

    def _forget(self, walk: asyncio.Task[None]) -> None:
        self._walking = {key: other for key, other in self._walking.items() if other is not walk}
        self._prompted.set()  # room for another

    async def _walk(self, task: TaskRow) -> None:
        """Step through one task at the pace, until it ends, the lease is lost, or we stop."""
        batch, interval_s = pace(self.settings.recovery_rate)
        loop = asyncio.get_running_loop()
        log.info(
            "recovery %s of endpoint %s taken: %d of %d deliveries done",
            task.id,
            task.endpoint_id,
            task.done,
            task.total,
        )
        next_step = loop.time()
        while True:
            if not await self._wait_until(task.id, next_step):
                break
            next_step = loop.time() + interval_s  # from this step's start: never a burst
            try:
                step = await self.store.recover_step(task.id, self.worker, batch)
            except Exception:
                # The lease runs out if this lasts; then any worker carries on from the cursor.
                log.exception("a step of recovery %s failed; trying again later", task.id)
                next_step = loop.time() + self.settings.poll_interval_s
                continue
            if step.requeued:
                self.wake.set()
            if step.task is None:
                log.warning("recovery %s: another worker took it over", task.id)
                return
            if step.task.final:
                log.info(
                    "recovery %s %s: %d of %d deliveries%s",
                    task.id,
                    step.task.status.value,
                    step.task.done,
                    step.task.total,
                    f" ({step.task.error})" if step.task.error else "",
                )
                return
        # Stopping: give it back, so another worker goes on without waiting for the lease.
        try:
            if await self.store.release_task(task.id, self.worker):
                log.info("recovery %s given back", task.id)
        except Exception:
            log.exception("giving back recovery %s failed; its lease will run out", task.id)

    async def _wait_until(self, task_id: str, moment: float) -> bool:
        """Sleep until loop time ``moment``, renewing the lease on long waits. False when
        stopping, or when the lease was lost."""
        loop = asyncio.get_running_loop()
        renew_every_s = self.settings.lease_s / 3
        while (left := moment - loop.time()) > 0:
            await self._sleep(min(left, renew_every_s))
            if self._stopping.is_set():
                return False
            if moment - loop.time() > 0:
                try:
                    if not await self.store.renew_task(task_id, self.worker):
                        return False
                except Exception:
                    log.exception("renewing the lease of recovery %s failed", task_id)
        return not self._stopping.is_set()

    async def _sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or until stop()."""
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
