"""The guide's configuration endpoints, through the real app and a real database."""

from __future__ import annotations

import base64

import pytest

from hookline.events import DEFAULT_EVENTS
from tests.support import Api, make_settings, running_api

URL = "https://your-app.com/webhooks"


async def test_no_config_yet(api: Api) -> None:
    _, auth = await api.user()
    response = await api.client.get("/api/webhooks/config", headers=auth)
    assert response.status_code == 200
    assert response.json() == {
        "configured": False,
        "config": None,
        "availableEvents": list(DEFAULT_EVENTS),
    }


async def test_create_read_update_regenerate_delete(api: Api) -> None:
    _, auth = await api.user()
    events = ["resume.parsed", "ats.check_completed", "tailoring.completed"]
    created = await api.client.post(
        "/api/webhooks/config",
        headers=auth,
        json={"url": URL, "enabled": True, "enabledEvents": events},
    )
    assert created.status_code == 200
    body = created.json()
    assert body["success"] is True
    assert body["message"] == "Webhook configuration saved successfully"
    config = body["config"]
    assert set(config) == {"id", "url", "secret", "enabled", "enabledEvents"}
    assert config["url"] == URL and config["enabled"] is True and config["enabledEvents"] == events
    assert config["id"].startswith("c") and len(config["id"]) == 25
    secret = config["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32

    read = (await api.client.get("/api/webhooks/config", headers=auth)).json()
    assert read["configured"] is True
    assert set(read["config"]) == {
        "id",
        "url",
        "enabled",
        "enabledEvents",
        "createdAt",
        "updatedAt",
        "disabledAt",
        "disabledReason",
    }
    assert read["config"]["disabledAt"] is None and read["config"]["disabledReason"] is None
    assert "secret" not in str(read)
    assert read["config"]["createdAt"].endswith("Z")

    updated = await api.client.post(
        "/api/webhooks/config", headers=auth, json={"url": URL + "/v2", "enabled": False}
    )
    assert updated.status_code == 200
    assert updated.json()["config"]["secret"] == secret  # an update keeps the secret
    assert updated.json()["config"]["enabledEvents"] == events  # omitted fields keep their value
    assert updated.json()["config"]["id"] == config["id"]

    regenerated = await api.client.post("/api/webhooks/regenerate-secret", headers=auth)
    assert regenerated.status_code == 200
    regen = regenerated.json()
    assert regen["success"] is True
    assert regen["message"] == "Webhook secret regenerated successfully"
    assert regen["secret"].startswith("whsec_") and regen["secret"] != secret
    assert regen["previousSecretExpiresAt"].endswith("Z")

    deleted = await api.client.delete("/api/webhooks/config", headers=auth)
    assert deleted.status_code == 200
    assert deleted.json() == {
        "success": True,
        "message": "Webhook configuration deleted successfully",
    }
    again = (await api.client.get("/api/webhooks/config", headers=auth)).json()
    assert again["configured"] is False and again["config"] is None


async def test_create_defaults_to_every_event_and_enabled(api: Api) -> None:
    _, auth = await api.user()
    response = await api.client.post("/api/webhooks/config", headers=auth, json={"url": URL})
    assert response.status_code == 200
    assert response.json()["config"]["enabledEvents"] == list(DEFAULT_EVENTS)
    assert response.json()["config"]["enabled"] is True


async def test_duplicate_events_are_folded(api: Api) -> None:
    _, auth = await api.user()
    events = ["resume.parsed", "ats.check_failed", "resume.parsed"]
    response = await api.client.post(
        "/api/webhooks/config", headers=auth, json={"url": URL, "enabledEvents": events}
    )
    assert response.json()["config"]["enabledEvents"] == ["resume.parsed", "ats.check_failed"]


@pytest.mark.parametrize(
    ("payload", "field", "phrase"),
    [
        ({"url": "ftp://example.com/x"}, "url", "absolute http(s) URL"),
        ({"url": "/relative/path"}, "url", "absolute http(s) URL"),
        ({"url": "https://"}, "url", "absolute http(s) URL"),
        ({"url": "https://example.com/" + "a" * 2048}, "url", "2048"),
        ({"url": "https://exa mple.com/"}, "url", "spaces"),
        ({"url": "https://example.com:99999/"}, "url", "not a valid URL"),
        ({"url": 42}, "url", "string"),
        ({"url": URL, "enabled": "yes"}, "enabled", "boolean"),
        ({"url": URL, "enabledEvents": "resume.parsed"}, "enabledEvents", "list"),
        (
            {"url": URL, "enabledEvents": ["resume.parsed", "nope", "zzz"]},
            "enabledEvents",
            "nope, zzz",
        ),
        ({"url": URL, "secret": "mine"}, "secret", "not a known field"),
        ({"enabled": True}, "url", "required"),
    ],
)
async def test_bad_config_is_422_naming_the_field(
    api: Api, payload: dict[str, object], field: str, phrase: str
) -> None:
    _, auth = await api.user()
    response = await api.client.post("/api/webhooks/config", headers=auth, json=payload)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["success"] is False and body["error"]
    assert phrase in body["fields"][field]
    assert (await api.client.get("/api/webhooks/config", headers=auth)).json()[
        "configured"
    ] is False


async def test_a_rejected_update_changes_nothing(api: Api) -> None:
    _, auth = await api.user()
    await api.client.post("/api/webhooks/config", headers=auth, json={"url": URL})
    before = (await api.client.get("/api/webhooks/config", headers=auth)).json()
    bad = await api.client.post(
        "/api/webhooks/config",
        headers=auth,
        json={"url": URL + "/new", "enabledEvents": ["resume.parsed", "bogus"]},
    )
    assert bad.status_code == 422
    assert (await api.client.get("/api/webhooks/config", headers=auth)).json() == before


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"[1, 2]", "application/json", 400),
        (b'"text"', "application/json", 400),
        (b"{not json", "application/json", 400),
        (b"", "application/json", 400),
        (b"url=https://x.com", "application/x-www-form-urlencoded", 415),
    ],
)
async def test_body_must_be_a_json_object(
    api: Api, content: bytes, content_type: str, status: int
) -> None:
    _, auth = await api.user()
    response = await api.client.post(
        "/api/webhooks/config",
        headers={**auth, "Content-Type": content_type},
        content=content,
    )
    assert response.status_code == status, response.text
    assert response.json()["success"] is False


async def test_https_required_in_production(database_url: str) -> None:
    settings = make_settings(database_url, env="production")
    async with running_api(settings, run_worker=False) as api:
        _, auth = await api.user()
        response = await api.client.post(
            "/api/webhooks/config", headers=auth, json={"url": "http://example.com/hook"}
        )
        assert response.status_code == 422
        assert "https" in response.json()["fields"]["url"]
        ok = await api.client.post(
            "/api/webhooks/config", headers=auth, json={"url": "https://example.com/hook"}
        )
        assert ok.status_code == 200


async def test_regenerate_and_delete_without_config_are_404(api: Api) -> None:
    _, auth = await api.user()
    for method, path in (
        ("POST", "/api/webhooks/regenerate-secret"),
        ("DELETE", "/api/webhooks/config"),
        ("POST", "/api/webhooks/test"),
    ):
        response = await api.client.request(method, path, headers=auth)
        assert response.status_code == 404, path
        assert response.json()["success"] is False


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer not-a-token"],
)
async def test_bad_tokens_get_401_json(api: Api, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = await api.client.get("/api/webhooks/config", headers=headers)
    assert response.status_code == 401
    assert response.json()["success"] is False and response.json()["error"]
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_revoked_token_gets_401(api: Api) -> None:
    user, auth = await api.user()
    token_id, token = await api.store.create_token(user.id)
    fresh = {"Authorization": f"Bearer {token}"}
    assert (await api.client.get("/api/webhooks/config", headers=fresh)).status_code == 200
    await api.store.revoke_token(token_id)
    assert (await api.client.get("/api/webhooks/config", headers=fresh)).status_code == 401
    assert (await api.client.get("/api/webhooks/config", headers=auth)).status_code == 200


async def test_users_never_see_each_others_config(api: Api) -> None:
    _, alice = await api.user("alice")
    _, bob = await api.user("bob")
    await api.client.post("/api/webhooks/config", headers=alice, json={"url": URL})
    assert (await api.client.get("/api/webhooks/config", headers=bob)).json()["configured"] is False
    assert (await api.client.delete("/api/webhooks/config", headers=bob)).status_code == 404
    assert (
        await api.client.post("/api/webhooks/regenerate-secret", headers=bob)
    ).status_code == 404
    await api.client.post("/api/webhooks/config", headers=bob, json={"url": URL + "/bob"})
    mine = (await api.client.get("/api/webhooks/config", headers=alice)).json()
    assert mine["config"]["url"] == URL


async def test_custom_event_catalog(database_url: str) -> None:
    settings = make_settings(database_url, events="invoice.paid, invoice.failed")
    assert settings.events == ["invoice.paid", "invoice.failed"]
    async with running_api(settings, run_worker=False) as api:
        _, auth = await api.user()
        got = (await api.client.get("/api/webhooks/config", headers=auth)).json()
        assert got["availableEvents"] == ["invoice.paid", "invoice.failed"]
        bad = await api.client.post(
            "/api/webhooks/config",
            headers=auth,
            json={"url": URL, "enabledEvents": ["resume.parsed"]},
        )
        assert bad.status_code == 422
