"""Real parts for tests: databases, a loopback HTTP receiver, the app over ASGI, subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web
from fastapi import FastAPI

from hookline.api.app import create_app
from hookline.config import Settings
from hookline.store import Store, User

# A fixed Fernet key for tests (never used outside them).
TEST_KEY = "nbG9WnbZcWQXoLBgKqYkS8pD-0rHvW4b1tUdK6ZpM0E="

FAST_RETRIES = {"retry_delays_s": [0.05, 0.1, 0.2], "poll_interval_s": 0.05}


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "development",
        "database_url": database_url,
        "secret_keys": [TEST_KEY],
        "purge_interval_s": 3600.0,
        # Shedding has tests of its own, with their own limits; elsewhere a burst of requests
        # on a busy test machine waits for its turn instead of getting 503 after 0.25 s.
        "request_queue_timeout_s": 10.0,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Received:
    at: float  # time.monotonic() on arrival
    headers: dict[str, str]
    body: bytes
    path: str


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records requests and answers as scripted.

    ``script`` is consumed one entry per request: an int status, or a dict with ``status``,
    ``delay_s``, ``headers``, ``body``. When empty, it answers ``default_status``.
    """

    port: int = 0
    received: list[Received] = field(default_factory=list)
    script: list[Any] = field(default_factory=list)
    default_status: int = 200
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(Received(time.monotonic(), dict(request.headers), body, request.path))
        self.arrived.set()
        step: Any = self.script.pop(0) if self.script else self.default_status
        if isinstance(step, int):
            step = {"status": step}
        if step.get("delay_s"):
            await asyncio.sleep(step["delay_s"])
        return web.Response(
            status=step.get("status", 200),
            text=step.get("body", "ok"),
            headers=step.get("headers"),
        )

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        """Wait until at least ``count`` requests arrived."""
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"receiver got {len(self.received)} of {count} requests")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), timeout=min(remaining, 0.2))
        return self.received


@contextlib.asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None and server.sockets
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        await runner.cleanup()


@dataclass
class Api:
    """The app in-process over ASGI, plus its store, for one test."""

    app: FastAPI
    client: httpx.AsyncClient
    store: Store
    settings: Settings

    async def user(self, name: str = "user", admin: bool = False) -> tuple[User, dict[str, str]]:
        """A new user and the Authorization header for its token."""
        user, _, token = await self.store.create_user(name, admin)
        return user, {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def running_api(settings: Settings, run_worker: bool = True) -> AsyncIterator[Api]:
    app = create_app(settings, run_worker=run_worker)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hookline.test"
        ) as client:
            yield Api(app, client, app.state.store, settings)


async def wait_until(predicate: Any, timeout_s: float = 10.0, every_s: float = 0.02) -> None:
    """Poll an async predicate until it is truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        if await predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(every_s)


LOCAL_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@functools.cache
def postgres_url() -> str | None:
    """The PostgreSQL server database tests run on: HOOKLINE_TEST_POSTGRES_URL, else the local
    server on 127.0.0.1:5432 when it answers (so ``make test`` covers both databases wherever
    PostgreSQL runs). HOOKLINE_TEST_POSTGRES_URL=none runs SQLite alone."""
    configured = os.environ.get("HOOKLINE_TEST_POSTGRES_URL", "").strip()
    if configured.lower() == "none":
        return None
    if configured:
        return configured
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            pass
    except OSError:
        return None
    return LOCAL_POSTGRES_URL


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hookline_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a `hookline` subprocess: this process's, less every HOOKLINE_
    setting, in development mode on ``database_url`` with the test key; ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    env.update(
        HOOKLINE_ENV="development",
        HOOKLINE_DATABASE_URL=database_url,
        HOOKLINE_SECRET_KEYS=TEST_KEY,
    )
    env.update(extra)
    return env


@contextlib.asynccontextmanager
async def hookline_process(
    env: dict[str, str], *args: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`hookline ARGS...` as a real process (output discarded); stopped with SIGTERM on the
    way out, and killed if it has not ended within 30 s."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from hookline.cli import main; main()",
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout=30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
