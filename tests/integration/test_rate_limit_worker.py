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
from tests.support import Receiver

EVENT = "resume.parsed"


async def early_in_a_second() -> None:
    """Until 50 ms into the next calendar second: a claim and a send then share a second."""
    await asyncio.sleep(1.05 - time.time() % 1.0)


async def user_with_limit(store: Store, receiver: Receiver) -> tuple[str, str]:
    """A user whose endpoint takes 5 starts a second: (user id, endpoint id)."""
    user, _, _ = await store.create_user("user", False)
    fields = EndpointFields(url=receiver.url, enabled_events=[EVENT], rate_limit=5)
    endpoint, _ = await store.create_endpoint(user.id, fields)
    return user.id, endpoint.id


async def test_a_delivery_whose_granted_second_passed_is_given_back_unsent(
    store: Store, receiver: Receiver
) -> None:
    sender = sender_for(store.settings)
    worker = Worker(store, sender, store.settings)
    try:
        user_id, _ = await user_with_limit(store, receiver)
        await store.publish(user_id, EVENT, PARSED)
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


async def test_only_rate_limited_deliveries_carry_a_granted_second(
    store: Store, receiver: Receiver
) -> None:
    user_id, limited_id = await user_with_limit(store, receiver)
    free = EndpointFields(url=receiver.url + "?free", enabled_events=[EVENT])
    await store.create_endpoint(user_id, free)
    await store.publish(user_id, EVENT, PARSED)
    await early_in_a_second()
    jobs = await store.claim("w", 10)
    marks = {job.delivery.endpoint_id == limited_id: job.delivery.start_before for job in jobs}
    assert marks == {True: int(time.time()) + 1, False: None}
