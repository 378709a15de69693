"""SQLite's stand-in for LISTEN/NOTIFY: notice deliveries another process enqueued.

Every commit of a WAL database writes to its ``-wal`` file. On Linux a thread asks the kernel
(inotify, through ctypes) to tell it when a file of the database is written, and sleeps until
then: an idle database wakes it never, and a commit wakes it at once. Then it asks SQLite
whether another connection has committed (``PRAGMA data_version``, answered from the WAL index
without reading a table) and, only when one has, reads ``max(rowid)`` of ``deliveries``; it
calls back only when that grew: a new delivery. The worker's own commits (claims, outcomes)
write the file and change the data version too, but not the newest row, so they do not wake
it. Woken by a commit's first page, it waits ``GATHER_S`` for the rest before it asks; a
write seen before its commit is visible gets a few more looks (``SETTLE_S``).

Without inotify (not Linux, or no watch left: ``fs.inotify.max_user_watches``) the thread asks
SQLite every ``WATCH_INTERVAL_S`` instead, which costs a little CPU even when idle.

What this cannot see, the worker's poll still finds: a delivery whose rowid repeats one that
was deleted (only possible once every newer delivery was purged), deliveries another worker
released or let expire, and commits on a file system that reports no writes (a network share).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import select
import sqlite3
import struct
import sys
import threading
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("hookline.store")

WATCH_INTERVAL_S = 0.003
# After a write whose commit is not visible yet, look again after each of these quiet times:
# the writer updates the WAL index just after writing, unless it is descheduled in between.
SETTLE_S = (0.002, 0.02, 0.2)
# A commit writes its pages to the WAL one write() at a time, tens of microseconds apart (a
# publish, about twenty): woken by the first, wait this long for the rest before looking, so
# that a commit costs a look or two instead of one per page.
GATHER_S = 0.0005

# <sys/inotify.h>
_IN_MODIFY = 0x002
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_Q_OVERFLOW = 0x4000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name


class FileWrites:
    """Writes to the files of one SQLite database (the file and its ``-wal``), as a file
    descriptor that becomes readable when one happens (Linux inotify)."""

    def __init__(self, fd: int, names: set[bytes]) -> None:
        self.fd = fd
        self._names = names

    @classmethod
    def open(cls, path: str) -> FileWrites | None:
        """Watch the database at ``path``; None where inotify is not available."""
        if not sys.platform.startswith("linux"):
            return None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            init, add_watch = libc.inotify_init1, libc.inotify_add_watch
        except (OSError, AttributeError):
            return None
        fd = init(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            return None
        # The directory, not the files: the -wal file comes and goes with the last connection.
        directory, name = os.path.split(os.path.abspath(path))
        if add_watch(fd, os.fsencode(directory), _IN_MODIFY | _IN_CREATE | _IN_MOVED_TO) < 0:
            os.close(fd)
            return None
        return cls(fd, {os.fsencode(name), os.fsencode(name + "-wal")})

    def written(self) -> bool:
        """Consume what the kernel reported; True when one of the database's files was written
        (or the kernel dropped reports: the queue overflowed)."""
        hit = False
        while True:
            try:
                data = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                return hit
            offset = 0
            while offset < len(data):
                _, mask, _, length = _EVENT.unpack_from(data, offset)
                start = offset + _EVENT.size
                name = data[start : start + length].rstrip(b"\0")
                offset = start + length
                hit = hit or name in self._names or bool(mask & _IN_Q_OVERFLOW)

    def close(self) -> None:
        os.close(self.fd)


class Watcher:
    """Calls ``on_new`` on ``loop`` soon after another connection adds a delivery."""

    def __init__(
        self,
        path: str,
        on_new: Callable[[], None],
        loop: asyncio.AbstractEventLoop,
        interval_s: float = WATCH_INTERVAL_S,
        use_inotify: bool = True,
    ) -> None:
        self._path = path
        self._on_new = on_new
        self._loop = loop
        self._interval_s = interval_s
        self._use_inotify = use_inotify
        self._stopping = threading.Event()
        self._stop_read, self._stop_write = os.pipe()  # wakes a thread waiting on inotify
        self._thread = threading.Thread(target=self._run, name="hookline-sqlite-watch", daemon=True)
        #: How the thread learns of commits once started: "inotify" or "poll".
        self.mode = ""
        #: How many times the thread has asked SQLite for its data version.
        self.looks = 0

    def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        self._stopping.set()
        os.write(self._stop_write, b"x")
        await asyncio.to_thread(self._thread.join)
        os.close(self._stop_read)
        os.close(self._stop_write)

    def _run(self) -> None:
        writes = FileWrites.open(self._path) if self._use_inotify else None
        self.mode = "poll" if writes is None else "inotify"
        try:
            # Autocommit: each question reads the latest commit. It never writes.
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=True)
        except sqlite3.Error:
            log.exception("cannot watch %s for new deliveries; polling only", self._path)
            if writes is not None:
                writes.close()
            return
        try:
            # Watching started before these first answers: no commit falls in between.
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            newest = self._newest(conn)
            settle = 0  # looks left after a write that showed no commit (SETTLE_S)
            while (woken := self._next(writes, settle)) is not None:
                self.looks += 1
                seen = conn.execute("PRAGMA data_version").fetchone()[0]
                if seen == version:
                    # A write, but no commit visible yet: look again after each quiet time,
                    # or at the next write.
                    settle = len(SETTLE_S) if woken else max(0, settle - 1)
                    continue
                settle = 0
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
            if writes is not None:
                writes.close()

    def _next(self, writes: FileWrites | None, settle: int) -> bool | None:
        """Wait until it is worth asking SQLite again: True when the database was written (or
        polling), False when the settle time passed quietly, None when stopping."""
        if writes is None:
            return None if self._stopping.wait(self._interval_s) else True
        while True:
            timeout_s = SETTLE_S[-settle] if settle else None
            ready, _, _ = select.select([writes.fd, self._stop_read], [], [], timeout_s)
            if self._stopping.is_set():
                return None
            if not ready:
                return False
            if writes.written():
                time.sleep(GATHER_S)
                writes.written()  # what the rest of the commit wrote meanwhile
                return True

    @staticmethod
    def _newest(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT max(rowid) FROM deliveries").fetchone()
        return int(row[0] or 0)


async def watch(path: str, on_new: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    """Start watching the SQLite database at ``path``; returns the coroutine that stops it."""
    watcher = Watcher(path, on_new, asyncio.get_running_loop())
    watcher.start()
    return watcher.stop
