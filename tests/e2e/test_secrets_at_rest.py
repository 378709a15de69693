"""Secrets at rest: webhook secrets are encrypted in the database, API tokens are hashed, keys
rotate with ``hookline rotate-keys``, development creates a private key file, and neither
secrets nor tokens reach the logs of a real ``hookline serve``."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
from cryptography.fernet import Fernet

from hookline.config import Settings
from hookline.crypto import KeyConfigError, SecretBox, dev_key_path, load_box
from hookline.store import Store
from tests.support import TEST_KEY, Receiver, free_port, make_settings, running_api, wait_until

EVENT = "resume.parsed"
DATA = {"resumeId": "r1", "fileName": "cv.pdf", "parsedAt": "2024-11-14T10:05:00Z", "success": True}


def secret_forms(secret: str) -> list[bytes]:
    """Every way a webhook secret could sit in a file: as text, its base64 part, its key."""
    raw = base64.b64decode(secret.removeprefix("whsec_"))
    return [secret.encode(), secret.removeprefix("whsec_").encode(), raw, raw.hex().encode()]


def token_forms(token: str) -> list[bytes]:
    return [token.encode(), token.removeprefix("hl_").encode()]


def database_bytes(db: Path) -> bytes:
    """The database file and its WAL/shared-memory companions, as they are on disk."""
    parts = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    return b"".join(p.read_bytes() for p in parts if p.exists())


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    env.update(values)
    return env


def hookline(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def sqlite_db(sqlite_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "data" / "hookline.db"
    path.parent.mkdir()
    shutil.copy(sqlite_template, path)
    return path


async def test_no_secret_or_token_in_the_sqlite_file(sqlite_db: Path, receiver: Receiver) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{sqlite_db}", retry_delays_s=[0.05])
    async with running_api(settings) as api:
        user, auth = await api.user()
        _, admin = await api.user("publisher", admin=True)
        tokens = [auth["Authorization"].removeprefix("Bearer "), admin["Authorization"][7:]]
        saved = await api.client.post(
            "/api/webhooks/config", headers=auth, json={"url": receiver.url}
        )
        first = saved.json()["config"]["secret"]
        regenerated = await api.client.post("/api/webhooks/regenerate-secret", headers=auth)
        second = regenerated.json()["secret"]
        published = await api.client.post(
            "/api/events", headers=admin, json={"userId": user.id, "event": EVENT, "data": DATA}
        )
        assert published.status_code == 202
        await receiver.wait_for(1)
        assert (await api.client.post("/api/webhooks/test", headers=auth)).json()["success"]
        # Both secrets are in use: the delivery verifies with either.
        for secret in (first, second):
            standardwebhooks.Webhook(secret).verify(
                receiver.received[0].body, receiver.received[0].headers
            )
        snapshots = [database_bytes(sqlite_db)]  # live, with the WAL
        assert sqlite_db.with_name("hookline.db-wal").exists()
    snapshots.append(database_bytes(sqlite_db))  # after the app closed

    for data in snapshots:
        # The file is readable: things that are stored in clear are found.
        assert receiver.url.encode() in data
        assert user.id.encode() in data
        for token in tokens:  # tokens are stored as their SHA-256 only
            assert hashlib.sha256(token.encode()).hexdigest().encode() in data
            for form in token_forms(token):
                assert form not in data
        for secret in (first, second):
            for form in secret_forms(secret):
                assert form not in data, f"a form of a webhook secret is in the file: {form!r}"
        assert TEST_KEY.encode() not in data


async def _start_secrets(settings: Settings) -> tuple[str, str, str]:
    """A user with a webhook whose secret was regenerated once: (user id, old, new)."""
    store = Store(settings)
    try:
        user, _, _ = await store.create_user("rotating", False)
        _, first = await store.save_config(user.id, "http://127.0.0.1:9/x", None, None, [EVENT])
        second, _ = await store.regenerate_secret(user.id, 3600)
        return user.id, first, second
    finally:
        await store.close()


@pytest.mark.slow
async def test_rotate_keys_reencrypts_under_the_newest_key(
    database_url: str, receiver: Receiver
) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = make_settings(database_url, secret_keys=[old_key])
    user_id, first, second = await _start_secrets(before)

    env = clean_env(HOOKLINE_DATABASE_URL=database_url, HOOKLINE_SECRET_KEYS=f"{new_key},{old_key}")
    done = await asyncio.to_thread(hookline, "rotate-keys", env=env)
    assert done.returncode == 0, done.stderr
    assert "re-encrypted the secrets of 1 endpoints with the newest key" in done.stdout
    assert "re-encrypting" in done.stderr  # the progress bar

    store = Store(before)
    try:
        endpoint = await store.get_config(user_id)
    finally:
        await store.close()
    assert endpoint is not None
    stored = [endpoint.secret_enc] + [old["enc"] for old in endpoint.old_secrets]
    assert len(stored) == 2
    old_box, new_box = SecretBox([old_key]), SecretBox([new_key])
    for token in stored:
        with pytest.raises(KeyConfigError):
            old_box.decrypt(token)  # the old key alone no longer opens anything
    assert [new_box.decrypt(token) for token in stored] == [second, first]

    # The app, with only the new key, signs with the very same secrets.
    after = make_settings(database_url, secret_keys=[new_key])
    async with running_api(after, run_worker=False) as api:
        endpoint = await api.store.get_config(user_id)
        assert endpoint is not None
        # Point the webhook at the receiver, then send a test through the real sender.
        await api.store.save_config(user_id, receiver.url, None, None, [EVENT])
        _, token = await api.store.create_token(user_id)
        test = await api.client.post(
            "/api/webhooks/test", headers={"Authorization": f"Bearer {token}"}
        )
        assert test.json()["success"] is True, test.text
    (got,) = receiver.received
    for secret in (first, second):
        standardwebhooks.Webhook(secret).verify(got.body, got.headers)


@pytest.mark.slow
async def test_rotate_keys_without_the_old_key_fails_cleanly(database_url: str) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    await _start_secrets(make_settings(database_url, secret_keys=[old_key]))
    env = clean_env(HOOKLINE_DATABASE_URL=database_url, HOOKLINE_SECRET_KEYS=new_key)
    done = await asyncio.to_thread(hookline, "rotate-keys", env=env)
    assert done.returncode == 1
    assert done.stderr.strip().endswith(
        "hookline: a stored secret does not open with any configured key"
    )


def test_development_key_file_is_private_and_reused(tmp_path: Path) -> None:
    db = tmp_path / "dev" / "hookline.db"
    settings = Settings(env="development", database_url=f"sqlite+aiosqlite:///{db}", secret_keys=[])
    path = dev_key_path(settings)
    assert path == db.parent / "hookline.key"
    assert not path.exists()
    box = load_box(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    Fernet(path.read_text().strip().encode())  # a valid key
    token = box.encrypt("whsec_x")
    assert load_box(settings).decrypt(token) == "whsec_x"  # the same key next time

    production = Settings(
        env="production", database_url=f"sqlite+aiosqlite:///{db}", secret_keys=[]
    )
    with pytest.raises(KeyConfigError, match="HOOKLINE_SECRET_KEYS is required in production"):
        load_box(production)


@contextlib.contextmanager
def serving(
    env: dict[str, str], out: Path, err: Path, port: int
) -> Iterator[subprocess.Popen[Any]]:
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "hookline.cli", "serve", "--port", str(port)],
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.mark.slow
async def test_serve_logs_no_secret_and_no_token(tmp_path: Path, receiver: Receiver) -> None:
    db = tmp_path / "var" / "hookline.db"
    env = clean_env(
        HOOKLINE_ENV="development",
        HOOKLINE_DATABASE_URL=f"sqlite+aiosqlite:///{db}",
        HOOKLINE_RETRY_DELAYS_S="0.05,0.1",
        PYTHONUNBUFFERED="1",
    )
    migrated = await asyncio.to_thread(hookline, "migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    base = f"http://127.0.0.1:{port}"
    with serving(env, out, err, port) as process:
        async with httpx.AsyncClient(base_url=base, timeout=10, trust_env=False) as client:

            async def up() -> bool:
                assert process.poll() is None, err.read_text()
                with contextlib.suppress(httpx.TransportError):
                    return (await client.get("/healthz")).status_code == 200
                return False

            await wait_until(up, timeout_s=30, every_s=0.1)
            banner = re.search(
                r"\(id (\w+)\)\. Its API token, shown only now:\s+(\S+)", out.read_text()
            )
            assert banner, out.read_text()
            admin_id, admin_token = banner.groups()
            admin = {"Authorization": f"Bearer {admin_token}"}

            created = await asyncio.to_thread(hookline, "users", "create", "bob", "--json", env=env)
            assert created.returncode == 0, created.stderr
            bob_token = re.search(r'"token": "([^"]+)"', created.stdout)
            assert bob_token
            bob = {"Authorization": f"Bearer {bob_token.group(1)}"}

            secrets = []
            for auth in (admin, bob):
                saved = await client.post(
                    "/api/webhooks/config", headers=auth, json={"url": receiver.url}
                )
                assert saved.status_code == 200, saved.text
                secrets.append(saved.json()["config"]["secret"])
                regenerated = await client.post("/api/webhooks/regenerate-secret", headers=auth)
                secrets.append(regenerated.json()["secret"])
                test = await client.post("/api/webhooks/test", headers=auth)
                assert test.json()["success"] is True, test.text
            receiver.script = [500]  # one failed attempt, then a retry, for the worker's logs
            published = await client.post(
                "/api/events",
                headers=admin,
                json={"userId": admin_id, "event": EVENT, "data": DATA},
            )
            assert published.status_code == 202, published.text
            await receiver.wait_for(4)
            wrong = await client.get("/api/webhooks/config", headers={"Authorization": "Bearer x"})
            assert wrong.status_code == 401
    assert process.returncode is not None

    key_file = db.parent / "hookline.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    stdout, stderr = out.read_text(), err.read_text()
    logs = stdout + stderr

    assert "Application startup complete" in stderr  # the logs were captured
    assert "POST /api/webhooks/test" in logs
    warning = "development mode: plain http targets and loopback addresses are allowed"
    assert stderr.count(warning) == 1
    # The first-start banner shows the admin token once, by design, and nothing else does.
    assert stdout.count(admin_token) == 1 and admin_token not in stderr
    for secret in secrets:
        for form in secret_forms(secret)[:2]:
            assert form.decode() not in logs, "a webhook secret is in the server's output"
    assert bob_token.group(1) not in logs
    assert key not in logs
