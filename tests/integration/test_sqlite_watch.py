"""The SQLite watcher wakes a worker for new deliveries, and only for those."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from sqlalchemy import update

from hookline.store import Store
from hookline.store.schema import deliveries
from hookline.store.sqlite_watch import watch
from tests.integration.test_publish import EXAMPLE_DATA
from tests.support import make_settings


async def test_wakes_for_new_deliveries_not_for_other_commits(
    sqlite_template: Path, tmp_path: Path
) -> None:
    path = tmp_path / "hookline.db"
    shutil.copy(sqlite_template, path)
    store = Store(make_settings(f"sqlite+aiosqlite:///{path}"))
    wakes = asyncio.Event()
    stop = await watch(str(path), wakes.set)
    try:
        user, _, _ = await store.create_user("user", False)
        await store.save_config(user.id, "http://127.0.0.1:9/hook", True, None, ["resume.parsed"])
        await asyncio.sleep(0.1)  # the watcher has seen these commits (and ignored them)
        assert not wakes.is_set()

        await store.publish(user.id, "resume.parsed", EXAMPLE_DATA["resume.parsed"])
        await asyncio.wait_for(wakes.wait(), timeout=2)

        wakes.clear()
        async with store.db.write() as conn:  # what claims and outcomes do: no new row
            await conn.execute(update(deliveries).values(attempts=deliveries.c.attempts + 1))
        await asyncio.sleep(0.1)
        assert not wakes.is_set()

        await store.publish(user.id, "resume.parsed", EXAMPLE_DATA["resume.parsed"])
        await asyncio.wait_for(wakes.wait(), timeout=2)
    finally:
        await stop()
        await store.close()
