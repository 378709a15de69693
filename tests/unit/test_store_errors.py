"""store.errors.classify: which failures mean the database is unavailable or full.

The SQLite errors are real ones, raised by SQLite on a temporary file; the PostgreSQL ones are
asyncpg's own exception classes wrapped as SQLAlchemy wraps them."""

from __future__ import annotations

import errno
import socket
import sqlite3
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import asyncpg as sa_asyncpg

from hookline.crypto import KeyConfigError
from hookline.store.errors import DatabaseFault, classify

UNAVAILABLE, FULL = DatabaseFault.UNAVAILABLE, DatabaseFault.FULL


def raised(make: type[BaseException], *args: object, cause: BaseException) -> BaseException:
    """``make(*args)`` raised from ``cause``, as a driver or SQLAlchemy raises it."""
    try:
        raise make(*args) from cause
    except BaseException as exc:
        return exc


def wrapped(orig: BaseException, invalidated: bool = False) -> BaseException:
    """``orig`` as SQLAlchemy raises it."""
    return sa_exc.DBAPIError.instance(
        "SELECT 1", {}, orig, Exception, connection_invalidated=invalidated
    )


def pg_error(asyncpg_error: BaseException) -> BaseException:
    """An asyncpg error as SQLAlchemy's asyncpg dialect translates it (sqlstate copied)."""
    translated = raised(
        sa_asyncpg.AsyncAdapt_asyncpg_dbapi.Error, str(asyncpg_error), cause=asyncpg_error
    )
    translated.sqlstate = getattr(asyncpg_error, "sqlstate", None)  # type: ignore[attr-defined]
    return translated


# --- real SQLite errors -------------------------------------------------------------------------


def sqlite_full(tmp_path: Path) -> sqlite3.Error:
    conn = sqlite3.connect(tmp_path / "full.db", isolation_level=None)
    conn.execute("CREATE TABLE t (x BLOB)")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    try:
        conn.execute("INSERT INTO t VALUES (?)", (b"x" * 100_000,))
    except sqlite3.Error as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError("the insert fit")


def sqlite_locked(tmp_path: Path) -> sqlite3.Error:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        holder.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        return exc
    finally:
        holder.close()
        other.close()
    raise AssertionError("no lock conflict")


def sqlite_cant_open(tmp_path: Path) -> sqlite3.Error:
    try:
        sqlite3.connect(tmp_path).execute("SELECT 1")  # a directory is no database file
    except sqlite3.Error as exc:
        return exc
    raise AssertionError("opened a directory")


def test_sqlite_full(tmp_path: Path) -> None:
    error = sqlite_full(tmp_path)
    assert str(error) == "database or disk is full"
    assert classify(error) is FULL
    assert classify(wrapped(error)) is FULL


def test_sqlite_locked_and_unopenable_are_unavailable(tmp_path: Path) -> None:
    for error in (sqlite_locked(tmp_path), sqlite_cant_open(tmp_path)):
        assert classify(error) is UNAVAILABLE, error
        assert classify(wrapped(error)) is UNAVAILABLE, error


def test_sqlite_errors_without_a_result_code_go_by_message() -> None:
    assert classify(sqlite3.OperationalError("database or disk is full")) is FULL
    assert classify(sqlite3.OperationalError("database is locked")) is UNAVAILABLE


def test_other_sqlite_errors_are_not_faults(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db")
    try:
        with pytest.raises(sqlite3.Error) as syntax:
            conn.execute("SELEKT 1")
        conn.execute("CREATE TABLE t (x INTEGER UNIQUE)")
        conn.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(sqlite3.IntegrityError) as duplicate:
            conn.execute("INSERT INTO t VALUES (1)")
    finally:
        conn.close()
    assert classify(syntax.value) is None
    assert classify(wrapped(duplicate.value)) is None


# --- PostgreSQL ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CrashShutdownError("terminating connection because of crash of another server"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.ClientCannotConnectError("could not connect"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_postgres_unavailable(error: BaseException) -> None:
    assert classify(error) is UNAVAILABLE
    assert classify(wrapped(pg_error(error))) is UNAVAILABLE


def test_postgres_disk_full() -> None:
    error = asyncpg.DiskFullError('could not extend file "base/16384/16385": No space left')
    assert classify(error) is FULL
    assert classify(wrapped(pg_error(error))) is FULL


def test_a_connection_sqlalchemy_invalidated_is_unavailable() -> None:
    closed = asyncpg.InterfaceError("connection is closed")
    assert classify(closed) is UNAVAILABLE
    assert classify(wrapped(pg_error(closed), invalidated=True)) is UNAVAILABLE


def test_postgres_errors_of_the_request_are_not_faults() -> None:
    for error in (
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.UndefinedTableError('relation "deliveries" does not exist'),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    ):
        assert classify(wrapped(pg_error(error))) is None, error


# --- what a driver raises while connecting ----------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 1)"),
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        TimeoutError(),
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        sa_exc.TimeoutError("QueuePool limit of size 20 overflow 20 reached"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_connecting_fails(error: BaseException) -> None:
    assert classify(error) is UNAVAILABLE


def test_no_space_left_on_device() -> None:
    assert classify(OSError(errno.ENOSPC, "No space left on device")) is FULL


def test_found_through_causes_and_groups() -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    assert classify(raised(RuntimeError, "while reading", cause=refused)) is UNAVAILABLE
    assert classify(ExceptionGroup("tasks", [ValueError("x"), refused])) is UNAVAILABLE


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("boom"),
        ValueError("bad"),
        FileNotFoundError(errno.ENOENT, "No such file or directory"),
        PermissionError(errno.EACCES, "Permission denied"),
        KeyConfigError("a stored secret does not open with any configured key"),
        sa_exc.NoResultFound("no row"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_everything_else_is_not_a_fault(error: BaseException) -> None:
    assert classify(error) is None


def test_a_cycle_of_causes_ends() -> None:
    first, second = RuntimeError("a"), RuntimeError("b")
    first.__context__, second.__context__ = second, first
    assert classify(first) is None
