"""PostgreSQL's wake-ups for a worker: LISTEN on the channel the enqueue trigger notifies
(migration 0003), and keep listening when the connection is lost.

A worker that is not listening still works, but only on its poll interval, which is far
slower. So the listener notices a lost connection, by asyncpg's termination callback or, for
one that died silently (a dropped TCP connection never reports its end), by a liveness check
every ``CHECK_EVERY_S``. Until it listens again it wakes the worker every
``POLL_WHILE_DOWN_S`` (the worker then polls) and reconnects with capped exponential backoff;
once back it wakes the worker once more, for whatever was published in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

log = logging.getLogger("hookline.store")

POLL_WHILE_DOWN_S = 0.25
# The idle cost: one round trip on an otherwise silent connection every this many seconds.
CHECK_EVERY_S = 10.0
CHECK_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5.0
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 5.0
# Names the session in pg_stat_activity.
APPLICATION_NAME = "hookline-listen"


class Listener:
    """Calls ``on_notify`` on every NOTIFY on ``channel``; while not listening, every
    ``poll_while_down_s`` instead, and once on listening again. A lost or refused connection
    never raises: it logs one warning when listening stops and one info when it resumes."""

    def __init__(
        self,
        dsn: str,
        channel: str,
        on_notify: Callable[[], None],
        *,
        poll_while_down_s: float = POLL_WHILE_DOWN_S,
        check_every_s: float = CHECK_EVERY_S,
        check_timeout_s: float = CHECK_TIMEOUT_S,
        retry_first_s: float = RETRY_FIRST_S,
        retry_max_s: float = RETRY_MAX_S,
        subject: str = "new deliveries",
    ) -> None:
        self._subject = subject  # what the log lines say it listens for
        self._dsn = dsn
        self._channel = channel
        self._on_notify = on_notify
        self._poll_while_down_s = poll_while_down_s
        self._check_every_s = check_every_s
        self._check_timeout_s = check_timeout_s
        self._retry_first_s = retry_first_s
        self._retry_max_s = retry_max_s
        self._conn: asyncpg.Connection | None = None
        self._down = asyncio.Event()  # set while not listening
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def listening(self) -> bool:
        """True while it listens: no NOTIFY sent meanwhile can have been missed."""
        return self._conn is not None and not self._down.is_set()

    async def start(self) -> None:
        """Listen now if PostgreSQL answers; if it does not, keep trying in the background."""
        await self._connect()
        self._tasks = [
            asyncio.create_task(self._keep_listening(), name="hookline-listen"),
            asyncio.create_task(self._poll_while_down(), name="hookline-listen-poll"),
        ]

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close()

    async def _connect(self) -> bool:
        """One attempt to LISTEN on a new connection; on failure, mark the listener down."""
        try:
            conn = await asyncpg.connect(
                self._dsn,
                timeout=CONNECT_TIMEOUT_S,
                server_settings={"application_name": APPLICATION_NAME},
            )
        except Exception as exc:  # refused, starting up, timed out, bad credentials ...
            self._lost(f"cannot connect: {exc!r}")
            return False
        self._conn = conn  # from here on, stop() closes it
        try:
            await conn.add_listener(self._channel, self._notified)
        except Exception as exc:
            self._conn = None
            conn.terminate()
            self._lost(f"LISTEN failed: {exc!r}")
            return False
        if self._down.is_set():
            self._down.clear()
            log.info("listening on PostgreSQL for %s again", self._subject)
            self._on_notify()  # something may have been published while we were away
        return True

    def _lost(self, why: str) -> None:
        if not self._down.is_set():
            self._down.set()
            log.warning(
                "not listening on PostgreSQL for %s (%s); polling every %g s until it reconnects",
                self._subject,
                why,
                self._poll_while_down_s,
            )
            self._on_notify()

    async def _keep_listening(self) -> None:
        delay_s = self._retry_first_s
        while True:
            if self._conn is not None:
                why = await self._until_lost(self._conn)
                self._conn.terminate()  # lost already: nothing to say goodbye to
                self._conn = None
                self._lost(why)
                delay_s = self._retry_first_s
            await asyncio.sleep(delay_s)
            if not await self._connect():
                delay_s = min(delay_s * 2, self._retry_max_s)

    async def _until_lost(self, conn: asyncpg.Connection) -> str:
        """Wait until ``conn`` is closed or stops answering; returns why."""
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _: closed.set())
        while not conn.is_closed():
            try:
                await asyncio.wait_for(closed.wait(), timeout=self._check_every_s)
                break
            except TimeoutError:
                pass
            try:
                # Repeating the LISTEN (a no-op) rather than a SELECT keeps the session shown
                # as a LISTEN in pg_stat_activity, where operators count listeners.
                await conn.execute(f'LISTEN "{self._channel}"', timeout=self._check_timeout_s)
            except Exception as exc:
                return f"no answer to the liveness check: {exc!r}"
        return "connection closed"

    async def _poll_while_down(self) -> None:
        while True:
            await self._down.wait()
            await asyncio.sleep(self._poll_while_down_s)
            if self._down.is_set():
                self._on_notify()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            await conn.close(timeout=self._check_timeout_s)
        except Exception:
            conn.terminate()

    def _notified(self, *_: Any) -> None:
        self._on_notify()


async def listen(
    dsn: str, channel: str, on_notify: Callable[[], None]
) -> Callable[[], Awaitable[None]]:
    """Start listening on ``channel`` at ``dsn``; returns the coroutine that stops it."""
    listener = Listener(dsn, channel, on_notify)
    await listener.start()
    return listener.stop
