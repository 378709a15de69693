"""`hookline worker` as a real process: SIGKILL loses nothing, SIGTERM stops cleanly, two
workers on one PostgreSQL never send the same attempt at the same time, and a new delivery
wakes a worker in another process."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import select

from hookline.config import Settings
from hookline.store import EndpointFields, Store
from hookline.store.schema import deliveries, delivery_attempts
from tests.integration.test_publish import EXAMPLE_DATA
from tests.support import Receiver, hookline_env, make_settings, wait_until

pytestmark = pytest.mark.slow


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    fast = {
        "HOOKLINE_POLL_INTERVAL_S": "0.1",
        "HOOKLINE_TIMEOUT_S": "2",
        "HOOKLINE_LEASE_S": "3",
        "HOOKLINE_RETRY_DELAYS_S": "0.1,0.1,0.1",
        "HOOKLINE_WORKER_CONCURRENCY": "16",
        "HOOKLINE_WORKER_BATCH_SIZE": "16",
    }
    return hookline_env(settings.database_url, **{**fast, **extra})


@asynccontextmanager
async def worker_process(env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from hookline.cli import main; main()",
        "worker",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def enqueue(store: Store, receiver: Receiver, count: int) -> list[str]:
    user, _, _ = await store.create_user("user", False)
    await store.save_config(user.id, receiver.url, True, None, default_events=list(EXAMPLE_DATA))
    ids = []
    for _ in range(count):
        result = await store.publish(user.id, "resume.parsed", EXAMPLE_DATA["resume.parsed"])
        ids += result.delivery_ids
    return ids


async def statuses(store: Store) -> Counter[str]:
    async with store.db.read() as conn:
        rows = await conn.execute(select(deliveries.c.status))
        return Counter(row.status for row in rows)


async def test_sigkill_mid_batch_loses_nothing(database_url: str, receiver: Receiver) -> None:
    settings = make_settings(database_url)
    store = Store(settings)
    try:
        sent = await enqueue(store, receiver, 120)
        receiver.default_status = 200
        receiver.script = [{"status": 200, "delay_s": 0.2}] * 400  # slow: the kill lands mid-batch
        async with worker_process(worker_env(settings)) as proc:
            await receiver.wait_for(20, timeout_s=30)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        interrupted = await statuses(store)
        assert interrupted["in_flight"] > 0, interrupted  # it really died holding leases
        receiver.script = []
        async with worker_process(worker_env(settings)) as proc:

            async def all_done() -> bool:
                return (await statuses(store))["succeeded"] == len(sent)

            await wait_until(all_done, timeout_s=60, every_s=0.2)
        got = {r.headers["X-Webhook-Delivery-Id"] for r in receiver.received}
        assert got == set(sent)  # every accepted event arrived at least once
    finally:
        await store.close()


async def test_sigterm_finishes_or_releases_in_flight(
    database_url: str, receiver: Receiver
) -> None:
    settings = make_settings(database_url)
    store = Store(settings)
    try:
        await enqueue(store, receiver, 40)
        receiver.script = [{"status": 200, "delay_s": 1.5}] * 40
        env = worker_env(settings, HOOKLINE_SHUTDOWN_GRACE_S="0.5")
        async with worker_process(env) as proc:
            await receiver.wait_for(5, timeout_s=30)
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), timeout=15)
        assert code == 0
        after = await statuses(store)
        assert after["in_flight"] == 0, after  # nothing left leased to a dead worker
        assert after["pending"] + after["succeeded"] == 40
    finally:
        await store.close()


async def test_two_workers_never_overlap_on_postgres(
    receiver: Receiver, postgres_database_url: str
) -> None:
    settings = make_settings(postgres_database_url)
    store = Store(settings)
    try:
        sent = await enqueue(store, receiver, 300)
        receiver.script = [{"status": 200, "delay_s": 0.02}] * 300
        async with worker_process(worker_env(settings)), worker_process(worker_env(settings)):

            async def all_done() -> bool:
                return (await statuses(store))["succeeded"] == len(sent)

            await wait_until(all_done, timeout_s=60, every_s=0.2)
        per_delivery = Counter(r.headers["X-Webhook-Delivery-Id"] for r in receiver.received)
        assert set(per_delivery) == set(sent)
        assert max(per_delivery.values()) == 1  # no attempt ran twice
        async with store.db.read() as conn:
            owners = await conn.execute(select(deliveries.c.id))
            assert len(owners.all()) == 300
    finally:
        await store.close()


async def test_a_new_delivery_wakes_a_separate_worker(
    receiver: Receiver, database_url: str
) -> None:
    """A worker in another process starts a new delivery at once, not after its (30 s) poll:
    LISTEN/NOTIFY on PostgreSQL, the file watcher on SQLite."""
    settings = make_settings(database_url)
    store = Store(settings)
    try:
        user, _, _ = await store.create_user("user", False)
        await store.save_config(
            user.id, receiver.url, True, None, default_events=list(EXAMPLE_DATA)
        )
        async with worker_process(worker_env(settings, HOOKLINE_POLL_INTERVAL_S="30")):
            # The worker listens before its first claim, so once this arrives it is listening.
            await store.publish(user.id, "resume.parsed", EXAMPLE_DATA["resume.parsed"])
            await receiver.wait_for(1, timeout_s=60)
            await asyncio.sleep(1)  # now it sleeps on its 30 s poll
            for _ in range(3):
                started = asyncio.get_running_loop().time()
                before = len(receiver.received)
                await store.publish(user.id, "resume.parsed", EXAMPLE_DATA["resume.parsed"])
                await receiver.wait_for(before + 1, timeout_s=10)
                assert asyncio.get_running_loop().time() - started < 2.0
                await asyncio.sleep(0.5)
    finally:
        await store.close()


async def test_a_rate_limit_holds_across_two_worker_processes(
    receiver: Receiver, database_url: str
) -> None:
    """An endpoint limited to 4 deliveries a second gets no more from two workers together:
    20 deliveries spread over five calendar seconds."""
    settings = make_settings(database_url)
    store = Store(settings)
    limit, count = 4, 20
    try:
        user, _, _ = await store.create_user("user", False)
        await store.create_endpoint(
            user.id,
            EndpointFields(url=receiver.url, enabled_events=["resume.parsed"], rate_limit=limit),
        )
        for _ in range(count):
            await store.publish(user.id, "resume.parsed", EXAMPLE_DATA["resume.parsed"])
        started = await statuses(store)
        assert started["pending"] == count
        async with worker_process(worker_env(settings)), worker_process(worker_env(settings)):
            await receiver.wait_for(count, timeout_s=30)

            async def all_recorded() -> bool:
                return (await statuses(store))["succeeded"] == count

            await wait_until(all_recorded, timeout_s=30, every_s=0.1)
        # The limit counts starts, so measure the starts the workers recorded (each attempt's
        # time just before its request), not arrivals: a receiver in this process that is
        # descheduled for a second on a busy machine would bunch three seconds' arrivals.
        async with store.db.read() as conn:
            rows = await conn.execute(select(delivery_attempts.c.created_at))
            starts = sorted(row.created_at.timestamp() for row in rows)
        assert len(starts) == count
        # Four per calendar second: 20 span five seconds, so the first and the last are more
        # than 3 s apart (each worker limiting itself alone would take half as long), and no
        # 1-second stretch holds more than two seconds' shares.
        assert starts[-1] - starts[0] > count / limit - 2 - 0.05
        busiest = max(
            sum(1 for other in starts if first <= other < first + 1.0) for first in starts
        )
        assert busiest <= 2 * limit
    finally:
        await store.close()
