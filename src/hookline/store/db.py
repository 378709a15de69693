"""Engines: SQLite tuned for one writer at a time (WAL, busy_timeout, BEGIN IMMEDIATE),
PostgreSQL as it comes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 10_000


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


def create_engines(url: str, pool_size: int = 20) -> tuple[AsyncEngine, AsyncEngine]:
    """(writer, reader) engines for ``url``. Readers run each statement in autocommit.

    On PostgreSQL both share one pool; the reader's connections are in autocommit, so a read
    is one round trip (no BEGIN and ROLLBACK around it), and single-statement writes use it
    too (``Database.write_once``). On SQLite the writer starts every transaction with BEGIN
    IMMEDIATE so that a writer takes the lock up front instead of failing to upgrade a read
    lock; readers never block behind writers thanks to WAL.
    """
    if not is_sqlite(url):
        # Connections beyond the pool are closed on return: size it for the usual load, or
        # every burst pays for new connections.
        engine = create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False
        )
        return engine, engine.execution_options(isolation_level="AUTOCOMMIT")
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    writer = create_async_engine(url)
    # Readers run each statement in autocommit: no BEGIN, and nothing to roll back on return,
    # which saves two round trips to SQLite's thread per read.
    reader = create_async_engine(url, pool_reset_on_return=None)
    event.listen(writer.sync_engine, "connect", _sqlite_pragmas)
    event.listen(reader.sync_engine, "connect", _sqlite_pragmas)
    event.listen(writer.sync_engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return writer, reader


class Database:
    """The two engines plus the in-process write lock SQLite wants."""

    def __init__(self, url: str, pool_size: int = 20) -> None:
        self.url = url
        self.sqlite = is_sqlite(url)
        self.writer, self.reader = create_engines(url, pool_size)
        # One writer at a time inside this process: cheaper than contending on SQLite's lock.
        self._write_lock = asyncio.Lock() if self.sqlite else None
        # PostgreSQL runs a single-statement write in autocommit: one round trip, not three.
        self._autocommit = None if self.sqlite else self.reader

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
        """A write that is one statement on PostgreSQL, run in autocommit there (no BEGIN and
        COMMIT round trips; the statement is atomic by itself). On SQLite, where the same
        work takes several statements, a write transaction as ``write()``."""
        if self._autocommit is None:
            async with self.write() as conn:
                yield conn
            return
        async with self._autocommit.connect() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.reader.connect() as conn:
            yield conn

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.sqlite:  # PostgreSQL's reader shares the writer's pool
            await self.reader.dispose()
