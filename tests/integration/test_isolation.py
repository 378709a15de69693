"""The isolation matrix: one user's token never reaches another user's webhook, secret, logs
or stats; admin-only endpoints refuse user tokens; nothing answers without a token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support import Api, Receiver, make_settings, running_api, wait_until

EVENT = "resume.parsed"
DATA = {"resumeId": "r1", "fileName": "cv.pdf", "parsedAt": "2024-11-14T10:05:00Z", "success": True}


@dataclass
class World:
    """Alice (the attacker, with her own webhook) and Bob (the victim, with deliveries)."""

    api: Api
    alice_id: str
    alice: dict[str, str]
    bob_id: str
    bob: dict[str, str]
    admin: dict[str, str]
    bob_config: dict[str, Any]
    bob_log_id: str
    bob_delivery_id: str
    alice_url: str

    async def bob_view(self) -> dict[str, Any]:
        """Everything Bob can see, and his stored secrets: must not change under Alice."""
        get = self.api.client.get
        endpoint = await self.api.store.get_config(self.bob_id)
        assert endpoint is not None
        return {
            "config": (await get("/api/webhooks/config", headers=self.bob)).json(),
            "logs": (await get("/api/webhooks/logs", headers=self.bob)).json(),
            "log": (await get(f"/api/webhooks/logs/{self.bob_log_id}", headers=self.bob)).json(),
            "stats": (await get("/api/webhooks/stats", headers=self.bob)).json(),
            "series": (await get("/api/webhooks/stats/timeseries", headers=self.bob)).json(),
            "secrets": (endpoint.secret_enc, endpoint.old_secrets),
        }

    def bob_markers(self) -> list[str]:
        """Strings that would only appear in a response that leaked Bob's data."""
        return [
            self.bob_id,
            self.bob_config["id"],
            self.bob_config["url"],
            self.bob_config["secret"],
            self.bob_log_id,
            self.bob_delivery_id,
        ]


@pytest.fixture
async def world(api: Api, receiver: Receiver) -> AsyncIterator[World]:
    alice_user, alice = await api.user("alice")
    bob_user, bob = await api.user("bob")
    _, admin = await api.user("publisher", admin=True)
    alice_url = receiver.url.replace("/hook", "/alice")
    await api.client.post("/api/webhooks/config", headers=alice, json={"url": alice_url})
    saved = await api.client.post("/api/webhooks/config", headers=bob, json={"url": receiver.url})
    published = await api.client.post(
        "/api/events", headers=admin, json={"userId": bob_user.id, "event": EVENT, "data": DATA}
    )
    (delivery_id,) = published.json()["deliveryIds"]

    async def delivered() -> bool:
        logs = (await api.client.get("/api/webhooks/logs", headers=bob)).json()["logs"]
        return bool(logs) and logs[0]["success"] is True

    await wait_until(delivered)
    logs = (await api.client.get("/api/webhooks/logs", headers=bob)).json()["logs"]
    receiver.received.clear()
    yield World(
        api=api,
        alice_id=alice_user.id,
        alice=alice,
        bob_id=bob_user.id,
        bob=bob,
        admin=admin,
        bob_config=saved.json()["config"],
        bob_log_id=logs[0]["id"],
        bob_delivery_id=delivery_id,
        alice_url=alice_url,
    )


Call = Callable[[World], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class Attempt:
    """What Alice tries with her own token, and the status she must get."""

    name: str
    call: Call
    status: int


def _get(path: str) -> Call:
    async def call(w: World) -> httpx.Response:
        return await w.api.client.get(path.format(bob_log=w.bob_log_id), headers=w.alice)

    return call


def _request(method: str, path: str, body: Any = None) -> Call:
    async def call(w: World) -> httpx.Response:
        payload = body(w) if callable(body) else body
        return await w.api.client.request(method, path, headers=w.alice, json=payload)

    return call


ATTEMPTS = [
    Attempt("read config", _get("/api/webhooks/config"), 200),
    Attempt(
        "change config",
        _request("POST", "/api/webhooks/config", {"url": "http://127.0.0.1:9/x", "enabled": False}),
        200,
    ),
    Attempt("delete config", _request("DELETE", "/api/webhooks/config"), 200),
    Attempt("regenerate secret", _request("POST", "/api/webhooks/regenerate-secret"), 200),
    Attempt("send test", _request("POST", "/api/webhooks/test"), 200),
    Attempt("list logs", _get("/api/webhooks/logs"), 200),
    Attempt("list logs filtered", _get(f"/api/webhooks/logs?event={EVENT}&success=true"), 200),
    Attempt("read bob's log", _get("/api/webhooks/logs/{bob_log}"), 404),
    Attempt("stats", _get("/api/webhooks/stats"), 200),
    Attempt("timeseries", _get("/api/webhooks/stats/timeseries?window=24h"), 200),
    Attempt(
        "publish to bob",
        _request(
            "POST",
            "/api/events",
            lambda w: {"userId": w.bob_id, "event": EVENT, "data": DATA},
        ),
        403,
    ),
    Attempt(
        "publish to herself",
        _request(
            "POST",
            "/api/events",
            lambda w: {"userId": w.alice_id, "event": EVENT, "data": DATA},
        ),
        403,
    ),
]


@pytest.mark.parametrize("attempt", ATTEMPTS, ids=lambda a: a.name)
async def test_alice_never_reaches_bob(world: World, receiver: Receiver, attempt: Attempt) -> None:
    before = await world.bob_view()
    response = await attempt.call(world)
    assert response.status_code == attempt.status, response.text
    if response.status_code >= 400:
        assert response.json()["success"] is False
    asked = str(response.request.url)
    for marker in world.bob_markers():
        if marker not in asked:  # a 404 may echo the id Alice asked for, nothing more
            assert marker not in response.text, f"{attempt.name} leaked {marker!r}"
    after = await world.bob_view()
    assert after == before, f"{attempt.name} changed what Bob sees"
    # Nothing reached Bob's endpoint (a test, if any, went to Alice's own URL).
    assert all(r.path == "/alice" for r in receiver.received)


async def test_alice_sees_only_her_own_rows(world: World) -> None:
    get = world.api.client.get
    logs = (await get("/api/webhooks/logs", headers=world.alice)).json()
    assert logs["logs"] == [] and logs["pagination"]["total"] == 0
    stats = (await get("/api/webhooks/stats", headers=world.alice)).json()
    assert stats["total"] == 0 and stats["byEvent"] == {}
    series = (await get("/api/webhooks/stats/timeseries?window=24h", headers=world.alice)).json()
    assert all(b["successful"] == b["failed"] == 0 for b in series["buckets"])
    bob_series = (await get("/api/webhooks/stats/timeseries?window=24h", headers=world.bob)).json()
    assert sum(b["successful"] for b in bob_series["buckets"]) == 1  # the data exists

    # Alice's test lands in her log, not Bob's.
    test = await world.api.client.post("/api/webhooks/test", headers=world.alice)
    assert test.json()["success"] is True, test.text
    mine = (await get("/api/webhooks/logs", headers=world.alice)).json()["logs"]
    assert [log["deliveryId"] for log in mine] == [test.json()["deliveryId"]]
    assert mine[0]["url"] == world.alice_url


async def test_admin_token_is_no_master_key(world: World) -> None:
    """The admin (publishing) token is scoped to its own user on /api/webhooks too."""
    get = world.api.client.get
    detail = await get(f"/api/webhooks/logs/{world.bob_log_id}", headers=world.admin)
    assert detail.status_code == 404
    config = (await get("/api/webhooks/config", headers=world.admin)).json()
    assert config["configured"] is False
    logs = (await get("/api/webhooks/logs", headers=world.admin)).json()
    assert logs["pagination"]["total"] == 0


def _endpoints(api: Api) -> list[tuple[str, str]]:
    schema = api.app.openapi()
    return [
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
    ]


async def test_every_endpoint_needs_a_token(world: World) -> None:
    endpoints = _endpoints(world.api)
    assert len(endpoints) >= 10
    bodies: dict[str, Any] = {
        "/api/webhooks/config": {"url": "https://93.184.216.34/"},
        "/api/events": {"userId": world.bob_id, "event": EVENT, "data": DATA},
    }
    wrong = []
    for method, path in endpoints:
        url = path.replace("{log_id}", world.bob_log_id)
        for headers in ({}, {"Authorization": "Bearer hl_" + "A" * 43}):
            response = await world.api.client.request(
                method, url, headers=headers, json=bodies.get(path) if method == "POST" else None
            )
            if (
                response.status_code != 401
                or response.json().get("success") is not False
                or response.headers.get("WWW-Authenticate") != "Bearer"
            ):
                wrong.append(f"{method} {path} {headers}: {response.status_code}")
    assert wrong == []
    # And nothing changed for Bob.
    config = (await world.api.client.get("/api/webhooks/config", headers=world.bob)).json()
    assert config["config"]["url"] == world.bob_config["url"]


async def test_admin_only_endpoint_refuses_user_tokens_and_accepts_admin(world: World) -> None:
    event = {"userId": world.bob_id, "event": EVENT, "data": DATA}
    for auth in (world.alice, world.bob):
        refused = await world.api.client.post("/api/events", headers=auth, json=event)
        assert refused.status_code == 403
        assert refused.json() == {"success": False, "error": "This endpoint needs an admin token"}
    accepted = await world.api.client.post("/api/events", headers=world.admin, json=event)
    assert accepted.status_code == 202


async def test_revoked_admin_token_cannot_publish(database_url: str) -> None:
    async with running_api(make_settings(database_url), run_worker=False) as api:
        admin_user, admin = await api.user("publisher", admin=True)
        token_id, token = await api.store.create_token(admin_user.id)
        await api.store.revoke_token(token_id)
        event = {"userId": admin_user.id, "event": EVENT, "data": DATA}
        response = await api.client.post(
            "/api/events", headers={"Authorization": f"Bearer {token}"}, json=event
        )
        assert response.status_code == 401
        assert (await api.client.post("/api/events", headers=admin, json=event)).status_code == 202
