"""The hookline command as a user runs it: one JSON object with --json, one-line errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import TEST_KEY


def run(db: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    base.update(HOOKLINE_DATABASE_URL=f"sqlite+aiosqlite:///{db}", HOOKLINE_SECRET_KEYS=TEST_KEY)
    base.update(env)
    return subprocess.run(
        [sys.executable, "-c", "from hookline.cli import main; main()", *args],
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "hookline.db"
    assert run(path, "migrate").returncode == 0
    return path


def test_users_tokens_publish(db: Path) -> None:
    created = run(db, "users", "create", "Ada", "--json")
    assert created.returncode == 0, created.stderr
    user = json.loads(created.stdout)
    assert set(user) == {"id", "name", "admin", "token"}
    assert user["name"] == "Ada" and user["admin"] is False and user["token"].startswith("hl_")
    admin = json.loads(run(db, "users", "create", "host", "--admin", "--json").stdout)
    assert admin["admin"] is True

    token = run(db, "tokens", "create", user["id"], "--json")
    assert token.returncode == 0
    token_id = json.loads(token.stdout)["id"]
    revoked = run(db, "tokens", "revoke", token_id)
    assert revoked.returncode == 0 and token_id in revoked.stdout
    again = run(db, "tokens", "revoke", token_id)
    assert again.returncode == 1 and again.stderr.count("\n") == 1

    published = run(
        db, "publish", user["id"], "operation.cancelled",
        "--data", '{"operationType": "tailoring", "operationId": "o1", "cancelledAt": "t"}',
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout) == {
        "success": True,
        "deliveryIds": [],
        "reason": "User has no webhook configuration",
    }
    assert run(db, "purge").returncode == 0


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (("users", "create"), "Missing argument"),
        (("users", "create", ""), "NAME must be"),
        (("tokens", "create", "nobody"), "no user with id nobody"),
        (("tokens", "revoke", "nothing"), "no live token"),
        (("publish", "u", "resume.parsed", "--data", "{"), "not valid JSON"),
        (("publish", "u", "resume.parsed", "--data", "[]"), "must be a JSON object"),
        (("publish", "u", "resume.parsed"), "missing fields"),
        (("publish", "u", "nope.event"), "Unknown event"),
        (("serve", "--port", "99999"), "--port"),
        (("frobnicate",), "No such command"),
        (("purge", "--older-than-days", "-1"), "older-than-days"),
    ],
)
def test_bad_arguments_are_one_line(db: Path, args: tuple[str, ...], phrase: str) -> None:
    result = run(db, *args)
    assert result.returncode != 0
    assert result.stderr.startswith("hookline: ") and result.stderr.count("\n") == 1, result.stderr
    assert phrase in result.stderr
    assert "Traceback" not in result.stderr


def test_unmigrated_database_and_bad_settings(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    result = run(fresh, "worker")
    assert result.returncode == 1 and "hookline migrate" in result.stderr
    bad = run(fresh, "migrate", HOOKLINE_TIMEOUT_S="zero")
    assert bad.returncode == 1 and "HOOKLINE_TIMEOUT_S" in bad.stderr
    # A rule between two settings names both variables.
    between = run(fresh, "migrate", HOOKLINE_LEASE_S="5")
    assert between.returncode == 1 and between.stderr.count("\n") == 1
    assert "HOOKLINE_LEASE_S" in between.stderr and "HOOKLINE_TIMEOUT_S" in between.stderr
    production = run(
        fresh,
        "users",
        "create",
        "x",
        HOOKLINE_DATABASE_URL="postgresql+asyncpg://nobody@127.0.0.1:1/x",
    )
    assert production.returncode == 1 and production.stderr.count("\n") == 1


def test_serve_on_a_taken_port_says_so_and_fails(db: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(db, "serve", "--port", str(port), HOOKLINE_ENV="development")
    assert result.returncode == 3, result.stderr
    assert "address already in use" in result.stderr


def test_keygen_makes_a_usable_key(tmp_path: Path) -> None:
    key = run(tmp_path / "x.db", "keygen").stdout.strip()
    db = tmp_path / "k.db"
    assert run(db, "migrate", HOOKLINE_SECRET_KEYS=key).returncode == 0
    assert run(db, "users", "create", "k", HOOKLINE_SECRET_KEYS=key).returncode == 0
    bad = run(db, "rotate-keys", HOOKLINE_SECRET_KEYS="not-a-key")
    assert bad.returncode == 1 and "Fernet" in bad.stderr
