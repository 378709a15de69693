"""One behaviour, two databases: the same cases run against every ``Queue`` implementation
(PostgreSQL's and SQLite's), through the interface alone."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from hookline.payload import build_body, delivery_body, dumps
from hookline.store import AttemptRecord, EndpointFields, Status, Store, Trigger, Unsent
from hookline.store.operational import OPERATIONAL_EVENTS, OPERATOR_USER_ID
from hookline.store.queue import NewEvent, Queue, Requeued
from hookline.store.queue_postgres import PostgresQueue
from hookline.store.queue_sqlite import SqliteQueue
from hookline.store.schema import deliveries, delivery_attempts, endpoints, messages
from hookline.timeutil import iso_millis, utcnow
from tests.support import make_settings

DATA = {"resumeId": "r1", "fileName": "a.pdf", "parsedAt": "t", "success": True}
EVENT = "resume.parsed"


async def user_with(store: Store, *endpoints: EndpointFields) -> tuple[str, list[str]]:
    """A user and endpoints with ``fields`` (URL and events defaulted): (user id, their ids)."""
    user, _, _ = await store.create_user("u", False)
    made = []
    for fields in endpoints:
        complete = EndpointFields(
            url=fields.url or f"http://127.0.0.1:9/{len(made)}",
            enabled=fields.enabled,
            enabled_events=fields.enabled_events or [EVENT],
            rate_limit=fields.rate_limit,
            headers=fields.headers,
        )
        endpoint, _ = await store.create_endpoint(user.id, complete)
        made.append(endpoint.id)
    return user.id, made


def new(user_id: str, data: dict[str, object] | None = None) -> NewEvent:
    return NewEvent(user_id, EVENT, dumps(data or DATA))


def lease(now: datetime) -> datetime:
    return now + timedelta(seconds=60)


def outcome(log_id: str, status: Status, retry_at: datetime | None = None) -> AttemptRecord:
    return AttemptRecord(
        log_id=log_id,
        attempt=1,
        started_at=utcnow(),
        duration_ms=3,
        status_code=200 if status is Status.SUCCEEDED else 500,
        error=None if status is Status.SUCCEEDED else "HTTP 500",
        response_excerpt="ok",
        next_status=status,
        next_attempt_at=retry_at,
    )


def test_the_store_picks_the_queue_of_its_database(store: Store) -> None:
    expected = SqliteQueue if store.db.sqlite else PostgresQueue
    assert isinstance(store.queue, expected)
    assert isinstance(store.queue, Queue)


async def test_enqueue_fans_out_to_enabled_subscribed_endpoints(store: Store) -> None:
    user_id, (first, second, off, other) = await user_with(
        store,
        EndpointFields(),
        EndpointFields(),
        EndpointFields(enabled=False),
        EndpointFields(enabled_events=["ats.check_completed"]),
    )
    now = utcnow()
    made = await store.queue.enqueue(new(user_id), now, 4)
    assert len(made.delivery_ids) == 2 and made.unsent is None
    claimed = await store.queue.claim("w", 10, now, lease(now))
    assert {e.id for _, e in claimed if e} == {first, second}
    # The data is stored once, however many endpoints receive it.
    async with store.db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(messages))).scalar() == 1
    assert {d.data_json for d, _ in claimed} == {dumps(DATA)}
    # One event id for the event, one delivery id per endpoint.
    assert len({d.event_id for d, _ in claimed}) == 1
    assert {d.delivery_id for d, _ in claimed} == set(made.delivery_ids)
    assert off and other


async def test_enqueue_says_why_nothing_was_made(store: Store) -> None:
    now = utcnow()
    nobody, _ = await user_with(store)
    assert (await store.queue.enqueue(new(nobody), now, 4)).unsent is Unsent.NO_ENDPOINT
    switched_off, _ = await user_with(store, EndpointFields(enabled=False))
    assert (await store.queue.enqueue(new(switched_off), now, 4)).unsent is Unsent.DISABLED
    elsewhere, _ = await user_with(store, EndpointFields(enabled_events=["tailoring.completed"]))
    result = await store.queue.enqueue(new(elsewhere), now, 4)
    assert result.unsent is Unsent.NOT_SUBSCRIBED and result.delivery_ids == []
    async with store.db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(messages))).scalar() == 0


async def test_claim_leases_each_delivery_to_one_worker_longest_due_first(store: Store) -> None:
    user_id, _ = await user_with(store, EndpointFields())
    for i in range(5):
        await store.queue.enqueue(new(user_id, {**DATA, "n": i}), utcnow(), 4)
    now = utcnow()
    first = await store.queue.claim("w1", 3, now, lease(now))
    second = await store.queue.claim("w2", 10, now, lease(now))
    assert len(first) == 3 and len(second) == 2
    assert not {d.id for d, _ in first} & {d.id for d, _ in second}
    assert await store.queue.claim("w3", 10, now, lease(now)) == []


async def test_concurrent_claimers_never_share_a_delivery(store: Store) -> None:
    user_id, _ = await user_with(store, EndpointFields())
    for i in range(60):
        await store.queue.enqueue(new(user_id, {**DATA, "n": i}), utcnow(), 4)
    others = [Store(store.settings) for _ in range(3)]
    try:
        now = utcnow()
        results = await asyncio.gather(
            *(
                s.queue.claim(f"w{i}-{round_}", 7, now, lease(now))
                for round_ in range(3)
                for i, s in enumerate([store, *others])
            )
        )
        ids = [d.id for batch in results for d, _ in batch]
        assert len(ids) == len(set(ids)) == 60
    finally:
        for other in others:
            await other.close()


async def test_record_moves_only_what_the_worker_holds(store: Store) -> None:
    user_id, [endpoint_id] = await user_with(store, EndpointFields())
    for _ in range(3):
        await store.queue.enqueue(new(user_id), utcnow(), 4)
    now = utcnow()
    ok, retry, lost = (d.id for d, _ in await store.queue.claim("w1", 3, now, lease(now)))
    later = now + timedelta(seconds=30)
    moved = await store.queue.record(
        "w2", [outcome(ok, Status.SUCCEEDED)], utcnow()
    )  # not w2's to move
    assert moved == []
    moved = await store.queue.record(
        "w1",
        [outcome(ok, Status.SUCCEEDED), outcome(retry, Status.PENDING, retry_at=later)],
        utcnow(),
    )
    assert sorted(moved) == sorted([ok, retry])
    async with store.db.read() as conn:
        rows = {
            r.id: r
            for r in await conn.execute(
                select(deliveries.c.id, deliveries.c.status, deliveries.c.next_attempt_at)
            )
        }
        attempts = (
            await conn.execute(select(func.count()).select_from(delivery_attempts))
        ).scalar()
    assert rows[ok].status == "succeeded" and rows[retry].status == "pending"
    assert rows[retry].next_attempt_at == later and rows[lost].status == "in_flight"
    assert attempts == 3  # w2's request was made too: its attempt is logged
    counters, open_now = await store.stats(user_id, endpoint_id)
    assert counters[EVENT].successful == 1 and open_now == 2
    assert await store.queue.next_due() == later
    assert await store.queue.claim("w3", 10, utcnow(), lease(utcnow())) == []


async def test_release_and_reclaim_put_deliveries_back(store: Store) -> None:
    user_id, _ = await user_with(store, EndpointFields())
    for _ in range(2):
        await store.queue.enqueue(new(user_id), utcnow(), 4)
    now = utcnow()
    given_back, expired = (d.id for d, _ in await store.queue.claim("w1", 2, now, lease(now)))
    assert await store.queue.release("w2", [given_back], utcnow()) == 0  # not w2's
    assert await store.queue.release("w1", [given_back], utcnow()) == 1
    async with store.db.write() as conn:
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.id == expired)
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )
    assert await store.queue.reclaim_expired(utcnow()) == 1
    again = await store.queue.claim("w2", 10, utcnow(), lease(utcnow()))
    assert {d.id for d, _ in again} == {given_back, expired}
    # The old owner's late outcome changes nothing.
    assert await store.queue.record("w1", [outcome(expired, Status.FAILED)], utcnow()) == []


async def test_a_retry_builds_the_same_body(store: Store) -> None:
    user_id, _ = await user_with(store, EndpointFields())
    await store.queue.enqueue(new(user_id), utcnow(), 4)
    now = utcnow()
    [(first, _)] = await store.queue.claim("w1", 1, now, lease(now))
    await store.queue.record("w1", [outcome(first.id, Status.PENDING, retry_at=now)], utcnow())
    [(second, _)] = await store.queue.claim("w1", 1, utcnow(), lease(utcnow()))

    def body(d: object) -> bytes:
        return delivery_body(
            d.body,  # type: ignore[attr-defined]
            event=d.event,  # type: ignore[attr-defined]
            delivery_id=d.delivery_id,  # type: ignore[attr-defined]
            published_at=d.published_at,  # type: ignore[attr-defined]
            user_id=d.user_id,  # type: ignore[attr-defined]
            data_json=d.data_json,  # type: ignore[attr-defined]
        )

    assert body(first) == body(second)
    assert body(first) == build_body(EVENT, first.delivery_id, first.published_at, user_id, DATA)


async def _finish(store: Store, user_id: str, status: Status) -> str:
    """One delivery of ``user_id``, attempted once and finished as ``status``; its id."""
    await store.queue.enqueue(new(user_id), utcnow(), 1)
    [(delivery, _)] = await store.queue.claim("w1", 1, utcnow(), lease(utcnow()))
    assert await store.queue.record("w1", [outcome(delivery.id, status)], utcnow())
    return delivery.id


async def test_requeue_sends_a_finished_delivery_once_more_as_manual(store: Store) -> None:
    user_id, [endpoint_id] = await user_with(store, EndpointFields())
    failed = await _finish(store, user_id, Status.FAILED)
    counters, _ = await store.stats(user_id)
    assert counters[EVENT].failed == 1

    now = utcnow()
    assert await store.queue.requeue(user_id, failed, now, Trigger.MANUAL) is Requeued.REQUEUED
    # Out of the counters while it is open again; due now.
    counters, open_now = await store.stats(user_id, endpoint_id)
    assert (counters[EVENT].failed, counters[EVENT].attempts_sum, open_now) == (0, 0, 1)
    assert await store.queue.next_due() == now
    again = await store.queue.requeue(user_id, failed, now, Trigger.MANUAL)
    assert again is Requeued.NOT_FINISHED

    [(delivery, _)] = await store.queue.claim("w2", 5, utcnow(), lease(utcnow()))
    assert delivery.id == failed and delivery.trigger is Trigger.MANUAL
    assert (delivery.attempts, delivery.max_attempts) == (1, 2)  # one more attempt
    record = AttemptRecord(
        log_id=failed,
        attempt=2,
        started_at=utcnow(),
        duration_ms=4,
        status_code=200,
        error=None,
        response_excerpt="ok",
        next_status=Status.SUCCEEDED,
        trigger=delivery.trigger,
        request_headers='{"webhook-id":"x"}',
    )
    assert await store.queue.record("w2", [record], utcnow()) == [failed]
    # Counted once, as successful, with both attempts.
    counters, open_now = await store.stats(user_id)
    assert (counters[EVENT].successful, counters[EVENT].failed, open_now) == (1, 0, 0)
    assert counters[EVENT].attempts_sum == 2
    detail = await store.log_detail(user_id, failed)
    assert [(a.attempt, a.trigger) for a in detail.attempts] == [
        (1, Trigger.SCHEDULED),
        (2, Trigger.MANUAL),
    ]
    assert detail.attempts[1].request_headers == '{"webhook-id":"x"}'
    assert detail.log.status is Status.SUCCEEDED
    # The next attempt of the delivery is scheduled again, should there be one.
    assert await store.queue.requeue(user_id, failed, utcnow(), Trigger.MANUAL) is (
        Requeued.REQUEUED
    )
    [(delivery, _)] = await store.queue.claim("w3", 5, utcnow(), lease(utcnow()))
    assert delivery.trigger is Trigger.MANUAL and delivery.max_attempts == 3


async def test_requeue_refuses_what_it_cannot_resend(store: Store) -> None:
    user_id, [endpoint_id] = await user_with(store, EndpointFields())
    other, _ = await user_with(store, EndpointFields())
    now = utcnow()
    await store.queue.enqueue(new(user_id), now, 4)
    async with store.db.read() as conn:
        [pending] = (await conn.execute(select(deliveries.c.id))).scalars()
    assert await store.queue.requeue(user_id, pending, now, Trigger.MANUAL) is (
        Requeued.NOT_FINISHED
    )
    [(in_flight, _)] = await store.queue.claim("w", 1, now, lease(now))
    assert await store.queue.requeue(user_id, in_flight.id, now, Trigger.MANUAL) is (
        Requeued.NOT_FINISHED
    )
    await store.queue.record("w", [outcome(in_flight.id, Status.SUCCEEDED)], utcnow())
    # Another user's delivery, or none at all.
    assert await store.queue.requeue(other, pending, now, Trigger.MANUAL) is Requeued.NOT_FOUND
    assert await store.queue.requeue(user_id, "nope", now, Trigger.MANUAL) is Requeued.NOT_FOUND
    await store.update_endpoint(user_id, endpoint_id, EndpointFields(enabled=False))
    assert await store.queue.requeue(user_id, pending, now, Trigger.MANUAL) is (
        Requeued.ENDPOINT_DISABLED
    )
    await store.delete_endpoint(user_id, endpoint_id)
    assert await store.queue.requeue(user_id, pending, now, Trigger.MANUAL) is (
        Requeued.ENDPOINT_DELETED
    )
    # Nothing refused touched the counters.
    counters, _ = await store.stats(user_id)
    assert counters[EVENT].successful == 1


async def test_a_deleted_endpoint_leaves_the_claim_without_one(store: Store) -> None:
    user_id, [endpoint_id] = await user_with(store, EndpointFields())
    await store.queue.enqueue(new(user_id), utcnow(), 4)
    await store.delete_endpoint(user_id, endpoint_id)
    [(delivery, endpoint)] = await store.queue.claim("w", 5, utcnow(), lease(utcnow()))
    assert endpoint is None and delivery.endpoint_id is None


async def test_the_rate_limit_holds_across_claimers(store: Store) -> None:
    user_id, [endpoint_id] = await user_with(store, EndpointFields(rate_limit=3))
    for _ in range(8):
        await store.queue.enqueue(new(user_id), utcnow() - timedelta(seconds=1), 4)
    other = Store(store.settings)
    try:
        now = utcnow().replace(microsecond=100_000)
        started = [
            *(await store.queue.claim("w1", 2, now, lease(now))),
            *(await other.queue.claim("w2", 10, now, lease(now))),
        ]
        assert len(started) == 3  # this second's share, across both claimers
        next_second = now.replace(microsecond=0) + timedelta(seconds=1)
        assert await store.queue.next_due() == next_second
        assert await store.queue.claim("w1", 10, now, lease(now)) == []
        assert len(await other.queue.claim("w2", 10, next_second, lease(next_second))) == 3
    finally:
        await other.close()
    assert endpoint_id


async def test_a_late_claim_counts_in_the_newest_second(store: Store) -> None:
    """A claim whose time was taken before it got the lock (a write queue, a stall) may arrive
    after another claimer has started the next second. It must count against that second,
    not start its own old second afresh: each such reset let another full share out."""
    user_id, [endpoint_id] = await user_with(store, EndpointFields(rate_limit=2))
    for _ in range(8):
        await store.queue.enqueue(new(user_id), utcnow() - timedelta(seconds=5), 4)
    second = utcnow().replace(microsecond=100_000)
    earlier = second - timedelta(seconds=1)
    started = [
        *(await store.queue.claim("w1", 2, second, lease(second))),
        *(await store.queue.claim("w2", 10, earlier, lease(earlier))),  # late
        *(await store.queue.claim("w1", 10, second, lease(second))),
    ]
    assert len(started) == 2, len(started)  # the newest second's share, and no more
    assert endpoint_id


async def test_purge_takes_old_finished_rows_their_attempts_and_orphan_messages(
    store: Store,
) -> None:
    user_id, [endpoint_id, _] = await user_with(store, EndpointFields(), EndpointFields())
    finished = []
    for _ in range(2):  # two events, each to both endpoints
        await store.queue.enqueue(new(user_id), utcnow(), 4)
        now = utcnow()
        claimed = [d for d, _ in await store.queue.claim("w", 10, now, lease(now))]
        await store.queue.record("w", [outcome(d.id, Status.SUCCEEDED) for d in claimed], now)
        finished.append(claimed)
    await store.queue.enqueue(new(user_id), utcnow(), 4)  # still pending: never purged
    old = [d.id for d in finished[0]]
    async with store.db.write() as conn:
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_([*old, *(await _pending_ids(conn))]))
            .values(created_at=utcnow() - timedelta(days=100))
        )
    assert await store.queue.purge(utcnow() - timedelta(days=90), 1000) == 2
    async with store.db.read() as conn:
        left = (await conn.execute(select(func.count()).select_from(deliveries))).scalar()
        kept = (await conn.execute(select(func.count()).select_from(messages))).scalar()
        attempts = (
            await conn.execute(select(func.count()).select_from(delivery_attempts))
        ).scalar()
    assert left == 4 and kept == 2 and attempts == 2
    counters, open_now = await store.stats(user_id, endpoint_id)
    assert counters[EVENT].successful == 1 and open_now == 1


async def _pending_ids(conn: object) -> list[str]:
    rows = await conn.execute(  # type: ignore[attr-defined]
        select(deliveries.c.id).where(deliveries.c.status == Status.PENDING.value)
    )
    return [row.id for row in rows]


async def test_listen_hears_an_enqueue_by_another_process(store: Store) -> None:
    user_id, _ = await user_with(store, EndpointFields())
    heard = asyncio.Event()
    stop = await store.queue.listen(heard.set)
    assert stop is not None
    other = Store(store.settings)
    try:
        await asyncio.sleep(0.1)
        heard.clear()
        await other.queue.enqueue(new(user_id), utcnow(), 4)
        await asyncio.wait_for(heard.wait(), timeout=5)
    finally:
        await stop()
        await other.close()


# --- failure streaks, automatic disabling and notices -------------------------------------


async def rules_store(database_url: str, **overrides: object) -> Store:
    return Store(make_settings(database_url, **overrides))


async def streak_of(store: Store, endpoint_id: str) -> dict[str, object]:
    async with store.db.read() as conn:
        row = (
            await conn.execute(
                select(
                    endpoints.c.enabled,
                    endpoints.c.disabled_at,
                    endpoints.c.disabled_reason,
                    endpoints.c.failure_streak,
                    endpoints.c.failing_since,
                    endpoints.c.failing_notified_at,
                ).where(endpoints.c.id == endpoint_id)
            )
        ).one()
    return dict(row._mapping)


async def finish_batch(
    store: Store,
    user_id: str,
    statuses: list[Status],
    gone: bool = False,
    *more: tuple[str, list[Status]],
) -> datetime:
    """Enqueue, claim and record one batch of deliveries to the user's one endpoint, with
    these final statuses in this order (``more``: further (user id, statuses) pairs in the
    same batch); returns the recording time. ``gone``: each failure was a 410."""
    plan = [(user_id, statuses), *more]
    for user, wanted in plan:
        for i in range(len(wanted)):
            await store.queue.enqueue(new(user, {**DATA, "n": i}), utcnow(), 4)
    now = utcnow()
    claimed = await store.queue.claim("w", 1000, now, lease(now))
    # Anything else due (notices to operational webhooks) is delivered first.
    records = [
        outcome(d.id, Status.SUCCEEDED) for d, _ in claimed if d.user_id not in {u for u, _ in plan}
    ]
    for user, wanted in plan:
        mine = [d for d, _ in claimed if d.user_id == user]
        for delivery, status in zip(mine, wanted, strict=True):
            record = outcome(delivery.id, status)
            if gone and status is Status.FAILED:
                record = dataclasses.replace(record, status_code=410, gone=True)
            records.append(record)
    at = utcnow()
    await store.queue.record("w", records, at)
    return at


async def test_record_keeps_each_endpoints_failure_streak(store: Store) -> None:
    user_id, [endpoint_id] = await user_with(store, EndpointFields())
    other_user, [other] = await user_with(store, EndpointFields())
    first = await finish_batch(
        store, user_id, [Status.FAILED], False, (other_user, [Status.FAILED])
    )
    state = await streak_of(store, endpoint_id)
    assert state["failure_streak"] == 1 and state["failing_since"] == first
    assert (await streak_of(store, other))["failure_streak"] == 1
    await finish_batch(store, user_id, [Status.FAILED])
    state = await streak_of(store, endpoint_id)
    assert state["failure_streak"] == 2 and state["failing_since"] == first
    assert (await streak_of(store, other))["failure_streak"] == 1
    # In one batch, a success resets the streak; only the failures after it count.
    last = await finish_batch(store, user_id, [Status.FAILED, Status.SUCCEEDED])
    state = await streak_of(store, endpoint_id)
    assert state["failure_streak"] == 0 and state["failing_since"] is None
    assert state["failing_notified_at"] is None
    await finish_batch(store, user_id, [Status.SUCCEEDED, Status.FAILED, Status.FAILED])
    state = await streak_of(store, endpoint_id)
    assert state["failure_streak"] == 2 and state["failing_since"] > last
    assert state["enabled"] and state["disabled_reason"] is None  # no rule crossed


async def test_a_410_disables_its_endpoint_at_once(store: Store) -> None:
    user_id, [endpoint_id] = await user_with(store, EndpointFields())
    at = await finish_batch(store, user_id, [Status.FAILED], gone=True)
    state = await streak_of(store, endpoint_id)
    assert not state["enabled"] and state["disabled_reason"] == "gone"
    assert state["disabled_at"] == at and state["failure_streak"] == 1
    # Nothing more is enqueued for it.
    assert (await store.queue.enqueue(new(user_id), utcnow(), 4)).unsent is Unsent.DISABLED


async def test_the_failing_rule_disables_after_n_failures(database_url: str) -> None:
    store = await rules_store(database_url, auto_disable_after_failures=3)
    try:
        user_id, [endpoint_id] = await user_with(store, EndpointFields())
        await finish_batch(store, user_id, [Status.FAILED, Status.FAILED])
        assert (await streak_of(store, endpoint_id))["disabled_reason"] is None
        await finish_batch(store, user_id, [Status.SUCCEEDED, Status.FAILED, Status.FAILED])
        assert (await streak_of(store, endpoint_id))["disabled_reason"] is None  # reset
        at = await finish_batch(store, user_id, [Status.FAILED])
        state = await streak_of(store, endpoint_id)
        assert not state["enabled"] and state["disabled_reason"] == "failing"
        assert state["disabled_at"] == at and state["failure_streak"] == 3
    finally:
        await store.close()


async def test_the_failing_rule_disables_after_failing_for_long_enough(database_url: str) -> None:
    store = await rules_store(database_url, auto_disable_after_s=3600.0)
    try:
        user_id, [endpoint_id] = await user_with(store, EndpointFields())
        await finish_batch(store, user_id, [Status.FAILED])
        assert (await streak_of(store, endpoint_id))["enabled"]
        async with store.db.write() as conn:  # the streak began more than an hour ago
            await conn.execute(
                update(endpoints)
                .where(endpoints.c.id == endpoint_id)
                .values(failing_since=utcnow() - timedelta(seconds=3601))
            )
        await finish_batch(store, user_id, [Status.FAILED])
        state = await streak_of(store, endpoint_id)
        assert not state["enabled"] and state["disabled_reason"] == "failing"
    finally:
        await store.close()


async def operator_deliveries(store: Store) -> list[tuple[str, str, dict[str, object]]]:
    """(endpoint id, event, data) of every notice delivery, oldest first."""
    async with store.db.read() as conn:
        rows = await conn.execute(
            select(deliveries.c.endpoint_id, deliveries.c.event, messages.c.data)
            .join(messages, messages.c.id == deliveries.c.message_id)
            .where(deliveries.c.user_id == OPERATOR_USER_ID)
            .order_by(deliveries.c.created_at, deliveries.c.id)
        )
        found = []
        for row in rows:
            data = json.loads(row.data)
            # Written as payload.dumps writes it, whichever database built it.
            assert bytes(row.data) == dumps(data), row.data
            assert list(data) == NOTICE_KEYS[row.event], row.data
            found.append((row.endpoint_id, row.event, data))
        return found


COMMON_KEYS = ["endpointId", "userId", "url"]
NOTICE_KEYS = {
    "endpoint.disabled": [*COMMON_KEYS, "reason", "disabledAt", "failureStreak", "failingSince"],
    "endpoint.failing": [*COMMON_KEYS, "failureStreak", "failingSince"],
    "endpoint.recovered": [*COMMON_KEYS, "recoveredAt", "recoveredBy"],
}


async def test_notices_are_enqueued_with_the_change_and_failing_once_a_day(
    database_url: str,
) -> None:
    store = await rules_store(database_url, failing_notice_after=2, auto_disable_after_s=0)
    try:
        hook, _ = await store.create_operational_webhook(
            EndpointFields(url="http://127.0.0.1:9/ops", enabled_events=list(OPERATIONAL_EVENTS))
        )
        user_id, [endpoint_id] = await user_with(store, EndpointFields())
        await finish_batch(store, user_id, [Status.FAILED])
        assert await operator_deliveries(store) == []
        await finish_batch(store, user_id, [Status.FAILED, Status.FAILED])
        [(to, event, data)] = await operator_deliveries(store)
        assert (to, event) == (hook.id, "endpoint.failing")
        assert data["endpointId"] == endpoint_id and data["userId"] == user_id
        assert data["failureStreak"] == 3 and str(data["failingSince"]).endswith("Z")
        # A success ends the noticed streak: recovered.
        await finish_batch(store, user_id, [Status.SUCCEEDED])
        events = [event for _, event, _ in await operator_deliveries(store)]
        assert events == ["endpoint.failing", "endpoint.recovered"]
        assert (await operator_deliveries(store))[-1][2]["recoveredBy"] == "delivery"
        # The streak crosses the threshold again the same day: no second endpoint.failing,
        # and so no endpoint.recovered when it ends either.
        await finish_batch(store, user_id, [Status.FAILED, Status.FAILED, Status.FAILED])
        await finish_batch(store, user_id, [Status.SUCCEEDED])
        assert len(await operator_deliveries(store)) == 2
        # A 410 disables: endpoint.disabled, never to the endpoint it is about.
        await finish_batch(store, user_id, [Status.FAILED], gone=True)
        to, event, data = (await operator_deliveries(store))[-1]
        assert (to, event, data["reason"]) == (hook.id, "endpoint.disabled", "gone")
        state = await streak_of(store, endpoint_id)
        assert data["disabledAt"] == iso_millis(state["disabled_at"])  # type: ignore[arg-type]
        assert data["failingSince"] == iso_millis(state["failing_since"])  # type: ignore[arg-type]
        assert data["failureStreak"] == 1 and data["url"] == "http://127.0.0.1:9/0"
    finally:
        await store.close()
