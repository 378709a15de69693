"""Engines: SQLite tuned for one writer at a time (WAL, busy_timeout, BEGIN IMMEDIATE, a
write thread), PostgreSQL with a sized pool and autocommit reads."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, Row, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.base import Executable

SQLITE_BUSY_TIMEOUT_MS = 10_000
#: How soon a writer on SQLite's thread asks again for the write lock, at first and at most.
LOCK_RETRY_FIRST_S = 0.0002
LOCK_RETRY_MAX_S = 0.002
#: How the pool's PostgreSQL sessions show in ``pg_stat_activity``; the listeners show as
#: ``hookline-listen``.
APPLICATION_NAME = "hookline"

T = TypeVar("T")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver must not open transactions itself; "begin" below does, explicitly.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_thread_engine(url: str) -> Engine:
    """A synchronous writer for SQLite's own thread (``Database.run_write``), set up as the
    async writer is (the same pragmas, BEGIN IMMEDIATE), except that it waits for the write
    lock by asking often (``_begin_immediate``) rather than through SQLite's busy handler."""
    engine = create_engine(make_url(url).set(drivername="sqlite+pysqlite"), pool_size=1)
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA busy_timeout=0"))
    event.listen(engine, "begin", _begin_immediate)
    return engine


def _sqlite_loop_reader(url: str) -> Engine:
    """A synchronous reader for the event loop's thread (``Database.read_rows``): one
    connection, read-only, that fails at once rather than wait for a lock."""
    engine = create_engine(
        make_url(url).set(drivername="sqlite+pysqlite"),
        poolclass=StaticPool,
        connect_args={"timeout": 0, "check_same_thread": False},
    )

    def setup(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # autocommit: no snapshot outlives a read
        dbapi_connection.execute("PRAGMA query_only=1")

    event.listen(engine, "connect", setup)
    return engine


def _begin_immediate(conn: Connection) -> None:
    """BEGIN IMMEDIATE, asking again every ``LOCK_RETRY_FIRST_S`` (doubling up to
    ``LOCK_RETRY_MAX_S``) while another connection holds the write lock, for at most
    ``SQLITE_BUSY_TIMEOUT_MS``; then SQLite's "database is locked", as before.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ... 100 ms between tries, so a
    writer waiting behind another process that writes in short transactions with short gaps
    (a host app publishing, another hookline process) kept missing the gaps: behind 30 ms
    transactions 5 ms apart, waits had a median of 60-100 ms and reached 1.5 s
    (``test_sqlite_contention``). Asked often, it waits about one transaction."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay_s = LOCK_RETRY_FIRST_S
    while time.monotonic() < deadline:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY:
                break  # not the lock: let the statement below fail as it will
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, LOCK_RETRY_MAX_S)
    conn.exec_driver_sql("BEGIN IMMEDIATE")  # raises, through SQLAlchemy as any failure does


def create_engines(
    url: str, pool_size: int = 20, *, pool_timeout_s: float = 30.0, lock_timeout_s: float = 0.0
) -> tuple[AsyncEngine, AsyncEngine]:
    """(writer, reader) engines for ``url``. Readers run each statement in autocommit.

    On PostgreSQL both share one pool; the reader's connections are in autocommit, so a read
    is one round trip (no BEGIN and ROLLBACK around it), and single-statement writes use it
    too (``Database.write_once``). On SQLite the writer starts every transaction with BEGIN
    IMMEDIATE so that a writer takes the lock up front instead of failing to upgrade a read
    lock; readers never block behind writers thanks to WAL.

    A pool holds ``pool_size`` connections and never opens more: one opened beyond it would
    be closed on return, so every burst above it paid for new connections (a PostgreSQL
    backend each) just when the database was busiest. A caller that finds none free within
    ``pool_timeout_s`` gets ``sqlalchemy.exc.TimeoutError`` (the API's 503). On PostgreSQL a
    statement waiting for a lock longer than ``lock_timeout_s`` (if not 0) fails with
    SQLSTATE 55P03.
    """
    pooled: dict[str, Any] = {
        "pool_size": pool_size,
        "max_overflow": 0,
        "pool_timeout": pool_timeout_s,
    }
    if not is_sqlite(url):
        settings = {"lock_timeout": str(round(lock_timeout_s * 1000))} if lock_timeout_s else {}
        settings["application_name"] = APPLICATION_NAME
        engine = create_async_engine(
            url, pool_pre_ping=False, connect_args={"server_settings": settings}, **pooled
        )
        return engine, engine.execution_options(isolation_level="AUTOCOMMIT")
    # No mkdir here: a missing directory is a mistyped path more often than a new database
    # (only ``hookline migrate`` creates it, and says so). The writer needs one connection at a
    # time (the write lock below); readers as many as requests in progress.
    writer = create_async_engine(url)
    # Readers run each statement in autocommit: no BEGIN, and nothing to roll back on return,
    # which saves two round trips to SQLite's thread per read.
    reader = create_async_engine(url, pool_reset_on_return=None, **pooled)
    event.listen(writer.sync_engine, "connect", _sqlite_pragmas)
    event.listen(reader.sync_engine, "connect", _sqlite_pragmas)
    event.listen(writer.sync_engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return writer, reader


class Database:
    """The two engines, plus what SQLite wants: an in-process write lock, and a thread of its
    own that runs write transactions whole (``run_write``)."""

    def __init__(
        self,
        url: str,
        pool_size: int = 20,
        *,
        pool_timeout_s: float = 30.0,
        lock_timeout_s: float = 0.0,
    ) -> None:
        self.url = url
        self.sqlite = is_sqlite(url)
        self.writer, self.reader = create_engines(
            url, pool_size, pool_timeout_s=pool_timeout_s, lock_timeout_s=lock_timeout_s
        )
        # One writer at a time inside this process: cheaper than contending on SQLite's lock.
        self._write_lock = asyncio.Lock() if self.sqlite else None
        # PostgreSQL runs a single-statement write in autocommit: one round trip, not three.
        self._autocommit = None if self.sqlite else self.reader
        # SQLite runs the worker's transactions whole on one thread of its own (run_write).
        self._thread_engine = _sqlite_thread_engine(url) if self.sqlite else None
        # And its idle workers' small reads on the event loop's own thread (read_rows).
        path = make_url(url).database if self.sqlite else None
        self._loop_reader = _sqlite_loop_reader(url) if path and path != ":memory:" else None
        self._thread = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="hookline-sqlite")
            if self.sqlite
            else None
        )

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed when the block ends without an exception."""
        if self._write_lock is None:
            async with self.writer.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def write_once(self) -> AsyncIterator[AsyncConnection]:
        """PostgreSQL: a connection for a write that is one statement, in autocommit (no BEGIN
        and COMMIT round trips; the statement is atomic by itself). SQLite writes go through
        ``write()`` or ``run_write()``."""
        assert self._autocommit is not None, "PostgreSQL only"
        async with self._autocommit.connect() as conn:
            yield conn

    async def run_write(self, work: Callable[[Connection], T]) -> T:
        """SQLite: run ``work`` in one write transaction on SQLite's own thread, synchronously.

        Through aiosqlite every statement costs three or four hops between the event loop
        and its thread; here the whole transaction costs one. It takes the same in-process
        write lock as ``write()``."""
        assert self._write_lock is not None and self._thread is not None, "SQLite only"
        loop = asyncio.get_running_loop()
        async with self._write_lock:
            return await loop.run_in_executor(self._thread, self._write_sync, work)

    def _write_sync(self, work: Callable[[Connection], T]) -> T:
        assert self._thread_engine is not None
        with self._thread_engine.begin() as conn:
            return work(conn)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.reader.connect() as conn:
            yield conn

    async def read_rows(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> Sequence[Row[Any]]:
        """The rows of a small indexed read (a worker's look for work while idle).

        On SQLite it runs on the event loop's own thread, on a connection of its own that never
        waits for a lock: through aiosqlite each read costs about a dozen hand-offs between the
        loop and the driver's thread, each a wake-up of an otherwise idle process. When SQLite
        is busy (or the file cannot be read) it reads the usual way instead."""
        if self._loop_reader is not None:
            try:
                with self._loop_reader.connect() as conn:
                    return conn.execute(statement, params).all()
            except DBAPIError:
                pass
        async with self.read() as conn:
            return (await conn.execute(statement, params)).all()

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.sqlite:  # PostgreSQL's reader shares the writer's pool
            await self.reader.dispose()
        if self._loop_reader is not None:
            self._loop_reader.dispose()
        if self._thread is not None and self._thread_engine is not None:
            # Its connection belongs to its thread: close it there.
            await asyncio.get_running_loop().run_in_executor(
                self._thread, self._thread_engine.dispose
            )
            self._thread.shutdown(wait=True)
