"""The fast path of the busiest reads (hookline.api.front_door.FastReads): GET
/api/webhooks/logs, /stats and /config with a plain ``Bearer`` token are served without the
framework, and answer exactly what the FastAPI routes answer; whatever the fast path does not
take gets the route's own answer. On SQLite and PostgreSQL, with real deliveries."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from hookline.api.front_door import FastReads
from tests.integration.test_publish import EXAMPLE_DATA
from tests.support import Api, Receiver, wait_until

READS = [
    "/api/webhooks/logs",
    "/api/webhooks/logs?limit=2",
    "/api/webhooks/logs?offset=1&limit=3",
    "/api/webhooks/logs?limit=100&offset=0",
    "/api/webhooks/stats",
    "/api/webhooks/config",
]


def answer(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    return response.status_code, dict(response.headers), response.content


async def served_fast(api: Api, path: str, token: str) -> tuple[int, bytes]:
    """GET ``path`` through FastReads alone, in front of an app that fails if reached."""

    async def no_route(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError(f"{path} went on to the route")

    parts = urlsplit(path)
    scope = {
        "type": "http",
        "method": "GET",
        "path": parts.path,
        "root_path": "",
        "query_string": parts.query.encode(),
        "headers": [(b"authorization", f"Bearer {token}".encode())],
        "app": api.app,
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await FastReads(no_route)(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def test_each_read_answers_as_the_route_does(api: Api, receiver: Receiver) -> None:
    """The same bytes and headers from the fast path (``Bearer``) and from the route (the
    fast path takes only that exact spelling; the route also takes ``bearer``), for a user
    with delivered, failed and retrying deliveries."""
    user, auth = await api.user()
    token = auth["Authorization"].removeprefix("Bearer ")
    saved = await api.client.post("/api/webhooks/config", headers=auth, json={"url": receiver.url})
    assert saved.status_code == 200, saved.text
    _, admin = await api.user("host-app", admin=True)
    receiver.script = [200, 500, 200, 200, 410]
    for event in ("resume.parsed", "ats.check_completed", "resume.parsed", "resume.parsed"):
        body = {"userId": user.id, "event": event, "data": EXAMPLE_DATA[event]}
        published = await api.client.post("/api/events", headers=admin, json=body)
        assert published.status_code == 202, published.text

    async def settled() -> bool:
        logs = (await api.client.get("/api/webhooks/logs", headers=auth)).json()["logs"]
        return all(item["status"] in ("succeeded", "failed") for item in logs)

    await wait_until(settled, timeout_s=20)
    for path in READS:
        fast = await api.client.get(path, headers={"Authorization": f"Bearer {token}"})
        route = await api.client.get(path, headers={"Authorization": f"bearer {token}"})
        assert fast.status_code == 200, (path, fast.text)
        assert answer(fast) == answer(route), path
        assert await served_fast(api, path, token) == (200, route.content), path
    stats = (await api.client.get("/api/webhooks/stats", headers=auth)).json()
    assert stats["total"] == 4 and stats["failed"] == 1, stats
    assert set(stats["byEvent"]) == {"resume.parsed", "ats.check_completed"}


async def test_what_the_fast_path_does_not_take_gets_the_routes_answer(api: Api) -> None:
    user, auth = await api.user()
    other, _ = await api.user("other")
    cases: list[tuple[str, dict[str, str], int, Any]] = [
        ("/api/webhooks/logs", {}, 401, "Missing Authorization header: send 'Bearer <token>'"),
        ("/api/webhooks/stats", {"Authorization": "Bearer nope"}, 401, "Invalid or revoked token"),
        ("/api/webhooks/config", {"Authorization": "Basic eDp5"}, 401, None),
        ("/api/webhooks/logs?limit=0", auth, 422, None),
        ("/api/webhooks/logs?limit=101", auth, 422, None),
        ("/api/webhooks/logs?offset=-1", auth, 422, None),
        ("/api/webhooks/logs?limit=abc", auth, 422, None),
        ("/api/webhooks/logs?event=resume.exploded", auth, 422, None),
        ("/api/webhooks/stats?endpointId=nope", auth, 404, "No endpoint with id nope"),
        (f"/api/webhooks/logs?endpointId={other.id}", auth, 404, None),
    ]
    for path, headers, status, error in cases:
        response = await api.client.get(path, headers=headers)
        assert response.status_code == status, (path, response.text)
        body = response.json()
        assert body["success"] is False, (path, body)
        if error is not None:
            assert body["error"] == error, (path, body)
    # Parameters the fast path leaves to the route still work there.
    filtered = await api.client.get(
        "/api/webhooks/logs?limit=5&event=resume.parsed&success=false", headers=auth
    )
    assert filtered.status_code == 200, filtered.text
    assert filtered.json()["pagination"] == {"total": 0, "limit": 5, "offset": 0, "hasMore": False}
    assert user.id != other.id


async def test_fast_reads_are_counted_under_their_routes(api: Api) -> None:
    _, auth = await api.user()
    for path in ("/api/webhooks/logs", "/api/webhooks/stats", "/api/webhooks/config"):
        assert (await api.client.get(path, headers=auth)).status_code == 200
    metrics = (await api.client.get("/metrics")).text
    for path in ("/api/webhooks/logs", "/api/webhooks/stats", "/api/webhooks/config"):
        assert (
            f'hookline_http_request_duration_seconds_count{{method="GET",route="{path}",'
            f'status="200"}} 1.0' in metrics
        ), path
