"""Listing users and tokens, and when a token was last used: recorded by authentication at
most once a minute, never at the cost of the request. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

import pytest

from hookline.store import NotFound, Store, users
from hookline.timeutil import utcnow
from tests.support import make_settings


async def test_lists_users_and_live_tokens(store: Store) -> None:
    ada, ada_token_id, _ = await store.create_user("Ada", True)
    bob, bob_token_id, _ = await store.create_user("Bob", False)
    second_id, _ = await store.create_token(bob.id)
    revoked_id, _ = await store.create_token(bob.id)
    await store.revoke_token(revoked_id)

    listed = await store.list_users()
    assert [(u.id, u.name, u.is_admin) for u in listed] == [
        (ada.id, "Ada", True),
        (bob.id, "Bob", False),
    ]
    assert all(abs(utcnow() - u.created_at) < timedelta(minutes=1) for u in listed)

    everyone = await store.list_tokens()
    assert [(t.id, t.user_id, t.user_name) for t in everyone] == [
        (ada_token_id, ada.id, "Ada"),
        (bob_token_id, bob.id, "Bob"),
        (second_id, bob.id, "Bob"),
    ]
    assert all(t.last_used_at is None for t in everyone)
    assert [t.id for t in await store.list_tokens(bob.id)] == [bob_token_id, second_id]
    with pytest.raises(NotFound, match="no user with id nobody"):
        await store.list_tokens("nobody")


async def test_authenticate_records_last_use_at_most_once_a_minute(
    store: Store, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, token_id, token = await store.create_user("Ada", False)
    writes = _count_touches(monkeypatch)

    # A burst of requests with one token: one write.
    found = await asyncio.gather(*(store.authenticate(token) for _ in range(20)))
    assert {u.id for u in found if u is not None} == {user.id} and None not in found
    assert writes["n"] == 1
    (listed,) = await store.list_tokens(user.id)
    assert listed.id == token_id and listed.last_used_at is not None
    first_use = listed.last_used_at
    assert abs(utcnow() - first_use) < timedelta(seconds=10)

    # Another process (a fresh store, nothing remembered in memory) 30 s later: the stored
    # value is fresh enough, so nothing is written. 61 s later it is written.
    later = Store(make_settings(database_url))
    try:
        monkeypatch.setattr("hookline.store.utcnow", lambda: first_use + timedelta(seconds=30))
        assert await later.authenticate(token) is not None
        assert writes["n"] == 1
        assert (await later.list_tokens(user.id))[0].last_used_at == first_use

        monkeypatch.setattr("hookline.store.utcnow", lambda: first_use + timedelta(seconds=61))
        assert await later.authenticate(token) is not None
        assert writes["n"] == 2
        assert (await later.list_tokens(user.id))[0].last_used_at == first_use + timedelta(
            seconds=61
        )
    finally:
        await later.close()


async def test_touch_changes_nothing_within_a_minute(store: Store) -> None:
    user, token_id, _ = await store.create_user("Ada", False)
    now = utcnow()
    async with store.db.write() as conn:
        assert await users.touch_token(conn, token_id, now)
        assert not await users.touch_token(conn, token_id, now + timedelta(seconds=30))
        assert await users.touch_token(conn, token_id, now + timedelta(seconds=60))
        assert not await users.touch_token(conn, "no-such-token", now)
    (listed,) = await store.list_tokens(user.id)
    assert listed.last_used_at == now + timedelta(seconds=60)


async def test_a_failed_touch_never_fails_the_request(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    user, token_id, token = await store.create_user("Ada", False)

    def broken(*args: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(users, "touch_token", broken)
    monkeypatch.setattr(users, "touch_token_sync", broken)
    with caplog.at_level(logging.WARNING, logger="hookline.store"):
        found = await store.authenticate(token)
    assert found is not None and found.id == user.id
    assert f"could not record that token {token_id} was used" in caplog.text
    assert (await store.list_tokens(user.id))[0].last_used_at is None


async def test_revoked_and_unknown_tokens_write_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token_id, token = await store.create_user("Ada", False)
    await store.revoke_token(token_id)
    writes = _count_touches(monkeypatch)
    assert await store.authenticate(token) is None
    assert await store.authenticate("hl_not-a-token") is None
    assert writes["n"] == 0


def _count_touches(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the statements that write last_used_at, whichever database runs them."""
    writes = {"n": 0}
    touch, touch_sync = users.touch_token, users.touch_token_sync

    async def counted(*args: Any) -> bool:
        writes["n"] += 1
        return await touch(*args)

    def counted_sync(*args: Any) -> bool:
        writes["n"] += 1
        return touch_sync(*args)

    monkeypatch.setattr(users, "touch_token", counted)
    monkeypatch.setattr(users, "touch_token_sync", counted_sync)
    return writes


async def test_a_revoked_token_is_refused_at_once_by_every_store(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An API process (``api``) answers repeat requests without a trip through its pool;
    a token revoked by another process on the same database (``cli``) is refused by it as
    soon as the revocation commits (PostgreSQL: its notice; SQLite: read fresh each time),
    and one revoked through ``api`` itself at once."""
    api, cli = Store(make_settings(database_url)), Store(make_settings(database_url))
    reads = {"n": 0}
    live_token = users.live_token

    async def counted(*args: Any) -> Any:
        reads["n"] += 1
        return await live_token(*args)

    monkeypatch.setattr(users, "live_token", counted)
    try:
        user, token_id, token = await api.create_user("publisher", True)
        assert await api.authenticate(token) == user  # the first request may read
        await asyncio.sleep(0.2)  # PostgreSQL: the listener is up
        reads["n"] = 0
        for _ in range(20):
            assert await api.authenticate(token) == user
        assert reads["n"] == 0

        await cli.revoke_token(token_id)
        started = time.monotonic()
        while await api.authenticate(token) is not None:
            assert time.monotonic() - started < 2.0, "still accepted 2 s after revocation"
            await asyncio.sleep(0.001)
        refused_after_s = time.monotonic() - started
        assert refused_after_s < 0.5, refused_after_s
        assert await api.authenticate(token) is None

        # A token made elsewhere works at once (unknown tokens are never cached); revoked
        # through the API process's own store it is refused without waiting for anything.
        second_id, second = await cli.create_token(user.id)
        assert await api.authenticate(second) == user
        await api.revoke_token(second_id)
        assert await api.authenticate(second) is None
        assert await cli.authenticate(second) is None
    finally:
        await api.close()
        await cli.close()


async def test_the_token_cache_is_not_trusted_while_it_cannot_hear_revocations(
    postgres_database_url: str,
) -> None:
    """PostgreSQL: when the listening connection dies, the cache is emptied and bypassed
    until listening resumes, so a revocation meanwhile is not missed."""
    from sqlalchemy import text

    api, cli = (
        Store(make_settings(postgres_database_url)),
        Store(make_settings(postgres_database_url)),
    )
    try:
        user, token_id, token = await api.create_user("publisher", True)
        assert await api.authenticate(token) == user
        await asyncio.sleep(0.2)
        assert await api.authenticate(token) == user  # cached now
        async with cli.db.write() as conn:
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'hookline-listen' AND datname = current_database()"
                )
            )
        # Revoked with a plain UPDATE (no notice at all) right after the listener died.
        async with cli.db.write() as conn:
            await conn.execute(
                text("UPDATE api_tokens SET revoked_at = 1 WHERE id = :id"), {"id": token_id}
            )
        started = time.monotonic()
        while await api.authenticate(token) is not None:
            assert time.monotonic() - started < 2.0, "a dead listener's cache was trusted"
            await asyncio.sleep(0.01)
    finally:
        await api.close()
        await cli.close()
