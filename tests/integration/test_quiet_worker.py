"""What an idle worker asks the database, and how it still takes new work at once: on SQLite
and PostgreSQL, with the worker inside the API as `hookline serve` runs it."""

from __future__ import annotations

import asyncio
import itertools
import shutil
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from hookline.store import Store, TaskStatus
from hookline.store.endpoints import EndpointFields
from hookline.timeutil import utcnow
from tests.integration.test_publish import EXAMPLE_DATA
from tests.integration.test_resend import log_of, publish, setup
from tests.support import Api, Receiver, make_settings, running_api, wait_until


def counting(store: Store, *names: str) -> Counter[str]:
    """Count calls of these methods of ``store`` from now on (each still does its work)."""
    calls: Counter[str] = Counter()
    for name in names:
        method: Callable[..., Awaitable[Any]] = getattr(store, name)

        def counted(*args: Any, _name: str = name, _method: Any = method, **kw: Any) -> Any:
            calls[_name] += 1
            return _method(*args, **kw)

        setattr(store, name, counted)
    return calls


async def test_an_idle_worker_reads_rarely_and_claims_nothing(database_url: str) -> None:
    """Idle for 2 s at a poll interval of 0.1 s, with nothing waiting at all: a read of the
    next due time every five polls (about 4), no claim, and a look for recovery tasks every
    five polls. Before, each poll claimed, read and looked: three statements every 0.1 s."""
    async with running_api(make_settings(database_url, poll_interval_s=0.1)) as api:
        await asyncio.sleep(0.5)  # started, and caught up
        calls = counting(api.store, "claim", "next_due", "take_task")
        await asyncio.sleep(2.0)
    assert calls["claim"] == 0, calls
    assert 2 <= calls["next_due"] <= 8, calls
    assert calls["take_task"] <= 8, calls


async def test_an_idle_sqlite_worker_looks_without_the_async_driver(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """On SQLite an idle worker's looks for work (the next due time, expired leases, waiting
    tasks) read on the event loop's thread: none takes a connection of the aiosqlite pool,
    each of whose statements wakes the process about a dozen times."""
    path = tmp_path / "hookline.db"
    await asyncio.to_thread(shutil.copyfile, sqlite_template, path)
    settings = make_settings(f"sqlite+aiosqlite:///{path}", poll_interval_s=0.05)
    async with running_api(settings) as api:
        await asyncio.sleep(0.3)  # started, and caught up
        checkouts: list[object] = []
        pool = api.store.db.reader.sync_engine
        event.listen(pool, "checkout", lambda *_: checkouts.append(1))
        calls = counting(api.store, "next_due", "take_task", "reclaim_expired")
        await asyncio.sleep(1.5)
    assert calls["next_due"] >= 2 and calls["take_task"] >= 1, calls
    assert checkouts == [], f"{len(checkouts)} async reads while idle"


async def test_a_resend_by_another_process_is_found_by_the_poll(
    database_url: str, receiver: Receiver
) -> None:
    """A delivery another process made due again (a resend: an update, which SQLite's watcher
    does not report) is claimed once the next due time says so, within a few polls."""
    settings = make_settings(database_url, poll_interval_s=0.1)
    async with running_api(settings) as api:
        user_id, auth, _, _ = await setup(api, receiver)
        delivery_id = await publish(api, user_id)
        await wait_until(lambda: _succeeded(api, auth, delivery_id))
        await asyncio.sleep(0.3)  # idle again
        other = Store(settings)
        try:
            await other.resend(user_id, (await log_of(api, auth, delivery_id))["id"])
        finally:
            await other.close()

        async def twice() -> bool:
            return len(receiver.received) == 2

        await wait_until(twice, timeout_s=3.0)


async def _succeeded(api: Api, auth: dict[str, str], delivery_id: str) -> bool:
    return bool((await log_of(api, auth, delivery_id))["success"])


async def _queued_task(api: Api, store: Store, receiver: Receiver) -> tuple[str, str]:
    """A recovery queued through ``store`` for a new user's endpoint: (user id, task id)."""
    user_id, _, endpoint_id, _ = await setup(api, receiver)
    task = await store.start_recovery(user_id, endpoint_id, utcnow() - timedelta(hours=1), utcnow())
    return user_id, task.id


async def _taken_within(api: Api, user_id: str, task_id: str, seconds: float) -> None:
    async def taken() -> bool:
        return (await api.store.get_task(user_id, task_id)).status is not TaskStatus.QUEUED

    await wait_until(taken, timeout_s=seconds)


async def test_a_task_queued_by_this_process_is_taken_at_once(
    database_url: str, receiver: Receiver
) -> None:
    """With a poll interval of 3 s (an unprompted look every 15 s), a recovery queued through
    the API is taken within a second: the store prompts the worker of its own process."""
    async with running_api(make_settings(database_url, poll_interval_s=3.0)) as api:
        await asyncio.sleep(1.2)  # the first look is a prompted gap (1 s) behind
        user_id, task_id = await _queued_task(api, api.store, receiver)
        await _taken_within(api, user_id, task_id, 1.0)


async def test_a_task_queued_by_another_process_is_taken_at_once(
    database_url: str, receiver: Receiver
) -> None:
    """On PostgreSQL the NOTIFY that comes with a new task prompts a worker in any process."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no NOTIFY: a worker elsewhere finds it on its next look")
    settings = make_settings(database_url, poll_interval_s=3.0)
    async with running_api(settings) as api:
        await asyncio.sleep(1.2)
        other = Store(settings)
        try:
            user_id, task_id = await _queued_task(api, other, receiver)
        finally:
            await other.close()
        await _taken_within(api, user_id, task_id, 1.0)


async def test_deliveries_held_back_by_a_rate_limit_go_out_on_time(
    database_url: str, receiver: Receiver
) -> None:
    """An idle worker (its last read found nothing waiting) claims three deliveries to an
    endpoint limited to one a second: it holds two back to the next seconds, and learns when
    they are due from a read right after the claim, not five polls (5 s) on."""
    settings = make_settings(database_url, poll_interval_s=1.0)
    async with running_api(settings) as api:
        user, _ = await api.user()
        await api.store.create_endpoint(
            user.id,
            EndpointFields(url=receiver.url, enabled_events=["resume.parsed"], rate_limit=1),
        )
        await asyncio.sleep(1.0)  # idle: a read has found nothing waiting
        for _ in range(3):
            await api.store.publish(user.id, "resume.parsed", EXAMPLE_DATA["resume.parsed"])
        api.app.state.wake.set()
        arrived = await receiver.wait_for(3, timeout_s=10)
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(arrived)]
    # One a second: each held-back delivery goes at the start of the next calendar second, at
    # most 1 s after the one before. Reading again only after five polls sent the second one
    # late (1.5 s after the first with a poll of 0.5 s, in each try before this was fixed;
    # it failed once at 1.25 s on a busy machine, hence the longer poll and wider margin).
    assert all(gap < 1.6 for gap in gaps), gaps
    assert arrived[-1].at - arrived[0].at > 1.0, gaps  # the limit held
