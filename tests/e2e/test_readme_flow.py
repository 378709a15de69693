"""The README's walk-through, done as a new user does it: `hookline serve` in development
mode prints a token, the example receiver verifies what hookline delivers."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
