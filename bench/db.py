"""Databases for the benchmark: a fresh PostgreSQL database or SQLite file per configuration,
users and endpoints through the Store API, and progress read back with plain SQL."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy import TextClause, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from hookline.config import Settings
from hookline.store import EndpointFields, Store
from hookline.store.db import create_engines

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _plain_dsn(url: str, database: str) -> str:
    return (
        make_url(url)
        .set(drivername="postgresql", database=database)
        .render_as_string(hide_password=False)
    )


async def postgres_available(url: str) -> str | None:
    """None when PostgreSQL at ``url`` answers, else why not."""
    try:
        conn = await asyncio.wait_for(asyncpg.connect(_plain_dsn(url, "postgres")), timeout=5)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def recreate_postgres(url: str, name: str) -> str:
    """Drop and create database ``name`` on the server of ``url``; returns its URL."""
    conn = await asyncpg.connect(_plain_dsn(url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def drop_postgres(url: str) -> None:
    name = make_url(url).database
    conn = await asyncpg.connect(_plain_dsn(url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def postgres_version(url: str) -> str:
    conn = await asyncpg.connect(_plain_dsn(url, "postgres"))
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


@dataclass(frozen=True)
class BenchUser:
    id: str
    token: str
    endpoint_id: str


async def make_user(url: str, key: str, name: str, receiver_url: str) -> BenchUser:
    """A user whose webhook points at the receiver (Store API, as a host app could)."""
    settings = Settings(env="development", database_url=url, secret_keys=[key])
    store = Store(settings)
    try:
        user, _, token = await store.create_user(name, is_admin=False)
        endpoint, _ = await store.save_config(
            user.id, receiver_url, True, None, default_events=settings.events
        )
    finally:
        await store.close()
    return BenchUser(user.id, token, endpoint.id)


def open_store(url: str, key: str) -> Store:
    """A Store on ``url`` in this process (close it when done)."""
    return Store(Settings(env="development", database_url=url, secret_keys=[key]))


async def make_user_with_endpoints(
    store: Store, name: str, urls: list[str], events: list[str], *, admin: bool = False
) -> BenchUser:
    """A user with one endpoint per URL, each subscribed to ``events`` (Store API, as the
    endpoints API does); ``endpoint_id`` is the first (primary) one's."""
    user, _, token = await store.create_user(name, is_admin=admin)
    created = [
        (await store.create_endpoint(user.id, EndpointFields(url=url, enabled_events=events)))[0]
        for url in urls
    ]
    return BenchUser(user.id, token, created[0].id if created else "")


def writer_engine(url: str) -> AsyncEngine:
    """An engine tuned as hookline's own writer (WAL, BEGIN IMMEDIATE on SQLite)."""
    writer, _reader = create_engines(url)  # the reader never connects: nothing to dispose
    return writer


@dataclass(frozen=True)
class Progress:
    succeeded: int
    failed: int
    in_flight: int


_READERS: dict[str, AsyncEngine] = {}


def reader_for(engine: AsyncEngine) -> AsyncEngine:
    """A reader engine (autocommit) on ``engine``'s database, for the benchmark's probes: on
    SQLite the writer engine starts every transaction with BEGIN IMMEDIATE, and a probe
    holding the write lock would stall the worker it is measuring."""
    url = engine.url.render_as_string(hide_password=False)
    if url not in _READERS:
        _READERS[url] = create_engines(url)[1]
    return _READERS[url]


async def dispose_readers() -> None:
    while _READERS:
        await _READERS.popitem()[1].dispose()


def _in_flight_sql(sqlite: bool) -> TextClause:
    # Through the partial lease index (lease_until is set on every in-flight row). SQLite is
    # told so: its statistics average over users, and once one user has a large backlog it
    # prefers ix_deliveries_open and walks that user's open rows (200 ms at 1M).
    hint = " INDEXED BY ix_deliveries_lease" if sqlite else ""
    return text(
        f"SELECT count(*) FROM deliveries{hint}"
        " WHERE status = 'in_flight' AND lease_until IS NOT NULL AND user_id = :u"
    )


_IN_FLIGHT = {"sqlite": _in_flight_sql(True), "postgresql": _in_flight_sql(False)}


async def progress(engine: AsyncEngine, user_id: str) -> Progress:
    """A user's finished deliveries, from hookline's own counters (written in the transaction
    that finishes each delivery), and its in-flight ones through the partial lease index: each
    probe costs the same however many deliveries the user has. Read through ``reader_for``."""
    finished = text(
        "SELECT coalesce(sum(successful), 0), coalesce(sum(failed), 0)"
        " FROM delivery_stats WHERE user_id = :u"
    )
    reader = reader_for(engine)
    async with reader.connect() as conn:
        succeeded, failed = (await conn.execute(finished, {"u": user_id})).one()
        leased = (await conn.execute(_IN_FLIGHT[reader.dialect.name], {"u": user_id})).scalar_one()
    return Progress(int(succeeded), int(failed), int(leased))


async def wait_finished(
    engine: AsyncEngine, user_id: str, n: int, timeout_s: float, every_s: float = 0.1
) -> tuple[Progress, float]:
    """Poll until ``n`` deliveries of the user are finished and committed (visible to another
    connection) or ``timeout_s`` passes: (progress, epoch seconds of the poll that saw it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        seen = await progress(engine, user_id)
        if seen.succeeded + seen.failed >= n or loop.time() >= deadline:
            return seen, time.time()
        await asyncio.sleep(every_s)


async def finish_times(engine: AsyncEngine, user_id: str) -> list[float]:
    """``finished_at`` of each succeeded delivery of the user, epoch seconds, sorted. hookline
    stamps it when its recording transaction starts, not when that commits."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT finished_at FROM deliveries WHERE user_id = :u AND status = 'succeeded'"
                " ORDER BY finished_at"
            ),
            {"u": user_id},
        )
        return [int(value) / 1e6 for (value,) in rows]


async def created_times(engine: AsyncEngine, user_id: str) -> dict[str, float]:
    """deliveryId -> when it was enqueued (created_at), epoch seconds."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT delivery_id, created_at FROM deliveries WHERE user_id = :u"),
            {"u": user_id},
        )
        return {delivery_id: int(created) / 1e6 for delivery_id, created in rows}


async def transactions(engine: AsyncEngine) -> int | None:
    """Committed plus rolled-back transactions of this PostgreSQL database so far (None on
    SQLite). Other backends flush their counts when they end or go idle, so read this after
    the processes of a phase have stopped or settled."""
    if engine.dialect.name != "postgresql":
        return None
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        value = (
            await conn.execute(
                text(
                    "SELECT xact_commit + xact_rollback FROM pg_stat_database"
                    " WHERE datname = current_database()"
                )
            )
        ).scalar_one()
        return int(value)
