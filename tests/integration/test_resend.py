"""Resending a delivery, and what the log says about a delivery and its attempts: against a
real receiver on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update

from hookline.receiver import verify
from hookline.store import AttemptRecord, Status
from hookline.store.schema import deliveries
from hookline.timeutil import utcnow
from tests.integration.test_publish import EXAMPLE_DATA
from tests.support import Api, Receiver, make_settings, running_api, wait_until

EVENT = "resume.parsed"
CREDENTIAL = "Bearer receiver-credential"


async def setup(api: Api, receiver: Receiver) -> tuple[str, dict[str, str], str, str]:
    """A user with one endpoint (with a static header) at ``receiver``: (user id, auth,
    endpoint id, secret)."""
    user, auth = await api.user()
    response = await api.client.post(
        "/api/webhooks/endpoints",
        headers=auth,
        json={"url": receiver.url, "headers": {"Authorization": CREDENTIAL}},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    return user.id, auth, created["endpoint"]["id"], created["secret"]


async def publish(api: Api, user_id: str) -> str:
    _, admin = await api.user("host-app", admin=True)
    response = await api.client.post(
        "/api/events",
        headers=admin,
        json={"userId": user_id, "event": EVENT, "data": EXAMPLE_DATA[EVENT]},
    )
    [delivery_id] = response.json()["deliveryIds"]
    return str(delivery_id)


async def log_of(api: Api, auth: dict[str, str], delivery_id: str) -> dict[str, Any]:
    """The log item of ``delivery_id``."""
    logs = (await api.client.get("/api/webhooks/logs", headers=auth)).json()["logs"]
    [item] = [item for item in logs if item["deliveryId"] == delivery_id]
    return dict(item)


async def detail_of(api: Api, auth: dict[str, str], log_id: str) -> dict[str, Any]:
    response = await api.client.get(f"/api/webhooks/logs/{log_id}", headers=auth)
    assert response.status_code == 200, response.text
    return dict(response.json()["log"])


def parse_iso(value: str) -> datetime:
    assert value.endswith("Z") and len(value) == 24  # milliseconds and Z
    return datetime.fromisoformat(value)


async def test_a_failed_delivery_resent_succeeds_once(api: Api, receiver: Receiver) -> None:
    user_id, auth, _, secret = await setup(api, receiver)
    receiver.default_status = 500
    delivery_id = await publish(api, user_id)

    async def failed() -> bool:
        return bool((await log_of(api, auth, delivery_id))["status"] == "failed")

    await wait_until(failed, timeout_s=15)
    item = await log_of(api, auth, delivery_id)
    assert item["nextAttemptAt"] is None and item["attempts"] == 4
    stats = (await api.client.get("/api/webhooks/stats", headers=auth)).json()
    assert (stats["successful"], stats["failed"], stats["pending"]) == (0, 1, 0)
    first = receiver.received[0]

    # A new second, so that the resend's webhook-timestamp is visibly fresh.
    await asyncio.sleep(1.05 - time.time() % 1)
    receiver.default_status = 200
    before = len(receiver.received)
    response = await api.client.post(f"/api/webhooks/logs/{item['id']}/resend", headers=auth)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["success"] is True and answer["log"]["deliveryId"] == delivery_id
    assert answer["log"]["status"] in ("retrying", "succeeded")  # the worker may be quick

    [resent] = (await receiver.wait_for(before + 1))[before:]

    async def succeeded() -> bool:
        return bool((await detail_of(api, auth, item["id"]))["status"] == "succeeded")

    await wait_until(succeeded)
    # The same delivery, byte for byte, with a fresh timestamp and signature.
    assert resent.body == first.body
    assert resent.headers["webhook-id"] == first.headers["webhook-id"] == delivery_id
    assert resent.headers["X-Webhook-Delivery-Id"] == delivery_id
    assert int(resent.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
    assert resent.headers["webhook-signature"] != first.headers["webhook-signature"]
    assert resent.headers["X-Webhook-Signature"] == first.headers["X-Webhook-Signature"]
    verify(resent.body, resent.headers, secret)

    detail = await detail_of(api, auth, item["id"])
    assert detail["success"] is True and detail["nextAttemptAt"] is None
    assert detail["attemptCount"] == 5
    assert [a["trigger"] for a in detail["attempts"]] == ["scheduled"] * 4 + ["manual"]
    last = detail["attempts"][-1]
    assert last["statusCode"] == 200 and last["error"] is None
    assert last["responseExcerpt"] == "ok" and last["durationMs"] >= 0
    # The headers recorded are the ones the receiver got, the static one redacted.
    sent = last["requestHeaders"]
    assert sent["Authorization"] == "[redacted]" and resent.headers["Authorization"] == CREDENTIAL
    got = {name.lower(): value for name, value in resent.headers.items()}
    assert {name: value for name, value in sent.items() if name != "Authorization"} == {
        name: got[name.lower()] for name in sent if name != "Authorization"
    }
    assert {"webhook-id", "webhook-timestamp", "webhook-signature", "X-Webhook-Signature"} <= set(
        sent
    )
    assert set(got) - {name.lower() for name in sent} == {"host", "content-length"}
    first_sent = detail["attempts"][0]["requestHeaders"]
    assert first_sent["webhook-timestamp"] == first.headers["webhook-timestamp"]
    # Never a secret.
    text = json.dumps(detail)
    assert secret not in text and secret.removeprefix("whsec_") not in text
    assert CREDENTIAL not in text

    # Counted once, as successful.
    stats = (await api.client.get("/api/webhooks/stats", headers=auth)).json()
    assert (stats["total"], stats["successful"], stats["failed"], stats["pending"]) == (
        1,
        1,
        0,
        0,
    )
    assert stats["averageAttempts"] == "5.00"
    page = (await api.client.get("/api/webhooks/logs", headers=auth)).json()
    assert page["pagination"]["total"] == 1


async def test_statuses_and_what_cannot_be_resent(database_url: str, receiver: Receiver) -> None:
    """pending, retrying, succeeded, failed and nextAttemptAt, moved by hand (no worker);
    resending what is open is 409, another user's is 404."""
    async with running_api(make_settings(database_url), run_worker=False) as api:
        user_id, auth, endpoint_id, _ = await setup(api, receiver)
        delivery_id = await publish(api, user_id)
        item = await log_of(api, auth, delivery_id)
        assert item["status"] == "pending" and item["success"] is False
        assert parse_iso(item["nextAttemptAt"]) <= utcnow()
        resend = f"/api/webhooks/logs/{item['id']}/resend"

        answer = await api.client.post(resend, headers=auth)
        assert answer.status_code == 409 and answer.json()["success"] is False
        assert "pending or in flight" in answer.json()["error"]

        # In flight, before any attempt: still pending.
        [job] = await api.store.claim("w", 1)
        assert (await log_of(api, auth, delivery_id))["status"] == "pending"
        assert (await api.client.post(resend, headers=auth)).status_code == 409

        # A failed attempt with a retry planned: retrying, until the retry.
        retry_at = utcnow() + timedelta(minutes=5)
        await api.store.record("w", [attempt(job.delivery.id, 1, Status.PENDING, retry_at)])
        item = await log_of(api, auth, delivery_id)
        assert item["status"] == "retrying" and item["error"] == "HTTP 500"
        assert parse_iso(item["nextAttemptAt"]) == retry_at.replace(
            microsecond=retry_at.microsecond // 1000 * 1000
        )
        detail = await detail_of(api, auth, item["id"])
        assert (detail["status"], detail["nextAttemptAt"]) == ("retrying", item["nextAttemptAt"])
        assert (await api.client.post(resend, headers=auth)).status_code == 409

        # Claimed again for the retry: retrying while in flight; then it succeeds.
        async with api.store.db.write() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == item["id"])
                .values(next_attempt_at=utcnow())
            )
        [job] = await api.store.claim("w", 1)
        assert (await log_of(api, auth, delivery_id))["status"] == "retrying"
        await api.store.record("w", [attempt(job.delivery.id, 2, Status.SUCCEEDED)])
        item = await log_of(api, auth, delivery_id)
        assert (item["status"], item["nextAttemptAt"], item["success"]) == (
            "succeeded",
            None,
            True,
        )

        # Resending a succeeded delivery: pending again (its last attempt did not fail).
        answer = await api.client.post(resend, headers=auth)
        assert answer.status_code == 202
        assert answer.json()["log"]["status"] == "pending"
        assert answer.json()["log"]["deliveredAt"] is None
        [job] = await api.store.claim("w", 1)
        assert job.delivery.attempts == 2 and job.delivery.max_attempts == 3
        await api.store.record(
            "w", [attempt(job.delivery.id, 3, Status.FAILED, trigger=job.delivery.trigger)]
        )
        detail = await detail_of(api, auth, item["id"])
        assert detail["status"] == "failed" and detail["nextAttemptAt"] is None
        assert [a["trigger"] for a in detail["attempts"]] == ["scheduled", "scheduled", "manual"]
        stats = (await api.client.get("/api/webhooks/stats", headers=auth)).json()
        assert (stats["successful"], stats["failed"], stats["averageAttempts"]) == (0, 1, "3.00")

        # Someone else's delivery, an unknown id, a malformed one: 404.
        _, stranger = await api.user("stranger")
        assert (await api.client.post(resend, headers=stranger)).status_code == 404
        unknown = "/api/webhooks/logs/c0000000000000000000000000/resend"
        assert (await api.client.post(unknown, headers=auth)).status_code == 404
        bad = "/api/webhooks/logs/not-an-id!/resend"
        assert (await api.client.post(bad, headers=auth)).status_code == 404
        assert (await api.client.post(resend)).status_code == 401

        # Its endpoint disabled, then deleted: 409, saying why.
        path = f"/api/webhooks/endpoints/{endpoint_id}"
        await api.client.patch(path, headers=auth, json={"enabled": False})
        answer = await api.client.post(resend, headers=auth)
        assert answer.status_code == 409 and "disabled" in answer.json()["error"]
        await api.client.delete(path, headers=auth)
        answer = await api.client.post(resend, headers=auth)
        assert answer.status_code == 409 and "deleted" in answer.json()["error"]
        stats = (await api.client.get("/api/webhooks/stats", headers=auth)).json()
        assert (stats["failed"], stats["pending"]) == (1, 0)


def attempt(
    log_id: str,
    number: int,
    status: Status,
    retry_at: datetime | None = None,
    trigger: Any = None,
) -> AttemptRecord:
    extra = {} if trigger is None else {"trigger": trigger}
    return AttemptRecord(
        log_id=log_id,
        attempt=number,
        started_at=utcnow(),
        duration_ms=2,
        status_code=200 if status is Status.SUCCEEDED else 500,
        error=None if status is Status.SUCCEEDED else "HTTP 500",
        response_excerpt="ok",
        next_status=status,
        next_attempt_at=retry_at,
        **extra,
    )
