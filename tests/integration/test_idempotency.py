"""Idempotency keys on publishing: POST /api/events's Idempotency-Key header and
hookline.publish's idempotency_key. A retry answers the first answer and creates nothing, also
when the retries race each other. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

import hookline
from hookline.store.schema import deliveries, idempotency_keys, messages
from hookline.timeutil import utcnow
from tests.support import Api, Receiver, make_settings, running_api

PARSED = {"resumeId": "r1", "fileName": "a.pdf", "parsedAt": "t", "success": True}


async def _count(api: Api, table: object = deliveries) -> int:
    async with api.store.db.read() as conn:
        query = select(func.count()).select_from(table)  # type: ignore[arg-type]
        return int((await conn.execute(query)).scalar_one())


async def _configured(api: Api, receiver: Receiver) -> tuple[str, dict[str, str]]:
    """A user with a webhook, and an admin's Authorization header."""
    user, auth = await api.user()
    saved = await api.client.post("/api/webhooks/config", headers=auth, json={"url": receiver.url})
    assert saved.status_code == 200, saved.text
    _, admin = await api.user("host-app", admin=True)
    return user.id, admin


async def test_a_retry_with_the_same_key_answers_the_first_answer(
    api: Api, receiver: Receiver
) -> None:
    user_id, admin = await _configured(api, receiver)
    body = {"userId": user_id, "event": "resume.parsed", "data": PARSED}
    headers = {**admin, "Idempotency-Key": "order-42/parsed"}

    first = await api.client.post("/api/events", headers=headers, json=body)
    assert first.status_code == 202, first.text
    assert len(first.json()["deliveryIds"]) == 1
    # The same body sent again, and the same JSON value written with other key order and
    # spacing: the first answer, and nothing new.
    again = await api.client.post("/api/events", headers=headers, json=body)
    reordered = (
        '{"data": {"success": true, "parsedAt": "t", "fileName": "a.pdf", "resumeId": "r1"},'
        f' "event": "resume.parsed", "userId": "{user_id}"}}'
    )
    third = await api.client.post(
        "/api/events",
        headers={**headers, "Content-Type": "application/json"},
        content=reordered,
    )
    for answer in (again, third):
        assert (answer.status_code, answer.json()) == (202, first.json())
    assert await _count(api) == 1 and await _count(api, messages) == 1
    (request,) = await receiver.wait_for(1)
    assert request.headers["X-Webhook-Delivery-Id"] == first.json()["deliveryIds"][0]

    # Without a key, or with another one, the same body is a new event.
    fresh = await api.client.post("/api/events", headers=admin, json=body)
    other = await api.client.post(
        "/api/events", headers={**admin, "Idempotency-Key": "order-43/parsed"}, json=body
    )
    ids = {first.json()["deliveryIds"][0]}
    ids |= set(fresh.json()["deliveryIds"]) | set(other.json()["deliveryIds"])
    assert len(ids) == 3 and await _count(api) == 3


async def test_the_same_key_with_another_body_is_409_and_creates_nothing(
    api: Api, receiver: Receiver
) -> None:
    user_id, admin = await _configured(api, receiver)
    headers = {**admin, "Idempotency-Key": "k1"}
    body = {"userId": user_id, "event": "resume.parsed", "data": PARSED}
    assert (await api.client.post("/api/events", headers=headers, json=body)).status_code == 202
    for changed in (
        {**body, "data": {**PARSED, "resumeId": "r2"}},
        {**body, "userId": "someone-else"},
        {
            **body,
            "event": "resume.parse_failed",
            "data": {"fileName": "a.pdf", "error": "bad", "failedAt": "t"},
        },
    ):
        refused = await api.client.post("/api/events", headers=headers, json=changed)
        assert refused.status_code == 409, refused.text
        assert refused.json() == {
            "success": False,
            "error": "Idempotency key 'k1' was used in the last 24 hours for a different request",
        }
    assert await _count(api) == 1


async def test_an_answer_without_deliveries_is_kept_too(api: Api) -> None:
    """The user has no webhook at first: the retry answers the same reason even after one is
    configured (the event was accepted once, as it was)."""
    user, auth = await api.user()
    _, admin = await api.user("host-app", admin=True)
    headers = {**admin, "Idempotency-Key": "early"}
    body = {"userId": user.id, "event": "resume.parsed", "data": PARSED}
    first = await api.client.post("/api/events", headers=headers, json=body)
    assert first.json() == {
        "success": True,
        "deliveryIds": [],
        "reason": "User has no webhook configuration",
    }
    await api.client.post(
        "/api/webhooks/config", headers=auth, json={"url": "http://127.0.0.1:9/hook"}
    )
    again = await api.client.post("/api/events", headers=headers, json=body)
    assert (again.status_code, again.json()) == (202, first.json())
    assert await _count(api) == 0


async def test_keys_belong_to_their_publisher(api: Api, receiver: Receiver) -> None:
    user_id, admin = await _configured(api, receiver)
    _, other_admin = await api.user("another-service", admin=True)
    body = {"userId": user_id, "event": "resume.parsed", "data": PARSED}
    answers = [
        await api.client.post("/api/events", headers={**auth, "Idempotency-Key": "shared"}, json=b)
        for auth, b in ((admin, body), (other_admin, {**body, "data": {**PARSED, "x": 1}}))
    ]
    assert [a.status_code for a in answers] == [202, 202]
    assert await _count(api) == 2


@pytest.mark.parametrize(
    "key",
    ["", "x" * 256, "tab\there", b"caf\xe9", "line\x7fdel"],
    ids=["empty", "too-long", "control", "non-ascii", "del"],
)
async def test_a_malformed_key_is_422(api: Api, key: str | bytes) -> None:
    _, admin = await api.user("host-app", admin=True)
    body = {"userId": "u", "event": "resume.parsed", "data": PARSED}
    answer = await api.client.post(
        "/api/events", headers={**admin, "Idempotency-Key": key}, json=body
    )
    assert answer.status_code == 422, answer.text
    assert "Idempotency-Key" in answer.json()["fields"]
    longest = await api.client.post(
        "/api/events", headers={**admin, "Idempotency-Key": "~ " + "x" * 253}, json=body
    )
    assert longest.status_code == 202, longest.text


async def test_concurrent_retries_create_one_set_of_deliveries(
    database_url: str, receiver: Receiver
) -> None:
    """Forty requests with one key, at once, through two app instances on the same database
    (as two server processes would): one event, one delivery per endpoint, and every answer
    the same."""
    settings = make_settings(database_url, poll_interval_s=0.05)
    async with running_api(settings) as one, running_api(settings, run_worker=False) as two:
        user, auth = await one.user()
        for url in (receiver.url, receiver.url + "/second"):
            created = await one.client.post(
                "/api/webhooks/endpoints",
                headers=auth,
                json={"url": url, "enabledEvents": ["resume.parsed"]},
            )
            assert created.status_code == 201, created.text
        _, admin = await one.user("host-app", admin=True)
        headers = {**admin, "Idempotency-Key": "burst"}
        body = {"userId": user.id, "event": "resume.parsed", "data": PARSED}
        answers = await asyncio.gather(
            *(
                api.client.post("/api/events", headers=headers, json=body)
                for _ in range(20)
                for api in (one, two)
            )
        )
        assert {a.status_code for a in answers} == {202}
        assert len({tuple(a.json()["deliveryIds"]) for a in answers}) == 1
        assert len(answers[0].json()["deliveryIds"]) == 2
        assert await _count(one) == 2 and await _count(one, messages) == 1
        await receiver.wait_for(2)
        await asyncio.sleep(0.3)
        assert len(receiver.received) == 2


async def test_a_key_is_free_again_after_24_hours_and_purged(api: Api, receiver: Receiver) -> None:
    user_id, admin = await _configured(api, receiver)
    headers = {**admin, "Idempotency-Key": "yesterday"}
    body = {"userId": user_id, "event": "resume.parsed", "data": PARSED}
    first = await api.client.post("/api/events", headers=headers, json=body)
    kept = await api.client.post(
        "/api/events", headers={**admin, "Idempotency-Key": "today"}, json=body
    )
    async with api.store.db.write() as conn:
        await conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.key == "yesterday")
            .values(created_at=utcnow() - timedelta(hours=24, seconds=1))
        )
    # Expired but not purged yet: the key is taken over by the new request.
    changed = {**body, "data": {**PARSED, "resumeId": "r2"}}
    reused = await api.client.post("/api/events", headers=headers, json=changed)
    assert reused.status_code == 202
    assert reused.json()["deliveryIds"] != first.json()["deliveryIds"]
    assert await _count(api) == 3

    async with api.store.db.write() as conn:
        await conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.key == "yesterday")
            .values(created_at=utcnow() - timedelta(hours=25))
        )
    await api.store.purge(timedelta(days=30))
    async with api.store.db.read() as conn:
        left = (await conn.execute(select(idempotency_keys.c.key))).scalars().all()
    assert left == ["today"]
    again = await api.client.post(
        "/api/events", headers={**admin, "Idempotency-Key": "today"}, json=body
    )
    assert again.json() == kept.json()


async def test_python_publish_takes_a_key(database_url: str, receiver: Receiver) -> None:
    settings = make_settings(database_url, poll_interval_s=0.05)
    async with running_api(settings) as api:
        user_id, admin = await _configured(api, receiver)
        engine = api.store.db.writer
        first = await hookline.publish(
            engine, user_id, "resume.parsed", PARSED, idempotency_key="py-1"
        )
        # Inside the host's transaction: rolled back with it, the key is not taken.
        with pytest.raises(RuntimeError):
            async with engine.begin() as conn:
                await hookline.publish(
                    conn, user_id, "resume.parsed", PARSED, idempotency_key="py-2"
                )
                raise RuntimeError("host transaction fails")
        async with engine.begin() as conn:
            second = await hookline.publish(
                conn, user_id, "resume.parsed", PARSED, idempotency_key="py-2"
            )
        again = await hookline.publish(
            engine, user_id, "resume.parsed", PARSED, idempotency_key="py-1"
        )
        assert again == first and second.delivery_ids != first.delivery_ids
        with pytest.raises(hookline.KeyConflict, match="'py-1' was used"):
            await hookline.publish(
                engine, user_id, "resume.parsed", {**PARSED, "n": 2}, idempotency_key="py-1"
            )
        with pytest.raises(ValueError, match="1 to 255 printable ASCII"):
            await hookline.publish(engine, user_id, "resume.parsed", PARSED, idempotency_key="")
        # Python's keys are apart from an admin token's.
        over_http = await api.client.post(
            "/api/events",
            headers={**admin, "Idempotency-Key": "py-1"},
            json={"userId": user_id, "event": "resume.parsed", "data": PARSED},
        )
        assert over_http.json()["deliveryIds"] != first.delivery_ids
        assert await _count(api) == 3
        await receiver.wait_for(3)


async def test_concurrent_publishes_under_many_keys_each_keep_their_own_answer(
    api: Api, receiver: Receiver
) -> None:
    """Keyed publishes arriving together are stored together (one transaction per group):
    ten keys, each sent three times at once, one of the three with another body. Per key:
    one event, every 202 the same deliveries, and 409 for the body that came second."""
    user_id, admin = await _configured(api, receiver)
    sends = []
    for n in range(10):
        same = {"userId": user_id, "event": "resume.parsed", "data": {**PARSED, "n": n}}
        other = {**same, "data": {**PARSED, "n": n, "other": True}}
        sends += [(f"key-{n}", same), (f"key-{n}", other), (f"key-{n}", same)]
    answers = await asyncio.gather(
        *(
            api.client.post("/api/events", headers={**admin, "Idempotency-Key": key}, json=body)
            for key, body in sends
        )
    )
    for n in range(10):
        mine = answers[3 * n : 3 * n + 3]
        accepted = {tuple(a.json()["deliveryIds"]) for a in mine if a.status_code == 202}
        refused = [a for a in mine if a.status_code == 409]
        assert len(accepted) == 1 and len(refused) in (1, 2), [a.text for a in mine]
        assert all(a.status_code in (202, 409) for a in mine)
        # Same-body sends agree with each other: both accepted, or both refused.
        assert (mine[0].status_code == 202) == (mine[2].status_code == 202)
    assert await _count(api) == 10 and await _count(api, messages) == 10
    await receiver.wait_for(10)
