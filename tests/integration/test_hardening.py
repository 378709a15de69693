"""Faults that once stopped or bent delivery, on both databases: a receiver's odd answer, an
outcome that cannot be recorded, an inexact timeout, concurrent purges, a disabled webhook."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from hookline.delivery.worker import Worker
from hookline.store import Status, Store
from hookline.store.schema import deliveries, delivery_stats
from hookline.targets import sender_for
from hookline.timeutil import utcnow
from tests.integration.test_delivery import PARSED, finished, publish, setup
from tests.support import (
    FAST_RETRIES,
    Receiver,
    make_settings,
    running_api,
    running_receiver,
    wait_until,
)


async def open_deliveries(store: Store) -> int:
    async with store.db.read() as conn:
        query = select(func.count()).where(
            deliveries.c.status.in_([Status.PENDING.value, Status.IN_FLIGHT.value])
        )
        return int((await conn.execute(query)).scalar_one())


async def test_a_nul_in_a_response_is_stored_safely_and_stalls_nothing(
    database_url: str, receiver: Receiver
) -> None:
    settings = make_settings(database_url, **FAST_RETRIES)
    async with running_api(settings) as api, running_receiver() as other:
        odd_id, odd_auth, _ = await setup(api, receiver)
        receiver.default_status = 200
        receiver.script = [{"status": 200, "body": "ok\x00nul"}] * 2
        odd = (await publish(api, odd_id))["deliveryIds"][0]
        await receiver.wait_for(1)

        user, auth = await api.user("unrelated")
        saved = await api.client.post("/api/webhooks/config", headers=auth, json={"url": other.url})
        assert saved.status_code == 200
        for _ in range(100):
            await publish(api, user.id)
        await other.wait_for(100)
        await wait_until(lambda: none_open(api.store), timeout_s=10)

        detail = await finished(api, odd_auth, odd)
        assert detail["status"] == "succeeded"
        assert detail["attempts"][0]["responseExcerpt"] == "ok\ufffdnul"

        tested = await api.client.post("/api/webhooks/test", headers=odd_auth)
        assert tested.status_code == 200, tested.text
        assert tested.json()["success"] is True


async def none_open(store: Store) -> bool:
    return await open_deliveries(store) == 0


async def test_an_outcome_that_cannot_be_recorded_does_not_stall_the_worker(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(database_url, **FAST_RETRIES)
    store = Store(settings)
    sender = sender_for(settings)
    worker = Worker(store, sender, settings)
    worker.record_retry_delays_s = (0.05, 0.05, 0.05)
    running = None
    try:
        async with running_receiver() as slow, running_receiver() as fast:
            slow.script = [{"status": 200, "delay_s": 0.5}]
            doomed_user, _, _ = await store.create_user("doomed", False)
            user, _, _ = await store.create_user("user", False)
            await store.save_config(doomed_user.id, slow.url, True, None, ["resume.parsed"])
            await store.save_config(user.id, fast.url, True, None, ["resume.parsed"])
            running = asyncio.create_task(worker.run())

            [doomed] = (await store.publish(doomed_user.id, "resume.parsed", PARSED)).delivery_ids
            worker.wake.set()
            await slow.wait_for(1)
            # While its request is in flight the row disappears, so its attempt row cannot
            # be written (a foreign key): this outcome can never be recorded.
            async with store.db.write() as conn:
                await conn.execute(delete(deliveries).where(deliveries.c.delivery_id == doomed))
            await asyncio.sleep(0.8)  # the doomed outcome is back from the receiver by now

            for _ in range(30):
                await store.publish(user.id, "resume.parsed", PARSED)
                worker.wake.set()
            await fast.wait_for(30)
            await wait_until(lambda: none_open(store), timeout_s=10)
            async with store.db.read() as conn:
                succeeded = (
                    await conn.execute(
                        select(func.count()).where(
                            deliveries.c.user_id == user.id,
                            deliveries.c.status == Status.SUCCEEDED.value,
                        )
                    )
                ).scalar_one()
            assert succeeded == 30
            await wait_until(_true_when(lambda: "gave up recording" in caplog.text), timeout_s=5)
            assert doomed in caplog.text
    finally:
        worker.stop()
        if running is not None:
            await running
        await sender.close()
        await store.close()


def _true_when(check: Any) -> Any:
    async def predicate() -> bool:
        return bool(check())

    return predicate


@pytest.mark.slow
async def test_the_delivery_timeout_is_exact(database_url: str, receiver: Receiver) -> None:
    # Above aiohttp's ceil_threshold (5 s), where it used to round the deadline up to the
    # loop's next whole second: a 2xx 0.3 s late was recorded as a success.
    settings = make_settings(database_url, timeout_s=5.5, retry_delays_s=[], poll_interval_s=0.05)
    async with running_api(settings) as api:
        user_id, auth, _ = await setup(api, receiver)
        receiver.script = [{"status": 200, "delay_s": 5.8}] * 3
        ids = [(await publish(api, user_id))["deliveryIds"][0] for _ in range(3)]
        for delivery_id in ids:
            detail = await finished(api, auth, delivery_id)
            assert detail["status"] == "failed"
            [only] = detail["attempts"]
            assert only["error"] == "timeout after 5.5s"
            assert 5400 <= only["durationMs"] <= 5600, only["durationMs"]


async def test_concurrent_purges_keep_the_counters_true(database_url: str) -> None:
    store = Store(make_settings(database_url))
    others = [Store(make_settings(database_url)) for _ in range(3)]
    try:
        user, _, _ = await store.create_user("user", False)
        await store.save_config(user.id, "http://127.0.0.1:9/hook", True, None, ["resume.parsed"])
        for _ in range(300):
            await store.publish(user.id, "resume.parsed", PARSED)
        # Finish them all (a third failed), backdated past retention, through the store's
        # own recording path so the counters are what a worker would have left.
        jobs = await store.claim("w", 1000)
        records = [
            _record(job.delivery.id, Status.FAILED if i % 3 == 0 else Status.SUCCEEDED)
            for i, job in enumerate(jobs)
        ]
        await store.record("w", records)
        async with store.db.write() as conn:
            await conn.execute(update(deliveries).values(created_at=utcnow() - timedelta(days=100)))
        before = await _counters(store)
        assert before == {"successful": 200, "failed": 100}

        purged = await asyncio.gather(
            *(s.purge(timedelta(days=90), batch=50) for s in [store, *others])
        )
        assert sum(purged) == 300
        assert await _counters(store) == {"successful": 0, "failed": 0}
    finally:
        for s in [store, *others]:
            await s.close()


def _record(log_id: str, status: Status) -> Any:
    from hookline.store import AttemptRecord

    return AttemptRecord(
        log_id=log_id,
        attempt=1,
        started_at=utcnow(),
        duration_ms=1,
        status_code=200 if status is Status.SUCCEEDED else 500,
        error=None,
        response_excerpt=None,
        next_status=status,
    )


async def _counters(store: Store) -> dict[str, int]:
    async with store.db.read() as conn:
        row = (
            await conn.execute(
                select(
                    func.coalesce(func.sum(delivery_stats.c.successful), 0),
                    func.coalesce(func.sum(delivery_stats.c.failed), 0),
                )
            )
        ).one()
    return {"successful": int(row[0]), "failed": int(row[1])}


async def test_a_disabled_webhook_gets_no_retries(database_url: str, receiver: Receiver) -> None:
    settings = make_settings(database_url, retry_delays_s=[0.4, 0.4, 0.4], poll_interval_s=0.05)
    async with running_api(settings) as api:
        user_id, auth, _ = await setup(api, receiver)
        receiver.script = [500]
        delivery_id = (await publish(api, user_id))["deliveryIds"][0]
        await receiver.wait_for(1)
        switched = await api.client.post(
            "/api/webhooks/config", headers=auth, json={"enabled": False}
        )
        assert switched.status_code == 200
        detail = await finished(api, auth, delivery_id)
        assert detail["status"] == "failed"
        assert detail["error"] == "webhook is disabled; not sent"
        assert detail["attempts"][-1]["statusCode"] is None
        await asyncio.sleep(1.5)  # well past every retry delay
        assert len(receiver.received) == 1

        # Switched back on, new events flow again; the failed one stays failed.
        await api.client.post("/api/webhooks/config", headers=auth, json={"enabled": True})
        await publish(api, user_id)
        await receiver.wait_for(2)
        assert (await finished(api, auth, delivery_id))["status"] == "failed"
