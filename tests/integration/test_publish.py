"""Publishing events: POST /api/events, the Python publish() outbox, and durability."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

import hookline
from hookline.events import DEFAULT_EVENTS, REQUIRED_FIELDS
from hookline.store.schema import deliveries
from tests.support import Api, Receiver, make_settings, running_api, wait_until

EXAMPLE_DATA = {
    "resume.parsed": {"resumeId": "r", "fileName": "a.pdf", "parsedAt": "t", "success": True},
    "resume.parse_failed": {"fileName": "a.pdf", "error": "bad", "failedAt": "t"},
    "ats.check_completed": {
        "resumeId": "r",
        "score": 85.5,
        "matchedKeywords": 12,
        "missingKeywords": 3,
        "completedAt": "t",
    },
    "ats.check_failed": {"resumeId": "r", "error": "e", "failedAt": "t"},
    "tailoring.completed": {
        "resumeId": "r",
        "jobTitle": "Senior Software Engineer",
        "mode": "PARTIAL",
        "atsScoreImprovement": 15.5,
        "completedAt": "t",
    },
    "tailoring.failed": {"resumeId": "r", "error": "OpenAI API timeout", "failedAt": "t"},
    "operation.cancelled": {"operationType": "tailoring", "operationId": "o", "cancelledAt": "t"},
}


async def count_deliveries(api: Api) -> int:
    async with api.store.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(deliveries))).scalar_one())


async def test_every_guide_event_arrives(api: Api, receiver: Receiver) -> None:
    assert set(EXAMPLE_DATA) == set(DEFAULT_EVENTS)
    user, auth = await api.user()
    await api.client.post("/api/webhooks/config", headers=auth, json={"url": receiver.url})
    _, admin = await api.user("host-app", admin=True)
    for event, data in EXAMPLE_DATA.items():
        response = await api.client.post(
            "/api/events", headers=admin, json={"userId": user.id, "event": event, "data": data}
        )
        assert response.status_code == 202
        body = response.json()
        assert body["success"] is True and len(body["deliveryIds"]) == 1
    received = await receiver.wait_for(7)
    assert sorted(r.headers["X-Webhook-Event"] for r in received) == sorted(DEFAULT_EVENTS)


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (None, "User has no webhook configuration"),
        ({"enabled": False}, "Webhook is disabled"),
        (
            {"enabledEvents": ["ats.check_failed"]},
            "Event resume.parsed is not enabled for this webhook",
        ),
    ],
)
async def test_no_delivery_and_a_reason(
    api: Api, receiver: Receiver, config: dict[str, object] | None, reason: str
) -> None:
    user, auth = await api.user()
    if config is not None:
        await api.client.post(
            "/api/webhooks/config", headers=auth, json={"url": receiver.url, **config}
        )
    _, admin = await api.user("host-app", admin=True)
    response = await api.client.post(
        "/api/events",
        headers=admin,
        json={"userId": user.id, "event": "resume.parsed", "data": EXAMPLE_DATA["resume.parsed"]},
    )
    assert response.status_code == 202
    assert response.json() == {"success": True, "deliveryIds": [], "reason": reason}
    assert await count_deliveries(api) == 0


async def test_unknown_user_is_accepted_without_deliveries(api: Api) -> None:
    _, admin = await api.user("host-app", admin=True)
    response = await api.client.post(
        "/api/events",
        headers=admin,
        json={"userId": "nobody", "event": "resume.parsed", "data": EXAMPLE_DATA["resume.parsed"]},
    )
    assert response.status_code == 202
    assert response.json()["deliveryIds"] == []


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        ({"userId": "u", "event": "resume.exploded", "data": {}}, 422, ["event"]),
        (
            {"userId": "u", "event": "ats.check_completed", "data": {"resumeId": "r", "score": 1}},
            422,
            ["data.matchedKeywords", "data.missingKeywords", "data.completedAt"],
        ),
        ({"userId": "u", "event": "resume.parsed"}, 422, ["data"]),
        ({"userId": "u", "event": "resume.parsed", "data": [1]}, 422, ["data"]),
        ({"event": "resume.parsed", "data": {}}, 422, ["userId"]),
        ({"userId": "", "event": "resume.parsed", "data": {}}, 422, ["userId"]),
        ({"userId": 5, "event": "resume.parsed", "data": {}}, 422, ["userId"]),
    ],
)
async def test_bad_events_are_422_naming_the_problem(
    api: Api, body: dict[str, object], status: int, names: list[str]
) -> None:
    _, admin = await api.user("host-app", admin=True)
    response = await api.client.post("/api/events", headers=admin, json=body)
    assert response.status_code == status, response.text
    assert set(names) <= set(response.json()["fields"])
    assert await count_deliveries(api) == 0


async def test_extra_data_fields_are_allowed(api: Api, receiver: Receiver) -> None:
    user, auth = await api.user()
    await api.client.post("/api/webhooks/config", headers=auth, json={"url": receiver.url})
    _, admin = await api.user("host-app", admin=True)
    data = {**EXAMPLE_DATA["resume.parsed"], "pages": 3, "tags": ["x"]}
    response = await api.client.post(
        "/api/events",
        headers=admin,
        json={"userId": user.id, "event": "resume.parsed", "data": data},
    )
    assert len(response.json()["deliveryIds"]) == 1


async def test_user_tokens_cannot_publish(api: Api) -> None:
    user, auth = await api.user()
    response = await api.client.post(
        "/api/events",
        headers=auth,
        json={"userId": user.id, "event": "resume.parsed", "data": EXAMPLE_DATA["resume.parsed"]},
    )
    assert response.status_code == 403
    assert response.json()["success"] is False
    assert (await api.client.post("/api/events", json={})).status_code == 401


async def test_required_fields_cover_the_guide() -> None:
    assert REQUIRED_FIELDS["tailoring.completed"] == (
        "resumeId",
        "jobTitle",
        "mode",
        "atsScoreImprovement",
        "completedAt",
    )


async def test_python_publish_is_a_transactional_outbox(
    database_url: str, receiver: Receiver
) -> None:
    settings = make_settings(database_url, poll_interval_s=0.05)
    async with running_api(settings) as api:
        user, auth = await api.user()
        await api.client.post("/api/webhooks/config", headers=auth, json={"url": receiver.url})
        engine = api.store.db.writer

        # Rolled back with the host app's own transaction: nothing is queued.
        with pytest.raises(RuntimeError):
            async with engine.begin() as conn:
                result = await hookline.publish(
                    conn, user.id, "resume.parsed", EXAMPLE_DATA["resume.parsed"]
                )
                assert len(result.delivery_ids) == 1
                raise RuntimeError("host transaction fails")
        assert await count_deliveries(api) == 0

        # Committed: delivered.
        async with engine.begin() as conn:
            result = await hookline.publish(
                conn, user.id, "resume.parsed", EXAMPLE_DATA["resume.parsed"]
            )
        (request,) = await receiver.wait_for(1)
        assert request.headers["X-Webhook-Delivery-Id"] == result.delivery_ids[0]

        # An engine is accepted too, and bad events are refused before anything is written.
        await hookline.publish(
            engine, user.id, "operation.cancelled", EXAMPLE_DATA["operation.cancelled"]
        )
        await receiver.wait_for(2)
        with pytest.raises(hookline.EventError):
            await hookline.publish(engine, user.id, "resume.parsed", {})


async def test_publish_many_enqueues_a_batch_in_one_transaction(
    database_url: str, receiver: Receiver
) -> None:
    settings = make_settings(database_url, poll_interval_s=30)  # only a wake-up is prompt
    async with running_api(settings) as api:
        user, auth = await api.user()
        await api.client.post("/api/webhooks/config", headers=auth, json={"url": receiver.url})
        quiet, quiet_auth = await api.user("quiet")
        saved = await api.client.post(
            "/api/webhooks/config",
            headers=quiet_auth,
            json={"url": receiver.url, "enabledEvents": ["ats.check_completed"]},
        )
        assert saved.status_code == 200, saved.text
        engine = api.store.db.writer
        batch = [
            (user.id, "resume.parsed", EXAMPLE_DATA["resume.parsed"]),
            ("nobody", "resume.parsed", EXAMPLE_DATA["resume.parsed"]),
            (quiet.id, "resume.parsed", EXAMPLE_DATA["resume.parsed"]),
            (quiet.id, "ats.check_completed", EXAMPLE_DATA["ats.check_completed"]),
            (user.id, "tailoring.failed", EXAMPLE_DATA["tailoring.failed"]),
        ]

        # A bad event anywhere refuses the whole batch, naming its position.
        with pytest.raises(hookline.EventError) as refused:
            await hookline.publish_many(engine, [*batch, (user.id, "resume.parsed", {})])
        assert str(refused.value).startswith("events[5]: data is missing fields")
        assert "events[5].data.resumeId" in refused.value.fields
        # Rolled back with the host app's transaction: nothing is queued.
        with pytest.raises(RuntimeError):
            async with engine.begin() as conn:
                await hookline.publish_many(conn, batch)
                raise RuntimeError("host transaction fails")
        assert await count_deliveries(api) == 0

        results = await hookline.publish_many(engine, batch)
        assert [r.reason for r in results] == [
            None,
            "User has no webhook configuration",
            "Event resume.parsed is not enabled for this webhook",
            None,
            None,
        ]
        sent = [r.delivery_ids[0] for r in results if r.delivery_ids]
        assert len(sent) == 3 and all(len(r.delivery_ids) <= 1 for r in results)
        arrived = await receiver.wait_for(3, timeout_s=10)  # woken, not polled
        assert sorted(a.headers["X-Webhook-Delivery-Id"] for a in arrived) == sorted(sent)
        assert await hookline.publish_many(engine, []) == []


async def test_accepted_event_is_durable_before_any_attempt(database_url: str) -> None:
    """202 means stored: with no worker running, the delivery waits as pending."""
    settings = make_settings(database_url)
    async with running_api(settings, run_worker=False) as api:
        user, auth = await api.user()
        await api.client.post(
            "/api/webhooks/config", headers=auth, json={"url": "http://127.0.0.1:9/hook"}
        )
        _, admin = await api.user("host-app", admin=True)
        response = await api.client.post(
            "/api/events",
            headers=admin,
            json={
                "userId": user.id,
                "event": "resume.parsed",
                "data": EXAMPLE_DATA["resume.parsed"],
            },
        )
        delivery_id = response.json()["deliveryIds"][0]
    # A new app on the same database (a restart) still has it, pending.
    async with running_api(settings, run_worker=False) as api:
        logs = (await api.client.get("/api/webhooks/logs", headers=auth)).json()
        assert [item["deliveryId"] for item in logs["logs"]] == [delivery_id]
        detail = (
            await api.client.get(f"/api/webhooks/logs/{logs['logs'][0]['id']}", headers=auth)
        ).json()
        assert detail["log"]["status"] == "pending" and detail["log"]["attempts"] == []
        stats = (await api.client.get("/api/webhooks/stats", headers=auth)).json()
        assert stats["pending"] == 1 and stats["total"] == 0


async def test_non_ascii_and_floats_survive_json_stringify(api: Api, receiver: Receiver) -> None:
    user, auth = await api.user()
    await api.client.post("/api/webhooks/config", headers=auth, json={"url": receiver.url})
    _, admin = await api.user("host-app", admin=True)
    data = {**EXAMPLE_DATA["ats.check_completed"], "score": 85.0, "note": "Zoë ✓ \u2028"}
    await api.client.post(
        "/api/events",
        headers=admin,
        json={"userId": user.id, "event": "ats.check_completed", "data": data},
    )
    (request,) = await receiver.wait_for(1)
    assert '"score":85,' in request.body.decode()  # JSON.stringify writes 85, not 85.0
    assert "Zoë ✓" in request.body.decode()  # not \\u-escaped

    await wait_until(lambda: _stats_total(api, auth, 1))


async def _stats_total(api: Api, auth: dict[str, str], total: int) -> bool:
    stats = (await api.client.get("/api/webhooks/stats", headers=auth)).json()
    return bool(stats["total"] == total)
