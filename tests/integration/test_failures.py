"""When the database or the code fails: every answer is JSON in the error shape, 503 with
Retry-After while the database is unavailable, 507 when it is full (nothing stored), 500 with a
request id otherwise; keep-alive connections survive; /readyz says whether the database serves.

Real parts throughout: a PostgreSQL URL where nothing listens, a SQLite file capped with
``PRAGMA max_page_count``, uvicorn on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from hookline.api.app import create_app
from hookline.crypto import generate_key
from hookline.store.db import Database
from hookline.store.migrate import upgrade
from hookline.store.readiness import head_revision
from hookline.store.schema import deliveries
from tests.support import Api, Receiver, make_settings, running_api

DATA: dict[str, Any] = {"resumeId": "r", "fileName": "a.pdf", "parsedAt": "t", "success": True}
PUBLISH: dict[str, Any] = {"event": "resume.parsed", "data": DATA}


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """``response`` is ``status`` in the API's error shape, with a request id; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["success"] is False and body["error"]
    assert body["requestId"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


async def count_deliveries(api: Api) -> int:
    async with api.store.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(deliveries))).scalar_one())


# --- the database is unavailable --------------------------------------------------------------


@pytest.fixture(params=["postgres", "sqlite"])
def unavailable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL that cannot be opened: a loopback port where nothing listens, or a
    SQLite "file" that is a directory."""
    if request.param == "postgres":
        return "postgresql+asyncpg://postgres@127.0.0.1:1/hookline"
    (tmp_path / "hookline.db").mkdir()
    return f"sqlite+aiosqlite:///{tmp_path / 'hookline.db'}"


async def test_an_unavailable_database_answers_503_with_retry_after(
    unavailable_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_api(make_settings(unavailable_url), run_worker=False) as api:
        auth = {"Authorization": "Bearer hl_any-token-the-database-would-check"}
        requests = [
            ("POST", "/api/events", {"userId": "u", **PUBLISH}),
            ("GET", "/api/webhooks/logs", None),
            ("GET", "/api/webhooks/stats", None),
            ("GET", "/api/webhooks/config", None),
        ]
        for method, path, body in requests:
            response = await api.client.request(method, path, headers=auth, json=body)
            answer = assert_error(response, 503)
            assert answer["error"] == "The database is unavailable; try again shortly"
            assert int(response.headers["retry-after"]) > 0
            assert answer["requestId"] in caplog.text

        ready = await api.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json() == {"success": False, "error": "Not ready: the database is unavailable"}
        health = await api.client.get("/healthz")
        assert health.status_code == 200 and health.json() == {"ok": True}


async def test_lost_postgres_connections_answer_503_then_reconnect(
    postgres_database_url: str,
) -> None:
    async with running_api(make_settings(postgres_database_url), run_worker=False) as api:
        _, auth = await api.user()
        assert (await api.client.get("/api/webhooks/config", headers=auth)).status_code == 200
        # The server ends every session of this database, as a restart does.
        terminator = create_async_engine(postgres_database_url)
        try:
            async with terminator.connect() as conn:
                ended = await conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
                assert any(ended.scalars())
        finally:
            await terminator.dispose()

        lost = await api.client.get("/api/webhooks/config", headers=auth)
        assert_error(lost, 503)
        assert "retry-after" in lost.headers
        again = await api.client.get("/api/webhooks/config", headers=auth)
        assert again.status_code == 200, again.text


# --- the database is full ---------------------------------------------------------------------


class PageCap:
    """``PRAGMA max_page_count`` on every connection that writes to a SQLite store: SQLite then
    fails a write that needs more pages with SQLITE_FULL, as on a full disk."""

    def __init__(self, db: Database) -> None:
        assert db.sqlite and db._thread_engine is not None
        self.db = db
        self.pages: int | None = None
        for engine in (db.writer.sync_engine, db._thread_engine):
            event.listen(engine, "connect", self._on_connect)

    def _on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        if self.pages is not None:
            dbapi_connection.execute(f"PRAGMA max_page_count = {self.pages}")

    async def set(self, pages: int | None) -> None:
        """Cap the file at ``pages`` pages (None: SQLite's default) from the next write on."""
        self.pages = pages if pages is not None else 1_073_741_823
        # Connections already open keep their cap: open new ones (on the writer's own thread
        # for the thread engine, whose connection belongs to that thread).
        await self.db.writer.dispose()
        assert self.db._thread is not None and self.db._thread_engine is not None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.db._thread, self.db._thread_engine.dispose)

    async def page_count(self) -> int:
        async with self.db.read() as conn:
            return int((await conn.exec_driver_sql("PRAGMA page_count")).scalar_one())


async def test_a_full_sqlite_database_answers_507_and_stores_nothing(
    sqlite_template: Path, tmp_path: Path, receiver: Receiver
) -> None:
    path = tmp_path / "hookline.db"
    shutil.copy(sqlite_template, path)
    async with running_api(make_settings(f"sqlite+aiosqlite:///{path}"), run_worker=False) as api:
        cap = PageCap(api.store.db)
        user, auth = await api.user()
        _, admin = await api.user("host-app", admin=True)
        saved = await api.client.post(
            "/api/webhooks/config", headers=auth, json={"url": receiver.url}
        )
        assert saved.status_code == 200
        # A payload that needs pages the file may not grow to.
        publish = {"userId": user.id, **PUBLISH}
        publish["data"] = {**DATA, "text": "x" * 100_000}

        await cap.set(await cap.page_count())
        full = await api.client.post("/api/events", headers=admin, json=publish)
        answer = assert_error(full, 507)
        assert answer["error"] == "The database is out of space; nothing was stored"
        assert await count_deliveries(api) == 0
        logs = await api.client.get("/api/webhooks/logs", headers=auth)
        assert logs.status_code == 200 and logs.json()["pagination"]["total"] == 0

        await cap.set(None)  # space freed
        accepted = await api.client.post("/api/events", headers=admin, json=publish)
        assert accepted.status_code == 202, accepted.text
        assert len(accepted.json()["deliveryIds"]) == 1
        assert await count_deliveries(api) == 1


# --- anything else ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """``app`` under uvicorn on 127.0.0.1, in this event loop; yields its base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, ws="none", lifespan="on", log_config=None
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


async def test_an_unexpected_exception_is_a_json_500_and_the_connection_stays_open(
    sqlite_template: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "hookline.db"
    shutil.copy(sqlite_template, path)
    app = create_app(make_settings(f"sqlite+aiosqlite:///{path}"), run_worker=False)

    async def boom() -> None:
        raise RuntimeError("secret internals: kaboom")

    async def client_port(request: Request) -> int:
        assert request.client is not None
        return request.client.port

    app.add_api_route("/test-only/boom", boom)
    app.add_api_route("/test-only/port", client_port)
    caplog.set_level(logging.INFO)

    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        port = (await client.get("/test-only/port")).json()
        failed = await client.get("/test-only/boom")
        answer = assert_error(failed, 500)
        assert answer["error"] == "Internal server error"
        assert "kaboom" not in failed.text
        assert failed.headers.get("connection") != "close"
        # The same connection (the same client port) serves the next request.
        assert (await client.get("/test-only/port")).json() == port
        assert (await client.get("/healthz")).status_code == 200

    logged = [r for r in caplog.records if answer["requestId"] in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.ERROR
    assert logged[0].exc_info is not None and "kaboom" in str(logged[0].exc_info[1])
    assert "Exception in ASGI application" not in caplog.text


async def test_secrets_that_do_not_open_are_a_json_500_that_says_so(
    sqlite_template: Path, tmp_path: Path, receiver: Receiver
) -> None:
    path = tmp_path / "hookline.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    async with running_api(make_settings(url), run_worker=False) as api:
        _, auth = await api.user()
        saved = await api.client.post(
            "/api/webhooks/config", headers=auth, json={"url": receiver.url}
        )
        assert saved.status_code == 200
    # The service restarted with a key that did not encrypt the stored secret.
    settings = make_settings(url, secret_keys=[generate_key()])
    async with running_api(settings, run_worker=False) as api:
        update = await api.client.post(
            "/api/webhooks/config", headers=auth, json={"enabled": False}
        )
        answer = assert_error(update, 500)
        assert answer["error"] == (
            "The stored webhook secrets do not open with the configured keys: "
            "a stored secret does not open with any configured key"
        )


# --- /readyz ----------------------------------------------------------------------------------


async def test_ready_on_a_migrated_database(database_url: str) -> None:
    async with running_api(make_settings(database_url), run_worker=False) as api:
        response = await api.client.get("/readyz")
        assert response.status_code == 200
        assert response.json() == {"ok": True, "revision": head_revision()}


@pytest.mark.parametrize("revision", [None, "0001"])
async def test_not_ready_before_the_migrations(tmp_path: Path, revision: str | None) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hookline.db'}"
    if revision is not None:
        await asyncio.to_thread(upgrade, url, revision)
    async with running_api(make_settings(url), run_worker=False) as api:
        response = await api.client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {
            "success": False,
            "error": f"Not ready: the database is at migration {revision}, not "
            f"{head_revision()}: run hookline migrate",
        }
        assert (await api.client.get("/healthz")).status_code == 200
