"""Automatic disabling (410 Gone, the failing rule) and re-enabling, end to end: the real app
and worker, a real database (SQLite and PostgreSQL), a real receiver on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from hookline.store.schema import endpoints
from tests.integration.test_endpoints_api import BASE, create, publish
from tests.support import Api, Receiver, make_settings, running_api, wait_until


async def endpoint_of(api: Api, auth: dict[str, str], endpoint_id: str) -> dict[str, Any]:
    response = await api.client.get(f"{BASE}/{endpoint_id}", headers=auth)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["endpoint"]
    return found


async def until_disabled(api: Api, auth: dict[str, str], endpoint_id: str) -> dict[str, Any]:
    async def off() -> bool:
        return not (await endpoint_of(api, auth, endpoint_id))["enabled"]

    await wait_until(off, timeout_s=10)
    return await endpoint_of(api, auth, endpoint_id)


async def finished(api: Api, auth: dict[str, str], delivery_id: str) -> dict[str, Any]:
    """The log item of ``delivery_id`` once it is final."""
    found: dict[str, Any] = {}

    async def done() -> bool:
        logs = (await api.client.get("/api/webhooks/logs", headers=auth)).json()["logs"]
        for item in logs:
            if item["deliveryId"] == delivery_id and item["status"] in ("succeeded", "failed"):
                found.update(item)
                return True
        return False

    await wait_until(done, timeout_s=10)
    return found


async def streak(api: Api, endpoint_id: str) -> int:
    async with api.store.db.read() as conn:
        query = select(endpoints.c.failure_streak).where(endpoints.c.id == endpoint_id)
        return int((await conn.execute(query)).scalar_one())


async def test_a_410_disables_the_endpoint_at_once(database_url: str, receiver: Receiver) -> None:
    settings = make_settings(database_url, retry_delays_s=[0.6, 0.6, 0.6], poll_interval_s=0.05)
    async with running_api(settings) as api:
        user, auth = await api.user()
        endpoint_id = (await create(api, auth, url=receiver.url))["endpoint"]["id"]
        # Two events: whichever arrives first gets a 500 (and waits for a retry), the other a
        # 410, which switches the endpoint off before the retry comes due.
        receiver.script = [500, 410]
        first, second = await publish(api, user.id), await publish(api, user.id)
        endpoint = await until_disabled(api, auth, endpoint_id)
        assert endpoint["disabledReason"] == "gone"
        assert endpoint["disabledAt"].endswith("Z") and endpoint["enabled"] is False
        logs = [await finished(api, auth, first[0]), await finished(api, auth, second[0])]
        gone = [log for log in logs if log["statusCode"] == 410]
        assert len(gone) == 1 and gone[0]["attempts"] == 1  # no retry after a 410
        # The retry that came due meanwhile failed without a request.
        [retried] = [log for log in logs if log["statusCode"] != 410]
        assert retried["status"] == "failed" and retried["error"] == "webhook is disabled; not sent"
        await asyncio.sleep(1.0)
        assert len(receiver.received) == 2
        # Events published now make no delivery at all.
        assert await publish(api, user.id) == []


async def test_the_failing_rule_disables_and_one_success_resets_it(
    database_url: str, receiver: Receiver
) -> None:
    settings = make_settings(
        database_url, retry_delays_s=[], poll_interval_s=0.05, auto_disable_after_failures=2
    )
    async with running_api(settings) as api:
        user, auth = await api.user()
        endpoint_id = (await create(api, auth, url=receiver.url))["endpoint"]["id"]
        receiver.script = [500, 200, 500, 500]
        for expected_streak in (1, 0, 1):
            [delivery_id] = await publish(api, user.id)
            await finished(api, auth, delivery_id)
            assert await streak(api, endpoint_id) == expected_streak
            assert (await endpoint_of(api, auth, endpoint_id))["enabled"] is True
        [delivery_id] = await publish(api, user.id)
        await finished(api, auth, delivery_id)
        endpoint = await until_disabled(api, auth, endpoint_id)
        assert endpoint["disabledReason"] == "failing" and endpoint["disabledAt"] is not None
        assert await streak(api, endpoint_id) == 2
        assert len(receiver.received) == 4


async def test_the_failing_rule_by_time(database_url: str, receiver: Receiver) -> None:
    settings = make_settings(
        database_url, retry_delays_s=[], poll_interval_s=0.05, auto_disable_after_s=0.5
    )
    async with running_api(settings) as api:
        user, auth = await api.user()
        endpoint_id = (await create(api, auth, url=receiver.url))["endpoint"]["id"]
        receiver.default_status = 503
        [delivery_id] = await publish(api, user.id)
        await finished(api, auth, delivery_id)
        assert (await endpoint_of(api, auth, endpoint_id))["enabled"] is True
        await asyncio.sleep(0.7)  # every delivery has failed for longer than 0.5 s
        [delivery_id] = await publish(api, user.id)
        endpoint = await until_disabled(api, auth, endpoint_id)
        assert endpoint["disabledReason"] == "failing"


async def disable_by_410(api: Api, user_id: str, auth: dict[str, str], receiver: Receiver) -> str:
    """Make the user's primary endpoint answer 410 once; returns its id, now disabled."""
    config = (await api.client.get("/api/webhooks/config", headers=auth)).json()["config"]
    receiver.script = [410]
    await publish(api, user_id)
    endpoint = await until_disabled(api, auth, config["id"])
    assert endpoint["disabledReason"] == "gone"
    assert await streak(api, config["id"]) == 1
    return str(config["id"])


async def test_re_enabling_by_patch_config_or_a_successful_test_clears_the_reason(
    database_url: str, receiver: Receiver
) -> None:
    settings = make_settings(database_url, retry_delays_s=[], poll_interval_s=0.05)
    async with running_api(settings) as api:
        user, auth = await api.user()
        saved = await api.client.post(
            "/api/webhooks/config", headers=auth, json={"url": receiver.url}
        )
        assert saved.status_code == 200

        # PATCH enabled: true.
        endpoint_id = await disable_by_410(api, user.id, auth, receiver)
        patched = await api.client.patch(
            f"{BASE}/{endpoint_id}", headers=auth, json={"enabled": True}
        )
        assert patched.status_code == 200
        assert patched.json()["endpoint"]["disabledAt"] is None
        assert patched.json()["endpoint"]["disabledReason"] is None
        assert await streak(api, endpoint_id) == 0

        # The guide's POST /config with enabled: true; its GET shows the fields too.
        await disable_by_410(api, user.id, auth, receiver)
        config = (await api.client.get("/api/webhooks/config", headers=auth)).json()["config"]
        assert config["enabled"] is False and config["disabledReason"] == "gone"
        assert config["disabledAt"].endswith("Z")
        saved = await api.client.post("/api/webhooks/config", headers=auth, json={"enabled": True})
        assert saved.status_code == 200 and saved.json()["config"]["enabled"] is True
        config = (await api.client.get("/api/webhooks/config", headers=auth)).json()["config"]
        assert config["disabledAt"] is None and config["disabledReason"] is None
        assert await streak(api, endpoint_id) == 0

        # A test to a disabled endpoint is sent; when it succeeds, the endpoint is back on.
        await disable_by_410(api, user.id, auth, receiver)
        sent_before = len(receiver.received)
        tested = await api.client.post("/api/webhooks/test", headers=auth)
        assert tested.json()["success"] is True and len(receiver.received) == sent_before + 1
        endpoint = await endpoint_of(api, auth, endpoint_id)
        assert endpoint["enabled"] is True and endpoint["disabledReason"] is None
        assert await streak(api, endpoint_id) == 0
        [delivery_id] = await publish(api, user.id)
        assert (await finished(api, auth, delivery_id))["status"] == "succeeded"


async def test_switching_off_by_hand_records_user_and_a_test_does_not_lift_it(
    database_url: str, receiver: Receiver
) -> None:
    settings = make_settings(database_url, retry_delays_s=[], poll_interval_s=0.05)
    async with running_api(settings) as api:
        _, auth = await api.user()
        endpoint_id = (await create(api, auth, url=receiver.url))["endpoint"]["id"]
        off = await api.client.patch(f"{BASE}/{endpoint_id}", headers=auth, json={"enabled": False})
        endpoint = off.json()["endpoint"]
        assert endpoint["disabledReason"] == "user" and endpoint["disabledAt"].endswith("Z")
        # Switching off again keeps the first time.
        again = await api.client.patch(
            f"{BASE}/{endpoint_id}", headers=auth, json={"enabled": False}
        )
        assert again.json()["endpoint"]["disabledAt"] == endpoint["disabledAt"]
        tested = await api.client.post(f"{BASE}/{endpoint_id}/test", headers=auth)
        assert tested.json()["success"] is True and len(receiver.received) == 1
        still = await endpoint_of(api, auth, endpoint_id)
        assert still["enabled"] is False and still["disabledReason"] == "user"
        # An endpoint created switched off says so.
        created = await create(api, auth, url=receiver.url, enabled=False)
        assert created["endpoint"]["disabledReason"] == "user"
