"""A recovery survives the death of the worker process walking it: another worker (or the next
one started) takes the task over when its lease runs out and goes on from the cursor, and
every failed delivery is requeued exactly once."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from hookline.store import Store
from hookline.store.schema import deliveries, delivery_attempts, tasks
from hookline.timeutil import utcnow
from tests.e2e.test_worker_process import statuses, worker_env, worker_process
from tests.integration.test_publish import EXAMPLE_DATA
from tests.support import Api, Receiver, make_settings, running_api, wait_until

pytestmark = pytest.mark.slow

COUNT = 12
RATE = "2"  # deliveries a second: the walk takes about six seconds


@asynccontextmanager
async def failed_deliveries(
    database_url: str, receiver: Receiver, workers: int
) -> AsyncIterator[tuple[Api, dict[str, str], str, list[Any]]]:
    """COUNT deliveries that failed every attempt, ``workers`` worker processes running, and
    the API (without a worker of its own): (api, auth, endpoint id, processes)."""
    settings = make_settings(database_url)
    env = worker_env(settings, HOOKLINE_RECOVERY_RATE=RATE)
    async with AsyncExitStack() as stack:
        api = await stack.enter_async_context(running_api(settings, run_worker=False))
        user, auth = await api.user()
        response = await api.client.post(
            "/api/webhooks/endpoints", headers=auth, json={"url": receiver.url}
        )
        endpoint_id = response.json()["endpoint"]["id"]
        receiver.default_status = 500
        for _ in range(COUNT):
            await api.store.publish(user.id, "resume.parsed", EXAMPLE_DATA["resume.parsed"])
        procs = [await stack.enter_async_context(worker_process(env)) for _ in range(workers)]

        async def all_failed() -> bool:
            return (await statuses(api.store))["failed"] == COUNT

        await wait_until(all_failed, timeout_s=60, every_s=0.2)
        receiver.default_status = 200
        yield api, auth, endpoint_id, procs


async def start(api: Api, auth: dict[str, str], endpoint_id: str) -> str:
    since = utcnow() - timedelta(minutes=5)
    response = await api.client.post(
        f"/api/webhooks/endpoints/{endpoint_id}/recover",
        headers=auth,
        json={"since": since.isoformat()},
    )
    assert response.status_code == 202, response.text
    assert response.json()["total"] == COUNT
    return str(response.json()["id"])


async def task_of(api: Api, auth: dict[str, str], task_id: str) -> dict[str, Any]:
    response = await api.client.get(f"/api/webhooks/tasks/{task_id}", headers=auth)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def holder_after(store: Store, task_id: str, done: int) -> str:
    """The worker holding the task once ``done`` deliveries are requeued."""
    owner = ""

    async def far_enough() -> bool:
        nonlocal owner
        async with store.db.read() as conn:
            row = (
                await conn.execute(
                    select(tasks.c.done, tasks.c.lease_owner).where(tasks.c.id == task_id)
                )
            ).one()
        owner = row.lease_owner or ""
        return bool(row.done >= done and owner)

    await wait_until(far_enough, timeout_s=30, every_s=0.05)
    return owner


async def in_flight_with(store: Store, owner: str) -> set[str]:
    """Delivery ids a (dead) worker held: they may reach the receiver twice (at least once)."""
    async with store.db.read() as conn:
        rows = await conn.execute(
            select(deliveries.c.delivery_id).where(
                deliveries.c.status == "in_flight", deliveries.c.lease_owner == owner
            )
        )
        return {row.delivery_id for row in rows}


async def check_recovered_once(
    api: Api, auth: dict[str, str], task_id: str, receiver: Receiver, seen: int, spared: set[str]
) -> None:
    """The task succeeded with done == total; each delivery was requeued exactly once (one
    recovery attempt, recorded) and reached the receiver once more (twice at most if a dead
    worker held it mid-attempt)."""

    async def ended() -> bool:
        return (await task_of(api, auth, task_id))["status"] in ("succeeded", "failed")

    await wait_until(ended, timeout_s=60, every_s=0.2)
    task = await task_of(api, auth, task_id)
    assert (task["status"], task["done"], task["total"]) == ("succeeded", COUNT, COUNT), task

    async def all_succeeded() -> bool:
        return (await statuses(api.store))["succeeded"] == COUNT

    await wait_until(all_succeeded, timeout_s=60, every_s=0.2)
    async with api.store.db.read() as conn:
        rows = (
            await conn.execute(
                select(
                    deliveries.c.delivery_id,
                    deliveries.c.created_at,
                    deliveries.c.attempts,
                    deliveries.c.max_attempts,
                    delivery_attempts.c.trigger,
                )
                .join(delivery_attempts, delivery_attempts.c.delivery_pk == deliveries.c.id)
                .order_by(deliveries.c.created_at, deliveries.c.id, delivery_attempts.c.attempt)
            )
        ).all()
    triggers: dict[str, list[str]] = {}
    for row in rows:
        triggers.setdefault(row.delivery_id, []).append(row.trigger)
        assert (row.attempts, row.max_attempts) == (5, 5)  # four failed, one recovery
    assert len(triggers) == COUNT
    assert all(found == ["scheduled"] * 4 + ["recovery"] for found in triggers.values())

    hits = Counter(r.headers["webhook-id"] for r in receiver.received[seen:])
    assert set(hits) == set(triggers)
    assert all(n == 1 for delivery_id, n in hits.items() if delivery_id not in spared), hits
    assert all(hits[delivery_id] <= 2 for delivery_id in spared), hits
    # Oldest first (a delivery a dead worker held comes back late, when its lease runs out).
    first_arrivals = list(dict.fromkeys(r.headers["webhook-id"] for r in receiver.received[seen:]))
    oldest_first = [d for d in triggers if d not in spared]
    assert [d for d in first_arrivals if d not in spared] == oldest_first


async def test_killing_the_worker_that_walks_a_recovery_on_postgres(
    receiver: Receiver, postgres_database_url: str
) -> None:
    """Two workers; the one holding the recovery is SIGKILLed mid-way; the other takes it over
    when its lease (3 s) runs out."""
    async with failed_deliveries(postgres_database_url, receiver, workers=2) as (
        api,
        auth,
        endpoint_id,
        procs,
    ):
        seen = len(receiver.received)
        task_id = await start(api, auth, endpoint_id)
        owner = await holder_after(api.store, task_id, 4)
        [holder] = [proc for proc in procs if f"-{proc.pid}-" in owner]
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
        spared = await in_flight_with(api.store, owner)
        stopped_at = (await task_of(api, auth, task_id))["done"]
        assert 4 <= stopped_at < COUNT
        # Only the other worker is alive now: it finishes the walk.
        await check_recovered_once(api, auth, task_id, receiver, seen, spared)


async def test_killing_the_only_worker_then_starting_another(
    receiver: Receiver, database_url: str
) -> None:
    """On both databases: the only worker dies mid-recovery; the next one started finishes it
    from the cursor once the dead one's lease runs out."""
    settings = make_settings(database_url)
    async with failed_deliveries(database_url, receiver, workers=1) as (
        api,
        auth,
        endpoint_id,
        procs,
    ):
        seen = len(receiver.received)
        task_id = await start(api, auth, endpoint_id)
        owner = await holder_after(api.store, task_id, 3)
        procs[0].send_signal(signal.SIGKILL)
        await procs[0].wait()
        spared = await in_flight_with(api.store, owner)
        stopped_at = (await task_of(api, auth, task_id))["done"]
        assert 3 <= stopped_at < COUNT
        async with worker_process(worker_env(settings, HOOKLINE_RECOVERY_RATE=RATE)):
            await check_recovered_once(api, auth, task_id, receiver, seen, spared)


async def test_sigterm_gives_the_recovery_back(receiver: Receiver, database_url: str) -> None:
    """A worker stopped with SIGTERM gives its recovery back, queued, at once; the next worker
    started goes on from the cursor without waiting for a lease to run out."""
    settings = make_settings(database_url)
    async with failed_deliveries(database_url, receiver, workers=1) as (
        api,
        auth,
        endpoint_id,
        procs,
    ):
        seen = len(receiver.received)
        task_id = await start(api, auth, endpoint_id)
        await holder_after(api.store, task_id, 3)
        procs[0].send_signal(signal.SIGTERM)
        assert await procs[0].wait() == 0
        task = await task_of(api, auth, task_id)
        assert task["status"] == "queued" and 3 <= task["done"] < COUNT, task
        async with api.store.db.read() as conn:
            row = (
                await conn.execute(select(tasks.c.lease_owner).where(tasks.c.id == task_id))
            ).one()
        assert row.lease_owner is None
        async with worker_process(worker_env(settings, HOOKLINE_RECOVERY_RATE=RATE)):
            await check_recovered_once(api, auth, task_id, receiver, seen, spared=set())
