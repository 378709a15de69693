"""What a database failure means for the caller: the database is unavailable (try again
later), it is full (nothing was stored; an operator must make room), or neither.

``classify`` is pure: it reads the exception, its ``orig`` (SQLAlchemy's wrapped driver error)
and its causes, and never touches a database. The API answers 503 and 507 with it; the worker
can use it to back off instead of failing deliveries.
"""

from __future__ import annotations

import enum
import errno
import socket
import sqlite3

from sqlalchemy import exc as sa_exc


class DatabaseFault(enum.StrEnum):
    """A failure that is the database's state, not a bug in the request."""

    UNAVAILABLE = "unavailable"  #: can't connect, connection lost, starting/stopping, locked
    FULL = "full"  #: no space left for the write; nothing of it was stored


# SQLite primary result codes (the low byte of an extended code).
_SQLITE_BUSY = 5  # "database is locked": another writer held it past busy_timeout
_SQLITE_LOCKED = 6  # a table is locked within the same connection's shared cache
_SQLITE_FULL = 13  # "database or disk is full" (also PRAGMA max_page_count reached)
_SQLITE_CANTOPEN = 14  # "unable to open database file"

_SQLITE_MESSAGES = {
    "database or disk is full": DatabaseFault.FULL,
    "database is locked": DatabaseFault.UNAVAILABLE,
    "unable to open database file": DatabaseFault.UNAVAILABLE,
}

# PostgreSQL SQLSTATEs. Class 08 (connection exception) is unavailable as a whole.
_PG_UNAVAILABLE = {
    "57P01",  # admin_shutdown: the server is shutting down
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now: the server is starting up or in recovery
    "53300",  # too_many_connections: transient, like a refused connection
    "55P03",  # lock_not_available: waited longer than lock_timeout (a stalled database)
}
_PG_DISK_FULL = "53100"

_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}

_MAX_LINKS = 16  # how far along orig/__cause__/__context__ to look


def classify(exc: BaseException) -> DatabaseFault | None:
    """Whether ``exc`` (or what it wraps) means the database is unavailable or full."""
    for link in _links(exc):
        fault = _classify_one(link)
        if fault is not None:
            return fault
    return None


def _links(exc: BaseException) -> list[BaseException]:
    """``exc``, then what it wraps: SQLAlchemy's ``orig``, ``__cause__``, ``__context__``, and
    the members of an exception group; each once, breadth first."""
    seen: set[int] = set()
    queue = [exc]
    found: list[BaseException] = []
    while queue and len(found) < _MAX_LINKS:
        link = queue.pop(0)
        if id(link) in seen:
            continue
        seen.add(id(link))
        found.append(link)
        orig = getattr(link, "orig", None)
        if isinstance(orig, BaseException):
            queue.append(orig)
        if isinstance(link, BaseExceptionGroup):
            queue.extend(link.exceptions)
        for nested in (link.__cause__, link.__context__):
            if nested is not None:
                queue.append(nested)
    return found


def _classify_one(exc: BaseException) -> DatabaseFault | None:
    if isinstance(exc, sqlite3.Error):
        return _classify_sqlite(exc)
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        # The dialect recognised a lost connection (PostgreSQL: "connection is closed",
        # "connection was closed in the middle of operation").
        return DatabaseFault.UNAVAILABLE
    if isinstance(exc, sa_exc.TimeoutError):
        return DatabaseFault.UNAVAILABLE  # no pooled connection came free in time
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if isinstance(sqlstate, str):
        if sqlstate == _PG_DISK_FULL:
            return DatabaseFault.FULL
        if sqlstate.startswith("08") or sqlstate in _PG_UNAVAILABLE:
            return DatabaseFault.UNAVAILABLE
    if type(exc).__module__.startswith("asyncpg") and str(exc) == "connection is closed":
        return DatabaseFault.UNAVAILABLE  # asyncpg used directly (LISTEN): no SQLAlchemy check
    if isinstance(exc, OSError):
        # Only the kinds a database driver raises while connecting; any other OSError (a
        # missing file, say) is not the database's.
        if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
            return DatabaseFault.UNAVAILABLE
        if exc.errno in _DISK_FULL_ERRNOS:
            return DatabaseFault.FULL
    return None


def _classify_sqlite(exc: sqlite3.Error) -> DatabaseFault | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        primary = code & 0xFF
        if primary == _SQLITE_FULL:
            return DatabaseFault.FULL
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CANTOPEN):
            return DatabaseFault.UNAVAILABLE
        return None
    # Errors raised without a result code (by a driver, not by SQLite itself).
    message = str(exc).lower()
    for text, fault in _SQLITE_MESSAGES.items():
        if text in message:
            return fault
    return None
