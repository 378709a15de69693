"""Delivery logs, log detail, statistics and the time series."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from hookline.store.schema import deliveries
from hookline.timeutil import utcnow
from tests.integration.test_publish import EXAMPLE_DATA
from tests.support import Api, Receiver, make_settings, running_api, wait_until


async def populate(api: Api, receiver: Receiver) -> tuple[str, dict[str, str]]:
    """A user with 3 resume.parsed (ok), 2 ats.check_completed (ok), 1 tailoring.failed
    that fails for good; returns (user id, auth)."""
    user, auth = await api.user()
    await api.client.post("/api/webhooks/config", headers=auth, json={"url": receiver.url})
    _, admin = await api.user("host-app", admin=True)

    async def send(event: str) -> None:
        response = await api.client.post(
            "/api/events",
            headers=admin,
            json={"userId": user.id, "event": event, "data": EXAMPLE_DATA[event]},
        )
        assert len(response.json()["deliveryIds"]) == 1

    for event in ["resume.parsed"] * 3 + ["ats.check_completed"] * 2:
        await send(event)
    await receiver.wait_for(5)
    receiver.default_status = 500
    await send("tailoring.failed")

    async def settled() -> bool:
        stats = (await api.client.get("/api/webhooks/stats", headers=auth)).json()
        return bool(stats["total"] == 6 and stats["pending"] == 0)

    await wait_until(settled, timeout_s=15)
    return user.id, auth


async def test_logs_stats_and_filters(api: Api, receiver: Receiver) -> None:
    _, auth = await populate(api, receiver)

    page = (await api.client.get("/api/webhooks/logs", headers=auth)).json()
    assert page["pagination"] == {"total": 6, "limit": 50, "offset": 0, "hasMore": False}
    item = page["logs"][0]
    assert set(item) == {
        "id", "event", "url", "success", "statusCode", "attempts", "error",
        "deliveryId", "deliveredAt", "createdAt", "endpointId", "status", "nextAttemptAt",
    }  # fmt: skip
    assert item["event"] == "tailoring.failed"  # newest first
    assert item["status"] == "failed" and item["nextAttemptAt"] is None
    assert item["success"] is False and item["attempts"] == 4 and item["statusCode"] == 500
    assert item["deliveredAt"] is None and item["error"] == "HTTP 500 Internal Server Error"
    created = [entry["createdAt"] for entry in page["logs"]]
    assert created == sorted(created, reverse=True)

    ok = (await api.client.get("/api/webhooks/logs?success=true", headers=auth)).json()
    assert ok["pagination"]["total"] == 5 and all(e["success"] for e in ok["logs"])
    bad = (await api.client.get("/api/webhooks/logs?success=false", headers=auth)).json()
    assert bad["pagination"]["total"] == 1 and bad["logs"][0]["event"] == "tailoring.failed"
    parsed = (
        await api.client.get("/api/webhooks/logs?event=resume.parsed&success=true", headers=auth)
    ).json()
    assert parsed["pagination"]["total"] == 3 and len(parsed["logs"]) == 3
    assert {e["event"] for e in parsed["logs"]} == {"resume.parsed"}

    first = (await api.client.get("/api/webhooks/logs?limit=2&offset=0", headers=auth)).json()
    second = (await api.client.get("/api/webhooks/logs?limit=2&offset=4", headers=auth)).json()
    assert first["pagination"] == {"total": 6, "limit": 2, "offset": 0, "hasMore": True}
    assert second["pagination"] == {"total": 6, "limit": 2, "offset": 4, "hasMore": False}
    assert len(second["logs"]) == 2
    assert {e["id"] for e in first["logs"]}.isdisjoint({e["id"] for e in second["logs"]})

    stats = (await api.client.get("/api/webhooks/stats", headers=auth)).json()
    assert stats == {
        "total": 6,
        "successful": 5,
        "failed": 1,
        "pending": 0,
        "successRate": "83.33",
        "averageAttempts": "1.50",  # (5 * 1 + 4) / 6
        "byEvent": {
            "resume.parsed": {"total": 3, "successful": 3, "failed": 0},
            "ats.check_completed": {"total": 2, "successful": 2, "failed": 0},
            "tailoring.failed": {"total": 1, "successful": 0, "failed": 1},
        },
    }


async def test_empty_stats(api: Api) -> None:
    _, auth = await api.user()
    stats = (await api.client.get("/api/webhooks/stats", headers=auth)).json()
    assert stats["successRate"] == "0.00" and stats["averageAttempts"] == "0.00"
    assert stats["total"] == 0 and stats["byEvent"] == {}


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("offset=-1", "offset"),
        ("success=maybe", "success"),
        ("event=resume.exploded", "event"),
    ],
)
async def test_bad_log_parameters_are_422(api: Api, query: str, name: str) -> None:
    _, auth = await api.user()
    response = await api.client.get(f"/api/webhooks/logs?{query}", headers=auth)
    assert response.status_code == 422
    assert name in response.json()["fields"]


async def test_log_detail(api: Api, receiver: Receiver) -> None:
    _, auth = await populate(api, receiver)
    failed = (await api.client.get("/api/webhooks/logs?success=false", headers=auth)).json()
    log_id = failed["logs"][0]["id"]
    detail: dict[str, Any] = (
        await api.client.get(f"/api/webhooks/logs/{log_id}", headers=auth)
    ).json()["log"]
    assert detail["status"] == "failed" and detail["attemptCount"] == 4
    assert [a["attempt"] for a in detail["attempts"]] == [1, 2, 3, 4]
    for attempt in detail["attempts"]:
        assert attempt["statusCode"] == 500 and attempt["durationMs"] >= 0
        assert attempt["createdAt"].endswith("Z") and attempt["responseExcerpt"] == "ok"
    sent = [r.body for r in receiver.received if r.headers["X-Webhook-Event"] == "tailoring.failed"]
    assert {detail["payload"].encode()} == set(sent)

    missing = await api.client.get("/api/webhooks/logs/cnope", headers=auth)
    assert missing.status_code == 404 and missing.json()["success"] is False


async def test_pages_walk_every_delivery_once_and_totals_count_open_ones(
    database_url: str,
) -> None:
    """Without a worker every delivery stays pending: the pages (a deferred join) still list
    each exactly once, newest first, and the totals count the open deliveries, also when
    another user has a bigger backlog (SQLite is told which index counts them)."""
    async with running_api(make_settings(database_url), run_worker=False) as api:
        user, auth = await api.user()
        other, _ = await api.user("other")
        for owner in (user, other):
            await api.store.save_config(
                owner.id, "http://127.0.0.1:9/hook", True, None, api.settings.events
            )
        events = ["resume.parsed", "ats.check_completed"] * 4 + ["resume.parsed"]
        published = []
        for event in events:
            result = await api.store.publish(user.id, event, EXAMPLE_DATA[event])
            published.append((event, result.delivery_ids[0]))
        for _ in range(12):
            await api.store.publish(other.id, "resume.parsed", EXAMPLE_DATA["resume.parsed"])

        async def walk(query: str, limit: int) -> tuple[list[str], int]:
            seen, total, offset = [], -1, 0
            while True:
                page = await api.client.get(
                    f"/api/webhooks/logs?limit={limit}&offset={offset}{query}", headers=auth
                )
                body = page.json()
                seen += [entry["deliveryId"] for entry in body["logs"]]
                total = body["pagination"]["total"]
                if not body["pagination"]["hasMore"]:
                    return seen, total
                offset += limit

        newest_first = [delivery_id for _, delivery_id in reversed(published)]
        assert await walk("", 2) == (newest_first, 9)
        parsed = [d for e, d in reversed(published) if e == "resume.parsed"]
        assert await walk("&event=resume.parsed", 2) == (parsed, 5)
        assert await walk("&success=false", 4) == (newest_first, 9)
        assert await walk("&success=true", 4) == ([], 0)
        stats = (await api.client.get("/api/webhooks/stats", headers=auth)).json()
        assert stats["pending"] == 9


async def test_timeseries(api: Api, receiver: Receiver) -> None:
    _, auth = await populate(api, receiver)
    for window, buckets, seconds in (("24h", 24, 3600), ("7d", 28, 21600), ("30d", 30, 86400)):
        series = (
            await api.client.get(f"/api/webhooks/stats/timeseries?window={window}", headers=auth)
        ).json()
        assert series["window"] == window and series["bucketSeconds"] == seconds
        assert len(series["buckets"]) == buckets
        assert sum(b["successful"] for b in series["buckets"]) == 5
        assert sum(b["failed"] for b in series["buckets"]) == 1
        assert series["buckets"][-1]["successful"] == 5  # all of it happened just now
    default = (await api.client.get("/api/webhooks/stats/timeseries", headers=auth)).json()
    assert default["window"] == "7d"
    bad = await api.client.get("/api/webhooks/stats/timeseries?window=1y", headers=auth)
    assert bad.status_code == 422 and "window" in bad.json()["fields"]


async def test_purge_removes_old_deliveries_and_their_counts(api: Api, receiver: Receiver) -> None:
    user_id, auth = await populate(api, receiver)
    async with api.store.db.write() as conn:
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.user_id == user_id, deliveries.c.event == "resume.parsed")
            .values(created_at=utcnow() - timedelta(days=91))
        )
    assert await api.store.purge(timedelta(days=90)) == 3
    page = (await api.client.get("/api/webhooks/logs", headers=auth)).json()
    assert page["pagination"]["total"] == 3
    stats = (await api.client.get("/api/webhooks/stats", headers=auth)).json()
    assert stats["total"] == 3 and "resume.parsed" not in stats["byEvent"]
    assert stats["averageAttempts"] == "2.00"  # (1 + 1 + 4) / 3
