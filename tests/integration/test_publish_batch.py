"""POST /api/events/batch: many events in one request, a result for each in order; a bad
event refuses only itself; idempotency keys per event; the size limits. On SQLite and
PostgreSQL, against a real receiver."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import func, select

from hookline.store.schema import deliveries, messages
from tests.support import Api, Receiver, make_settings, running_api

PARSED = {"resumeId": "r1", "fileName": "a.pdf", "parsedAt": "t", "success": True}
FAILED = {"resumeId": "r1", "error": "e", "failedAt": "t"}


async def _count(api: Api, table: Any = deliveries) -> int:
    async with api.store.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def _setup(api: Api, receiver: Receiver) -> tuple[str, str, dict[str, str]]:
    """A user with a webhook for every event, one with none, and an admin's header."""
    user, auth = await api.user()
    saved = await api.client.post("/api/webhooks/config", headers=auth, json={"url": receiver.url})
    assert saved.status_code == 200, saved.text
    lonely, _ = await api.user("lonely")
    _, admin = await api.user("host-app", admin=True)
    return user.id, lonely.id, admin


async def test_each_event_gets_its_result_and_a_bad_one_refuses_only_itself(
    api: Api, receiver: Receiver
) -> None:
    user_id, lonely_id, admin = await _setup(api, receiver)
    events: list[Any] = [
        {"userId": user_id, "event": "resume.parsed", "data": PARSED},
        {"userId": user_id, "event": "resume.exploded", "data": {}},
        {"userId": lonely_id, "event": "resume.parsed", "data": PARSED},
        {"userId": user_id, "event": "ats.check_completed", "data": {"resumeId": "r"}},
        "not an object",
        {"userId": user_id, "event": "resume.parsed", "data": PARSED, "extra": 1},
        {"userId": user_id, "event": "resume.parsed", "data": {**PARSED, "n": 2**60}},
        {"userId": user_id, "event": "tailoring.failed", "data": FAILED},
        {"event": "resume.parsed", "data": PARSED},
    ]
    answer = await api.client.post("/api/events/batch", headers=admin, json={"events": events})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["success"] is True
    results = body["results"]
    assert [r["status"] for r in results] == [202, 422, 202, 422, 422, 422, 422, 202, 422]
    assert all(set(r) == {"status", "deliveryIds", "reason", "error", "fields"} for r in results)
    first, unknown, lonely, missing, not_object, extra, too_big, last, no_user = results
    assert len(first["deliveryIds"]) == 1 and first["reason"] is None and first["error"] is None
    assert lonely == {
        "status": 202,
        "deliveryIds": [],
        "reason": "User has no webhook configuration",
        "error": None,
        "fields": None,
    }
    assert "event" in unknown["fields"] and unknown["deliveryIds"] == []
    assert {"data.matchedKeywords", "data.completedAt"} <= set(missing["fields"])
    assert missing["error"].startswith("data is missing fields")
    assert not_object["error"] == "An event must be a JSON object"
    assert extra["fields"] == {"extra": "is not a known field"}
    assert set(too_big["fields"]) == {"data"} and "2^53" in too_big["error"].replace("**", "^")
    assert "userId" in no_user["fields"]
    assert len(last["deliveryIds"]) == 1

    assert await _count(api) == 2 and await _count(api, messages) == 2
    arrived = await receiver.wait_for(2)
    assert sorted(r.headers["X-Webhook-Delivery-Id"] for r in arrived) == sorted(
        first["deliveryIds"] + last["deliveryIds"]
    )


async def test_data_over_the_limit_is_413_for_that_event(database_url: str) -> None:
    settings = make_settings(database_url, max_event_data_bytes=1000)
    async with running_api(settings, run_worker=False) as api:
        user, auth = await api.user()
        await api.client.post(
            "/api/webhooks/config", headers=auth, json={"url": "http://127.0.0.1:9/hook"}
        )
        _, admin = await api.user("host-app", admin=True)
        big = {**PARSED, "text": "x" * 1000}
        events = [
            {"userId": user.id, "event": "resume.parsed", "data": big},
            {"userId": user.id, "event": "resume.parsed", "data": PARSED},
        ]
        answer = await api.client.post("/api/events/batch", headers=admin, json={"events": events})
        big_result, ok = answer.json()["results"]
        assert big_result["status"] == 413 and "the limit is 1000 bytes" in big_result["error"]
        assert ok["status"] == 202 and len(ok["deliveryIds"]) == 1
        assert await _count(api) == 1


async def test_idempotency_keys_per_event(api: Api, receiver: Receiver) -> None:
    user_id, _, admin = await _setup(api, receiver)
    events = [
        {"userId": user_id, "event": "resume.parsed", "data": PARSED, "idempotencyKey": "a"},
        {"userId": user_id, "event": "tailoring.failed", "data": FAILED, "idempotencyKey": "b"},
        {"userId": user_id, "event": "tailoring.failed", "data": FAILED},
        # The same key twice in one batch: the second answers as the first.
        {"userId": user_id, "event": "resume.parsed", "data": PARSED, "idempotencyKey": "a"},
    ]
    first = await api.client.post("/api/events/batch", headers=admin, json={"events": events})
    results = first.json()["results"]
    assert [r["status"] for r in results] == [202, 202, 202, 202]
    assert results[3] == results[0]
    assert await _count(api) == 3

    # The whole batch retried: keyed events answer as before; the unkeyed one is new.
    again = await api.client.post("/api/events/batch", headers=admin, json={"events": events})
    retried = again.json()["results"]
    assert [retried[0], retried[1], retried[3]] == [results[0], results[1], results[0]]
    assert retried[2]["deliveryIds"] != results[2]["deliveryIds"]
    assert await _count(api) == 4

    # A key reused for another event refuses that event only; a key in the batch is the same
    # key as the Idempotency-Key header of POST /api/events.
    mixed = [
        {
            "userId": user_id,
            "event": "resume.parsed",
            "data": {**PARSED, "n": 1},
            "idempotencyKey": "a",
        },
        {"userId": user_id, "event": "resume.parsed", "data": PARSED, "idempotencyKey": "c"},
        {
            "userId": user_id,
            "event": "resume.parsed",
            "data": {**PARSED, "n": 2},
            "idempotencyKey": "c",
        },
        {"userId": user_id, "event": "resume.parsed", "data": PARSED, "idempotencyKey": ""},
    ]
    answer = await api.client.post("/api/events/batch", headers=admin, json={"events": mixed})
    conflict, fresh, inner_conflict, empty_key = answer.json()["results"]
    assert conflict["status"] == 409 and conflict["error"] == (
        "Idempotency key 'a' was used in the last 24 hours for a different request"
    )
    assert fresh["status"] == 202 and len(fresh["deliveryIds"]) == 1
    assert inner_conflict["status"] == 409 and inner_conflict["deliveryIds"] == []
    assert empty_key["status"] == 422 and "idempotencyKey" in empty_key["fields"]
    single = await api.client.post(
        "/api/events",
        headers={**admin, "Idempotency-Key": "c"},
        json={"userId": user_id, "event": "resume.parsed", "data": PARSED},
    )
    assert single.json()["deliveryIds"] == fresh["deliveryIds"]
    assert await _count(api) == 5
    await receiver.wait_for(5)


async def test_concurrent_batches_with_the_same_keys_create_one_set(
    database_url: str, receiver: Receiver
) -> None:
    """Ten copies of one keyed batch at once, through two app instances on one database (and
    in two key orders, so that they contend on the same rows): each event once."""
    settings = make_settings(database_url, poll_interval_s=0.05)
    async with running_api(settings) as one, running_api(settings, run_worker=False) as two:
        user_id, _, admin = await _setup(one, receiver)
        events = [
            {
                "userId": user_id,
                "event": "resume.parsed",
                "data": {**PARSED, "n": n},
                "idempotencyKey": f"key-{n}",
            }
            for n in range(20)
        ]
        bodies = [{"events": events}, {"events": events[::-1]}]
        answers = await asyncio.gather(
            *(
                api.client.post("/api/events/batch", headers=admin, json=bodies[n % 2])
                for n in range(10)
                for api in (one, two)
            )
        )
        assert {a.status_code for a in answers} == {200}
        by_key: dict[str, set[tuple[str, ...]]] = {}
        for n, answer in enumerate(answers):
            sent = bodies[(n // 2) % 2]["events"]
            for event, result in zip(sent, answer.json()["results"], strict=True):
                assert result["status"] == 202, result
                by_key.setdefault(event["idempotencyKey"], set()).add(tuple(result["deliveryIds"]))
        assert all(len(ids) == 1 for ids in by_key.values()), by_key
        assert await _count(one) == 20
        await receiver.wait_for(20)


async def test_the_limits_of_a_batch(database_url: str) -> None:
    settings = make_settings(database_url, max_batch_body_bytes=400_000)
    async with running_api(settings, run_worker=False) as api:
        user, auth = await api.user()
        await api.client.post(
            "/api/webhooks/config", headers=auth, json={"url": "http://127.0.0.1:9/hook"}
        )
        _, admin = await api.user("host-app", admin=True)
        one = {"userId": user.id, "event": "tailoring.failed", "data": FAILED}

        full = await api.client.post(
            "/api/events/batch", headers=admin, json={"events": [one] * 1000}
        )
        assert full.status_code == 200, full.text
        results = full.json()["results"]
        assert len(results) == 1000 and {r["status"] for r in results} == {202}
        assert len({r["deliveryIds"][0] for r in results}) == 1000
        assert await _count(api) == 1000

        over = await api.client.post(
            "/api/events/batch", headers=admin, json={"events": [one] * 1001}
        )
        assert over.status_code == 422, over.text
        assert "events" in over.json()["fields"]
        heavy = [{**one, "data": {**FAILED, "text": "x" * 100_000}}] * 5
        too_large = await api.client.post(
            "/api/events/batch", headers=admin, json={"events": heavy}
        )
        assert too_large.status_code == 413
        assert too_large.json()["error"] == (
            "Request body is larger than the limit of 400000 bytes"
        )
        assert await _count(api) == 1000

        empty = await api.client.post("/api/events/batch", headers=admin, json={"events": []})
        assert (empty.status_code, empty.json()) == (200, {"success": True, "results": []})
        for body, status in ((b"[1]", 400), (b"{", 400), (b'{"events": 5}', 422), (b"{}", 422)):
            refused = await api.client.post(
                "/api/events/batch",
                headers={**admin, "Content-Type": "application/json"},
                content=body,
            )
            assert refused.status_code == status, (body, refused.text)
            assert refused.json()["success"] is False
        as_text = await api.client.post(
            "/api/events/batch",
            headers={**admin, "Content-Type": "text/plain"},
            content=b'{"events": []}',
        )
        assert as_text.status_code == 415
        assert (
            await api.client.post("/api/events/batch", headers=auth, json={"events": [one]})
        ).status_code == 403
        assert (await api.client.post("/api/events/batch", json={"events": []})).status_code == 401
        assert await _count(api) == 1000


async def test_concurrent_single_publishes_share_statements_yet_answer_each_alone(
    api: Api, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POST /api/events requests that arrive together are stored together (group commit):
    each still gets its own deliveries or reason, and every one is delivered once."""
    two, two_auth = await api.user("two-endpoints")
    for path in ("/a", "/b"):
        created = await api.client.post(
            "/api/webhooks/endpoints",
            headers=two_auth,
            json={"url": receiver.url + path, "enabledEvents": ["resume.parsed"]},
        )
        assert created.status_code == 201, created.text
    off, off_auth = await api.user("switched-off")
    await api.client.post(
        "/api/webhooks/config",
        headers=off_auth,
        json={"url": receiver.url, "enabled": False},
    )
    nobody, _ = await api.user("nobody")
    _, admin = await api.user("host-app", admin=True)
    sizes: list[int] = []
    enqueue_many = api.store.queue.enqueue_many

    async def counted(events: Any, now: Any, max_attempts: int) -> Any:
        sizes.append(len(events))
        return await enqueue_many(events, now, max_attempts)

    monkeypatch.setattr(api.store.queue, "enqueue_many", counted)
    users = [two.id, off.id, nobody.id] * 20
    answers = await asyncio.gather(
        *(
            api.client.post(
                "/api/events",
                headers=admin,
                json={"userId": user_id, "event": "resume.parsed", "data": {**PARSED, "n": n}},
            )
            for n, user_id in enumerate(users)
        )
    )
    assert {a.status_code for a in answers} == {202}
    by_user: dict[str, list[Any]] = {}
    for user_id, answer in zip(users, answers, strict=True):
        by_user.setdefault(user_id, []).append(answer.json())
    assert all(len(a["deliveryIds"]) == 2 for a in by_user[two.id])
    assert {a["reason"] for a in by_user[off.id]} == {"Webhook is disabled"}
    assert {a["reason"] for a in by_user[nobody.id]} == {"User has no webhook configuration"}
    made = [d for a in by_user[two.id] for d in a["deliveryIds"]]
    assert len(set(made)) == 40 and await _count(api) == 40
    assert sum(sizes) == 60 and max(sizes) > 1, sizes
    arrived = await receiver.wait_for(40)
    await asyncio.sleep(0.3)
    assert sorted(r.headers["X-Webhook-Delivery-Id"] for r in receiver.received) == sorted(made)
    assert len(arrived) == 40


async def test_the_fast_single_publish_answers_as_the_route_does(
    api: Api, receiver: Receiver
) -> None:
    """POST /api/events with exactly ``application/json`` is served by the fast path
    (hookline.api.front_door); with a charset parameter, by the FastAPI route. Both answer
    the same bytes and headers, keys and conflicts included; whatever the fast path declines
    (bad token, user token, bad event) gets the route's own error."""
    user_id, _, admin = await _setup(api, receiver)
    _, user_auth = await api.user("just-a-user")
    body = {"userId": user_id, "event": "resume.parsed", "data": PARSED}
    answers = {}
    for label, content_type in (
        ("fast", "application/json"),
        ("route", "application/json; charset=utf-8"),
    ):
        headers = {**admin, "Content-Type": content_type}
        sent = [
            await api.client.post("/api/events", headers=headers, content=json.dumps(b))
            for b in (body, {**body, "userId": "nobody"})
        ]
        keyed = {**headers, "Idempotency-Key": f"k-{label}"}
        first = await api.client.post("/api/events", headers=keyed, content=json.dumps(body))
        again = await api.client.post("/api/events", headers=keyed, content=json.dumps(body))
        changed = {**body, "data": {**PARSED, "n": 1}}
        conflict = await api.client.post("/api/events", headers=keyed, content=json.dumps(changed))
        answers[label] = [*sent, first, again, conflict]
        assert again.json() == first.json()

    def normalized(answer: Any, label: str) -> Any:
        sent = answer.json()
        if "deliveryIds" in sent:
            sent["deliveryIds"] = len(sent["deliveryIds"])
        if "error" in sent:
            sent["error"] = sent["error"].replace(f"k-{label}", "k")
        headers = {k: v for k, v in answer.headers.items() if k != "content-length"}
        return answer.status_code, headers, sent

    assert [normalized(a, "fast") for a in answers["fast"]] == [
        normalized(a, "route") for a in answers["route"]
    ]
    assert [a.status_code for a in answers["fast"]] == [202, 202, 202, 202, 409]

    declined = [
        ({"Authorization": "Bearer hl_nope"}, body, 401),
        (user_auth, body, 403),
        (admin, {**body, "event": "resume.exploded"}, 422),
        (admin, {**body, "extra": 1}, 422),
        (admin, {**body, "data": {"resumeId": "r"}}, 422),
        ({**admin, "Idempotency-Key": ""}, body, 422),
    ]
    for headers, sent_body, status in declined:
        refused = await api.client.post("/api/events", headers=headers, json=sent_body)
        assert refused.status_code == status, refused.text
        assert refused.json()["success"] is False
    assert await _count(api) == 4
