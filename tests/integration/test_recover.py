"""Recovering an endpoint's failed deliveries in a window: the API, the pace, the lease and the
cursor, against a real receiver on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from hookline.store import Status, Store
from hookline.store.schema import deliveries, tasks
from hookline.timeutil import iso_millis, utcnow
from tests.integration.test_publish import EXAMPLE_DATA
from tests.integration.test_resend import attempt
from tests.support import Api, Receiver, make_settings, running_api, wait_until

EVENT = "resume.parsed"
TASK_FIELDS = {
    "id",
    "kind",
    "endpointId",
    "status",
    "since",
    "until",
    "total",
    "done",
    "createdAt",
    "updatedAt",
    "finishedAt",
    "error",
}


def at(moment: datetime) -> str:
    """A time as a client sends it: ISO 8601 with microseconds and a Z."""
    return moment.isoformat().replace("+00:00", "Z")


async def endpoint(api: Api, auth: dict[str, str], url: str) -> str:
    response = await api.client.post("/api/webhooks/endpoints", headers=auth, json={"url": url})
    assert response.status_code == 201, response.text
    return str(response.json()["endpoint"]["id"])


async def publish(api: Api, admin: dict[str, str], user_id: str) -> list[str]:
    response = await api.client.post(
        "/api/events",
        headers=admin,
        json={"userId": user_id, "event": EVENT, "data": EXAMPLE_DATA[EVENT]},
    )
    assert response.status_code == 202, response.text
    return list(response.json()["deliveryIds"])


async def logs_of(api: Api, auth: dict[str, str], endpoint_id: str) -> dict[str, dict[str, Any]]:
    """The endpoint's log items by delivery id."""
    response = await api.client.get(
        "/api/webhooks/logs", headers=auth, params={"endpointId": endpoint_id, "limit": 100}
    )
    return {item["deliveryId"]: item for item in response.json()["logs"]}


async def settle(api: Api, auth: dict[str, str], endpoint_ids: list[str]) -> None:
    """Wait until no delivery of these endpoints is open."""

    async def settled() -> bool:
        for endpoint_id in endpoint_ids:
            items = (await logs_of(api, auth, endpoint_id)).values()
            if any(item["status"] in ("pending", "retrying") for item in items):
                return False
        return True

    await wait_until(settled, timeout_s=20)


async def finished(api: Api, auth: dict[str, str], task_id: str) -> dict[str, Any]:
    """Wait for a task to end; its last JSON."""
    last: dict[str, Any] = {}

    async def ended() -> bool:
        nonlocal last
        response = await api.client.get(f"/api/webhooks/tasks/{task_id}", headers=auth)
        assert response.status_code == 200, response.text
        last = response.json()
        return last["status"] in ("succeeded", "failed")

    await wait_until(ended, timeout_s=30, every_s=0.05)
    return last


async def tick() -> None:
    """Let the clock move on, so that times taken around a publish are strictly apart."""
    await asyncio.sleep(0.005)


async def test_recover_requeues_the_failed_deliveries_of_the_window_oldest_first(
    database_url: str, receiver: Receiver
) -> None:
    settings = make_settings(database_url, retry_delays_s=[], poll_interval_s=0.05)
    async with running_api(settings) as api:
        user, auth = await api.user()
        _, admin = await api.user("host-app", admin=True)
        mine = await endpoint(api, auth, receiver.url)
        other = await endpoint(api, auth, f"http://127.0.0.1:{receiver.port}/other")
        receiver.default_status = 500

        before_window = await publish(api, admin, user.id)
        await settle(api, auth, [mine, other])
        await tick()
        since = utcnow()
        in_window = [await publish(api, admin, user.id) for _ in range(3)]
        await settle(api, auth, [mine, other])
        receiver.default_status = 200  # one that succeeded stays as it is
        succeeded = await publish(api, admin, user.id)
        await settle(api, auth, [mine, other])
        receiver.default_status = 500
        in_window.append(await publish(api, admin, user.id))
        await settle(api, auth, [mine, other])
        await tick()
        until = utcnow()
        await tick()
        after_window = await publish(api, admin, user.id)
        await settle(api, auth, [mine, other])

        ours = [ids[0] for ids in in_window]  # the first endpoint is the primary: first
        logs = await logs_of(api, auth, mine)
        assert [logs[d]["status"] for d in ours] == ["failed"] * 4
        assert logs[succeeded[0]]["status"] == "succeeded"
        stats = (
            await api.client.get("/api/webhooks/stats", headers=auth, params={"endpointId": mine})
        ).json()
        assert (stats["successful"], stats["failed"]) == (1, 6)

        receiver.default_status = 200
        seen = len(receiver.received)
        response = await api.client.post(
            f"/api/webhooks/endpoints/{mine}/recover",
            headers=auth,
            json={"since": at(since), "until": at(until)},
        )
        assert response.status_code == 202, response.text
        task = response.json()
        assert set(task) == TASK_FIELDS
        assert response.headers["Location"] == f"/api/webhooks/tasks/{task['id']}"
        assert (task["kind"], task["endpointId"], task["total"]) == ("recover", mine, 4)
        assert task["status"] in ("queued", "running") and task["error"] is None
        assert (task["since"], task["until"]) == (iso_millis(since), iso_millis(until))

        done = await finished(api, auth, task["id"])
        assert (done["status"], done["done"], done["total"]) == ("succeeded", 4, 4)
        assert done["finishedAt"] is not None and done["error"] is None

        # Exactly those four, to that endpoint, oldest first, with the same ids and bodies.
        got = await receiver.wait_for(seen + 4)
        await asyncio.sleep(0.3)  # nothing else follows
        recovered = receiver.received[seen:]
        assert [r.headers["webhook-id"] for r in recovered] == ours
        assert {r.path for r in recovered} == {"/hook"}
        first_bodies = {r.headers["webhook-id"]: r.body for r in got[:seen]}
        assert all(r.body == first_bodies[r.headers["webhook-id"]] for r in recovered)

        async def all_succeeded() -> bool:
            items = await logs_of(api, auth, mine)
            return all(items[d]["status"] == "succeeded" for d in ours)

        await wait_until(all_succeeded)
        logs = await logs_of(api, auth, mine)
        for delivery_id in ours:
            detail = (
                await api.client.get(f"/api/webhooks/logs/{logs[delivery_id]['id']}", headers=auth)
            ).json()["log"]
            assert [a["trigger"] for a in detail["attempts"]] == ["scheduled", "recovery"]
        # Outside the window, or another endpoint's: untouched.
        assert logs[before_window[0]]["status"] == logs[after_window[0]]["status"] == "failed"
        theirs = await logs_of(api, auth, other)
        assert theirs.pop(succeeded[1])["status"] == "succeeded"
        assert {item["status"] for item in theirs.values()} == {"failed"}

        # Counted once each, as successful.
        stats = (
            await api.client.get("/api/webhooks/stats", headers=auth, params={"endpointId": mine})
        ).json()
        assert (stats["total"], stats["successful"], stats["failed"], stats["pending"]) == (
            7,
            5,
            2,
            0,
        )
        assert stats["averageAttempts"] == f"{(1 * 3 + 2 * 4) / 7:.2f}"

        # The user's tasks, newest first, and by endpoint.
        listed = (await api.client.get("/api/webhooks/tasks", headers=auth)).json()["tasks"]
        assert [t["id"] for t in listed] == [task["id"]] and listed[0] == done
        for endpoint_id, expected in ((mine, [task["id"]]), (other, [])):
            response = await api.client.get(
                "/api/webhooks/tasks", headers=auth, params={"endpointId": endpoint_id}
            )
            assert [t["id"] for t in response.json()["tasks"]] == expected


async def test_recovery_is_paced(database_url: str, receiver: Receiver) -> None:
    """At 5 a second, ten deliveries are requeued over at least 1.8 s (checked at 1.6)."""
    settings = make_settings(
        database_url, retry_delays_s=[], poll_interval_s=0.05, recovery_rate=5.0
    )
    async with running_api(settings) as api:
        user, auth = await api.user()
        _, admin = await api.user("host-app", admin=True)
        mine = await endpoint(api, auth, receiver.url)
        receiver.default_status = 500
        since = utcnow()
        for _ in range(10):
            await publish(api, admin, user.id)
        await settle(api, auth, [mine])
        receiver.default_status = 200
        seen = len(receiver.received)
        started = time.monotonic()
        response = await api.client.post(
            f"/api/webhooks/endpoints/{mine}/recover", headers=auth, json={"since": at(since)}
        )
        assert response.status_code == 202, response.text
        assert response.json()["total"] == 10
        await receiver.wait_for(seen + 10, timeout_s=20)
        arrivals = [r.at for r in receiver.received[seen:]]
        assert arrivals[-1] - arrivals[0] >= 1.6, arrivals
        assert arrivals[-1] - started >= 1.6
        done = await finished(api, auth, response.json()["id"])
        assert (done["status"], done["done"]) == ("succeeded", 10)


async def test_what_recover_refuses(database_url: str, receiver: Receiver) -> None:
    settings = make_settings(database_url, retention_days=30)
    async with running_api(settings, run_worker=False) as api:
        _, auth = await api.user()
        _, stranger = await api.user("stranger")
        mine = await endpoint(api, auth, receiver.url)
        path = f"/api/webhooks/endpoints/{mine}/recover"
        now = utcnow()

        async def refused(body: Any, status: int, headers: dict[str, str] = auth) -> str:
            response = await api.client.post(path, headers=headers, json=body)
            assert response.status_code == status, response.text
            answer = response.json()
            assert answer["success"] is False
            return str(answer["error"])

        hour_ago = at(now - timedelta(hours=1))
        assert "before until" in await refused({"since": at(now), "until": at(now)}, 422)
        later = at(now + timedelta(minutes=1))
        assert "before until" in await refused({"since": hour_ago, "until": hour_ago}, 422)
        assert "before until" in await refused({"since": later}, 422)  # until is now
        old = at(now - timedelta(days=31))
        assert "beyond retention" in await refused({"since": old}, 422)
        await refused({"since": "2024-01-01T00:00:00"}, 422)  # no offset: ambiguous
        await refused({"since": "yesterday"}, 422)
        await refused({}, 422)
        await refused({"since": hour_ago, "extra": 1}, 422)
        await refused([], 400)
        # Another user's endpoint, an unknown one, a malformed id: 404. No token: 401.
        await refused({"since": hour_ago}, 404, stranger)
        response = await api.client.post(
            "/api/webhooks/endpoints/c0000000000000000000000000/recover",
            headers=auth,
            json={"since": hour_ago},
        )
        assert response.status_code == 404
        response = await api.client.post(
            "/api/webhooks/endpoints/not-an-id!/recover", headers=auth, json={"since": hour_ago}
        )
        assert response.status_code == 404
        assert (await api.client.post(path, json={"since": hour_ago})).status_code == 401

        # Disabled: 409, enable it first.
        await api.client.patch(
            f"/api/webhooks/endpoints/{mine}", headers=auth, json={"enabled": False}
        )
        assert "enable it first" in await refused({"since": hour_ago}, 409)
        await api.client.patch(
            f"/api/webhooks/endpoints/{mine}", headers=auth, json={"enabled": True}
        )

        # A future until is now; nothing failed, so nothing to do.
        response = await api.client.post(
            path, headers=auth, json={"since": hour_ago, "until": at(now + timedelta(days=1))}
        )
        assert response.status_code == 202, response.text
        task = response.json()
        assert task["total"] == 0 and task["status"] == "queued" and task["done"] == 0
        assert now <= datetime.fromisoformat(task["until"]) + timedelta(milliseconds=1)
        assert datetime.fromisoformat(task["until"]) <= utcnow()

        # Tasks are their user's: another's, an unknown and a malformed id are 404.
        task_path = f"/api/webhooks/tasks/{task['id']}"
        assert (await api.client.get(task_path, headers=auth)).json() == task
        assert (await api.client.get(task_path, headers=stranger)).status_code == 404
        listed = (await api.client.get("/api/webhooks/tasks", headers=stranger)).json()
        assert listed == {"success": True, "tasks": []}
        unknown = "/api/webhooks/tasks/c0000000000000000000000000"
        assert (await api.client.get(unknown, headers=auth)).status_code == 404
        assert (await api.client.get("/api/webhooks/tasks/x!", headers=auth)).status_code == 404
        assert (await api.client.get(task_path)).status_code == 401
        response = await api.client.get(
            "/api/webhooks/tasks", headers=stranger, params={"endpointId": mine}
        )
        assert response.status_code == 404
        second = (await api.client.post(path, headers=auth, json={"since": hour_ago})).json()
        listed = (await api.client.get("/api/webhooks/tasks", headers=auth)).json()["tasks"]
        assert [t["id"] for t in listed] == [second["id"], task["id"]]
        response = await api.client.get("/api/webhooks/tasks", headers=auth, params={"limit": 1})
        assert [t["id"] for t in response.json()["tasks"]] == [second["id"]]
        response = await api.client.get("/api/webhooks/tasks", headers=auth, params={"limit": 0})
        assert response.status_code == 422


# --- the lease and the cursor, step by step (no worker) -------------------------------------


async def failed_deliveries(api: Api, store: Store, count: int) -> tuple[str, dict[str, str], str]:
    """A user whose one endpoint has ``count`` failed deliveries: (user id, auth, endpoint)."""
    user, auth = await api.user()
    _, admin = await api.user("host-app", admin=True)
    mine = await endpoint(api, auth, "http://127.0.0.1:9/hook")
    for _ in range(count):
        await publish(api, admin, user.id)
        await tick()
    jobs = await store.claim("w", count)
    assert len(jobs) == count
    await store.record("w", [attempt(job.delivery.id, 1, Status.FAILED) for job in jobs])
    return user.id, auth, mine


async def rows(store: Store) -> list[Any]:
    """Every delivery, oldest first."""
    async with store.db.read() as conn:
        query = select(deliveries).order_by(deliveries.c.created_at, deliveries.c.id)
        return list((await conn.execute(query)).all())


async def test_the_lease_and_the_cursor_requeue_each_delivery_once(database_url: str) -> None:
    settings = make_settings(database_url)
    async with running_api(settings, run_worker=False) as api:
        store = api.store
        user_id, auth, mine = await failed_deliveries(api, store, 5)
        since = utcnow() - timedelta(minutes=1)
        task = await store.start_recovery(user_id, mine, since, utcnow())
        assert (task.total, task.done, task.status.value) == (5, 0, "queued")

        taken = await store.take_task("a")
        assert taken is not None and taken.id == task.id and taken.lease_owner == "a"
        assert await store.take_task("b") is None  # held

        step = await store.recover_step(task.id, "a", 2)
        assert step.requeued == 2 and step.task is not None and step.task.done == 2
        assert [row.status for row in await rows(store)] == ["pending"] * 2 + ["failed"] * 3

        # a's lease runs out; b takes the task over and goes on from the cursor.
        async with store.db.write() as conn:
            await conn.execute(
                update(tasks).where(tasks.c.id == task.id).values(lease_until=utcnow())
            )
        await asyncio.sleep(0.002)
        taken = await store.take_task("b")
        assert taken is not None and taken.lease_owner == "b" and taken.done == 2
        lost = await store.recover_step(task.id, "a", 2)
        assert lost.task is None and lost.requeued == 0
        assert not await store.renew_task(task.id, "a")
        assert await store.renew_task(task.id, "b")

        # One of the rest is resent meanwhile: passed by, counted as done.
        third = (await rows(store))[2]
        assert (await store.resend(user_id, third.id)).value == "requeued"
        step = await store.recover_step(task.id, "b", 10)
        assert step.requeued == 2 and step.task is not None and step.task.done == 4
        step = await store.recover_step(task.id, "b", 10)
        assert step.task is not None and step.task.status.value == "succeeded"
        assert (step.task.done, step.task.total) == (5, 5)
        assert step.task.finished_at is not None and step.task.lease_owner is None

        after = await rows(store)
        assert [row.status for row in after] == ["pending"] * 5
        assert [row.max_attempts for row in after] == [2] * 5  # one more attempt each, once
        assert [row.next_trigger for row in after] == ["recovery"] * 2 + ["manual"] + [
            "recovery"
        ] * 2
        # Out of the counters until their attempts are recorded.
        stats = (await api.client.get("/api/webhooks/stats", headers=auth)).json()
        assert (stats["failed"], stats["pending"]) == (0, 5)

        # A task given back is taken at once by another worker.
        other = await store.start_recovery(user_id, mine, since, utcnow())
        assert other.total == 0  # nothing is failed now
        assert (await store.take_task("c")) is not None
        assert await store.release_task(other.id, "c")
        again = await store.take_task("d")
        assert again is not None and again.id == other.id and again.lease_owner == "d"


async def test_an_endpoint_deleted_or_disabled_mid_task_fails_it(database_url: str) -> None:
    settings = make_settings(database_url)
    async with running_api(settings, run_worker=False) as api:
        store = api.store
        user_id, auth, mine = await failed_deliveries(api, store, 4)
        since = utcnow() - timedelta(minutes=1)
        path = f"/api/webhooks/endpoints/{mine}"

        task = await store.start_recovery(user_id, mine, since, utcnow())
        assert await store.take_task("a") is not None
        assert (await store.recover_step(task.id, "a", 1)).requeued == 1
        await api.client.patch(path, headers=auth, json={"enabled": False})
        step = await store.recover_step(task.id, "a", 1)
        assert step.task is not None and step.requeued == 0
        assert (step.task.status.value, step.task.done, step.task.total) == ("failed", 1, 4)
        assert step.task.error is not None and "disabled" in step.task.error

        await api.client.patch(path, headers=auth, json={"enabled": True})
        task = await store.start_recovery(user_id, mine, since, utcnow())
        assert task.total == 3
        assert await store.take_task("a") is not None
        assert (await store.recover_step(task.id, "a", 1)).requeued == 1
        assert (await api.client.delete(path, headers=auth)).status_code == 200
        step = await store.recover_step(task.id, "a", 1)
        assert step.task is not None and step.task.status.value == "failed"
        assert step.task.error is not None and "deleted" in step.task.error
        shown = (await api.client.get(f"/api/webhooks/tasks/{task.id}", headers=auth)).json()
        assert (shown["status"], shown["endpointId"], shown["done"]) == ("failed", None, 1)
        assert "deleted" in shown["error"]
