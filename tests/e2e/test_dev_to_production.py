"""A development database served in production: the keys that encrypted its webhook secrets
must come along. Starting without them is refused in one actionable line; carrying the
development key and running rotate-keys is the documented move."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx

from hookline.config import Settings
from hookline.crypto import generate_key
from hookline.store import Store
from tests.e2e.test_cli import run
from tests.support import free_port


def development_database(tmp_path: Path) -> tuple[Path, str]:
    """A migrated SQLite database made in development mode, with one webhook; (file, the
    development key that encrypted its secret)."""
    db = tmp_path / "hookline.db"
    assert run(db, "migrate").returncode == 0

    async def configure() -> None:
        settings = Settings(env="development", database_url=f"sqlite+aiosqlite:///{db}")
        store = Store(settings)
        try:
            user, _, _ = await store.create_user("Ada", False)
            await store.save_config(user.id, "http://127.0.0.1:9/hook", True, None, ["a"])
        finally:
            await store.close()

    asyncio.run(configure())
    key_file = tmp_path / "hookline.key"
    return db, key_file.read_text().strip()


def test_serving_without_the_development_key_is_refused_in_one_line(tmp_path: Path) -> None:
    db, dev_key = development_database(tmp_path)
    fresh = generate_key()
    for command in (["serve", "--port", str(free_port())], ["worker"]):
        refused = run(db, *command, HOOKLINE_ENV="production", HOOKLINE_SECRET_KEYS=fresh)
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
        line = refused.stderr
        assert line.startswith("hookline: ") and "do not open" in line
        assert str(tmp_path / "hookline.key") in line and "rotate-keys" in line

    # The documented move: the new key first, the development key after it, rotate, then
    # the development key can go.
    both = f"{fresh},{dev_key}"
    rotated = run(db, "rotate-keys", HOOKLINE_ENV="production", HOOKLINE_SECRET_KEYS=both)
    assert rotated.returncode == 0, rotated.stderr
    (tmp_path / "hookline.key").unlink()
    port = free_port()
    env = {
        "HOOKLINE_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "HOOKLINE_ENV": "production",
        "HOOKLINE_SECRET_KEYS": fresh,
        "PATH": "/usr/bin:/bin",
    }
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from hookline.cli import main; main()",
            "serve",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as served:
        try:
            deadline = time.monotonic() + 20
            while True:
                assert served.poll() is None, served.communicate()[1]
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        finally:
            served.terminate()
            served.wait(timeout=20)
