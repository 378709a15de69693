"""The README's walk-through, done as a new user does it: `hookline serve` in development
mode prints a token, the example receiver verifies what hookline delivers."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hookline.ids import new_secret
from hookline.payload import build_headers
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def read_until(proc: subprocess.Popen[str], pattern: str, timeout_s: float = 30) -> re.Match[str]:
    deadline = time.monotonic() + timeout_s
    seen = ""
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen += line
        match = re.search(pattern, seen)
        if match:
            return match
    raise AssertionError(f"{pattern!r} not seen in:\n{seen}")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """`make run`'s two steps on a fresh database: (base url, admin id, admin token)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    env.update(
        HOOKLINE_ENV="development", HOOKLINE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/h.db"
    )
    cli = [sys.executable, "-c", "from hookline.cli import main; main()"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    port = free_port()
    with subprocess.Popen(
        [*cli, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    ) as proc:
        try:
            first = read_until(proc, r"\(id (c\w+)\)\. Its API token, shown only now:\s+(hl_\S+)")
            read_until(proc, r"Uvicorn running on")
            assert (tmp_path / "hookline.key").stat().st_mode & 0o777 == 0o600
            yield f"http://127.0.0.1:{port}", first.group(1), first.group(2)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def test_readme_walkthrough(service: tuple[str, str, str]) -> None:
    base, admin_id, token = service
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
        assert client.get("/docs").status_code == 200
        assert client.get("/dashboard").status_code == 200
        port = free_port()
        saved = client.post(
            "/api/webhooks/config",
            json={"url": f"http://127.0.0.1:{port}/webhooks", "enabledEvents": ["resume.parsed"]},
        )
        assert saved.status_code == 200, saved.text
        secret = saved.json()["config"]["secret"]
        with subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "receiver.py"), str(port)],
            env={**os.environ, "WEBHOOK_SECRET": secret},
            stdout=subprocess.PIPE,
            text=True,
        ) as receiver:
            read_until(receiver, r"listening on")
            test = client.post("/api/webhooks/test")
            assert test.json()["success"] is True, test.json()
            read_until(receiver, r"verified webhook\.test")
            published = client.post(
                "/api/events",
                json={
                    "userId": admin_id,
                    "event": "resume.parsed",
                    "data": {
                        "resumeId": "clx1",
                        "fileName": "john_doe_resume.pdf",
                        "parsedAt": "2024-11-14T10:05:00Z",
                        "success": True,
                    },
                },
            )
            assert published.status_code == 202
            delivery_id = published.json()["deliveryIds"][0]
            read_until(receiver, rf"verified resume\.parsed {delivery_id}")
            # The receiver prints before it answers: keep it up until hookline has recorded both.
            deadline = time.monotonic() + 30
            while client.get("/api/webhooks/stats").json()["successful"] < 2:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            receiver.terminate()
        logs = client.get("/api/webhooks/logs").json()
        assert [log["event"] for log in logs["logs"]] == ["resume.parsed", "webhook.test"]


@contextlib.contextmanager
def example_receiver(port: int, secret: str) -> Iterator[subprocess.Popen[str]]:
    """README step 3: `WEBHOOK_SECRET=... python3 examples/receiver.py PORT`, until it listens."""
    with subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "receiver.py"), str(port)],
        env={**os.environ, "WEBHOOK_SECRET": secret},
        stdout=subprocess.PIPE,
        text=True,
    ) as receiver:
        try:
            read_until(receiver, r"listening on")
            yield receiver
        finally:
            receiver.terminate()


def publish_parsed(client: httpx.Client, user_id: str, resume_id: str) -> str:
    published = client.post(
        "/api/events",
        json={
            "userId": user_id,
            "event": "resume.parsed",
            "data": {
                "resumeId": resume_id,
                "fileName": "a.pdf",
                "parsedAt": "2024-11-14T10:05:00Z",
                "success": True,
            },
        },
    )
    assert published.status_code == 202, published.text
    return str(published.json()["deliveryIds"][0])


def first_attempt(client: httpx.Client, delivery_id: str) -> dict[str, Any]:
    """The delivery's log item once its first attempt is recorded."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for log in client.get("/api/webhooks/logs").json()["logs"]:
            if log["deliveryId"] == delivery_id and log["statusCode"] is not None:
                return dict(log)
        time.sleep(0.1)
    raise AssertionError(f"no attempt recorded for {delivery_id}")


def test_readme_receiver_survives_a_secret_rotation(service: tuple[str, str, str]) -> None:
    """After "Regenerate secret" the receiver still holding the old secret verifies new events
    (webhook-signature carries the old secret's signature until previousSecretExpiresAt), one
    restarted with the new secret verifies them too, and a wrong secret is still refused."""
    base, admin_id, token = service
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        port = free_port()
        saved = client.post(
            "/api/webhooks/config",
            json={"url": f"http://127.0.0.1:{port}/webhooks", "enabledEvents": ["resume.parsed"]},
        )
        old = saved.json()["config"]["secret"]
        with example_receiver(port, old) as receiver:
            rotated = client.post("/api/webhooks/regenerate-secret")
            assert rotated.status_code == 200, rotated.text
            new = rotated.json()["secret"]
            assert new != old and rotated.json()["previousSecretExpiresAt"] is not None
            delivery_id = publish_parsed(client, admin_id, "clx-old")
            seen = read_until(receiver, rf"verified resume\.parsed {delivery_id}|rejected")
            assert seen.group(0).startswith("verified")
            read_until(receiver, r"with a replaced secret")
            log = first_attempt(client, delivery_id)
            assert (log["success"], log["statusCode"], log["attempts"]) == (True, 200, 1)

        for secret in (new, f"{new}, {old}"):
            with example_receiver(port, secret) as receiver:
                delivery_id = publish_parsed(client, admin_id, "clx-new")
                read_until(receiver, rf"verified resume\.parsed {delivery_id}")
                log = first_attempt(client, delivery_id)
                assert (log["success"], log["statusCode"], log["attempts"]) == (True, 200, 1)

        wrong = "whsec_" + base64.b64encode(b"not the secret, not the old one").decode()
        with example_receiver(port, wrong) as receiver:
            delivery_id = publish_parsed(client, admin_id, "clx-wrong")
            read_until(receiver, r"rejected a request with a bad signature")
            log = first_attempt(client, delivery_id)
            assert (log["success"], log["statusCode"]) == (False, 401)


@pytest.mark.parametrize(
    ("held", "expected"),
    [("new", 401), ("new,old", 401), ("old", 200)],
)
def test_receiver_checks_the_guide_header_when_it_holds_the_newest_secret(
    held: str, expected: int
) -> None:
    """A delivery whose webhook-signature is genuine but whose X-Webhook-Signature is not:
    refused by a receiver holding the newest secret, which can check both; accepted by one that
    holds only the replaced secret, which cannot check the guide's header."""
    secrets = {"new": new_secret(), "old": new_secret()}
    body = b'{"event":"webhook.test","deliveryId":"d1","data":{}}'
    headers = build_headers(
        body=body,
        event="webhook.test",
        delivery_id="d1",
        secrets=[secrets["new"], secrets["old"]],
        timestamp_s=int(time.time()),
        user_agent="test",
    )
    headers["X-Webhook-Signature"] = "0" * 64
    port = free_port()
    with example_receiver(port, ",".join(secrets[name] for name in held.split(","))):
        answer = httpx.post(f"http://127.0.0.1:{port}/webhooks", content=body, headers=headers)
    assert answer.status_code == expected
