"""Real parts for the browser tests: Debian's Chromium, the app served by uvicorn on loopback
in a thread, and a stdlib HTTP receiver in a thread (the Playwright sync API wants no loop)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, sync_playwright

from hookline.api.app import create_app
from hookline.store import Store
from tests.support import make_settings

T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"


# --- the receiver ---------------------------------------------------------------------------


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes
    path: str = ""  # the request's path: endpoints on one receiver differ by path

    @property
    def event(self) -> str:
        return str(json.loads(self.body).get("event", ""))


@dataclass
class Reply:
    """A scripted answer: status, body and extra headers."""

    status: int
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None  # answer only once this is set (or after 10 s)


@dataclass
class ThreadReceiver:
    """Records every POST; answers as ``replies`` says for the request's path, else 500 for
    events in ``fail_events``, else 200."""

    url: str = ""
    hits: list[Hit] = field(default_factory=list)
    fail_events: set[str] = field(default_factory=set)
    replies: dict[str, Reply] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def base(self) -> str:
        """The receiver's origin, for URLs with paths of their own."""
        return self.url.removesuffix("/hook")

    def record(self, hit: Hit) -> Reply:
        with self.changed:
            self.hits.append(hit)
            self.changed.notify_all()
            scripted = self.replies.get(hit.path)
        if scripted is not None:
            return scripted
        if hit.event in self.fail_events:
            return Reply(500, b"receiver says no")
        return Reply(200)

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Hit]:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.hits) >= count, timeout_s):
                raise AssertionError(f"receiver got {len(self.hits)} of {count} requests")
            return list(self.hits)


@pytest.fixture(scope="module")
def http_receiver() -> Iterator[ThreadReceiver]:
    state = ThreadReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = state.record(Hit(headers, body, self.path))
            if reply.hold is not None:
                reply.hold.wait(10)
            self.send_response(reply.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, name="receiver", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --- the service ----------------------------------------------------------------------------


class LiveServer:
    """create_app(settings) under uvicorn on 127.0.0.1, its own event loop in a thread."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, ws="none", lifespan="on", log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="uvicorn", daemon=True)
        self.url = ""

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.serve())
        finally:
            self.loop.close()

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop (where its store lives) and wait for it."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=10)

    @property
    def store(self) -> Store:
        store: Store = self.app.state.store
        return store

    def user(self, name: str, admin: bool = False) -> tuple[str, str, str]:
        """A new user: (user id, token id, token)."""
        user, token_id, token = self.call(self.store.create_user(name, admin))
        return user.id, token_id, token

    def publish(self, admin_token: str, user_id: str, event: str, data: dict[str, Any]) -> None:
        response = httpx.post(
            f"{self.url}/api/events",
            json={"userId": user_id, "event": event, "data": data},
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        assert response.status_code == 202, response.text
        assert len(response.json()["deliveryIds"]) == 1, response.text


@pytest.fixture(scope="module")
def live_server(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    path = tmp_path_factory.mktemp("dashboard") / "hookline.db"
    shutil.copy(sqlite_template, path)
    settings = make_settings(
        f"sqlite+aiosqlite:///{path}", retry_delays_s=[0.05, 0.05, 0.05], poll_interval_s=0.05
    )
    server = LiveServer(create_app(settings))
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- the browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"{CHROMIUM} is missing: apt-get install chromium chromium-driver"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return str(CHROMIUM)


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=LAUNCH_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="en-US", timezone_id="UTC"
    )
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
