"""Upgrades keep data: a database populated under the schema before several endpoints per user
is migrated in place, on both databases; every user's webhook becomes their primary endpoint
with its secrets, logs and counters survive, and pending deliveries are then delivered byte
for byte as they were stored."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from hookline.crypto import SecretBox
from hookline.delivery.worker import Worker
from hookline.ids import new_delivery_id, new_id, new_secret
from hookline.payload import build_body, guide_signature
from hookline.store import Store
from hookline.store.migrate import alembic_config, upgrade
from hookline.targets import sender_for
from hookline.timeutil import to_micros, utcnow
from tests.conftest import _admin
from tests.support import TEST_KEY, make_settings, postgres_url, running_receiver

MULTI_ENDPOINTS = "0005"
BEFORE = (
    ScriptDirectory.from_config(alembic_config("sqlite://"))
    .get_revision(MULTI_ENDPOINTS)
    .down_revision
)
assert isinstance(BEFORE, str)


@pytest.fixture(params=["sqlite"] + (["postgres"] if postgres_url() else []))
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database migrated only up to the revision before several endpoints."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        upgrade(url, BEFORE)
        yield url
        return
    base = postgres_url()
    assert base
    name = f"hookline_upgrade_{os.getpid()}"
    asyncio.run(_admin(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    asyncio.run(_admin(base, f"CREATE DATABASE {name}"))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    upgrade(url, BEFORE)
    yield url
    asyncio.run(_admin(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def populate(url: str, receiver_url: str) -> dict[str, object]:
    """Rows as the previous release wrote them: a user with a webhook (a rotated secret still
    in grace), a finished and a failed delivery with attempts and counters, and a pending one."""
    box = SecretBox([TEST_KEY])
    now = utcnow()
    user_id, endpoint_id = new_id(), new_id()
    secret, old_secret = new_secret(), new_secret()
    until = (now + timedelta(hours=12)).timestamp()
    engine = create_async_engine(url)
    bodies = {}
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO users VALUES (:id, 'Ada', false, :now)"),
                {"id": user_id, "now": to_micros(now)},
            )
            await conn.execute(
                text(
                    "INSERT INTO endpoints (id, user_id, slot, url, enabled, enabled_events,"
                    " secret_enc, old_secrets, created_at, updated_at) VALUES (:id, :user,"
                    " 'default', :url, true, :events, :secret, :old, :now, :now)"
                ),
                {
                    "id": endpoint_id,
                    "user": user_id,
                    "url": receiver_url,
                    "events": json.dumps(["resume.parsed"]),
                    "secret": box.encrypt(secret),
                    "old": json.dumps([{"enc": box.encrypt(old_secret), "until": until}]),
                    "now": to_micros(now),
                },
            )
            for status, code in (("succeeded", 200), ("failed", 500), ("pending", None)):
                delivery_id = new_delivery_id()
                body = build_body("resume.parsed", delivery_id, now, user_id, {"n": status})
                bodies[status] = (delivery_id, body)
                log_id = new_id()
                finished = status != "pending"
                await conn.execute(
                    text(
                        "INSERT INTO deliveries (id, delivery_id, user_id, endpoint_id, event,"
                        " url, body, status, attempts, max_attempts, next_attempt_at,"
                        " last_status_code, finished_at, created_at) VALUES (:id, :did, :user,"
                        " :endpoint, 'resume.parsed', :url, :body, :status, :attempts, 4, :now,"
                        " :code, :finished, :now)"
                    ),
                    {
                        "id": log_id,
                        "did": delivery_id,
                        "user": user_id,
                        "endpoint": endpoint_id,
                        "url": receiver_url,
                        "body": body,
                        "status": status,
                        "attempts": 1 if finished else 0,
                        "code": code,
                        "finished": to_micros(now) if finished else None,
                        "now": to_micros(now),
                    },
                )
                if finished:
                    await conn.execute(
                        text(
                            "INSERT INTO delivery_attempts (delivery_pk, attempt, created_at,"
                            " duration_ms, status_code) VALUES (:id, 1, :now, 5, :code)"
                        ),
                        {"id": log_id, "now": to_micros(now), "code": code},
                    )
            await conn.execute(
                text("INSERT INTO delivery_stats VALUES (:user, 'resume.parsed', 1, 1, 2)"),
                {"user": user_id},
            )
    finally:
        await engine.dispose()
    return {
        "user_id": user_id,
        "endpoint_id": endpoint_id,
        "secret": secret,
        "old_secret": old_secret,
        "bodies": bodies,
    }


async def test_an_old_database_upgrades_in_place_and_delivers_what_was_pending(
    old_database: str,
) -> None:
    async with running_receiver() as receiver:
        before = await populate(old_database, receiver.url)
        await asyncio.to_thread(upgrade, old_database)

        settings = make_settings(old_database, poll_interval_s=0.05)
        store = Store(settings)
        sender = sender_for(settings)
        worker = Worker(store, sender, settings)
        running = None
        try:
            user_id = str(before["user_id"])
            primary = await store.get_config(user_id)
            assert primary is not None and primary.primary
            assert primary.id == before["endpoint_id"] and primary.description == ""
            assert primary.headers == {} and primary.rate_limit is None
            assert store.signing_secrets(primary, utcnow()) == [
                before["secret"],
                before["old_secret"],
            ]
            [only] = await store.list_endpoints(user_id)
            assert only.id == primary.id

            counters, pending = await store.stats(user_id)
            assert counters["resume.parsed"].successful == 1
            assert counters["resume.parsed"].failed == 1 and pending == 1
            by_endpoint, _ = await store.stats(user_id, primary.id)
            assert by_endpoint == counters
            rows, total = await store.logs_page(user_id, 10, 0, None, None)
            assert total == 3 and len(rows) == 3

            running = asyncio.create_task(worker.run())
            # The pending delivery goes out with its stored bytes, signed with both secrets.
            [request] = await receiver.wait_for(1)
            delivery_id, body = before["bodies"]["pending"]  # type: ignore[index]
            assert request.body == body
            assert request.headers["X-Webhook-Delivery-Id"] == delivery_id
            assert request.headers["X-Webhook-Signature"] == guide_signature(
                str(before["secret"]), body
            )
            assert len(request.headers["webhook-signature"].split()) == 2

            # New events fan out as usual from the upgraded database.
            made = await store.publish(user_id, "resume.parsed", {"n": "new"})
            assert len(made.delivery_ids) == 1
            await receiver.wait_for(2)
        finally:
            worker.stop()
            if running is not None:
                await running
            await sender.close()
            await store.close()
