"""Security, end to end through the real app, a real database and a real loopback receiver:
Standard Webhooks signatures checked by independent oracles, secret rotation with overlap,
SSRF rules at configuration time and at delivery time (DNS rebinding included), abuse limits.

Only loopback traffic: every URL that is not on 127.0.0.0/8 is either rejected before any
connection is made or answered by a stub resolver.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pydantic
import pytest
import standardwebhooks
import svix.webhooks
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

import hookline.delivery.sender
import hookline.targets
from hookline import ids
from hookline.delivery.sender import OutcomeKind, Sender
from hookline.payload import guide_signature, standard_signature
from hookline.ssrf import BlockedTarget, PinningResolver, TargetPolicy
from hookline.timeutil import utcnow
from tests.support import (
    FAST_RETRIES,
    Api,
    Received,
    Receiver,
    make_settings,
    running_api,
    wait_until,
)

EVENT = "resume.parsed"
DATA = {
    "resumeId": "res_1",
    "fileName": "cv.pdf",
    "parsedAt": "2024-11-14T10:05:00.000Z",
    "success": True,
    "score": 0.1,
    "name": "Zoë",
}
PUBLIC_URL = "https://93.184.216.34/hooks"  # a public literal: accepted, never contacted here

# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _verify_stdwh(secret: str, body: bytes, headers: dict[str, str]) -> None:
    standardwebhooks.Webhook(secret).verify(body, headers)


def _verify_svix(secret: str, body: bytes, headers: dict[str, str]) -> None:
    svix.webhooks.Webhook(secret).verify(body, headers)


Oracle = Callable[[str, bytes, dict[str, str]], None]
ORACLES: list[tuple[str, Oracle]] = [("standardwebhooks", _verify_stdwh), ("svix", _verify_svix)]
REJECTED = (
    standardwebhooks.webhooks.WebhookVerificationError,
    svix.webhooks.WebhookVerificationError,
)


def assert_verifies(secret: str, body: bytes, headers: dict[str, str]) -> None:
    for name, verify in ORACLES:
        try:
            verify(secret, body, headers)
        except REJECTED as exc:  # pragma: no cover - the message is the point
            raise AssertionError(f"{name} rejected a genuine delivery: {exc}") from exc


def assert_rejected(
    secret: str, body: bytes, headers: dict[str, str], why: str | None = None
) -> None:
    for _, verify in ORACLES:
        with pytest.raises(REJECTED, match=why):
            verify(secret, body, headers)


async def configure(api: Api, auth: dict[str, str], url: str, **extra: Any) -> dict[str, Any]:
    response = await api.client.post(
        "/api/webhooks/config", headers=auth, json={"url": url, **extra}
    )
    assert response.status_code == 200, response.text
    config: dict[str, Any] = response.json()["config"]
    return config


async def publish(api: Api, admin: dict[str, str], user_id: str) -> str:
    response = await api.client.post(
        "/api/events", headers=admin, json={"userId": user_id, "event": EVENT, "data": DATA}
    )
    assert response.status_code == 202, response.text
    (delivery_id,) = response.json()["deliveryIds"]
    return str(delivery_id)


async def log_by_delivery(api: Api, auth: dict[str, str], delivery_id: str) -> dict[str, Any]:
    logs = (await api.client.get("/api/webhooks/logs", headers=auth)).json()["logs"]
    (item,) = [log for log in logs if log["deliveryId"] == delivery_id]
    detail = await api.client.get(f"/api/webhooks/logs/{item['id']}", headers=auth)
    assert detail.status_code == 200, detail.text
    log: dict[str, Any] = detail.json()["log"]
    return log


def signatures(received: Received) -> list[str]:
    return received.headers["webhook-signature"].split(" ")


# --------------------------------------------------------------------------------------------
# 1. Standard Webhooks
# --------------------------------------------------------------------------------------------


async def test_real_delivery_verifies_with_both_oracles(api: Api, receiver: Receiver) -> None:
    user, auth = await api.user()
    _, admin = await api.user("publisher", admin=True)
    secret = (await configure(api, auth, receiver.url))["secret"]
    before = int(time.time())
    delivery_id = await publish(api, admin, user.id)
    (got,) = await receiver.wait_for(1)
    body, headers = got.body, got.headers

    assert_verifies(secret, body, headers)
    assert standardwebhooks.Webhook(secret).verify(body, headers) == json.loads(body)
    assert headers["webhook-id"] == headers["X-Webhook-Delivery-Id"] == delivery_id
    assert json.loads(body)["deliveryId"] == delivery_id
    assert before <= int(headers["webhook-timestamp"]) <= int(time.time())
    assert signatures(got) == [
        standard_signature(secret, delivery_id, int(headers["webhook-timestamp"]), body)
    ]
    # The guide's own header is untouched: hex HMAC of the raw body keyed with the secret text.
    assert headers["X-Webhook-Signature"] == guide_signature(secret, body)

    # Raw bytes are what is signed; the bytes are what JSON.stringify gives back, while a
    # re-serialisation with other spacing does not verify.
    parsed = json.loads(body)
    assert json.dumps(parsed, separators=(",", ":"), ensure_ascii=False).encode() == body
    assert_rejected(secret, json.dumps(parsed).encode(), headers, "No matching signature")

    # Tampered body, wrong secret.
    tampered = body.replace(b'"res_1"', b'"res_2"')
    assert tampered != body
    assert_rejected(secret, tampered, headers, "No matching signature")
    assert_rejected(ids.new_secret(), body, headers, "No matching signature")

    # Re-signed headers: correct signatures, but outside the 5-minute window either way.
    now = int(time.time())
    fresh = {**headers, "webhook-timestamp": str(now)}
    fresh["webhook-signature"] = standard_signature(secret, delivery_id, now, body)
    assert_verifies(secret, body, fresh)  # control: a correct re-signature passes
    for offset, why in ((-301 - 60, "too old"), (301 + 60, "too new")):
        moved = {**headers, "webhook-timestamp": str(now + offset)}
        moved["webhook-signature"] = standard_signature(secret, delivery_id, now + offset, body)
        assert_rejected(secret, body, moved, why)

    # A captured request cannot be replayed under another id either.
    assert_rejected(secret, body, {**headers, "webhook-id": ids.new_delivery_id()})


async def test_webhook_id_is_stable_across_retries_and_timestamp_is_per_attempt(
    api: Api, receiver: Receiver
) -> None:
    user, auth = await api.user()
    _, admin = await api.user("publisher", admin=True)
    secret = (await configure(api, auth, receiver.url))["secret"]
    # The first answer takes 1.1 s, so the retry starts in a later second than the first try.
    receiver.script = [{"status": 500, "delay_s": 1.1}, 200]
    delivery_id = await publish(api, admin, user.id)
    first, second = await receiver.wait_for(2)

    for got in (first, second):
        assert got.headers["webhook-id"] == delivery_id
        assert got.headers["X-Webhook-Delivery-Id"] == delivery_id
        assert_verifies(secret, got.body, got.headers)
    assert first.body == second.body
    assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
    assert signatures(first) != signatures(second)
    # Each attempt's signature is bound to its own timestamp: swapping them fails.
    swapped = {**second.headers, "webhook-timestamp": first.headers["webhook-timestamp"]}
    assert_rejected(secret, second.body, swapped, "No matching signature")

    async def succeeded() -> bool:
        log = await log_by_delivery(api, auth, delivery_id)
        return bool(log["status"] == "succeeded")

    await wait_until(succeeded)
    log = await log_by_delivery(api, auth, delivery_id)
    assert [a["statusCode"] for a in log["attempts"]] == [500, 200]


async def test_integers_javascript_cannot_hold_are_refused(api: Api, receiver: Receiver) -> None:
    """The body must survive JSON.parse + JSON.stringify. 2**60 does not: JavaScript reads it
    as 1152921504606846976 but writes it back as 1152921504606847000."""
    user, auth = await api.user()
    _, admin = await api.user("publisher", admin=True)
    await configure(api, auth, receiver.url)
    event = {"userId": user.id, "event": EVENT, "data": {**DATA, "count": 2**60}}
    response = await api.client.post("/api/events", headers=admin, json=event)
    assert response.status_code == 422, response.text
    assert "data" in response.json()["fields"]


async def test_test_endpoint_is_signed_the_same_way(api: Api, receiver: Receiver) -> None:
    _, auth = await api.user()
    secret = (await configure(api, auth, receiver.url))["secret"]
    response = await api.client.post("/api/webhooks/test", headers=auth)
    assert response.json()["success"] is True, response.text
    (got,) = receiver.received
    assert got.headers["webhook-id"] == response.json()["deliveryId"]
    assert_verifies(secret, got.body, got.headers)


# --------------------------------------------------------------------------------------------
# 2. Rotation with overlap
# --------------------------------------------------------------------------------------------


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_regenerate_keeps_the_old_secret_signing_for_the_grace_period(
    api: Api, receiver: Receiver
) -> None:
    user, auth = await api.user()
    _, admin = await api.user("publisher", admin=True)
    old = (await configure(api, auth, receiver.url))["secret"]
    response = await api.client.post("/api/webhooks/regenerate-secret", headers=auth)
    assert response.status_code == 200
    new = response.json()["secret"]
    assert new != old and new.startswith("whsec_")
    expires = _parse_iso(response.json()["previousSecretExpiresAt"])
    assert abs(expires - (utcnow() + timedelta(hours=24))) < timedelta(minutes=1)

    delivery_id = await publish(api, admin, user.id)
    (got,) = await receiver.wait_for(1)
    timestamp = int(got.headers["webhook-timestamp"])
    assert signatures(got) == [
        standard_signature(new, delivery_id, timestamp, got.body),
        standard_signature(old, delivery_id, timestamp, got.body),
    ]
    assert_verifies(new, got.body, got.headers)
    assert_verifies(old, got.body, got.headers)
    assert_rejected(ids.new_secret(), got.body, got.headers)
    assert got.headers["X-Webhook-Signature"] == guide_signature(new, got.body)
    assert got.headers["X-Webhook-Signature"] != guide_signature(old, got.body)

    # Past the grace period only the new secret signs.
    endpoint = await api.store.get_config(user.id)
    assert endpoint is not None
    assert len(api.store.signing_secrets(endpoint, utcnow())) == 2
    assert api.store.signing_secrets(endpoint, expires + timedelta(seconds=1)) == [new]


async def test_zero_grace_rotates_at_once(database_url: str, receiver: Receiver) -> None:
    settings = make_settings(database_url, secret_grace_s=0, **FAST_RETRIES)
    async with running_api(settings) as api:
        _, auth = await api.user()
        old = (await configure(api, auth, receiver.url))["secret"]
        response = await api.client.post("/api/webhooks/regenerate-secret", headers=auth)
        assert response.status_code == 200
        assert response.json()["previousSecretExpiresAt"] is None
        new = response.json()["secret"]

        test = await api.client.post("/api/webhooks/test", headers=auth)
        assert test.json()["success"] is True, test.text
        (got,) = receiver.received
        assert len(signatures(got)) == 1
        assert_verifies(new, got.body, got.headers)
        assert_rejected(old, got.body, got.headers, "No matching signature")


async def test_at_most_max_old_secrets_are_kept(database_url: str, receiver: Receiver) -> None:
    settings = make_settings(database_url, max_old_secrets=3, **FAST_RETRIES)
    async with running_api(settings) as api:
        user, auth = await api.user()
        secrets = [(await configure(api, auth, receiver.url))["secret"]]
        for _ in range(6):
            response = await api.client.post("/api/webhooks/regenerate-secret", headers=auth)
            secrets.append(response.json()["secret"])
        endpoint = await api.store.get_config(user.id)
        assert endpoint is not None
        assert len(endpoint.old_secrets) == 3

        test = await api.client.post("/api/webhooks/test", headers=auth)
        assert test.json()["success"] is True, test.text
        (got,) = receiver.received
        assert len(signatures(got)) == 4  # the current secret and the three newest old ones
        for secret in secrets[-4:]:
            assert_verifies(secret, got.body, got.headers)
        for secret in secrets[:-4]:
            assert_rejected(secret, got.body, got.headers, "No matching signature")


# --------------------------------------------------------------------------------------------
# 3. SSRF at configuration time
# --------------------------------------------------------------------------------------------

# (URL, a fragment of the rule the 422 must name)
BLOCKED_AT_SAVE: list[tuple[str, str]] = [
    ("https://127.0.0.1/", "127.0.0.1 is a loopback address"),
    ("https://10.0.0.5/", "10.0.0.5 is a private address"),
    ("https://172.16.3.4/", "private address"),
    ("https://192.168.1.1/", "private address"),
    ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("https://[::1]/", "::1 is a loopback address"),
    ("https://[::ffff:127.0.0.1]/", "loopback address"),
    ("https://[::ffff:a9fe:a9fe]/", "link-local address"),
    ("https://[64:ff9b::a00:5]/", "NAT64"),
    ("https://[2002:a9fe:a9fe::1]/", "6to4"),
    ("https://[fd00::1]/", "unique local address"),
    ("https://[fe80::1]/", "link-local address"),
    ("https://2130706433/", "127.0.0.1 is a loopback address"),
    ("https://0x7f.1/", "127.0.0.1 is a loopback address"),
    ("https://0177.0.0.1/", "127.0.0.1 is a loopback address"),
    ("https://127.1:8443/", "127.0.0.1 is a loopback address"),
    ("https://100.64.0.1/", "carrier-grade NAT"),
    ("https://0.0.0.0/", "unspecified address"),
    ("https://224.0.0.1/", "multicast address"),
    ("https://255.255.255.255/", "broadcast address"),
    ("https://localhost/", "resolves to a blocked address"),
]


async def test_blocked_targets_are_refused_at_save_time_naming_the_rule(
    database_url: str,
) -> None:
    settings = make_settings(database_url, env="production")
    async with running_api(settings, run_worker=False) as api:
        _, auth = await api.user()
        wrong: list[str] = []
        for url, rule in BLOCKED_AT_SAVE:
            response = await api.client.post(
                "/api/webhooks/config", headers=auth, json={"url": url}
            )
            body = response.json()
            reason = body.get("fields", {}).get("url", "")
            if (
                response.status_code != 422
                or body.get("success") is not False
                or not reason.startswith("blocked: ")
                or rule not in reason
            ):
                wrong.append(f"{url}: {response.status_code} {body}")
        assert wrong == []
        got = (await api.client.get("/api/webhooks/config", headers=auth)).json()
        assert got["configured"] is False

        # localhost names its rule too (it resolves to loopback).
        localhost = await api.client.post(
            "/api/webhooks/config", headers=auth, json={"url": "https://localhost/"}
        )
        assert "loopback address" in localhost.json()["fields"]["url"]

        # A public literal is accepted; no traffic is sent when saving.
        ok = await api.client.post("/api/webhooks/config", headers=auth, json={"url": PUBLIC_URL})
        assert ok.status_code == 200, ok.text


async def test_allow_list_lets_an_operator_network_through(database_url: str) -> None:
    settings = make_settings(database_url, env="production", allow_targets=["10.0.0.0/8"])
    async with running_api(settings, run_worker=False) as api:
        _, auth = await api.user()
        ok = await api.client.post(
            "/api/webhooks/config", headers=auth, json={"url": "https://10.0.0.5/hook"}
        )
        assert ok.status_code == 200, ok.text
        for url in ("https://192.168.1.1/", "https://127.0.0.1/"):
            refused = await api.client.post("/api/webhooks/config", headers=auth, json={"url": url})
            assert refused.status_code == 422, url


def test_a_bad_allow_list_entry_is_a_settings_error() -> None:
    with pytest.raises(pydantic.ValidationError, match="looks like a URL"):
        make_settings("sqlite+aiosqlite:///unused.db", allow_targets=["https://hooks.internal/"])


async def test_development_allows_loopback_only(api: Api) -> None:
    assert api.settings.development
    _, auth = await api.user()
    ok = await api.client.post(
        "/api/webhooks/config", headers=auth, json={"url": "http://127.0.0.1:9/hook"}
    )
    assert ok.status_code == 200, ok.text
    for url, rule in (
        ("http://10.0.0.5/", "private"),
        ("http://169.254.169.254/", "link-local"),
        ("http://0.0.0.0:9/", "unspecified"),
    ):
        refused = await api.client.post("/api/webhooks/config", headers=auth, json={"url": url})
        assert refused.status_code == 422, url
        assert rule in refused.json()["fields"]["url"]


# --------------------------------------------------------------------------------------------
# 4. SSRF at delivery time
# --------------------------------------------------------------------------------------------


def make_sender(policy: TargetPolicy, **connector_kwargs: Any) -> Sender:
    return Sender(
        timeout_s=5,
        max_response_bytes=1024,
        excerpt_chars=100,
        concurrency=4,
        policy=policy,
        connector_kwargs=connector_kwargs or None,
    )


async def test_sender_blocks_loopback_in_any_spelling(receiver: Receiver) -> None:
    sender = make_sender(TargetPolicy())
    port = receiver.port
    try:
        for url in (
            receiver.url,
            f"http://localhost:{port}/hook",
            f"http://2130706433:{port}/hook",
            f"http://0x7f.1:{port}/hook",
            f"http://127.1:{port}/hook",
            f"http://[::ffff:127.0.0.1]:{port}/hook",
            f"http://[::1]:{port}/hook",
        ):
            outcome = await sender.send(url, b"{}", {"Content-Type": "application/json"})
            assert outcome.kind is OutcomeKind.BLOCKED, (url, outcome)
            assert outcome.error is not None and outcome.error.startswith("blocked: "), url
            assert "loopback" in outcome.error, (url, outcome.error)
            assert not outcome.retryable
    finally:
        await sender.close()
    assert receiver.received == []

    # Control: the same URL works when the policy allows loopback (development mode).
    allowed = make_sender(TargetPolicy(allow_loopback=True))
    try:
        outcome = await allowed.send(receiver.url, b"{}", {})
    finally:
        await allowed.close()
    assert outcome.kind is OutcomeKind.SUCCESS
    assert len(receiver.received) == 1


async def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.script = [{"status": 302, "headers": {"Location": "/elsewhere"}}]
    sender = make_sender(TargetPolicy(allow_loopback=True))
    try:
        outcome = await sender.send(receiver.url, b"{}", {})
    finally:
        await sender.close()
    assert outcome.kind is OutcomeKind.HTTP_STATUS and outcome.status_code == 302
    assert [r.path for r in receiver.received] == ["/hook"]


async def test_blocked_delivery_is_logged_and_not_retried(
    database_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config saved while its target was allowed, delivered by a sender that blocks it.

    Only the sender's policy is replaced (development mode still accepts the URL at save
    time), as when an operator tightens the rules after webhooks were configured.
    """
    monkeypatch.setattr(hookline.targets, "policy_for", lambda settings: TargetPolicy())
    settings = make_settings(database_url, **FAST_RETRIES)
    async with running_api(settings) as api:
        user, auth = await api.user()
        _, admin = await api.user("publisher", admin=True)
        await configure(api, auth, receiver.url)
        delivery_id = await publish(api, admin, user.id)

        async def finished() -> bool:
            log = await log_by_delivery(api, auth, delivery_id)
            return bool(log["status"] == "failed")

        await wait_until(finished)
        await asyncio.sleep(0.5)  # longer than every retry delay together
        log = await log_by_delivery(api, auth, delivery_id)
        assert log["status"] == "failed" and log["success"] is False
        assert log["attemptCount"] == 1
        (only,) = log["attempts"]
        assert only["statusCode"] is None
        assert only["error"] == "blocked: 127.0.0.1 is a loopback address"
        assert log["error"] == only["error"]

        test = await api.client.post("/api/webhooks/test", headers=auth)
        assert test.status_code == 200
        assert test.json()["success"] is False
        assert test.json()["details"] == "blocked: 127.0.0.1 is a loopback address"
    assert receiver.received == []


class SequenceResolver(AbstractResolver):
    """A DNS stub: each lookup of a name takes the next answer (the last one repeats)."""

    def __init__(self, answers: dict[str, Sequence[str]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        seen = self.calls.count(host)
        self.calls.append(host)
        sequence = self.answers[host]
        address = sequence[min(seen, len(sequence) - 1)]
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
        ]

    async def close(self) -> None:
        pass


@contextlib.asynccontextmanager
async def server_on(host: str, port: int) -> AsyncIterator[list[str]]:
    """A tiny HTTP server on ``host:port`` that records which paths it was asked for."""
    hits: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        yield hits
    finally:
        await runner.cleanup()


async def test_rebinding_stub_answers_public_then_loopback() -> None:
    """The resolver the sender uses: a public answer passes, the rebound one is refused."""
    inner = SequenceResolver({"rebind.test": ["93.184.216.34", "127.0.0.1"]})
    resolver = PinningResolver(TargetPolicy(), inner=inner)
    first = await resolver.resolve("rebind.test", 443, socket.AF_UNSPEC)
    assert [r["host"] for r in first] == ["93.184.216.34"]
    with pytest.raises(BlockedTarget, match=r"^blocked: rebind\.test resolves only to blocked"):
        await resolver.resolve("rebind.test", 443, socket.AF_UNSPEC)
    assert inner.calls == ["rebind.test", "rebind.test"]


@pytest.mark.parametrize("fresh_lookups", [True, False], ids=["no-dns-cache", "dns-cache"])
async def test_dns_rebinding_cannot_reach_a_blocked_address(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, fresh_lookups: bool
) -> None:
    """The name first resolves to an allowed address, then to 127.0.0.1 (where the "internal"
    receiver listens). The allowed stand-in for a public address is 127.0.0.2, put on the
    operator allow-list, so that no traffic leaves the machine."""
    inner = SequenceResolver({"rebind.test": ["127.0.0.2", "127.0.0.1"]})

    def pinning(policy: TargetPolicy) -> PinningResolver:
        return PinningResolver(policy, inner=inner)

    monkeypatch.setattr(hookline.delivery.sender, "PinningResolver", pinning)
    policy = TargetPolicy.from_settings(False, ["127.0.0.2"])
    assert policy.ip_block_reason("127.0.0.1") == "127.0.0.1 is a loopback address"
    connector = {"use_dns_cache": False, "force_close": True} if fresh_lookups else {}
    sender = make_sender(policy, **connector)
    url = f"http://rebind.test:{receiver.port}/hook"
    try:
        async with server_on("127.0.0.2", receiver.port) as allowed_hits:
            first = await sender.send(url, b"{}", {})
            assert first.kind is OutcomeKind.SUCCESS, first
            second = await sender.send(url, b"{}", {})
            if fresh_lookups:
                assert second.kind is OutcomeKind.BLOCKED, second
                assert second.error == (
                    "blocked: rebind.test resolves only to blocked addresses: "
                    "127.0.0.1 is a loopback address"
                )
                assert allowed_hits == ["/hook"]
                assert inner.calls == ["rebind.test", "rebind.test"]
            else:
                # Within the DNS cache's lifetime the checked address is reused.
                assert second.kind is OutcomeKind.SUCCESS, second
                assert allowed_hits == ["/hook", "/hook"]
    finally:
        await sender.close()
    assert receiver.received == []  # 127.0.0.1 was never reached


# --------------------------------------------------------------------------------------------
# 6. Abuse limits
# --------------------------------------------------------------------------------------------


def test_documented_limit_defaults() -> None:
    settings = make_settings("sqlite+aiosqlite:///unused.db")
    assert settings.test_rate_per_minute == 10
    assert settings.max_config_body_bytes == 64 * 1024
    assert settings.max_event_data_bytes == 256 * 1024
    assert settings.secret_grace_s == 24 * 3600
    assert settings.max_old_secrets == 3
    assert settings.timeout_s == 10
    assert settings.max_response_bytes == 64 * 1024
    assert hookline.targets.MAX_URL_LENGTH == 2048


def assert_error_shape(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["success"] is False
    assert isinstance(body["error"], str) and body["error"]
    return body


async def test_test_endpoint_is_rate_limited_per_user(
    database_url: str, receiver: Receiver
) -> None:
    settings = make_settings(database_url, test_rate_per_minute=3)
    async with running_api(settings, run_worker=False) as api:
        _, alice = await api.user("alice")
        _, bob = await api.user("bob")
        # A test that cannot be sent (no webhook yet) does not count against the limit.
        for _ in range(4):
            missing = await api.client.post("/api/webhooks/test", headers=alice)
            assert missing.status_code == 404, missing.text
        await configure(api, alice, receiver.url)
        await configure(api, bob, receiver.url)
        for _ in range(3):
            ok = await api.client.post("/api/webhooks/test", headers=alice)
            assert ok.status_code == 200 and ok.json()["success"] is True, ok.text
        limited = await api.client.post("/api/webhooks/test", headers=alice)
        body = assert_error_shape(limited, 429)
        assert "3 per minute" in body["error"]
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert len(receiver.received) == 3  # the refused call sent nothing
        # The limit is per user.
        other = await api.client.post("/api/webhooks/test", headers=bob)
        assert other.status_code == 200 and other.json()["success"] is True


async def test_config_body_over_the_cap_is_413(database_url: str) -> None:
    settings = make_settings(database_url, max_config_body_bytes=1024)
    async with running_api(settings, run_worker=False) as api:
        _, auth = await api.user()
        small = {"url": PUBLIC_URL, "enabledEvents": [EVENT]}
        assert (await api.client.post("/api/webhooks/config", headers=auth, json=small)).is_success
        big = {"url": PUBLIC_URL, "enabledEvents": [EVENT] * 100}
        assert len(json.dumps(big)) > 1024
        body = assert_error_shape(
            await api.client.post("/api/webhooks/config", headers=auth, json=big), 413
        )
        assert "1024 bytes" in body["error"]
        got = (await api.client.get("/api/webhooks/config", headers=auth)).json()
        assert got["config"]["enabledEvents"] == [EVENT]


async def test_chunked_config_body_over_the_cap_is_413(database_url: str) -> None:
    """Without Content-Length the cap is enforced while the body streams in."""
    settings = make_settings(database_url, max_config_body_bytes=1024)
    async with running_api(settings, run_worker=False) as api:
        _, auth = await api.user()
        chunk = json.dumps({"url": PUBLIC_URL, "enabledEvents": [EVENT] * 100}).encode()

        async def stream() -> AsyncIterator[bytes]:
            for start in range(0, len(chunk), 256):
                yield chunk[start : start + 256]

        response = await api.client.post(
            "/api/webhooks/config",
            headers={**auth, "Content-Type": "application/json"},
            content=stream(),
        )
        assert "content-length" not in response.request.headers
        assert_error_shape(response, 413)


async def test_event_data_over_the_cap_is_413(database_url: str) -> None:
    settings = make_settings(database_url, max_event_data_bytes=1024)
    async with running_api(settings, run_worker=False) as api:
        user, auth = await api.user()
        _, admin = await api.user("publisher", admin=True)
        await configure(api, auth, PUBLIC_URL)

        def event(padding: int) -> dict[str, Any]:
            data = {**DATA, "note": "x" * padding}
            return {"userId": user.id, "event": EVENT, "data": data}

        fits = await api.client.post("/api/events", headers=admin, json=event(100))
        assert fits.status_code == 202, fits.text
        # Over the data cap, under the body cap (the data cap plus 16 KiB of envelope).
        body = assert_error_shape(
            await api.client.post("/api/events", headers=admin, json=event(2000)), 413
        )
        assert "limit is 1024 bytes" in body["error"]
        # Far over: refused by the body-size middleware before parsing.
        assert_error_shape(
            await api.client.post("/api/events", headers=admin, json=event(64 * 1024)), 413
        )
        logs = (await api.client.get("/api/webhooks/logs", headers=auth)).json()
        assert logs["pagination"]["total"] == 1  # only the event that fit


async def test_response_read_is_capped(receiver: Receiver) -> None:
    receiver.script = [{"status": 200, "body": "y" * 200_000}]
    sender = Sender(
        timeout_s=5,
        max_response_bytes=4096,
        excerpt_chars=1024,
        concurrency=1,
        policy=TargetPolicy(allow_loopback=True),
    )
    try:
        outcome = await sender.send(receiver.url, b"{}", {})
    finally:
        await sender.close()
    assert outcome.kind is OutcomeKind.SUCCESS
    assert outcome.response_excerpt == "y" * 1024


async def test_timeout_is_enforced(receiver: Receiver) -> None:
    receiver.script = [{"status": 200, "delay_s": 1.0}]
    sender = Sender(
        timeout_s=0.3,
        max_response_bytes=1024,
        excerpt_chars=100,
        concurrency=1,
        policy=TargetPolicy(allow_loopback=True),
    )
    try:
        started = time.monotonic()
        outcome = await sender.send(receiver.url, b"{}", {})
    finally:
        await sender.close()
    assert outcome.kind is OutcomeKind.TIMEOUT
    assert outcome.error == "timeout after 0.3s"
    assert time.monotonic() - started < 1.5
