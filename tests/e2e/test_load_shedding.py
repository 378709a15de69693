"""Overload degrades instead of collapsing: `hookline serve` as a real process, 500 concurrent
publishers, and PostgreSQL stalled on purpose (the test holds an exclusive lock on
``deliveries``). What the API accepts stays fast, the rest gets 503 with Retry-After, nothing
accepted is lost, and it recovers within seconds of the lock's release."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from hookline.store import Store
from hookline.store.schema import deliveries
from tests.integration.test_publish import EXAMPLE_DATA
from tests.support import (
    Receiver,
    free_port,
    hookline_env,
    hookline_process,
    make_settings,
    running_api,
)

pytestmark = pytest.mark.slow

PUBLISHERS = 500
STALL_S = 5.0
# The bound is 1 s (the benchmark measures it; this test saw 0.6-0.95 s); a shared,
# noisy test machine stalls whole processes now and then, so the bound here is 3 s. Without
# shedding, accepted requests wait out the whole stall (p99 above 5 s).
ACCEPTED_P99_S = 3.0


@dataclass
class Answer:
    sent_at: float  # time.monotonic()
    seconds: float
    status: int
    delivery_ids: list[str]
    retry_after: str | None
    error: str | None


@contextlib.asynccontextmanager
async def serving(database_url: str) -> AsyncIterator[str]:
    """`hookline serve` on a free loopback port, with the default limits; its base URL."""
    port = free_port()
    env = hookline_env(database_url)
    base = f"http://127.0.0.1:{port}"
    async with (
        hookline_process(env, "serve", "--port", str(port)) as proc,
        aiohttp.ClientSession() as session,
    ):
        deadline = time.monotonic() + 30
        while True:
            assert proc.returncode is None, "hookline serve exited"
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{base}/healthz") as response:
                    if response.status == 200:
                        break
            assert time.monotonic() < deadline, "hookline serve did not start"
            await asyncio.sleep(0.1)
        yield base


async def publisher(
    session: aiohttp.ClientSession, url: str, body: dict[str, object], until: float
) -> list[Answer]:
    answers = []
    while time.monotonic() < until:
        sent_at = time.monotonic()
        async with session.post(url, json=body) as response:
            payload = await response.json()
            answers.append(
                Answer(
                    sent_at,
                    time.monotonic() - sent_at,
                    response.status,
                    payload.get("deliveryIds", []),
                    response.headers.get("Retry-After"),
                    payload.get("error"),
                )
            )
        if response.status == 503:  # as a well-behaved client does
            await asyncio.sleep(float(response.headers.get("Retry-After") or 1))
    return answers


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


@pytest.mark.alone
async def test_a_stalled_database_sheds_load_and_loses_nothing(
    postgres_database_url: str, receiver: Receiver
) -> None:
    settings = make_settings(postgres_database_url)
    store = Store(settings)
    try:
        _, _, admin_token = await store.create_user("admin", True)
        user, _, _ = await store.create_user("user", False)
        await store.save_config(user.id, receiver.url, True, None, ["resume.parsed"])
    finally:
        await store.close()
    dsn = make_url(postgres_database_url).set(drivername="postgresql")
    body = {"userId": user.id, "event": "resume.parsed", "data": EXAMPLE_DATA["resume.parsed"]}

    async with serving(postgres_database_url) as base:
        headers = {"Authorization": f"Bearer {admin_token}"}
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(
            headers=headers, connector=connector, timeout=timeout
        ) as session:
            # Steady load first, as a service has before an overload: the pool is open.
            warm_until = time.monotonic() + 1.0
            url = f"{base}/api/events"
            await asyncio.gather(*(publisher(session, url, body, warm_until) for _ in range(32)))
            started = time.monotonic()
            until = started + 1.5 + STALL_S + 3.0
            load = [
                asyncio.create_task(publisher(session, f"{base}/api/events", body, until))
                for _ in range(PUBLISHERS)
            ]
            await asyncio.sleep(1.5)
            locker = await asyncpg.connect(dsn.render_as_string(hide_password=False))
            try:
                async with locker.transaction():
                    await locker.execute("LOCK TABLE deliveries IN EXCLUSIVE MODE")
                    stall_began = time.monotonic()
                    await asyncio.sleep(STALL_S)
                stall_ended = time.monotonic()
            finally:
                await locker.close()
            answers = [a for batch in await asyncio.gather(*load) for a in batch]
            # Recovered: once the load stops, a publish is accepted at once.
            async with session.post(f"{base}/api/events", json=body) as response:
                assert response.status == 202, await response.text()
                last = (await response.json())["deliveryIds"]

    accepted = [a for a in answers if a.status == 202]
    refused = [a for a in answers if a.status != 202]
    assert accepted and refused
    # Refused means 503 with Retry-After in the API's error shape; nothing else went wrong.
    assert {a.status for a in refused} == {503}, {a.status for a in refused}
    assert all(a.retry_after and a.error for a in refused)
    during = [a for a in answers if stall_began <= a.sent_at < stall_ended - 1.0]
    assert during and sum(a.status == 503 for a in during) > 0.9 * len(during)
    # What was accepted was accepted fast, stall or not.
    latencies = [a.seconds for a in accepted]
    assert p99(latencies) <= ACCEPTED_P99_S, sorted(latencies)[-20:]
    # Recovered within seconds: from a second after the lock's release, the API accepts
    # publishes at least at half the rate it did before the stall.
    before = [a for a in accepted if a.sent_at < stall_began]
    after = [a for a in accepted if a.sent_at >= stall_ended + 1.0]
    rate_before = len(before) / (stall_began - started)
    rate_after = len(after) / (until - stall_ended - 1.0)
    assert rate_after >= 0.5 * rate_before, (rate_before, rate_after)
    # Nothing accepted is lost: every 202's deliveries exist.
    accepted_ids = {i for a in accepted for i in a.delivery_ids} | set(last)
    assert len(accepted_ids) == len(accepted) + 1
    store = Store(settings)
    try:
        async with store.db.read() as conn:
            rows = await conn.execute(select(deliveries.c.delivery_id))
            stored = {row.delivery_id for row in rows}
    finally:
        await store.close()
    assert accepted_ids <= stored
    print(
        f"\n{len(answers)} requests: {len(accepted)} accepted (p99 {p99(latencies):.3f} s; "
        f"{rate_before:.0f}/s before the stall, {rate_after:.0f}/s after), "
        f"{len(refused)} refused with 503"
    )


async def sessions_opened(dsn: str, database: str) -> int:
    """Connections ever made to ``database`` (PostgreSQL counts them: pg_stat_database)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        return int(
            await conn.fetchval(
                "SELECT sessions FROM pg_stat_database WHERE datname = $1", database
            )
        )
    finally:
        await conn.close()


@pytest.mark.alone
async def test_steady_load_opens_no_connections(
    postgres_database_url: str, receiver: Receiver
) -> None:
    """More publishers than the API admits at once (twice its limit): the pool, sized from
    that limit, serves them all, and a thousand requests open no new connection."""
    settings = make_settings(postgres_database_url)
    store = Store(settings)
    try:
        _, _, admin_token = await store.create_user("admin", True)
        user, _, _ = await store.create_user("user", False)
        await store.save_config(user.id, receiver.url, True, None, ["resume.parsed"])
    finally:
        await store.close()
    url = make_url(postgres_database_url)
    admin_dsn = url.set(drivername="postgresql", database="postgres")
    admin = admin_dsn.render_as_string(hide_password=False)
    body = {"userId": user.id, "event": "resume.parsed", "data": EXAMPLE_DATA["resume.parsed"]}
    concurrency = 32  # twice the default limit on requests in progress

    async with serving(postgres_database_url) as base:
        headers = {"Authorization": f"Bearer {admin_token}"}
        async with aiohttp.ClientSession(
            headers=headers, connector=aiohttp.TCPConnector(limit=0)
        ) as session:

            async def publish(count: int) -> list[int]:
                statuses = []
                for _ in range(count):
                    async with session.post(f"{base}/api/events", json=body) as response:
                        await response.read()
                        statuses.append(response.status)
                return statuses

            await asyncio.gather(*(publish(10) for _ in range(concurrency)))  # the pool fills
            await asyncio.sleep(1.5)  # PostgreSQL's statistics catch up
            opened_before = await sessions_opened(admin, str(url.database))
            done = await asyncio.gather(*(publish(1000 // concurrency) for _ in range(concurrency)))
            await asyncio.sleep(1.5)
            opened = await sessions_opened(admin, str(url.database)) - opened_before
    statuses = [status for batch in done for status in batch]
    assert statuses.count(202) > 0.9 * len(statuses), sorted(set(statuses))
    assert opened == 0, f"{opened} connections opened for {len(statuses)} requests"


async def test_the_admission_limit_sheds_what_it_cannot_start_on_sqlite(
    sqlite_template: Path, tmp_path: Path, receiver: Receiver
) -> None:
    """SQLite stalled by another process's open write transaction: two requests in progress
    wait for it, the rest are refused at once with 503 + Retry-After, and once the writer is
    done the two are accepted and new requests are too."""
    path = tmp_path / "hookline.db"
    shutil.copy(sqlite_template, path)
    settings = make_settings(
        f"sqlite+aiosqlite:///{path}", max_concurrent_requests=2, request_queue_timeout_s=0.2
    )
    async with running_api(settings, run_worker=False) as api:
        user, _ = await api.user()
        _, admin = await api.user("host-app", admin=True)
        await api.store.save_config(user.id, receiver.url, True, None, ["resume.parsed"])
        body = {"userId": user.id, "event": "resume.parsed", "data": EXAMPLE_DATA["resume.parsed"]}
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # SQLite's one writer, held by another connection
        try:
            posts = [
                asyncio.create_task(api.client.post("/api/events", headers=admin, json=body))
                for _ in range(10)
            ]
            done, waiting = await asyncio.wait(posts, timeout=2.0)
            refused = [task.result() for task in done]
            assert len(refused) == 8 and len(waiting) == 2
            assert all(r.status_code == 503 for r in refused)
            assert all(r.headers["Retry-After"] == "1" for r in refused)
            assert all(
                r.json()["error"] == "The server is busy; try again shortly" for r in refused
            )
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        accepted = [await task for task in waiting]
        assert [r.status_code for r in accepted] == [202, 202]
        again = await api.client.post("/api/events", headers=admin, json=body)
        assert again.status_code == 202
