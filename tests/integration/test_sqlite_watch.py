"""The SQLite watcher wakes a worker for new deliveries, and only for those; on Linux it sleeps
until the database's files are written, so an idle database costs it nothing."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import update

from hookline.store import Store
from hookline.store.schema import deliveries
from hookline.store.sqlite_watch import Watcher
from tests.integration.test_publish import EXAMPLE_DATA
from tests.support import make_settings

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


async def start_watcher(
    path: Path, on_new: Callable[[], None], use_inotify: bool
) -> tuple[Watcher, Callable[[], Awaitable[None]]]:
    watcher = Watcher(str(path), on_new, asyncio.get_running_loop(), use_inotify=use_inotify)
    watcher.start()
    await asyncio.sleep(0.2)  # it has started watching and read its first answers
    return watcher, watcher.stop


def store_on_a_copy(sqlite_template: Path, tmp_path: Path) -> tuple[Path, Store]:
    """A migrated SQLite file of this test's own, and a Store on it (close it when done)."""
    path = tmp_path / "hookline.db"
    shutil.copy(sqlite_template, path)
    return path, Store(make_settings(f"sqlite+aiosqlite:///{path}"))


def thread_cpu_s(native_id: int) -> float:
    """CPU time of one thread of this process, from /proc (nanoseconds in schedstat)."""
    return int(Path(f"/proc/self/task/{native_id}/schedstat").read_text().split()[0]) / 1e9


@pytest.mark.parametrize("use_inotify", [True, False], ids=["inotify", "poll"])
async def test_wakes_for_new_deliveries_not_for_other_commits(
    sqlite_template: Path, tmp_path: Path, use_inotify: bool
) -> None:
    path, store = store_on_a_copy(sqlite_template, tmp_path)
    wakes = asyncio.Event()
    watcher, stop = await start_watcher(path, wakes.set, use_inotify)
    try:
        if use_inotify and sys.platform.startswith("linux"):
            assert watcher.mode == "inotify"
        elif not use_inotify:
            assert watcher.mode == "poll"
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


@linux_only
async def test_idle_costs_nothing_and_a_commit_wakes_at_once(
    sqlite_template: Path, tmp_path: Path
) -> None:
    path, store = store_on_a_copy(sqlite_template, tmp_path)
    (tmp_path / "unrelated.log").write_text("")
    loop = asyncio.get_running_loop()
    woken_at: list[float] = []
    woken = asyncio.Event()

    def on_new() -> None:
        woken_at.append(loop.time())
        woken.set()

    watcher, stop = await start_watcher(path, on_new, True)
    try:
        user, _, _ = await store.create_user("user", False)
        await store.save_config(user.id, "http://127.0.0.1:9/hook", True, None, ["resume.parsed"])
        await asyncio.sleep(0.1)
        thread_id = watcher._thread.native_id
        assert thread_id is not None
        before = thread_cpu_s(thread_id)
        for _ in range(20):  # writes to other files of the directory do not count
            with (tmp_path / "unrelated.log").open("a") as log:
                log.write("line\n")
            await asyncio.sleep(0.05)
        # A 3 ms poll asks SQLite about 330 times in this second (tens of ms of CPU); sleeping,
        # it asks never, and wakes only to read the 20 unrelated writes' names (on a shared
        # VM each wake-up can cost 0.1-0.2 ms).
        assert thread_cpu_s(thread_id) - before < 0.010
        assert not woken_at

        lags = []
        for _ in range(10):
            woken.clear()
            published_at = loop.time()
            await store.publish(user.id, "resume.parsed", EXAMPLE_DATA["resume.parsed"])
            await asyncio.wait_for(woken.wait(), timeout=2)
            assert len(woken_at) == len(lags) + 1
            lags.append(woken_at[-1] - published_at)
            await asyncio.sleep(0.02)
        # Woken within the publish call's own time, or a little after it (generous: a busy
        # machine); a poll every 3 ms would show a few ms.
        assert sorted(lags)[len(lags) // 2] < 0.05, lags
    finally:
        await stop()
        await store.close()


@linux_only
async def test_a_commit_costs_a_look_or_two_not_one_per_page(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """A commit writes its pages to the WAL one write() at a time (a publish, about twenty);
    the watcher waits for the rest after the first before asking SQLite again."""
    path, store = store_on_a_copy(sqlite_template, tmp_path)
    woken = asyncio.Event()
    watcher, stop = await start_watcher(path, woken.set, True)
    try:
        user, _, _ = await store.create_user("user", False)
        await store.save_config(user.id, "http://127.0.0.1:9/hook", True, None, ["resume.parsed"])
        await asyncio.sleep(0.3)
        before = watcher.looks
        for _ in range(20):
            woken.clear()
            await store.publish(user.id, "resume.parsed", EXAMPLE_DATA["resume.parsed"])
            await asyncio.wait_for(woken.wait(), timeout=2)  # still woken for each
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # and any settle looks after the last
        # One look per page written was about 17 a publish.
        assert watcher.looks - before <= 20 * 3
    finally:
        await stop()
        await store.close()
