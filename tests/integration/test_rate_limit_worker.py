"""A rate limit holds at the send, not only at the claim, on both databases: a worker held up
past the second a delivery's start was granted in gives it back unsent, so no second gets
more than its share however late a worker runs."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import func, select

from hookline.delivery.worker import Worker
from hookline.store import EndpointFields, Status, Store
from hookline.store.schema import deliveries, delivery_attempts
from hookline.targets import sender_for
from hookline.timeutil import utcnow
from tests.integration.test_delivery import PARSED
from tests.support import Receiver, make_settings


async def early_in_a_second() -> None:
    """Until 50 ms into the next calendar second: a claim and a send then share a second."""
    await asyncio.sleep(1.05 - time.time() % 1.0)


async def test_a_delivery_whose_granted_second_passed_is_given_back_unsent(
    database_url: str, receiver: Receiver
) -> None:
    settings = make_settings(database_url)
    store = Store(settings)
    sender = sender_for(settings)
    worker = Worker(store, sender, settings)
    try:
        user, _, _ = await store.create_user("user", False)
        fields = EndpointFields(url=receiver.url, enabled_events=["resume.parsed"], rate_limit=5)
        await store.create_endpoint(user.id, fields)
        await store.publish(user.id, "resume.parsed", PARSED)
        await early_in_a_second()
        [job] = await store.claim(worker.name, 10)
        assert job.delivery.start_before == int(time.time()) + 1
        # The worker is held up (a stall, a starved process) past that second.
        await asyncio.sleep(job.delivery.start_before - time.time() + 0.05)
        worker.wake.clear()
        await worker._run_job(job)
        assert receiver.received == []
        assert worker.wake.is_set()  # it claims again at once
        async with store.db.read() as conn:
            row = (
                await conn.execute(
                    select(deliveries.c.status, deliveries.c.next_attempt_at, deliveries.c.attempts)
                )
            ).one()
            attempts = (await conn.execute(select(func.count(delivery_attempts.c.id)))).scalar()
        assert row.status == Status.PENDING.value and row.attempts == 0 and attempts == 0
        assert row.next_attempt_at <= utcnow()
        # Claimed again within a second of its own, it is sent.
        await early_in_a_second()
        [again] = await store.claim(worker.name, 10)
        assert again.delivery.id == job.delivery.id
        assert again.delivery.start_before == int(time.time()) + 1
        await worker._run_job(again)
        assert len(receiver.received) == 1
    finally:
        await sender.close()
        await store.close()


async def test_only_rate_limited_deliveries_carry_a_granted_second(
    database_url: str, receiver: Receiver
) -> None:
    settings = make_settings(database_url)
    store = Store(settings)
    try:
        user, _, _ = await store.create_user("user", False)
        limited = EndpointFields(url=receiver.url, enabled_events=["resume.parsed"], rate_limit=5)
        free = EndpointFields(url=receiver.url + "?free", enabled_events=["resume.parsed"])
        limited_id = (await store.create_endpoint(user.id, limited))[0].id
        await store.create_endpoint(user.id, free)
        await store.publish(user.id, "resume.parsed", PARSED)
        await early_in_a_second()
        jobs = await store.claim("w", 10)
        marks = {job.delivery.endpoint_id == limited_id: job.delivery.start_before for job in jobs}
        assert marks == {True: int(time.time()) + 1, False: None}
    finally:
        await store.close()
