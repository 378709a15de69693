"""/api/webhooks/endpoints: several endpoints per user, through the real app, a real database
and real loopback receivers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hookline.events import DEFAULT_EVENTS
from hookline.payload import guide_signature, standard_signature
from tests.integration.test_publish import EXAMPLE_DATA
from tests.support import (
    FAST_RETRIES,
    Api,
    Received,
    Receiver,
    make_settings,
    running_api,
    running_receiver,
    wait_until,
)

URL = "https://your-app.com/webhooks"
BASE = "/api/webhooks/endpoints"
ENDPOINT_KEYS = {
    "id", "url", "description", "enabled", "enabledEvents", "headers", "rateLimit", "primary",
    "createdAt", "updatedAt", "disabledAt", "disabledReason",
}  # fmt: skip


async def create(api: Api, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    """Create an endpoint (201) and return the whole answer."""
    body.setdefault("url", URL)
    response = await api.client.post(BASE, headers=auth, json=body)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def publish(api: Api, user_id: str, event: str = "resume.parsed") -> list[str]:
    """Publish as an admin; returns the delivery ids."""
    _, admin = await api.user("host-app", admin=True)
    response = await api.client.post(
        "/api/events",
        headers=admin,
        json={"userId": user_id, "event": event, "data": EXAMPLE_DATA[event]},
    )
    assert response.status_code == 202, response.text
    ids: list[str] = response.json()["deliveryIds"]
    return ids


async def settled(api: Api, auth: dict[str, str], total: int) -> None:
    """Wait until ``total`` deliveries finished and none is open."""

    async def done() -> bool:
        stats = (await api.client.get("/api/webhooks/stats", headers=auth)).json()
        return bool(stats["total"] == total and stats["pending"] == 0)

    await wait_until(done, timeout_s=15)


def signed_with(got: Received, secret: str) -> bool:
    """Both signatures of a received delivery verify with ``secret``."""
    headers = got.headers
    standard = standard_signature(
        secret, headers["webhook-id"], int(headers["webhook-timestamp"]), got.body
    )
    return bool(
        headers["X-Webhook-Signature"] == guide_signature(secret, got.body)
        and standard in headers["webhook-signature"].split(" ")
    )


@contextlib.asynccontextmanager
async def receivers(count: int) -> AsyncIterator[list[Receiver]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(running_receiver()) for _ in range(count)]


# --- CRUD ---------------------------------------------------------------------------------


async def test_crud_round_trip(api: Api) -> None:
    _, auth = await api.user()
    assert (await api.client.get(BASE, headers=auth)).json() == {"success": True, "endpoints": []}

    created = await create(
        api,
        auth,
        url=URL,
        description="Billing service",
        enabledEvents=["resume.parsed", "ats.check_failed", "resume.parsed"],
        headers={"Authorization": "Bearer abc", "X-Tenant": "acme"},
        rateLimit=5,
    )
    assert set(created) == {"success", "endpoint", "secret"} and created["success"] is True
    endpoint = created["endpoint"]
    assert set(endpoint) == ENDPOINT_KEYS
    assert endpoint["url"] == URL and endpoint["description"] == "Billing service"
    assert endpoint["enabled"] is True and endpoint["primary"] is True
    assert endpoint["enabledEvents"] == ["resume.parsed", "ats.check_failed"]  # folded
    assert endpoint["headers"] == {"Authorization": "Bearer abc", "X-Tenant": "acme"}
    assert endpoint["rateLimit"] == 5
    assert endpoint["createdAt"].endswith("Z") and len(endpoint["createdAt"]) == 24
    endpoint_id = endpoint["id"]

    defaults = (await create(api, auth, url=URL + "/2"))["endpoint"]
    assert defaults["enabled"] is True and defaults["primary"] is False
    assert defaults["enabledEvents"] == list(DEFAULT_EVENTS)
    assert defaults["headers"] == {} and defaults["rateLimit"] is None
    assert defaults["description"] == ""

    listed = (await api.client.get(BASE, headers=auth)).json()
    assert [e["id"] for e in listed["endpoints"]] == [endpoint_id, defaults["id"]]
    assert listed["endpoints"][0] == endpoint

    read = await api.client.get(f"{BASE}/{endpoint_id}", headers=auth)
    assert read.status_code == 200 and read.json() == {"success": True, "endpoint": endpoint}

    patched = await api.client.patch(
        f"{BASE}/{endpoint_id}", headers=auth, json={"url": URL + "/v2", "enabled": False}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["endpoint"] == {
        **endpoint,
        "url": URL + "/v2",
        "enabled": False,
        "updatedAt": patched.json()["endpoint"]["updatedAt"],
        "disabledAt": patched.json()["endpoint"]["disabledAt"],
        "disabledReason": "user",
    }
    assert patched.json()["endpoint"]["disabledAt"].endswith("Z")

    deleted = await api.client.delete(f"{BASE}/{endpoint_id}", headers=auth)
    assert deleted.status_code == 200
    assert deleted.json() == {"success": True, "message": "Endpoint deleted"}
    gone = await api.client.get(f"{BASE}/{endpoint_id}", headers=auth)
    assert gone.status_code == 404 and gone.json()["success"] is False
    again = await api.client.delete(f"{BASE}/{endpoint_id}", headers=auth)
    assert again.status_code == 404
    listed = (await api.client.get(BASE, headers=auth)).json()
    assert [e["id"] for e in listed["endpoints"]] == [defaults["id"]]


async def test_secret_is_shown_once(api: Api) -> None:
    _, auth = await api.user()
    created = await create(api, auth)
    secret = created["secret"]
    assert secret.startswith("whsec_")
    endpoint_id = created["endpoint"]["id"]
    for path in (BASE, f"{BASE}/{endpoint_id}"):
        text = (await api.client.get(path, headers=auth)).text
        assert secret not in text and "secret" not in text
    patched = await api.client.patch(f"{BASE}/{endpoint_id}", headers=auth, json={})
    assert patched.status_code == 200 and secret not in patched.text


async def test_other_users_endpoints_are_not_found(api: Api) -> None:
    _, owner = await api.user("owner")
    _, other = await api.user("other")
    endpoint_id = (await create(api, owner))["endpoint"]["id"]
    for method, path, body in (
        ("GET", f"{BASE}/{endpoint_id}", None),
        ("PATCH", f"{BASE}/{endpoint_id}", {"enabled": False}),
        ("DELETE", f"{BASE}/{endpoint_id}", None),
        ("POST", f"{BASE}/{endpoint_id}/regenerate-secret", None),
        ("POST", f"{BASE}/{endpoint_id}/test", None),
        ("GET", f"{BASE}/cnope", None),
        ("GET", f"{BASE}/{'x' * 65}", None),
    ):
        response = await api.client.request(method, path, headers=other, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["success"] is False
    assert (await api.client.get(BASE, headers=other)).json()["endpoints"] == []
    still = (await api.client.get(f"{BASE}/{endpoint_id}", headers=owner)).json()["endpoint"]
    assert still["enabled"] is True
    assert (await api.client.get(BASE)).status_code == 401


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "phrase"),
    [
        ({}, "url", "required"),
        ({"url": "ftp://example.com/x"}, "url", "absolute http(s) URL"),
        ({"url": "https://example.com/" + "a" * 2048}, "url", "2048"),
        ({"url": 42}, "url", "string"),
        ({"url": URL, "description": "d" * 501}, "description", "500"),
        ({"url": URL, "enabledEvents": ["resume.parsed", "nope"]}, "enabledEvents", "nope"),
        ({"url": URL, "enabled": "yes"}, "enabled", "boolean"),
        ({"url": URL, "secret": "mine"}, "secret", "not a known field"),
        ({"url": URL, "headers": ["X-Foo"]}, "headers", "dictionary"),
        ({"url": URL, "headers": {"X-Foo": 1}}, "headers.X-Foo", "string"),
    ],
)
async def test_bad_endpoint_is_422_naming_the_field(
    api: Api, body: dict[str, Any], field: str, phrase: str
) -> None:
    _, auth = await api.user()
    response = await api.client.post(BASE, headers=auth, json=body)
    assert response.status_code == 422, response.text
    assert phrase in response.json()["fields"][field]
    assert (await api.client.get(BASE, headers=auth)).json()["endpoints"] == []


async def test_url_rules_are_the_configs_in_production(database_url: str) -> None:
    async with running_api(make_settings(database_url, env="production"), False) as api:
        _, auth = await api.user()
        for url, phrase in (
            ("http://example.com/hook", "https"),
            ("https://127.0.0.1/hook", "127.0.0.1"),
            ("https://10.0.0.7/hook", "10.0.0.7"),
            ("https://[::1]/hook", "::1"),
        ):
            response = await api.client.post(BASE, headers=auth, json={"url": url})
            assert response.status_code == 422, url
            assert phrase in response.json()["fields"]["url"], response.text
        ok = await api.client.post(BASE, headers=auth, json={"url": "https://example.com/hook"})
        assert ok.status_code == 201


HEADER_REFUSALS = [
    *[
        ({name: "x"}, f"headers.{name}", "set by hookline")
        for name in ("Content-Type", "user-agent", "X-Webhook-Signature", "X-Webhook-Event",
                     "webhook-id", "Webhook-Signature", "webhook-timestamp")
    ],
    *[
        ({name: "x"}, f"headers.{name}", "hop-by-hop or framing")
        for name in ("Connection", "Keep-Alive", "Proxy-Authorization", "Proxy-Anything", "TE",
                     "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length",
                     "Content-Encoding")
    ],
    *[
        ({name: "x"}, f"headers.{name}", "not a valid header name")
        for name in ("X Foo", "X-Foo:", "X-Föo", "", "X(1)", "X\r\nY")
    ],
    *[
        ({"X-Foo": value}, "headers.X-Foo", phrase)
        for value, phrase in (
            ("a\r\nX-Injected: 1", "control characters"),
            ("a\rb", "control characters"),
            ("a\nb", "control characters"),
            ("a\x00b", "control characters"),
            ("a\tb", "control characters"),
            ("a\x1bb", "control characters"),
            ("naïve", "ASCII"),
            ("x" * 1025, "1024"),
        )
    ],
    ({"X-Foo": "a", "x-foo": "b"}, "headers.x-foo", "case-insensitive"),
    ({f"X-H{i}": "v" for i in range(21)}, "headers", "20"),
    ({f"X-H{i}": "v" * 1000 for i in range(9)}, "headers", "8192"),
]  # fmt: skip


@pytest.mark.parametrize(("headers", "field", "phrase"), HEADER_REFUSALS)
async def test_every_header_refusal(
    api: Api, headers: dict[str, str], field: str, phrase: str
) -> None:
    _, auth = await api.user()
    response = await api.client.post(BASE, headers=auth, json={"url": URL, "headers": headers})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["success"] is False and body["error"].startswith("Invalid endpoint")
    assert phrase in body["fields"][field], body
    assert (await api.client.get(BASE, headers=auth)).json()["endpoints"] == []

    # A PATCH is held to the same rules and changes nothing.
    endpoint = (await create(api, auth, headers={"X-Ok": "1"}))["endpoint"]
    patched = await api.client.patch(
        f"{BASE}/{endpoint['id']}", headers=auth, json={"headers": headers}
    )
    assert patched.status_code == 422 and field in patched.json()["fields"]
    after = (await api.client.get(f"{BASE}/{endpoint['id']}", headers=auth)).json()["endpoint"]
    assert after == endpoint


async def test_the_largest_allowed_headers_pass(api: Api) -> None:
    _, auth = await api.user()
    twenty = {f"X-H{i:02d}": "v" * 400 for i in range(20)}  # 20 * (5 + 400 + 4) = 8180 bytes
    created = await create(api, auth, headers=twenty)
    assert created["endpoint"]["headers"] == twenty


@pytest.mark.parametrize("value", [0, -1, 10_001, 1.5, "10", True, [], {}])
async def test_bad_rate_limit_is_422(api: Api, value: object) -> None:
    _, auth = await api.user()
    response = await api.client.post(BASE, headers=auth, json={"url": URL, "rateLimit": value})
    assert response.status_code == 422, response.text
    assert "rateLimit" in response.json()["fields"]


@pytest.mark.parametrize("value", [1, 10_000, None])
async def test_good_rate_limits(api: Api, value: int | None) -> None:
    _, auth = await api.user()
    created = await create(api, auth, rateLimit=value)
    assert created["endpoint"]["rateLimit"] == value


async def test_the_cap_is_422_naming_it(database_url: str) -> None:
    settings = make_settings(database_url, max_endpoints_per_user=3)
    async with running_api(settings, run_worker=False) as api:
        _, auth = await api.user()
        _, other = await api.user("other")
        ids = [(await create(api, auth, url=f"{URL}/{i}"))["endpoint"]["id"] for i in range(3)]
        response = await api.client.post(BASE, headers=auth, json={"url": URL + "/4"})
        assert response.status_code == 422
        body = response.json()
        assert body["success"] is False and "at most 3" in body["error"]
        assert "3" in body["fields"]["endpoints"]
        assert len((await api.client.get(BASE, headers=auth)).json()["endpoints"]) == 3
        await create(api, other)  # the cap is per user
        await api.client.delete(f"{BASE}/{ids[1]}", headers=auth)
        await create(api, auth, url=URL + "/5")  # room again


# --- PATCH --------------------------------------------------------------------------------


async def test_patch_changes_only_the_fields_present(api: Api) -> None:
    _, auth = await api.user()
    original = (
        await create(
            api,
            auth,
            description="first",
            enabledEvents=["resume.parsed"],
            headers={"X-A": "1"},
            rateLimit=7,
        )
    )["endpoint"]
    path = f"{BASE}/{original['id']}"

    async def patch(body: dict[str, Any]) -> dict[str, Any]:
        response = await api.client.patch(path, headers=auth, json=body)
        assert response.status_code == 200, response.text
        endpoint: dict[str, Any] = response.json()["endpoint"]
        return endpoint

    same = await patch({})
    assert {**same, "updatedAt": None} == {**original, "updatedAt": None}

    described = await patch({"description": "second"})
    assert described["description"] == "second" and described["rateLimit"] == 7
    assert described["headers"] == {"X-A": "1"} and described["enabledEvents"] == ["resume.parsed"]

    events = await patch({"enabledEvents": ["ats.check_failed", "ats.check_failed"]})
    assert events["enabledEvents"] == ["ats.check_failed"]

    headers = await patch({"headers": {"X-B": "2"}})  # replaces the whole set
    assert headers["headers"] == {"X-B": "2"}
    assert (await patch({"headers": {}}))["headers"] == {}

    assert (await patch({"rateLimit": 3}))["rateLimit"] == 3
    assert (await patch({"enabled": False}))["rateLimit"] == 3  # absent: kept
    assert (await patch({"rateLimit": None}))["rateLimit"] is None  # null: cleared
    final = await patch({"description": ""})
    assert final["description"] == "" and final["enabled"] is False
    assert final["url"] == URL and final["primary"] is True

    for body, field in (
        ({"url": None}, "url"),
        ({"enabled": None}, "enabled"),
        ({"headers": None}, "headers"),
        ({"enabledEvents": None}, "enabledEvents"),
        ({"description": None}, "description"),
        ({"url": "ftp://x.example/"}, "url"),
        ({"enabledEvents": ["bogus"]}, "enabledEvents"),
        ({"rateLimit": 0}, "rateLimit"),
        ({"primary": True}, "primary"),
        ({"secret": "whsec_x"}, "secret"),
    ):
        response = await api.client.patch(path, headers=auth, json=body)
        assert response.status_code == 422, body
        assert field in response.json()["fields"], response.text
    assert (await api.client.get(path, headers=auth)).json()["endpoint"] == final


# --- delivery -----------------------------------------------------------------------------


async def test_publishing_fans_out_to_each_subscribed_enabled_endpoint(api: Api) -> None:
    user, auth = await api.user()
    async with receivers(4) as (every, parsed_only, disabled, other_event):
        a = await create(api, auth, url=every.url, headers={"X-Tenant": "acme"})
        b = await create(
            api,
            auth,
            url=parsed_only.url,
            enabledEvents=["resume.parsed"],
            headers={"Authorization": "Bearer b-token", "x-lower": "kept as given"},
        )
        await create(api, auth, url=disabled.url, enabled=False)
        await create(api, auth, url=other_event.url, enabledEvents=["ats.check_failed"])

        delivery_ids = await publish(api, user.id, "resume.parsed")
        assert len(delivery_ids) == 2 and len(set(delivery_ids)) == 2
        await settled(api, auth, total=2)

        (got_a,) = every.received
        (got_b,) = parsed_only.received
        assert disabled.received == [] and other_event.received == []
        assert {got_a.headers["X-Webhook-Delivery-Id"], got_b.headers["webhook-id"]} == set(
            delivery_ids
        )
        assert got_a.body != got_b.body  # each delivery has its own deliveryId
        assert signed_with(got_a, a["secret"]) and not signed_with(got_a, b["secret"])
        assert signed_with(got_b, b["secret"]) and not signed_with(got_b, a["secret"])
        assert got_a.headers["X-Tenant"] == "acme" and "Authorization" not in got_a.headers
        assert got_b.headers["Authorization"] == "Bearer b-token"
        assert got_b.headers["x-lower"] == "kept as given" and "X-Tenant" not in got_b.headers
        for got in (got_a, got_b):
            assert got.headers["Content-Type"] == "application/json"
            assert got.headers["User-Agent"] == api.settings.user_agent

        # Switching one off and another on moves the next event.
        await api.client.patch(
            f"{BASE}/{a['endpoint']['id']}", headers=auth, json={"enabled": False}
        )
        assert len(await publish(api, user.id, "resume.parsed")) == 1
        await settled(api, auth, total=3)
        assert len(every.received) == 1 and len(parsed_only.received) == 2


async def test_regenerate_a_non_primary_secret(api: Api) -> None:
    user, auth = await api.user()
    async with receivers(2) as (first, second):
        primary = await create(api, auth, url=first.url)
        other = await create(api, auth, url=second.url)
        response = await api.client.post(
            f"{BASE}/{other['endpoint']['id']}/regenerate-secret", headers=auth
        )
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"success", "message", "secret", "previousSecretExpiresAt"}
        assert body["success"] is True
        assert body["message"] == "Webhook secret regenerated successfully"
        new = body["secret"]
        assert new.startswith("whsec_") and new != other["secret"]
        assert body["previousSecretExpiresAt"].endswith("Z")

        await publish(api, user.id)
        await settled(api, auth, total=2)
        (got,) = second.received
        assert got.headers["X-Webhook-Signature"] == guide_signature(new, got.body)
        assert signed_with(got, new)
        # The old secret still signs, in webhook-signature only, during the grace period.
        old = standard_signature(
            other["secret"],
            got.headers["webhook-id"],
            int(got.headers["webhook-timestamp"]),
            got.body,
        )
        assert old in got.headers["webhook-signature"].split(" ")
        (untouched,) = first.received  # the primary keeps its secret
        assert signed_with(untouched, primary["secret"])
        assert untouched.headers["webhook-signature"].count("v1,") == 1


async def test_regenerate_without_grace(database_url: str) -> None:
    settings = make_settings(database_url, secret_grace_s=0)
    async with running_api(settings, run_worker=False) as api:
        _, auth = await api.user()
        await create(api, auth)
        other = (await create(api, auth))["endpoint"]["id"]
        response = await api.client.post(f"{BASE}/{other}/regenerate-secret", headers=auth)
        assert response.status_code == 200 and response.json()["previousSecretExpiresAt"] is None


async def test_test_webhook_to_a_non_primary_endpoint(database_url: str) -> None:
    settings = make_settings(database_url, test_rate_per_minute=3, **FAST_RETRIES)
    async with running_api(settings) as api, receivers(2) as (first, second):
        _, auth = await api.user()
        await create(api, auth, url=first.url)
        other = await create(api, auth, url=second.url, enabled=False)  # tests go anyway
        other_id = other["endpoint"]["id"]

        response = await api.client.post(f"{BASE}/{other_id}/test", headers=auth)
        assert response.status_code == 200
        body = response.json()
        assert body == {
            "success": True,
            "message": "Test webhook sent successfully",
            "statusCode": 200,
            "deliveryId": body["deliveryId"],
        }
        (got,) = second.received
        assert first.received == []
        assert got.headers["X-Webhook-Event"] == "webhook.test"
        assert got.headers["webhook-id"] == body["deliveryId"] and signed_with(got, other["secret"])

        second.default_status = 503
        failed = (await api.client.post(f"{BASE}/{other_id}/test", headers=auth)).json()
        assert failed["success"] is False and failed["statusCode"] == 503
        assert failed["error"] == "Failed to deliver test webhook"

        logs = (await api.client.get("/api/webhooks/logs", headers=auth)).json()["logs"]
        assert {log["endpointId"] for log in logs} == {other_id}

        # One limit for the guide's /test and every endpoint's.
        assert (await api.client.post("/api/webhooks/test", headers=auth)).status_code == 200
        limited = await api.client.post(f"{BASE}/{other_id}/test", headers=auth)
        assert limited.status_code == 429 and "Retry-After" in limited.headers


async def test_delete_keeps_the_log_and_fails_waiting_deliveries(database_url: str) -> None:
    settings = make_settings(database_url, retry_delays_s=[1.0, 1.0, 1.0], poll_interval_s=0.05)
    async with running_api(settings) as api, running_receiver() as receiver:
        user, auth = await api.user()
        await create(api, auth, url=URL)  # the primary stays
        doomed = (await create(api, auth, url=receiver.url))["endpoint"]["id"]
        receiver.default_status = 500
        await publish(api, user.id)
        await receiver.wait_for(1)
        assert (await api.client.delete(f"{BASE}/{doomed}", headers=auth)).status_code == 200

        async def failed() -> bool:
            logs = (await api.client.get("/api/webhooks/logs?success=false", headers=auth)).json()
            return any(log["error"] == "webhook configuration was deleted" for log in logs["logs"])

        await wait_until(failed, timeout_s=10)
        assert len(receiver.received) == 1  # no retry went out
        logs = (await api.client.get("/api/webhooks/logs", headers=auth)).json()["logs"]
        gone = [log for log in logs if log["error"] == "webhook configuration was deleted"]
        assert len(gone) == 1 and gone[0]["endpointId"] is None
        assert gone[0]["attempts"] == 2  # the one sent, and the one refused when due
        filtered = await api.client.get(f"/api/webhooks/logs?endpointId={doomed}", headers=auth)
        assert filtered.status_code == 404


# --- logs and stats -----------------------------------------------------------------------


async def test_logs_and_stats_filtered_by_endpoint(api: Api) -> None:
    user, auth = await api.user()
    _, stranger = await api.user("stranger")
    foreign = (await create(api, stranger))["endpoint"]["id"]
    async with receivers(2) as (every, parsed_only):
        a = (await create(api, auth, url=every.url))["endpoint"]["id"]
        b = (await create(api, auth, url=parsed_only.url, enabledEvents=["resume.parsed"]))[
            "endpoint"
        ]["id"]
        for event in ("resume.parsed", "resume.parsed", "ats.check_completed"):
            await publish(api, user.id, event)
        await settled(api, auth, total=5)

    everything = (await api.client.get("/api/webhooks/logs", headers=auth)).json()
    assert everything["pagination"]["total"] == 5
    assert sorted(log["endpointId"] for log in everything["logs"]) == sorted([a] * 3 + [b] * 2)

    only_b = (await api.client.get(f"/api/webhooks/logs?endpointId={b}", headers=auth)).json()
    assert only_b["pagination"] == {"total": 2, "limit": 50, "offset": 0, "hasMore": False}
    assert {log["endpointId"] for log in only_b["logs"]} == {b}
    assert {log["url"] for log in only_b["logs"]} == {parsed_only.url}
    combined = await api.client.get(
        f"/api/webhooks/logs?endpointId={a}&event=ats.check_completed&success=true", headers=auth
    )
    assert combined.json()["pagination"]["total"] == 1

    detail = await api.client.get(f"/api/webhooks/logs/{only_b['logs'][0]['id']}", headers=auth)
    assert detail.json()["log"]["endpointId"] == b

    stats_a = (await api.client.get(f"/api/webhooks/stats?endpointId={a}", headers=auth)).json()
    assert stats_a["total"] == 3 and stats_a["successful"] == 3 and stats_a["pending"] == 0
    assert stats_a["byEvent"] == {
        "resume.parsed": {"total": 2, "successful": 2, "failed": 0},
        "ats.check_completed": {"total": 1, "successful": 1, "failed": 0},
    }
    stats_b = (await api.client.get(f"/api/webhooks/stats?endpointId={b}", headers=auth)).json()
    assert stats_b["total"] == 2 and set(stats_b["byEvent"]) == {"resume.parsed"}
    all_stats = (await api.client.get("/api/webhooks/stats", headers=auth)).json()
    assert all_stats["total"] == 5

    series = await api.client.get(
        f"/api/webhooks/stats/timeseries?window=24h&endpointId={b}", headers=auth
    )
    assert series.status_code == 200
    assert sum(bucket["successful"] for bucket in series.json()["buckets"]) == 2

    for path in ("/api/webhooks/logs", "/api/webhooks/stats", "/api/webhooks/stats/timeseries"):
        for endpoint_id in (foreign, "cnope"):
            response = await api.client.get(f"{path}?endpointId={endpoint_id}", headers=auth)
            assert response.status_code == 404, (path, response.text)
            assert response.json()["success"] is False
        too_long = await api.client.get(f"{path}?endpointId={'c' * 65}", headers=auth)
        assert too_long.status_code == 422 and "endpointId" in too_long.json()["fields"]


# --- the guide's webhook is the primary endpoint ------------------------------------------


async def test_new_api_only_user_gets_a_primary(api: Api, receiver: Receiver) -> None:
    _, auth = await api.user()
    first = await create(api, auth, url=receiver.url)
    second = await create(api, auth, url=URL)
    assert first["endpoint"]["primary"] is True and second["endpoint"]["primary"] is False

    config = (await api.client.get("/api/webhooks/config", headers=auth)).json()
    assert config["configured"] is True
    assert config["config"]["id"] == first["endpoint"]["id"]
    assert config["config"]["url"] == receiver.url

    tested = (await api.client.post("/api/webhooks/test", headers=auth)).json()
    assert tested["success"] is True
    (got,) = receiver.received
    assert signed_with(got, first["secret"])


async def test_config_keeps_managing_the_primary(api: Api) -> None:
    _, auth = await api.user()
    saved = await api.client.post("/api/webhooks/config", headers=auth, json={"url": URL})
    primary_id = saved.json()["config"]["id"]
    extra = (await create(api, auth, url=URL + "/extra"))["endpoint"]
    assert extra["primary"] is False

    listed = (await api.client.get(BASE, headers=auth)).json()["endpoints"]
    assert [(e["id"], e["primary"]) for e in listed] == [(primary_id, True), (extra["id"], False)]

    config = (await api.client.get("/api/webhooks/config", headers=auth)).json()["config"]
    assert config["id"] == primary_id and config["url"] == URL

    # The config endpoint changes the primary only; a PATCH on the primary shows in /config.
    await api.client.post("/api/webhooks/config", headers=auth, json={"enabled": False})
    assert (await api.client.get(f"{BASE}/{extra['id']}", headers=auth)).json()["endpoint"] == extra
    await api.client.patch(f"{BASE}/{primary_id}", headers=auth, json={"url": URL + "/v2"})
    config = (await api.client.get("/api/webhooks/config", headers=auth)).json()["config"]
    assert config["url"] == URL + "/v2" and config["enabled"] is False

    # Deleting the guide's webhook leaves the others.
    assert (await api.client.delete("/api/webhooks/config", headers=auth)).status_code == 200
    left = (await api.client.get(BASE, headers=auth)).json()["endpoints"]
    assert [e["id"] for e in left] == [extra["id"]]
    assert (await api.client.get("/api/webhooks/config", headers=auth)).json()[
        "configured"
    ] is False
    # The next endpoint made becomes the primary again; the older one stays as it was.
    fresh = (await create(api, auth, url=URL + "/fresh"))["endpoint"]
    assert fresh["primary"] is True
    config = (await api.client.get("/api/webhooks/config", headers=auth)).json()["config"]
    assert config["id"] == fresh["id"]
    listed = (await api.client.get(BASE, headers=auth)).json()["endpoints"]
    assert [(e["id"], e["primary"]) for e in listed] == [(fresh["id"], True), (extra["id"], False)]
