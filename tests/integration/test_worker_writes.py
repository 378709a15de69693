"""How a worker writes outcomes, on both databases: a trickle's outcomes wait a little to share
one write, a backlog's go as soon as a batch's worth has gathered. Outcomes not yet written
hold their slots, so a backlog paced by the trickle's wait would drain at slots / wait."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from hookline.delivery import worker as worker_module
from hookline.delivery.worker import Worker
from hookline.store import Store
from hookline.targets import sender_for
from tests.integration.test_delivery import PARSED
from tests.integration.test_hardening import none_open
from tests.integration.test_quiet_worker import counting
from tests.support import Receiver, make_settings, wait_until

EVENT = "resume.parsed"


Running = tuple[Store, Worker, str]


@contextlib.asynccontextmanager
async def running(
    database_url: str, receiver: Receiver, concurrency: int
) -> AsyncIterator[Running]:
    """A store with one user's endpoint at the receiver, and a worker of ``concurrency`` slots
    running on it: (store, worker, user id)."""
    settings = make_settings(database_url, worker_concurrency=concurrency)
    store = Store(settings)
    user, _, _ = await store.create_user("user", False)
    await store.save_config(user.id, receiver.url, True, None, [EVENT])
    sender = sender_for(settings)
    worker = Worker(store, sender, settings)
    task = asyncio.create_task(worker.run())
    try:
        yield store, worker, user.id
    finally:
        worker.stop()
        await task
        await sender.close()
        await store.close()


async def _publish(store: Store, user_id: str, n: int) -> None:
    for _ in range(n):
        await store.publish(user_id, EVENT, PARSED)


async def test_a_backlog_is_not_paced_by_the_trickles_wait(
    database_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A wait long enough to see: paced by it, 48 deliveries through 8 slots would take at
    # least 5 waits (15 s). Each answer takes 50 ms, longer than a write, so that outcomes
    # arrive between writes rather than during one (those a write finds go in the next).
    monkeypatch.setattr(worker_module, "RECORD_GAP_S", 3.0)
    receiver.script = [{"status": 200, "delay_s": 0.05}] * 48
    async with running(database_url, receiver, concurrency=8) as (store, worker, user_id):
        assert worker.batch == 2  # a quarter of its slots
        await _publish(store, user_id, 48)
        worker.wake.set()
        await wait_until(lambda: none_open(store), timeout_s=6)
    assert len(receiver.received) == 48


async def test_a_trickles_outcomes_share_a_write(
    database_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "RECORD_GAP_S", 1.0)
    async with running(database_url, receiver, concurrency=64) as (store, worker, user_id):
        assert worker.batch == 16
        # Warm up: the first write (no wait before it, and the slowest) is done.
        await _publish(store, user_id, 1)
        worker.wake.set()
        await wait_until(lambda: none_open(store), timeout_s=5)
        writes = counting(store, "record")
        # One at a time, each sent before the next is published: never two waiting at once.
        for n in range(2, 7):
            await _publish(store, user_id, 1)
            worker.wake.set()
            await receiver.wait_for(n)
        await wait_until(lambda: none_open(store), timeout_s=5)
    # All five wait out the second after the warm-up's write, and share one.
    assert writes["record"] <= 2, writes
