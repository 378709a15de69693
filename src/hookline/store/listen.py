"""PostgreSQL's wake-ups for a worker: LISTEN on the channel the enqueue trigger notifies
(migration 0003), and keep listening when the connection is lost.

A worker that is not listening still works, but only on its poll interval, which is far
slower. So the listener notices a lost connection, by asyncpg's termination callback or, for
one that died silently (a dropped TCP connection never reports its end), by a liveness check
every ``CHECK_EVERY_S``. Until it listens again it wakes the worker every
``POLL_WHILE_DOWN_S`` (the worker then polls) and reconnects with capped exponential backoff;
once back it wakes the worker once more, for whatever was published in between.

With a ``token_key``, one listener at a time listens on the channel, across every process on
the database: the one holding a session advisory lock on that key (the claimer's token). The
others wait for the lock on their own connections, which costs them nothing per event, so a
NOTIFY wakes one worker instead of every worker. A holder that is busy when a NOTIFY comes (its
``busy()`` says so) hands the token over: it stops listening, unlocks, and queues for the lock
again behind whoever was waiting, who listens from then on and is woken once at once. A holder
that dies or loses its connection frees the token with its session.
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
# A busy holder hands the token over at most this often (alone, it gets it straight back).
HANDOVER_EVERY_S = 0.5
_LOCK_NOT_AVAILABLE = "55P03"


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
        token_key: int | None = None,
        busy: Callable[[], bool] | None = None,
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
        self._token_key = token_key
        self._busy = busy
        self._conn: asyncpg.Connection | None = None
        self._down = asyncio.Event()  # set while not connected
        self._listening = False  # LISTENing now (with a token_key: holding the token)
        self._handover = asyncio.Event()  # set when a busy holder should pass the token on
        self._handed_over_at = -HANDOVER_EVERY_S
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def listening(self) -> bool:
        """True while it listens: no NOTIFY sent meanwhile can have been missed."""
        return self._conn is not None and self._listening and not self._down.is_set()

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
            holding = True
            if self._token_key is not None:
                # Waiting for the token then ends every check_every_s: the liveness check.
                await conn.execute(f"SET lock_timeout = {round(self._check_every_s * 1000)}")
                holding = await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._token_key)
            if holding:
                await conn.add_listener(self._channel, self._notified)
            self._listening = bool(holding)
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
                self._listening = False
                self._lost(why)
                delay_s = self._retry_first_s
            await asyncio.sleep(delay_s)
            if not await self._connect():
                delay_s = min(delay_s * 2, self._retry_max_s)

    async def _until_lost(self, conn: asyncpg.Connection) -> str:
        """Listen on ``conn`` (holding the token, or waiting for it) until it is closed or
        stops answering; returns why."""
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _: closed.set())
        while not conn.is_closed():
            if not self._listening:
                why = await self._take_token(conn)
                if why is not None:
                    return why
                continue
            wake = asyncio.ensure_future(closed.wait())
            handover = asyncio.ensure_future(self._handover.wait())
            try:
                await asyncio.wait(
                    [wake, handover],
                    timeout=self._check_every_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                wake.cancel()
                handover.cancel()
            if closed.is_set():
                break
            try:
                if self._handover.is_set():
                    await self._hand_over(conn)
                    continue
                # Repeating the LISTEN (a no-op) rather than a SELECT keeps the session shown
                # as a LISTEN in pg_stat_activity, where operators count listeners.
                await conn.execute(f'LISTEN "{self._channel}"', timeout=self._check_timeout_s)
            except Exception as exc:
                return f"no answer to the liveness check: {exc!r}"
        return "connection closed"

    async def _take_token(self, conn: asyncpg.Connection) -> str | None:
        """Wait (at most lock_timeout) for the token; once held, listen and wake the worker.
        None unless the connection failed (then why)."""
        try:
            # lock_timeout ends the wait on the server; this ends it on a dead connection.
            await conn.fetchval(
                "SELECT pg_advisory_lock($1)",
                self._token_key,
                timeout=self._check_every_s + self._check_timeout_s,
            )
        except Exception as exc:
            if getattr(exc, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
                return None  # still held elsewhere; the connection answered
            return f"no answer while waiting to listen: {exc!r}"
        try:
            await conn.add_listener(self._channel, self._notified)
        except Exception as exc:
            return f"LISTEN failed: {exc!r}"
        self._listening = True
        self._on_notify()  # handed over, or its holder went: something may be waiting
        return None

    async def _hand_over(self, conn: asyncpg.Connection) -> None:
        """Stop listening and give the token to whoever waits for it (maybe this again)."""
        self._handover.clear()
        self._handed_over_at = asyncio.get_running_loop().time()
        self._listening = False
        await conn.remove_listener(self._channel, self._notified)
        await conn.fetchval("SELECT pg_advisory_unlock($1)", self._token_key)

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
        if self._token_key is not None and self._busy is not None and self._busy():
            now = asyncio.get_running_loop().time()
            if now - self._handed_over_at >= HANDOVER_EVERY_S:
                self._handover.set()


async def listen(
    dsn: str,
    channel: str,
    on_notify: Callable[[], None],
    *,
    token_key: int | None = None,
    busy: Callable[[], bool] | None = None,
) -> Callable[[], Awaitable[None]]:
    """Start listening on ``channel`` at ``dsn`` (one listener at a time per ``token_key``);
    returns the coroutine that stops it."""
    listener = Listener(dsn, channel, on_notify, token_key=token_key, busy=busy)
    await listener.start()
    return listener.stop
