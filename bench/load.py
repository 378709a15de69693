"""Publishers and probes: the Python API in batches, ``Store.publish`` one event a call, POST
/api/events, a fixed offered load, and sequential GETs for query latency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

import hookline
from bench.bare_client import EVENT, event_data
from hookline.store import Store


@dataclass
class Published:
    """What a publisher did: when it started and ended, and each event's send time."""

    started: float = 0.0  # epoch seconds, just before the first publish
    ended: float = 0.0
    cpu_s: float = 0.0  # CPU of this (publishing) process while publishing
    errors: int = 0
    accepted: int = 0  # events accepted (each made len(delivery_ids) deliveries)
    sent_at: dict[str, float] = field(default_factory=dict)  # deliveryId -> epoch seconds
    returned_at: dict[str, float] = field(default_factory=dict)  # when publish returned

    @property
    def count(self) -> int:
        return len(self.sent_at)


def _lanes(engine: AsyncEngine, wanted: int) -> int:
    """Concurrent publishing transactions: SQLite has one writer at a time, so one there."""
    return 1 if engine.dialect.name == "sqlite" else wanted


async def publish_python_batches(
    engine: AsyncEngine, user_id: str, n: int, batch: int, lanes: int
) -> Published:
    """``hookline.publish_many`` with ``batch`` events per call (one transaction each),
    ``lanes`` calls at a time (one on SQLite)."""
    out = Published()
    batches = iter(range(0, n, batch))

    async def lane() -> None:
        for lo in batches:
            events = [(user_id, EVENT, event_data(i)) for i in range(lo, min(n, lo + batch))]
            for result in await hookline.publish_many(engine, events):
                out.accepted += 1
                for delivery_id in result.delivery_ids:
                    out.sent_at[delivery_id] = out.started

    cpu0 = time.process_time()
    out.started = time.time()
    await asyncio.gather(*(lane() for _ in range(_lanes(engine, lanes))))
    out.ended = time.time()
    out.cpu_s = time.process_time() - cpu0
    return out


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _post_event(
    session: aiohttp.ClientSession, base: str, user_id: str, i: int, out: Published
) -> None:
    sent = time.time()
    try:
        async with session.post(
            f"{base}/api/events",
            json={"userId": user_id, "event": EVENT, "data": event_data(i)},
        ) as response:
            payload = await response.json()
            if response.status != 202 or not payload.get("deliveryIds"):
                out.errors += 1
                return
            returned = time.time()
            out.accepted += 1
            for delivery_id in payload["deliveryIds"]:
                out.sent_at[delivery_id] = sent
                out.returned_at[delivery_id] = returned
    except (aiohttp.ClientError, TimeoutError, ValueError):
        out.errors += 1


async def publish_http(
    base: str, admin_token: str, user_id: str, n: int, concurrency: int
) -> Published:
    """POST /api/events n times with ``concurrency`` requests in flight."""
    out = Published()
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector, headers=_auth(admin_token), timeout=timeout
    ) as session:
        numbers = iter(range(n))

        async def lane() -> None:
            for i in numbers:
                await _post_event(session, base, user_id, i, out)

        cpu0 = time.process_time()
        out.started = time.time()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        out.ended = time.time()
        out.cpu_s = time.process_time() - cpu0
    return out


async def offered_load_http(
    base: str, admin_token: str, user_id: str, rate: float, duration_s: float
) -> Published:
    """An open-loop load: one POST /api/events every 1/rate seconds, whatever the answers."""
    out = Published()
    n = int(rate * duration_s)
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(
        connector=connector, headers=_auth(admin_token), timeout=timeout
    ) as session:
        await _open_loop(out, n, rate, lambda i: _post_event(session, base, user_id, i, out))
    return out


async def _open_loop(
    out: Published, n: int, rate: float, publish: Callable[[int], Awaitable[None]]
) -> None:
    """Start ``publish(i)`` for i in 0..n-1, one every 1/rate seconds, each its own task, and
    wait for them all; stamps ``out.started`` and ``out.ended``."""
    loop = asyncio.get_running_loop()
    tasks = []
    start = loop.time()
    out.started = time.time()
    for i in range(n):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(publish(i)))
    await asyncio.gather(*tasks)
    out.ended = time.time()


async def offered_load_python(
    engine: AsyncEngine, user_id: str, rate: float, duration_s: float
) -> Published:
    """An open-loop load: one ``hookline.publish`` (its own transaction) every 1/rate seconds.

    Each publish is a task, so a slow commit does not delay the next one; on SQLite they take
    turns on an in-process lock (as hookline's own writers do) instead of busy-waiting."""
    out = Published()
    n = int(rate * duration_s)
    turn = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    async def one(i: int) -> None:
        sent = time.time()
        try:
            if turn is None:
                result = await hookline.publish(engine, user_id, EVENT, event_data(i))
            else:
                async with turn:
                    result = await hookline.publish(engine, user_id, EVENT, event_data(i))
        except Exception:
            out.errors += 1
            return
        returned = time.time()
        out.accepted += 1
        for delivery_id in result.delivery_ids:
            out.sent_at[delivery_id] = sent
            out.returned_at[delivery_id] = returned

    await _open_loop(out, n, rate, one)
    return out


async def publish_store(store: Store, user_id: str, n: int, concurrency: int) -> Published:
    """``Store.publish`` n times, one event a call, ``concurrency`` calls at a time (on SQLite
    they queue for the store's one write thread)."""
    out = Published()
    numbers = iter(range(n))

    async def lane() -> None:
        for i in numbers:
            sent = time.time()
            try:
                result = await store.publish(user_id, EVENT, event_data(i))
            except Exception:
                out.errors += 1
                continue
            if not result.delivery_ids:
                out.errors += 1
                continue
            out.accepted += 1
            for delivery_id in result.delivery_ids:
                out.sent_at[delivery_id] = sent

    cpu0 = time.process_time()
    out.started = time.time()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    out.ended = time.time()
    out.cpu_s = time.process_time() - cpu0
    return out


async def get_latencies(
    base: str, token: str, path: str, count: int, budget_s: float, warmup: int = 3
) -> tuple[list[float], int]:
    """Sequential GETs of ``path``: (latencies in ms, non-200 answers), bounded by count and
    time."""
    latencies: list[float] = []
    bad = 0
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(headers=_auth(token), timeout=timeout) as session:
        deadline = time.monotonic() + budget_s
        for i in range(warmup + count):
            started = time.perf_counter()
            async with session.get(base + path) as response:
                await response.read()
                ok = response.status == 200
            elapsed_ms = (time.perf_counter() - started) * 1000
            if not ok:
                bad += 1
            if i >= warmup:
                latencies.append(elapsed_ms)
            if time.monotonic() > deadline and len(latencies) >= 5:
                break
    return latencies, bad


async def receiver_count(receiver: str) -> dict[str, Any]:
    """Requests, unique deliveryIds, duplicates, bytes, requests by path, first and last
    arrival (epoch seconds) since the last reset."""
    async with aiohttp.ClientSession() as session, session.get(receiver + "/_bench/count") as r:
        data: dict[str, Any] = await r.json()
        return data


async def receiver_arrivals(receiver: str) -> dict[str, float]:
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(receiver + "/_bench/arrivals") as r,
    ):
        data: dict[str, float] = await r.json()
        return data


async def receiver_reset(receiver: str) -> None:
    async with aiohttp.ClientSession() as session, session.post(receiver + "/_bench/reset") as r:
        await r.read()


async def http_json(
    method: str, url: str, token: str | None = None, body: object = None
) -> tuple[int, object]:
    headers = _auth(token) if token else {}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.request(method, url, json=body) as response,
    ):
        return response.status, await response.json(content_type=None)
