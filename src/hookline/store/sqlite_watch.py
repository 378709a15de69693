"""SQLite's stand-in for LISTEN/NOTIFY: notice deliveries another process enqueued.

A thread asks SQLite every few milliseconds whether any other connection has committed
(``PRAGMA data_version``, answered from the WAL index without reading a table). Only when one
has does it read ``max(rowid)`` of ``deliveries``, and it calls back only when that grew: a
new delivery. The worker's own commits (claims, outcomes) change the data version too, but
not the newest row, so they do not wake it. Both questions together cost a few microseconds.

What this cannot see, the worker's poll still finds: a delivery whose rowid repeats one that
was deleted (only possible once every newer delivery was purged), and deliveries another
worker released or let expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Awaitable, Callable

log = logging.getLogger("hookline.store")

WATCH_INTERVAL_S = 0.003


class Watcher:
    """Calls ``on_new`` on ``loop`` soon after another connection adds a delivery."""

    def __init__(
        self,
        path: str,
        on_new: Callable[[], None],
        loop: asyncio.AbstractEventLoop,
        interval_s: float = WATCH_INTERVAL_S,
    ) -> None:
        self._path = path
        self._on_new = on_new
        self._loop = loop
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hookline-sqlite-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        try:
            # Autocommit: each question reads the latest commit. It never writes.
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=True)
        except sqlite3.Error:
            log.exception("cannot watch %s for new deliveries; polling only", self._path)
            return
        try:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            newest = self._newest(conn)
            while not self._stopping.wait(self._interval_s):
                seen = conn.execute("PRAGMA data_version").fetchone()[0]
                if seen == version:
                    continue
                version = seen
                latest = self._newest(conn)
                if latest > newest:
                    newest = latest
                    with contextlib.suppress(RuntimeError):  # the loop has closed
                        self._loop.call_soon_threadsafe(self._on_new)
        except sqlite3.Error:
            log.exception("watching %s for new deliveries failed; polling only", self._path)
        finally:
            conn.close()

    @staticmethod
    def _newest(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT max(rowid) FROM deliveries").fetchone()
        return int(row[0] or 0)


async def watch(path: str, on_new: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    """Start watching the SQLite database at ``path``; returns the coroutine that stops it."""
    watcher = Watcher(path, on_new, asyncio.get_running_loop())
    watcher.start()
    return watcher.stop
