"""hookline.receiver's FastAPI and Flask helpers as a receiver app uses them: the examples run
as processes on loopback, and a real hookline delivers to them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hookline.ids import new_secret
from hookline.payload import build_headers
from tests.support import FAST_RETRIES, Api, Receiver, free_port, make_settings, running_api

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ["fastapi", "flask"]

pytestmark = pytest.mark.slow


@pytest.fixture
async def api(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Api]:
    """hookline with its worker on a SQLite file: what is under test is the receiving side."""
    path = tmp_path / "hookline.db"
    shutil.copy(sqlite_template, path)
    async with running_api(make_settings(f"sqlite+aiosqlite:///{path}", **FAST_RETRIES)) as api:
        yield api


def output(log: Path) -> str:
    """What the examples printed so far (a small file: read it in one go)."""
    return log.read_text()


async def listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


@contextlib.asynccontextmanager
async def example(name: str, port: int, secret: str, log: Path) -> AsyncIterator[str]:
    """``WEBHOOK_SECRET=secret python examples/{name}_receiver.py PORT``, once it accepts
    connections; yields its webhook URL."""
    with log.open("ab") as output:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "examples" / f"{name}_receiver.py"),
            str(port),
            env={**os.environ, "WEBHOOK_SECRET": secret},
            stdout=output,
            stderr=output,
        )
    try:
        deadline = time.monotonic() + 30
        while not await listening(port):
            if proc.returncode is not None or time.monotonic() > deadline:
                raise AssertionError(f"{name} example did not start:\n{output(log)}")
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}/webhooks"
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


async def send_test(api: Api, auth: dict[str, str]) -> dict[str, Any]:
    """POST /api/webhooks/test: one real delivery, signed as every delivery is, and its answer."""
    response = await api.client.post("/api/webhooks/test", headers=auth)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def publish_and_wait(
    api: Api, admin: dict[str, str], user_id: str, auth: dict[str, str]
) -> Any:
    """Publish resume.parsed for ``user_id``; its log item once the first attempt is recorded."""
    published = await api.client.post(
        "/api/events",
        headers=admin,
        json={
            "userId": user_id,
            "event": "resume.parsed",
            "data": {
                "resumeId": "clx1",
                "fileName": "Zoë ✓.pdf",
                "parsedAt": "2024-11-14T10:05:00Z",
                "success": True,
            },
        },
    )
    assert published.status_code == 202, published.text
    delivery_id = published.json()["deliveryIds"][0]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        logs = (await api.client.get("/api/webhooks/logs", headers=auth)).json()["logs"]
        for log in logs:
            if log["deliveryId"] == delivery_id and log["statusCode"] is not None:
                return log
        await asyncio.sleep(0.05)
    raise AssertionError(f"no attempt recorded for {delivery_id}")


@pytest.mark.parametrize("name", EXAMPLES)
async def test_genuine_deliveries_verify_through_a_secret_rotation(
    api: Api, name: str, tmp_path: Path
) -> None:
    user, auth = await api.user()
    _, admin = await api.user("host-app", admin=True)
    port = free_port()
    saved = await api.client.post(
        "/api/webhooks/config",
        headers=auth,
        json={"url": f"http://127.0.0.1:{port}/webhooks", "enabledEvents": ["resume.parsed"]},
    )
    old = saved.json()["config"]["secret"]
    log = tmp_path / "example.log"

    async with example(name, port, old, log):
        assert (await send_test(api, auth))["statusCode"] == 200
        delivered = await publish_and_wait(api, admin, user.id, auth)
        assert (delivered["success"], delivered["statusCode"]) == (True, 200)

        rotated = await api.client.post("/api/webhooks/regenerate-secret", headers=auth)
        new = rotated.json()["secret"]
        # Held: the old secret only. webhook-signature still carries its signature.
        assert (await send_test(api, auth))["statusCode"] == 200
        delivered = await publish_and_wait(api, admin, user.id, auth)
        assert (delivered["success"], delivered["statusCode"]) == (True, 200)
    assert "with a replaced secret" in output(log)

    for held in (f"{new} {old}", new):
        async with example(name, port, held, log):
            answer = await send_test(api, auth)
            assert (answer["success"], answer["statusCode"]) == (True, 200), (held, answer)
    assert output(log).count("verified resume.parsed") == 2
    assert output(log).count("verified webhook.test") == 4


@pytest.mark.parametrize("name", EXAMPLES)
async def test_a_receiver_with_the_wrong_secret_answers_401(
    api: Api, name: str, tmp_path: Path
) -> None:
    user, auth = await api.user()
    _, admin = await api.user("host-app", admin=True)
    port = free_port()
    await api.client.post(
        "/api/webhooks/config", headers=auth, json={"url": f"http://127.0.0.1:{port}/webhooks"}
    )
    async with example(name, port, new_secret(), tmp_path / "example.log"):
        answer = await send_test(api, auth)
        assert (answer["success"], answer["statusCode"]) == (False, 401)
        delivered = await publish_and_wait(api, admin, user.id, auth)
        assert (delivered["success"], delivered["statusCode"]) == (False, 401)


@pytest.mark.parametrize("name", EXAMPLES)
async def test_forgeries_of_a_real_delivery_are_refused(
    api: Api, receiver: Receiver, name: str, tmp_path: Path
) -> None:
    """A delivery captured on its way, then sent on as is (accepted: within five minutes a
    replay is caught only by deliveryId), with its body changed, re-signed with another
    secret, or signed ten minutes ago."""
    _, auth = await api.user()
    saved = await api.client.post("/api/webhooks/config", headers=auth, json={"url": receiver.url})
    secret = saved.json()["config"]["secret"]
    assert (await send_test(api, auth))["statusCode"] == 200
    captured = (await receiver.wait_for(1))[0]
    body = captured.body
    headers = {k: v for k, v in captured.headers.items() if k.lower() != "content-length"}

    def signed(secret: str, age_s: int) -> dict[str, str]:
        delivery_id = headers["webhook-id"]
        return build_headers(
            body=body,
            event="webhook.test",
            delivery_id=delivery_id,
            secrets=[secret],
            timestamp_s=int(time.time()) - age_s,
            user_agent="forger",
        )

    forgeries: list[tuple[bytes, dict[str, str], str]] = [
        (body.replace(b"test webhook", b"fake webhook"), headers, "bad_signature"),
        (body, signed(new_secret(), 0), "bad_signature"),
        (body, signed(secret, 600), "stale_timestamp"),
        (body, signed(secret, -600), "stale_timestamp"),
        (body, {"Content-Type": "application/json"}, "missing_header"),
    ]
    async with (
        example(name, free_port(), secret, tmp_path / "example.log") as url,
        httpx.AsyncClient() as client,
    ):
        assert (await client.post(url, content=body, headers=headers)).status_code == 200
        for forged_body, forged_headers, reason in forgeries:
            answer = await client.post(url, content=forged_body, headers=forged_headers)
            assert answer.status_code == 401, (reason, answer.text)
            assert answer.json()["detail"]["reason"] == reason, answer.text
            assert answer.json()["detail"]["message"]


# --- import weight ---------------------------------------------------------------------------


def imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return {name.split(".")[0] for name in result.stdout.split()}


def test_the_receiver_imports_no_web_framework() -> None:
    loaded = imported_after("import hookline.receiver")
    assert not loaded & {"fastapi", "starlette", "flask", "werkzeug", "uvicorn", "aiohttp"}
    assert "fastapi" in imported_after("import hookline.receiver.fastapi")
    assert "flask" in imported_after("import hookline.receiver.flask")


def test_the_receiver_imports_no_database_layer() -> None:
    # hookline/__init__.py loads publish() and with it SQLAlchemy only on first use.
    assert not imported_after("import hookline.receiver") & {"sqlalchemy", "pydantic"}
