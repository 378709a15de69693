"""Schemathesis against the app's own OpenAPI schema, in process over ASGI.

Every operation gets schema-valid and schema-invalid requests with a valid bearer token; no
answer may be a 5xx and every answer must match the schema's declared response body.

The app must never leave the machine while being fuzzed: host names in fuzzed URLs are not
resolved (the save-time resolver is a stub) and the sender is replaced by one that reports a
connection failure without connecting.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import response_schema_conformance

import hookline.api.app
import hookline.ssrf
import hookline.targets
from hookline.api.app import create_app
from hookline.config import Settings
from hookline.delivery.sender import Outcome, OutcomeKind, Sender
from hookline.store import EndpointFields, Store
from hookline.store.operational import OPERATIONAL_EVENTS
from tests.support import make_settings, running_api

EXAMPLES_PER_MODE = 15  # x 2 modes x 29 operations: about 870 cases
CHECKS = [not_a_server_error, response_schema_conformance]
EVENT = "resume.parsed"
DATA = {"resumeId": "r1", "fileName": "cv.pdf", "parsedAt": "2024-11-14T10:05:00Z", "success": True}


class OfflineSender(Sender):
    """Answers every attempt with a connection failure, without touching the network."""

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        return Outcome(OutcomeKind.CONNECTION_FAILED, 0, error="fuzzing: not sent")


def offline_sender(settings: Settings) -> Sender:
    return OfflineSender(
        timeout_s=settings.timeout_s,
        max_response_bytes=settings.max_response_bytes,
        excerpt_chars=settings.response_excerpt_chars,
        concurrency=1,
        policy=hookline.targets.policy_for(settings),
    )


async def _unresolvable(host: str) -> list[str]:
    raise OSError(f"fuzzing: {host} is not resolved")


async def _seed(settings: Settings) -> tuple[str, str, str]:
    """An admin with a webhook, one pending delivery and a recovery task, so reads return real
    rows, and an operational webhook: (admin id, token, operational webhook id)."""
    store = Store(settings)
    try:
        admin, _, token = await store.create_user("fuzzer", True)
        endpoint, _ = await store.save_config(
            admin.id, "http://127.0.0.1:9/hook", None, None, settings.events
        )
        await store.regenerate_secret(admin.id, 3600)
        await store.publish(admin.id, EVENT, DATA)
        now = datetime.now(UTC)
        await store.start_recovery(admin.id, endpoint.id, now - timedelta(hours=1), now)
        hook, _ = await store.create_operational_webhook(
            EndpointFields(url="http://127.0.0.1:9/ops", enabled_events=list(OPERATIONAL_EVENTS))
        )
        return admin.id, token, hook.id
    finally:
        await store.close()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No delivery and no DNS lookup leaves the process while the app is fuzzed."""
    monkeypatch.setattr(hookline.api.app, "sender_for", offline_sender)
    monkeypatch.setattr(hookline.ssrf, "_getaddrinfo_resolve", _unresolvable)
    yield


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(
    database_url: str, offline: None
) -> None:
    settings = make_settings(database_url, test_rate_per_minute=1000)
    _, token, hook_id = asyncio.run(_seed(settings))
    auth = {"Authorization": f"Bearer {token}"}
    app = create_app(settings, run_worker=False)

    started = time.monotonic()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the lifespan
    try:
        with asgi.get_client(app) as client:
            logs = client.get("/api/webhooks/logs", headers=auth).json()["logs"]
            endpoints = client.get("/api/webhooks/endpoints", headers=auth).json()["endpoints"]
            tasks = client.get("/api/webhooks/tasks", headers=auth).json()["tasks"]
        log_id = logs[0]["id"]
        real_ids = {
            "log_id": log_id,
            "endpoint_id": endpoints[0]["id"],
            "task_id": tasks[0]["id"],
            "hook_id": hook_id,
        }
        operations = [result.ok() for result in schema.get_all_operations()]
        # Deleting the webhook (or endpoint) last keeps the operations that need one meaningful.
        operations.sort(key=lambda op: op.method.upper() == "DELETE")
        labels = sorted(op.label for op in operations)
        assert len(labels) == 29, labels

        cases = 0
        failures: list[str] = []

        def run(case: Any) -> None:
            nonlocal cases
            cases += 1
            try:
                case.call_and_validate(headers=auth, checks=CHECKS)
            except Exception as exc:  # collect them all, then report
                failures.append(f"{case.operation.label}: {exc}")

        for operation in operations:
            # The real row first, then generated cases.
            ids = {name: real for name, real in real_ids.items() if f"{{{name}}}" in operation.path}
            run(operation.Case(path_parameters=ids) if ids else operation.Case())
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @hypothesis.settings(
                    max_examples=EXAMPLES_PER_MODE,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=operation.as_strategy(generation_mode=mode))
                def fuzz(case: Any) -> None:
                    run(case)

                fuzz()
    finally:
        asgi.shutdown_lifespans()
    elapsed = time.monotonic() - started
    assert 250 <= cases <= 1000, cases
    assert elapsed < 120, elapsed
    assert failures == [], "\n\n".join(dict.fromkeys(failures))


# --------------------------------------------------------------------------------------------
# Hostile inputs the fuzzer may not draw in a bounded run, pinned as regressions
# --------------------------------------------------------------------------------------------

PUBLISH = {"event": EVENT, "data": DATA}


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


# (name, method, path, raw body or None, expected status, known bug: (backends, reason))
HOSTILE: list[tuple[str, str, str, bytes | None, int, tuple[str, str] | None]] = [
    ("log id with NUL", "GET", "/api/webhooks/logs/c%00x", None, 404, None),
    (
        "publish for a userId with NUL",
        "POST",
        "/api/events",
        _json({"userId": "u\x00", **PUBLISH}),
        422,
        None,
    ),
    (
        "url with NUL",
        "POST",
        "/api/webhooks/config",
        _json({"url": "https://93.184.216.34/a\x00b"}),
        422,
        None,
    ),
    (
        "data with NUL",
        "POST",
        "/api/events",
        _json({"userId": "ADMIN", "event": EVENT, "data": {**DATA, "k\x00": "v\x00"}}),
        202,
        None,
    ),
    ("log id too long", "GET", "/api/webhooks/logs/" + "c" * 65, None, 422, None),
    ("log id not ASCII", "GET", "/api/webhooks/logs/%ED%A0%80", None, 404, None),
    ("event filter with NUL", "GET", "/api/webhooks/logs?event=a%00", None, 422, None),
    ("endpoint filter with NUL", "GET", "/api/webhooks/stats?endpointId=c%00x", None, 404, None),
    ("endpoint id with NUL", "PATCH", "/api/webhooks/endpoints/c%00x", b"{}", 404, None),
    (
        "header value with NUL",
        "POST",
        "/api/webhooks/endpoints",
        _json({"url": "https://93.184.216.34/", "headers": {"X-A": "a\x00b"}}),
        422,
        None,
    ),
    ("offset overflow", "GET", "/api/webhooks/logs?offset=99999999999999999999", None, 422, None),
    ("limit zero", "GET", "/api/webhooks/logs?limit=0", None, 422, None),
    ("bad window", "GET", "/api/webhooks/stats/timeseries?window=1y", None, 422, None),
    (
        "event with NUL",
        "POST",
        "/api/events",
        _json({"userId": "u1", **PUBLISH, "event": "a\x00"}),
        422,
        None,
    ),
    (
        "integer beyond 64 bits",
        "POST",
        "/api/events",
        _json({"userId": "u1", "event": EVENT, "data": {**DATA, "n": 2**70}}),
        422,
        None,
    ),
    (
        "NaN in data",
        "POST",
        "/api/events",
        _json({"userId": "u1", "event": EVENT, "data": {**DATA, "resumeId": float("nan")}}),
        422,
        None,
    ),
    (
        "deeply nested data",
        "POST",
        "/api/events",
        b'{"userId": "u1", "event": "resume.parsed", "data": {"d": '
        + b"[" * 5000
        + b"]" * 5000
        + b"}}",
        400,
        None,
    ),
    (
        "lone surrogate",
        "POST",
        "/api/webhooks/config",
        b'{"url": "https://a.test/\\ud800"}',
        422,
        None,
    ),
    ("JSON array", "POST", "/api/events", b"[]", 400, None),
    ("form body", "POST", "/api/events", b"userId=u1", 415, None),
]


@pytest.mark.parametrize(
    ("name", "method", "path", "body", "status", "bug"), HOSTILE, ids=[h[0] for h in HOSTILE]
)
async def test_hostile_input_is_a_clean_4xx(
    database_url: str,
    offline: None,
    request: pytest.FixtureRequest,
    name: str,
    method: str,
    path: str,
    body: bytes | None,
    status: int,
    bug: tuple[str, str] | None,
) -> None:
    backend = "postgres" if database_url.startswith("postgresql") else "sqlite"
    if bug is not None and backend in bug[0].split(","):
        request.applymarker(pytest.mark.xfail(strict=True, reason=bug[1]))
    settings = make_settings(database_url)
    async with running_api(settings, run_worker=False) as api:
        user, admin = await api.user("admin", admin=True)
        await api.store.save_config(user.id, "https://93.184.216.34/", None, None, [EVENT])
        if body is not None:
            body = body.replace(b'"ADMIN"', json.dumps(user.id).encode())
        transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hookline.test"
        ) as client:
            content_type = "application/x-www-form-urlencoded" if name == "form body" else None
            headers = {**admin, "Content-Type": content_type or "application/json"}
            response = await client.request(method, path, headers=headers, content=body)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/json")
        if status >= 400:
            assert response.json()["success"] is False


def _declared(schema: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    responses: dict[str, Any] = schema["paths"][path][method.lower()]["responses"]
    return responses


async def test_schema_declares_the_errors_the_app_returns(database_url: str) -> None:
    settings = make_settings(database_url, max_config_body_bytes=1024)
    async with running_api(settings, run_worker=False) as api:
        _, admin = await api.user("admin", admin=True)
        schema = api.app.openapi()
        form = {**admin, "Content-Type": "application/x-www-form-urlencoded"}
        observed = [
            (
                "POST",
                "/api/webhooks/config",
                await api.client.post(
                    "/api/webhooks/config",
                    headers=admin,
                    json={"url": "https://a.test/" + "a" * 2000},
                ),
            ),
            (
                "POST",
                "/api/webhooks/config",
                await api.client.post("/api/webhooks/config", headers=form, content=b"url=x"),
            ),
            (
                "POST",
                "/api/events",
                await api.client.post("/api/events", headers=form, content=b"a"),
            ),
            (
                "GET",
                "/api/webhooks/logs/{log_id}",
                await api.client.get("/api/webhooks/logs/" + "c" * 65, headers=admin),
            ),
        ]
        assert [r.status_code for _, _, r in observed] == [413, 415, 415, 422]
        error_body = {"$ref": "#/components/schemas/ErrorBody"}
        missing = []
        for method, path, response in observed:
            declared = _declared(schema, method, path).get(str(response.status_code))
            if declared is None or declared["content"]["application/json"]["schema"] != error_body:
                missing.append(f"{method} {path} {response.status_code}: {declared}")
        assert missing == []
        assert "HTTPValidationError" not in json.dumps(schema["paths"])
