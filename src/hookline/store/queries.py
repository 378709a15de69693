"""Users and API tokens. Each function runs one unit of work on a connection the caller
owns, so several can share a transaction."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    String,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline import ids
from hookline.store.schema import (
    Status,
    api_tokens,
    deliveries,
    users,
)

NOTIFY_CHANNEL = "hookline_deliveries"


def status_is(*wanted: Status) -> ColumnElement[bool]:
    """``deliveries.status`` in ``wanted``, written as SQL literals (not bound parameters) so
    that SQLite and PostgreSQL can match the partial indexes on status."""
    literals = [literal_column(f"'{status.value}'", String) for status in wanted]
    if len(literals) == 1:
        return deliveries.c.status == literals[0]
    return deliveries.c.status.in_(literals)


DEFAULT_SLOT = "default"


# --- users and tokens -------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    id: str
    name: str
    is_admin: bool


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


async def count_users(conn: AsyncConnection) -> int:
    """How many users exist (to know whether this is a first start)."""
    return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())


async def insert_token(conn: AsyncConnection, user_id: str, now: datetime) -> tuple[str, str]:
    """Issue a token for a user; returns (token id, token). Only the hash is stored."""
    token_id, token = ids.new_id(), ids.new_token()
    await conn.execute(
        insert(api_tokens).values(
            id=token_id, user_id=user_id, token_hash=hash_token(token), created_at=now
        )
    )
    return token_id, token


async def revoke_token(conn: AsyncConnection, token_id: str, now: datetime) -> bool:
    """Revoke a token; False when no live token has that id."""
    result = await conn.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount == 1


# Hot statements are built once; executing them then skips construction and cache-key work.
_USER_BY_TOKEN_HASH = (
    select(users.c.id, users.c.name, users.c.is_admin)
    .join(api_tokens, api_tokens.c.user_id == users.c.id)
    .where(api_tokens.c.token_hash == bindparam("token_hash"), api_tokens.c.revoked_at.is_(None))
)


async def user_by_token_hash(conn: AsyncConnection, token_hash: str) -> User | None:
    """The owner of a live (unrevoked) token, looked up by the token's hash."""
    row = (await conn.execute(_USER_BY_TOKEN_HASH, {"token_hash": token_hash})).first()
    return None if row is None else User(row.id, row.name, row.is_admin)
