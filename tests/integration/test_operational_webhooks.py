"""Operational webhooks end to end: notices about endpoints (endpoint.disabled,
endpoint.failing, endpoint.recovered) delivered signed to real receivers by the same engine,
with retries and logs, never to the endpoint they describe; the admin API that manages them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from hookline import ids
from hookline.receiver import Verifier, WebhookEvent
from hookline.store import NotFound
from tests.integration.test_auto_disable import endpoint_of, finished, until_disabled
from tests.integration.test_endpoints_api import BASE, create, publish, receivers
from tests.support import Api, Receiver, make_settings, running_api, wait_until

OPS = "/api/admin/operational-webhooks"
LOGS = "/api/admin/operational-logs"


def verified(receiver: Receiver, secret: str) -> list[WebhookEvent]:
    """Every request the receiver got, verified with ``secret`` (raises if one does not)."""
    verifier = Verifier(secret)
    return [verifier.verify(got.body, got.headers) for got in receiver.received]


async def notices(receiver: Receiver, secret: str, count: int) -> list[WebhookEvent]:
    await receiver.wait_for(count, timeout_s=10)
    return verified(receiver, secret)


async def admin(api: Api) -> dict[str, str]:
    _, auth = await api.user("operator-person", admin=True)
    return auth


async def add_hook(api: Api, auth: dict[str, str], url: str, **body: Any) -> tuple[str, str]:
    response = await api.client.post(OPS, headers=auth, json={"url": url, **body})
    assert response.status_code == 201, response.text
    return response.json()["webhook"]["id"], response.json()["secret"]


async def test_the_settings_webhook_gets_endpoint_disabled_signed(database_url: str) -> None:
    secret = ids.new_secret()
    async with receivers(2) as (ops, target):
        settings = make_settings(
            database_url,
            retry_delays_s=[],
            poll_interval_s=0.05,
            operational_webhook_url=ops.url,
            operational_webhook_secret=secret,
        )
        async with running_api(settings) as api:
            user, auth = await api.user()
            endpoint_id = (await create(api, auth, url=target.url))["endpoint"]["id"]
            target.script = [410]
            await publish(api, user.id)
            endpoint = await until_disabled(api, auth, endpoint_id)
            [notice] = await notices(ops, secret, 1)
            assert notice.event == "endpoint.disabled"
            assert notice.data == {
                "endpointId": endpoint_id,
                "userId": user.id,
                "url": target.url,
                "reason": "gone",
                "disabledAt": endpoint["disabledAt"],
                "failureStreak": 1,
                "failingSince": notice.data["failingSince"],
            }
            assert str(notice.data["failingSince"]).endswith("Z")
            assert len(target.received) == 1  # nothing about it goes to the endpoint itself
            # The reserved user is not a user: not listed, no token.
            assert "operator" not in {u.id for u in await api.store.list_users()}
            try:
                await api.store.create_token("operator")
                raise AssertionError("a token was issued to the reserved user")
            except NotFound:
                pass
            listed = (await api.client.get(OPS, headers=await admin(api))).json()["webhooks"]
            assert [(h["url"], h["fromSettings"]) for h in listed] == [(ops.url, True)]


async def test_failing_once_a_day_and_recovered_with_retries_and_logs(database_url: str) -> None:
    settings = make_settings(
        database_url,
        retry_delays_s=[0.05],
        poll_interval_s=0.05,
        failing_notice_after=2,
    )
    async with receivers(2) as (ops, target), running_api(settings) as api:
        auth = await admin(api)
        hook_id, secret = await add_hook(api, auth, ops.url)
        user, user_auth = await api.user()
        endpoint_id = (await create(api, user_auth, url=target.url))["endpoint"]["id"]
        target.default_status = 500
        ops.script = [503]  # the first notice is retried

        async def fail_one() -> None:
            [delivery_id] = await publish(api, user.id)
            assert (await finished(api, user_auth, delivery_id))["status"] == "failed"

        await fail_one()
        await fail_one()  # the streak reaches 2: endpoint.failing
        got = await notices(ops, secret, 2)
        assert [n.event for n in got] == ["endpoint.failing"] * 2  # one notice, two attempts
        assert got[0].delivery_id == got[1].delivery_id
        assert got[1].data["endpointId"] == endpoint_id and got[1].data["failureStreak"] == 2

        target.default_status = 200  # a success ends the noticed streak
        [delivery_id] = await publish(api, user.id)
        await finished(api, user_auth, delivery_id)
        got = await notices(ops, secret, 3)
        assert got[2].event == "endpoint.recovered"
        assert got[2].data["recoveredBy"] == "delivery" and got[2].data["endpointId"] == endpoint_id

        target.default_status = 500  # the same day, the streak crosses 2 again: no notice
        for _ in range(3):
            await fail_one()
        await asyncio.sleep(0.5)
        assert len(ops.received) == 3

        # The notices' log: the retried one shows both attempts.
        logs = (await api.client.get(LOGS, headers=auth)).json()
        assert [item["event"] for item in logs["logs"]] == [
            "endpoint.recovered",
            "endpoint.failing",
        ]
        assert all(item["endpointId"] == hook_id for item in logs["logs"])
        failing_log = logs["logs"][1]
        assert failing_log["attempts"] == 2 and failing_log["status"] == "succeeded"
        detail = (await api.client.get(f"{LOGS}/{failing_log['id']}", headers=auth)).json()
        assert [a["statusCode"] for a in detail["log"]["attempts"]] == [503, 200]
        by_hook = await api.client.get(f"{LOGS}?webhookId={hook_id}", headers=auth)
        assert by_hook.json()["pagination"]["total"] == 2
        # The user sees none of it.
        user_logs = (await api.client.get("/api/webhooks/logs", headers=user_auth)).json()
        assert {item["event"] for item in user_logs["logs"]} == {"resume.parsed"}


async def test_a_notice_is_never_sent_to_the_endpoint_it_describes(database_url: str) -> None:
    settings = make_settings(database_url, retry_delays_s=[], poll_interval_s=0.05)
    async with receivers(3) as (dying, healthy, target), running_api(settings) as api:
        auth = await admin(api)
        dying_id, dying_secret = await add_hook(api, auth, dying.url)
        healthy_id, healthy_secret = await add_hook(api, auth, healthy.url)
        user, user_auth = await api.user()
        endpoint_id = (await create(api, user_auth, url=target.url))["endpoint"]["id"]
        # The user's endpoint answers 410: both operational webhooks are told; the first
        # answers 410 too, which disables it: only the other hears of that.
        target.script = [410]
        dying.script = [410]
        await publish(api, user.id)
        await until_disabled(api, user_auth, endpoint_id)
        about_hook = None
        for _ in range(100):
            hooks = (await api.client.get(OPS, headers=auth)).json()["webhooks"]
            about_hook = next(h for h in hooks if h["id"] == dying_id)
            if about_hook["disabledReason"] == "gone" and len(healthy.received) >= 2:
                break
            await asyncio.sleep(0.05)
        assert about_hook is not None and about_hook["disabledReason"] == "gone"
        got = await notices(healthy, healthy_secret, 2)
        assert {(n.event, n.data["endpointId"]) for n in got} == {
            ("endpoint.disabled", endpoint_id),
            ("endpoint.disabled", dying_id),
        }
        await asyncio.sleep(0.3)
        [only] = verified(dying, dying_secret)
        assert only.data["endpointId"] == endpoint_id
        # Switching the dying one back on tells the healthy one (recovered by re-enabling).
        patched = await api.client.patch(f"{OPS}/{dying_id}", headers=auth, json={"enabled": True})
        assert patched.status_code == 200 and patched.json()["webhook"]["disabledAt"] is None
        got = await notices(healthy, healthy_secret, 3)
        assert (got[2].event, got[2].data["endpointId"]) == ("endpoint.recovered", dying_id)
        assert got[2].data["recoveredBy"] == "reenable"
        assert healthy_id != dying_id


async def test_re_enabling_a_user_endpoint_sends_recovered(database_url: str) -> None:
    settings = make_settings(database_url, retry_delays_s=[], poll_interval_s=0.05)
    async with receivers(2) as (ops, target), running_api(settings) as api:
        auth = await admin(api)
        _, secret = await add_hook(api, auth, ops.url, enabledEvents=["endpoint.recovered"])
        user, user_auth = await api.user()
        endpoint_id = (await create(api, user_auth, url=target.url))["endpoint"]["id"]
        target.script = [410]
        await publish(api, user.id)
        await until_disabled(api, user_auth, endpoint_id)
        # Subscribed to endpoint.recovered only: nothing yet.
        await asyncio.sleep(0.3)
        assert ops.received == []
        tested = await api.client.post(f"{BASE}/{endpoint_id}/test", headers=user_auth)
        assert tested.json()["success"] is True
        [notice] = await notices(ops, secret, 1)
        assert notice.event == "endpoint.recovered" and notice.data["recoveredBy"] == "reenable"
        assert (await endpoint_of(api, user_auth, endpoint_id))["enabled"] is True


async def test_the_admin_api(database_url: str, receiver: Receiver) -> None:
    secret = ids.new_secret()
    settings = make_settings(
        database_url, operational_webhook_url=receiver.url, operational_webhook_secret=secret
    )
    async with running_api(settings, run_worker=False) as api:
        auth = await admin(api)
        _, user_auth = await api.user()
        assert (await api.client.get(OPS, headers=user_auth)).status_code == 403
        assert (await api.client.get(OPS)).status_code == 401
        await api.store.sync_operational_settings()

        hook_id, hook_secret = await add_hook(
            api,
            auth,
            receiver.url + "/ops",
            description="pager",
            enabledEvents=["endpoint.disabled", "endpoint.disabled"],
        )
        assert hook_secret.startswith("whsec_")
        hooks = (await api.client.get(OPS, headers=auth)).json()["webhooks"]
        assert [h["fromSettings"] for h in hooks] == [True, False]
        settings_id = hooks[0]["id"]
        one = (await api.client.get(f"{OPS}/{hook_id}", headers=auth)).json()["webhook"]
        assert one["enabledEvents"] == ["endpoint.disabled"] and one["description"] == "pager"
        assert one["disabledAt"] is None and "secret" not in str(one)

        off = await api.client.patch(f"{OPS}/{hook_id}", headers=auth, json={"enabled": False})
        assert off.json()["webhook"]["disabledReason"] == "user"
        refused = await api.client.post(
            OPS, headers=auth, json={"url": receiver.url, "enabledEvents": ["resume.parsed"]}
        )
        assert refused.status_code == 422
        assert (
            await api.client.patch(f"{OPS}/{hook_id}", headers=auth, json={"url": None})
        ).status_code == 422
        assert (
            await api.client.patch(f"{OPS}/{settings_id}", headers=auth, json={"url": receiver.url})
        ).status_code == 409
        assert (await api.client.delete(f"{OPS}/{settings_id}", headers=auth)).status_code == 409
        assert (await api.client.delete(f"{OPS}/{hook_id}", headers=auth)).status_code == 200
        assert (await api.client.get(f"{OPS}/{hook_id}", headers=auth)).status_code == 404
        assert (await api.client.get(f"{OPS}/not-an-id!", headers=auth)).status_code == 404
        # A user's endpoint id is not an operational webhook, nor the other way round.
        user_endpoint = (await create(api, user_auth, url=receiver.url))["endpoint"]["id"]
        assert (await api.client.get(f"{OPS}/{user_endpoint}", headers=auth)).status_code == 404
        assert (await api.client.get(f"{BASE}/{settings_id}", headers=user_auth)).status_code == 404


async def test_a_user_who_never_uses_these_features_sees_nothing_new(
    database_url: str, receiver: Receiver
) -> None:
    settings = make_settings(database_url, retry_delays_s=[], poll_interval_s=0.05)
    async with running_api(settings) as api:
        user, auth = await api.user()
        await api.client.post("/api/webhooks/config", headers=auth, json={"url": receiver.url})
        [delivery_id] = await publish(api, user.id)
        assert (await finished(api, auth, delivery_id))["status"] == "succeeded"
        config = (await api.client.get("/api/webhooks/config", headers=auth)).json()["config"]
        assert config["disabledAt"] is None and config["disabledReason"] is None
        assert (await api.client.get(OPS, headers=await admin(api))).json()["webhooks"] == []

        async def nothing_queued() -> bool:
            return (await api.store.stats(user.id))[1] == 0

        await wait_until(nothing_queued)


def test_the_settings_take_a_url_and_a_secret_together() -> None:
    url = "https://ops.example.com/hook"
    with pytest.raises(ValidationError, match="together, or neither"):
        make_settings("sqlite+aiosqlite:///unused.db", operational_webhook_url=url)
    with pytest.raises(ValidationError, match="whsec_"):
        make_settings(
            "sqlite+aiosqlite:///unused.db",
            operational_webhook_url=url,
            operational_webhook_secret="hunter2",
        )
    ok = make_settings(
        "sqlite+aiosqlite:///unused.db",
        operational_webhook_url=url,
        operational_webhook_secret=ids.new_secret(),
    )
    assert ok.operational_webhook_url == url
