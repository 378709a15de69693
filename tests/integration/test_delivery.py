"""Delivery end to end: publish -> worker -> real receiver on loopback -> recorded outcome."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any

import pytest

from hookline.delivery.sender import Sender
from hookline.ssrf import TargetPolicy
from tests.support import Api, Receiver, make_settings, running_api, wait_until

PARSED = {
    "resumeId": "clx1",
    "fileName": "john_doe_resume.pdf",
    "parsedAt": "2024-11-14T10:05:00Z",
    "success": True,
}


async def setup(api: Api, receiver: Receiver, **config: Any) -> tuple[str, dict[str, str], str]:
    """An admin (publisher) and a user with a webhook at the receiver: (user id, auth, secret)."""
    user, auth = await api.user("user")
    saved = await api.client.post(
        "/api/webhooks/config", headers=auth, json={"url": receiver.url, **config}
    )
    assert saved.status_code == 200, saved.text
    return user.id, auth, saved.json()["config"]["secret"]


async def publish(api: Api, user_id: str, event: str = "resume.parsed", data: Any = None) -> Any:
    _, admin = await api.user("publisher", admin=True)
    response = await api.client.post(
        "/api/events",
        headers=admin,
        json={"userId": user_id, "event": event, "data": PARSED if data is None else data},
    )
    assert response.status_code == 202, response.text
    return response.json()


async def log_of(api: Api, auth: dict[str, str], delivery_id: str) -> dict[str, Any]:
    logs = (await api.client.get("/api/webhooks/logs", headers=auth)).json()["logs"]
    return next(item for item in logs if item["deliveryId"] == delivery_id)


async def finished(api: Api, auth: dict[str, str], delivery_id: str) -> dict[str, Any]:
    """Wait until the delivery is final; returns its log detail."""
    found: dict[str, Any] = {}

    async def done() -> bool:
        item = await log_of(api, auth, delivery_id)
        detail = (await api.client.get(f"/api/webhooks/logs/{item['id']}", headers=auth)).json()
        found.update(detail["log"])
        return detail["log"]["status"] in ("succeeded", "failed")

    await wait_until(done, timeout_s=15)
    return found


async def test_delivery_is_signed_with_the_guide_headers(api: Api, receiver: Receiver) -> None:
    user_id, auth, secret = await setup(api, receiver)
    result = await publish(api, user_id)
    assert result["success"] is True and len(result["deliveryIds"]) == 1
    delivery_id = result["deliveryIds"][0]
    (request,) = await receiver.wait_for(1)

    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Webhook-Event"] == "resume.parsed"
    assert headers["X-Webhook-Delivery-Id"] == delivery_id
    assert headers["User-Agent"] == "RoleReady-Webhook/1.0"
    expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert headers["X-Webhook-Signature"] == expected

    body = json.loads(request.body)
    assert list(body) == ["event", "deliveryId", "timestamp", "userId", "data"]
    assert body["event"] == "resume.parsed" and body["deliveryId"] == delivery_id
    assert body["userId"] == user_id and body["data"] == PARSED
    assert body["timestamp"].endswith("Z") and len(body["timestamp"]) == 24
    # compact, as JSON.stringify writes it
    assert request.body == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    detail = await finished(api, auth, delivery_id)
    assert detail["status"] == "succeeded" and detail["success"] is True
    assert detail["statusCode"] == 200 and detail["attemptCount"] == 1
    assert detail["deliveredAt"].endswith("Z")
    assert detail["payload"].encode() == request.body


async def test_custom_user_agent(database_url: str, receiver: Receiver) -> None:
    settings = make_settings(database_url, user_agent="Acme-Hooks/2.0", poll_interval_s=0.05)
    async with running_api(settings) as api:
        user_id, _, _ = await setup(api, receiver)
        await publish(api, user_id)
        (request,) = await receiver.wait_for(1)
        assert request.headers["User-Agent"] == "Acme-Hooks/2.0"


async def test_retries_until_success_with_identical_bytes(api: Api, receiver: Receiver) -> None:
    user_id, auth, _ = await setup(api, receiver)
    receiver.script = [500, 503, 502]
    delivery_id = (await publish(api, user_id))["deliveryIds"][0]
    requests = await receiver.wait_for(4)
    assert len({r.body for r in requests}) == 1
    assert len({r.headers["X-Webhook-Signature"] for r in requests}) == 1
    assert {r.headers["X-Webhook-Delivery-Id"] for r in requests} == {delivery_id}

    detail = await finished(api, auth, delivery_id)
    assert detail["status"] == "succeeded" and detail["attemptCount"] == 4
    assert [a["statusCode"] for a in detail["attempts"]] == [500, 503, 502, 200]
    assert [a["attempt"] for a in detail["attempts"]] == [1, 2, 3, 4]
    assert detail["attempts"][0]["error"] == "HTTP 500 Internal Server Error"
    assert detail["attempts"][3]["error"] is None
    assert detail["error"] is None  # the last attempt's


async def test_four_failures_fail_for_good(api: Api, receiver: Receiver) -> None:
    user_id, auth, _ = await setup(api, receiver)
    receiver.default_status = 500
    delivery_id = (await publish(api, user_id))["deliveryIds"][0]
    detail = await finished(api, auth, delivery_id)
    assert detail["status"] == "failed" and detail["success"] is False
    assert detail["attemptCount"] == 4 and len(detail["attempts"]) == 4
    assert detail["statusCode"] == 500 and detail["error"] == "HTTP 500 Internal Server Error"
    assert detail["deliveredAt"] is None
    await receiver.wait_for(4)
    time_after = len(receiver.received)
    await wait_until(lambda: _true(), timeout_s=0.5)
    assert len(receiver.received) == time_after == 4  # no fifth attempt


async def _true() -> bool:
    return True


@pytest.mark.parametrize("status", [301, 302, 400, 404, 410, 429])
async def test_non_2xx_is_a_failure_and_redirects_are_not_followed(
    api: Api, receiver: Receiver, status: int
) -> None:
    user_id, auth, _ = await setup(api, receiver)
    receiver.script = [{"status": status, "headers": {"Location": receiver.url + "/elsewhere"}}]
    delivery_id = (await publish(api, user_id))["deliveryIds"][0]
    detail = await finished(api, auth, delivery_id)
    assert detail["attempts"][0]["statusCode"] == status
    assert detail["attempts"][0]["error"].startswith(f"HTTP {status}")
    assert all(r.path == "/hook" for r in receiver.received)


async def test_connection_refused_is_retried_then_failed(database_url: str) -> None:
    settings = make_settings(database_url, retry_delays_s=[0.05, 0.05, 0.05], poll_interval_s=0.05)
    async with running_api(settings) as api:
        user, auth = await api.user()
        # A port nothing listens on: bind, read the port, close.
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        url = f"http://127.0.0.1:{port}/hook"
        await api.client.post("/api/webhooks/config", headers=auth, json={"url": url})
        delivery_id = (await publish(api, user.id))["deliveryIds"][0]
        detail = await finished(api, auth, delivery_id)
        assert detail["status"] == "failed" and detail["attemptCount"] == 4
        assert detail["statusCode"] is None
        assert detail["error"] == f"connect ECONNREFUSED 127.0.0.1:{port}"


async def test_timeout_is_a_failure(database_url: str, receiver: Receiver) -> None:
    settings = make_settings(
        database_url, timeout_s=0.3, retry_delays_s=[0.05], poll_interval_s=0.05
    )
    async with running_api(settings) as api:
        user_id, auth, _ = await setup(api, receiver)
        receiver.script = [{"status": 200, "delay_s": 1.0}]
        delivery_id = (await publish(api, user_id))["deliveryIds"][0]
        detail = await finished(api, auth, delivery_id)
        assert detail["status"] == "succeeded" and detail["attemptCount"] == 2
        first = detail["attempts"][0]
        assert first["statusCode"] is None and first["error"] == "timeout after 0.3s"
        assert 250 <= first["durationMs"] < 1000


async def test_response_body_is_read_up_to_the_cap(database_url: str, receiver: Receiver) -> None:
    settings = make_settings(database_url, max_response_bytes=1000, response_excerpt_chars=50)
    async with running_api(settings) as api:
        user_id, auth, _ = await setup(api, receiver)
        receiver.script = [{"status": 200, "body": "x" * 200_000}]
        delivery_id = (await publish(api, user_id))["deliveryIds"][0]
        detail = await finished(api, auth, delivery_id)
        assert detail["status"] == "succeeded"
        assert detail["attempts"][0]["responseExcerpt"] == "x" * 50


async def test_retry_after_pushes_the_next_attempt_later(
    database_url: str, receiver: Receiver
) -> None:
    settings = make_settings(database_url, retry_delays_s=[0.05], retry_after_cap_s=1.0)
    async with running_api(settings) as api:
        user_id, _, _ = await setup(api, receiver)
        receiver.script = [{"status": 429, "headers": {"Retry-After": "30"}}]
        await publish(api, user_id)
        first, second = await receiver.wait_for(2, timeout_s=5)
        gap = second.at - first.at
        assert 0.9 <= gap < 2.5  # pushed from 0.05 s to the 1 s cap, not to 30 s


async def test_retry_gaps_follow_the_schedule(database_url: str, receiver: Receiver) -> None:
    settings = make_settings(database_url, retry_delays_s=[0.2, 0.5, 1.0], poll_interval_s=5.0)
    async with running_api(settings) as api:
        user_id, _, _ = await setup(api, receiver)
        receiver.default_status = 500
        await publish(api, user_id)
        arrivals = [r.at for r in await receiver.wait_for(4, timeout_s=10)]
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        for gap, expected in zip(gaps, [0.2, 0.5, 1.0], strict=True):
            assert expected * 0.8 <= gap <= expected * 1.2 + 0.1, gaps


@pytest.mark.slow
async def test_default_schedule_is_1_5_15_seconds(database_url: str, receiver: Receiver) -> None:
    """The guide's schedule, for real: attempts 1 s, 5 s and 15 s after each failure (±20%)."""
    async with running_api(make_settings(database_url)) as api:
        user_id, auth, _ = await setup(api, receiver)
        receiver.script = [500, 500, 500]
        delivery_id = (await publish(api, user_id))["deliveryIds"][0]
        arrivals = [r.at for r in await receiver.wait_for(4, timeout_s=30)]
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        for gap, expected in zip(gaps, [1.0, 5.0, 15.0], strict=True):
            assert expected * 0.8 <= gap <= expected * 1.2, gaps
        detail = await finished(api, auth, delivery_id)
        assert detail["status"] == "succeeded" and detail["attemptCount"] == 4


async def test_first_attempt_is_immediate(database_url: str, receiver: Receiver) -> None:
    async with running_api(make_settings(database_url, poll_interval_s=30.0)) as api:
        user_id, _, _ = await setup(api, receiver)
        await api.user("publisher", admin=True)
        started = time.monotonic()
        await publish(api, user_id)
        (request,) = await receiver.wait_for(1)
        # woken by the in-process signal, not by the (30 s) poll
        assert request.at - started < 0.5


async def test_deleted_config_fails_pending_deliveries(
    database_url: str, receiver: Receiver
) -> None:
    settings = make_settings(database_url, retry_delays_s=[0.3], poll_interval_s=0.05)
    async with running_api(settings) as api:
        user_id, auth, _ = await setup(api, receiver)
        receiver.script = [500]
        delivery_id = (await publish(api, user_id))["deliveryIds"][0]
        await receiver.wait_for(1)
        await api.client.delete("/api/webhooks/config", headers=auth)
        detail = await finished(api, auth, delivery_id)
        assert detail["status"] == "failed"
        assert detail["error"] == "webhook configuration was deleted"


def bare_sender(policy: TargetPolicy) -> Sender:
    return Sender(
        timeout_s=2, max_response_bytes=1024, excerpt_chars=100, concurrency=2, policy=policy
    )


async def test_sender_maps_errors_without_a_database() -> None:
    """The sender alone: a closed port and a blocked address become Outcomes, not exceptions."""
    sender = bare_sender(TargetPolicy())
    try:
        blocked = await sender.send("http://127.0.0.1:9/", b"{}", {})
        assert blocked.kind == "blocked" and blocked.error is not None
        assert blocked.error == "blocked: 127.0.0.1 is a loopback address"
        assert blocked.retryable is False
    finally:
        await sender.close()


async def test_sender_remembers_only_urls_that_passed(receiver: Receiver) -> None:
    """A checked URL is not parsed again; a blocked one is refused on every attempt."""
    sender = bare_sender(TargetPolicy(allow_loopback=True))
    strict = bare_sender(TargetPolicy())
    try:
        for _ in range(2):
            assert (await sender.send(receiver.url, b"{}", {})).ok
            refused = await strict.send(receiver.url, b"{}", {})
            assert refused.kind == "blocked"
        assert list(sender._checked) == [receiver.url] and not strict._checked
        assert len(receiver.received) == 2
    finally:
        await sender.close()
        await strict.close()
