"""The queue's statements against each database: claim leases due deliveries with their
targets, record moves only deliveries the worker still holds, and the counters follow."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from hookline.store import AttemptRecord, Status, Store
from hookline.store.schema import deliveries, delivery_attempts
from hookline.timeutil import utcnow
from tests.integration.test_publish import EXAMPLE_DATA
from tests.support import make_settings

URL = "http://127.0.0.1:9/hook"


def outcome(log_id: str, status: Status, attempt: int = 1, retry_s: float = 0) -> AttemptRecord:
    now = utcnow()
    return AttemptRecord(
        log_id=log_id,
        attempt=attempt,
        started_at=now,
        duration_ms=7,
        status_code=200 if status is Status.SUCCEEDED else 500,
        error=None if status is Status.SUCCEEDED else "HTTP 500 Internal Server Error",
        response_excerpt="ok",
        next_status=status,
        next_attempt_at=now + timedelta(seconds=retry_s) if status is Status.PENDING else None,
    )


async def test_claim_and_record_follow_the_lease(database_url: str) -> None:
    store = Store(make_settings(database_url))
    try:
        user, _, _ = await store.create_user("user", False)
        gone, _, _ = await store.create_user("gone", False)
        for owner in (user, gone):
            await store.save_config(owner.id, URL, True, None, list(EXAMPLE_DATA))
        for _ in range(3):
            await store.publish(user.id, "resume.parsed", EXAMPLE_DATA["resume.parsed"])
        await store.publish(gone.id, "ats.check_completed", EXAMPLE_DATA["ats.check_completed"])
        await store.delete_config(gone.id)

        claimed = await store.claim("w1", 10)
        assert len(claimed) == 4 and await store.claim("w2", 10) == []  # all leased
        [orphan] = [j for j in claimed if j.delivery.user_id == gone.id]
        assert orphan.url is None and orphan.secrets == []  # the worker fails it for good
        jobs = [j for j in claimed if j is not orphan]
        assert {j.url for j in jobs} == {URL}
        assert all(j.secrets and j.delivery.attempts == 0 for j in jobs)

        ok, retry, stolen = (j.delivery.id for j in jobs)
        # w1's lease on ``stolen`` runs out and w2 takes it over.
        async with store.db.write() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == stolen)
                .values(lease_until=utcnow() - timedelta(seconds=1))
            )
        assert await store.reclaim_expired() == 1
        [again] = await store.claim("w2", 10)
        assert again.delivery.id == stolen

        moved = await store.record(
            "w1",
            [
                outcome(ok, Status.SUCCEEDED),
                outcome(retry, Status.PENDING, retry_s=60),
                outcome(stolen, Status.FAILED),
                outcome(orphan.delivery.id, Status.FAILED),
            ],
        )
        assert sorted(moved) == sorted([ok, retry, orphan.delivery.id])

        async with store.db.read() as conn:
            rows = {
                row.id: row
                for row in await conn.execute(
                    select(deliveries).where(deliveries.c.id.in_([ok, retry, stolen]))
                )
            }
            attempts = (
                await conn.execute(
                    select(delivery_attempts.c.delivery_pk, delivery_attempts.c.status_code).where(
                        delivery_attempts.c.delivery_pk.in_([ok, retry, stolen])
                    )
                )
            ).all()
        assert rows[ok].status == "succeeded" and rows[ok].lease_owner is None
        assert rows[ok].delivered_at is not None and rows[ok].finished_at is not None
        assert rows[ok].last_status_code == 200 and rows[ok].attempts == 1
        assert rows[retry].status == "pending" and rows[retry].finished_at is None
        assert rows[retry].next_attempt_at > utcnow() + timedelta(seconds=50)
        assert rows[retry].last_error == "HTTP 500 Internal Server Error"
        # w1 made the request, so its attempt is logged, but the delivery is w2's now.
        assert rows[stolen].status == "in_flight" and rows[stolen].lease_owner == "w2"
        assert sorted(attempts) == sorted([(ok, 200), (retry, 500), (stolen, 500)])

        counters, pending = await store.stats(user.id)
        assert counters["resume.parsed"].successful == 1
        assert counters["resume.parsed"].failed == 0
        assert counters["resume.parsed"].attempts_sum == 1
        assert pending == 2  # the retry and w2's

        assert await store.record("w2", [outcome(stolen, Status.FAILED, attempt=1)]) == [stolen]
        counters, pending = await store.stats(user.id)
        assert counters["resume.parsed"].failed == 1 and pending == 1
        assert (await store.stats(gone.id))[0]["ats.check_completed"].failed == 1
    finally:
        await store.close()


async def test_a_deleted_endpoint_leaves_a_claimed_job_without_a_target(
    database_url: str,
) -> None:
    store = Store(make_settings(database_url))
    try:
        user, _, _ = await store.create_user("user", False)
        await store.save_config(user.id, URL, True, None, list(EXAMPLE_DATA))
        await store.publish(user.id, "resume.parsed", EXAMPLE_DATA["resume.parsed"])
        async with store.db.write() as conn:  # as if deleted between publish and claim
            await conn.execute(update(deliveries).values(endpoint_id=None))
        [job] = await store.claim("w1", 10)
        assert job.url is None and job.secrets == []
    finally:
        await store.close()
