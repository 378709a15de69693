"""Named statements about users and their API tokens. Each runs on a connection the caller
owns, so several can share a transaction. And the two ways the API finds a request's token
without a trip through the connection pool: a brief cache on PostgreSQL, emptied by every
revocation (NOTIFY), and a direct read on SQLite."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, insert, or_, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline import ids
from hookline.store.schema import Timestamp, api_tokens, users
from hookline.timeutil import from_micros

#: How stale a token's ``last_used_at`` may get: authenticating writes it at most this often.
TOUCH_EVERY = timedelta(seconds=60)

#: The channel a revocation notifies on PostgreSQL: API processes empty their token caches.
TOKENS_CHANNEL = "hookline_tokens"

#: How long a cached token is trusted without a notice: the bound on a revocation that
#: bypassed ``revoke_token`` (SQL typed by hand) or a notice lost with its connection.
TOKEN_CACHE_TTL_S = 10.0


@dataclass(frozen=True)
class User:
    id: str
    name: str
    is_admin: bool


@dataclass(frozen=True)
class UserListing:
    """A user as ``hookline users list`` shows it."""

    id: str
    name: str
    is_admin: bool
    created_at: datetime


@dataclass(frozen=True)
class TokenListing:
    """A live token as ``hookline tokens list`` shows it: never the token itself."""

    id: str
    user_id: str
    user_name: str
    created_at: datetime
    last_used_at: datetime | None  # None until it authenticates a request


@dataclass(frozen=True)
class LiveToken:
    """A live token found by its hash: its owner, and when it was last used."""

    user: User
    token_id: str
    last_used_at: datetime | None


def hash_token(token: str) -> str:
    """SHA-256 hex of an API token: tokens are 32 random bytes, so no salt or KDF is needed."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def insert_user(conn: AsyncConnection, name: str, is_admin: bool, now: datetime) -> User:
    """Create a user."""
    user = User(id=ids.new_id(), name=name, is_admin=is_admin)
    await conn.execute(
        insert(users).values(id=user.id, name=name, is_admin=is_admin, created_at=now)
    )
    return user


async def get_user(conn: AsyncConnection, user_id: str) -> User | None:
    """One user by id."""
    row = (
        await conn.execute(
            select(users.c.id, users.c.name, users.c.is_admin).where(users.c.id == user_id)
        )
    ).first()
    return None if row is None else User(row.id, row.name, row.is_admin)


#: The reserved user that owns the operational webhooks (``operational.OPERATOR_USER_ID``):
#: not a person, so never counted, listed or given a token.
RESERVED_USER_ID = "operator"


async def count_users(conn: AsyncConnection) -> int:
    """How many users exist (to know whether this is a first start)."""
    query = select(func.count()).select_from(users).where(users.c.id != RESERVED_USER_ID)
    return int((await conn.execute(query)).scalar_one())


async def list_users(conn: AsyncConnection) -> list[UserListing]:
    """Every user, oldest first."""
    rows = await conn.execute(
        select(users.c.id, users.c.name, users.c.is_admin, users.c.created_at)
        .where(users.c.id != RESERVED_USER_ID)
        .order_by(users.c.created_at, users.c.id)
    )
    return [UserListing(row.id, row.name, row.is_admin, row.created_at) for row in rows]


async def insert_token(conn: AsyncConnection, user_id: str, now: datetime) -> tuple[str, str]:
    """Issue a token for a user; returns (token id, token). Only the hash is stored."""
    token_id, token = ids.new_id(), ids.new_token()
    await conn.execute(
        insert(api_tokens).values(
            id=token_id, user_id=user_id, token_hash=hash_token(token), created_at=now
        )
    )
    return token_id, token


async def list_tokens(conn: AsyncConnection, user_id: str | None = None) -> list[TokenListing]:
    """Live (unrevoked) tokens, of one user or of everyone, oldest first."""
    query = (
        select(
            api_tokens.c.id,
            api_tokens.c.user_id,
            users.c.name,
            api_tokens.c.created_at,
            api_tokens.c.last_used_at,
        )
        .join(users, users.c.id == api_tokens.c.user_id)
        .where(api_tokens.c.revoked_at.is_(None))
        .order_by(api_tokens.c.created_at, api_tokens.c.id)
    )
    if user_id is not None:
        query = query.where(api_tokens.c.user_id == user_id)
    return [
        TokenListing(row.id, row.user_id, row.name, row.created_at, row.last_used_at)
        for row in await conn.execute(query)
    ]


async def revoke_token(conn: AsyncConnection, token_id: str, now: datetime) -> bool:
    """Revoke a token; False when no live token has that id. On PostgreSQL, API processes
    hear of it (NOTIFY on ``TOKENS_CHANNEL``) when the transaction commits."""
    result = await conn.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if result.rowcount != 1:
        return False
    if conn.dialect.name == "postgresql":
        await conn.execute(_NOTIFY_REVOKED)
    return True


_NOTIFY_REVOKED = text(f"SELECT pg_notify('{TOKENS_CHANNEL}', '')")


# Hot statements are built once; executing them then skips construction and cache-key work.
_LIVE_TOKEN = (
    select(
        users.c.id,
        users.c.name,
        users.c.is_admin,
        api_tokens.c.id.label("token_id"),
        api_tokens.c.last_used_at,
    )
    .join(api_tokens, api_tokens.c.user_id == users.c.id)
    .where(api_tokens.c.token_hash == bindparam("token_hash"), api_tokens.c.revoked_at.is_(None))
)

_TOUCH_TOKEN = (
    update(api_tokens)
    .where(
        api_tokens.c.id == bindparam("token_id"),
        # Another process may have written it meanwhile: then this changes nothing.
        or_(
            api_tokens.c.last_used_at.is_(None),
            api_tokens.c.last_used_at <= bindparam("stale_before", type_=Timestamp()),
        ),
    )
    .values(last_used_at=bindparam("now", type_=Timestamp()))
)


async def live_token(conn: AsyncConnection, token_hash: str) -> LiveToken | None:
    """A live (unrevoked) token by its hash, with its owner and when it was last used."""
    row = (await conn.execute(_LIVE_TOKEN, {"token_hash": token_hash})).first()
    if row is None:
        return None
    return LiveToken(User(row.id, row.name, row.is_admin), row.token_id, row.last_used_at)


async def user_by_token_hash(conn: AsyncConnection, token_hash: str) -> User | None:
    """The owner of a live (unrevoked) token, looked up by the token's hash."""
    found = await live_token(conn, token_hash)
    return None if found is None else found.user


async def touch_token(conn: AsyncConnection, token_id: str, now: datetime) -> bool:
    """Set a token's ``last_used_at`` to ``now`` unless it is already within TOUCH_EVERY of
    it; False when nothing changed."""
    result = await conn.execute(_TOUCH_TOKEN, _touch_params(token_id, now))
    return result.rowcount == 1


def touch_token_sync(conn: Connection, token_id: str, now: datetime) -> bool:
    """``touch_token`` for SQLite's write thread (``Database.run_write``)."""
    return conn.execute(_TOUCH_TOKEN, _touch_params(token_id, now)).rowcount == 1


def _touch_params(token_id: str, now: datetime) -> dict[str, object]:
    return {"token_id": token_id, "stale_before": now - TOUCH_EVERY, "now": now}


class TokenCache:
    """Live tokens this process looked up, by hash, each for ``TOKEN_CACHE_TTL_S``. Used only
    while ``trusted()`` (its process listens for revocations); every revocation notice
    empties it. Unknown and revoked tokens are never cached: a new token works at once."""

    def __init__(self, trusted: Callable[[], bool], ttl_s: float = TOKEN_CACHE_TTL_S) -> None:
        self._trusted = trusted
        self._ttl_s = ttl_s
        self._entries: dict[str, tuple[LiveToken, float]] = {}
        #: Counts the notices: a lookup that began before one must not be cached after it.
        self.generation = 0

    def get(self, token_hash: str) -> LiveToken | None:
        if not self._trusted():
            return None
        entry = self._entries.get(token_hash)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, token_hash: str, found: LiveToken, generation: int) -> None:
        """Remember ``found``, looked up when the generation was ``generation``."""
        if generation != self.generation or not self._trusted():
            return
        if len(self._entries) >= 10_000:
            self._entries.clear()
        self._entries[token_hash] = (found, time.monotonic() + self._ttl_s)

    def forget_all(self) -> None:
        """A token was revoked somewhere (or a notice may have been missed)."""
        self.generation += 1
        self._entries.clear()


# ``_LIVE_TOKEN`` for the standard library's sqlite3: (user id, name, is_admin, token id,
# last_used_at in epoch microseconds).
_LIVE_TOKEN_SQLITE = str(_LIVE_TOKEN.compile(dialect=sqlite.dialect()))


class ReadBusy(Exception):
    """SQLite could not be read without waiting: read the usual way instead."""


class SqliteTokenReader:
    """Looks tokens up on SQLite straight from the event loop's thread: one indexed read of a
    local file, far cheaper than a trip through the async driver's thread, and always fresh.
    It never waits for a lock: when SQLite is busy it answers None and the caller reads the
    usual way."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None

    def live_token(self, token_hash: str) -> LiveToken | None:
        """The live token with this hash, None when there is none; ReadBusy when SQLite was
        busy (or the file could not be read)."""
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(
                    self._path, timeout=0, isolation_level=None, check_same_thread=False
                )
                self._conn.execute("PRAGMA query_only=1")
            # fetchall: the statement runs to its end, so no read snapshot stays open to
            # hold back the WAL's checkpoints between requests.
            rows = self._conn.execute(_LIVE_TOKEN_SQLITE, (token_hash,)).fetchall()
        except sqlite3.Error as exc:
            self.close()
            raise ReadBusy(str(exc)) from exc
        if not rows:
            return None
        user_id, name, is_admin, token_id, last_used_us = rows[0]
        last_used_at = None if last_used_us is None else from_micros(int(last_used_us))
        return LiveToken(User(user_id, name, bool(is_admin)), token_id, last_used_at)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
