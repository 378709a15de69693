"""Upgrades keep data: a database filled at an older migration, upgraded to the newest, still
holds every row and still serves them. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from hookline.crypto import SecretBox
from hookline.store import Status, Store
from hookline.store.db import create_engines
from hookline.store.migrate import upgrade
from hookline.store.readiness import current_revision, head_revision
from hookline.store.users import hash_token
from hookline.timeutil import utcnow
from tests.support import TEST_KEY, make_settings

T0 = 1_700_000_000_000_000  # epoch microseconds, the storage form of every timestamp
TOKENS = {"t_admin": "hl_admin-before-upgrade", "t_ada": "hl_ada-before-upgrade"}
REVOKED = "hl_revoked-before-upgrade"
SECRET = "whsec_from-before-the-upgrade"

# Rows as migration 0003's schema holds them, in plain SQL, so they do not depend on the
# statements of today's code.
ROWS_AT_0003: list[tuple[str, dict[str, Any]]] = [
    ("users", {"id": "u_admin", "name": "Publisher", "is_admin": True, "created_at": T0}),
    ("users", {"id": "u_ada", "name": "Ada", "is_admin": False, "created_at": T0 + 1}),
    *[
        (
            "api_tokens",
            {
                "id": token_id,
                "user_id": user_id,
                "token_hash": hash_token(token),
                "created_at": T0 + n,
                "revoked_at": revoked_at,
            },
        )
        for n, token_id, user_id, token, revoked_at in [
            (2, "t_admin", "u_admin", TOKENS["t_admin"], None),
            (3, "t_ada", "u_ada", TOKENS["t_ada"], None),
            (4, "t_revoked", "u_ada", REVOKED, T0 + 5),
        ]
    ],
    (
        "endpoints",
        {
            "id": "e_ada",
            "user_id": "u_ada",
            "slot": "default",
            "url": "https://hooks.example.com/ada",
            "enabled": True,
            "enabled_events": json.dumps(["resume.parsed", "ats.check_completed"]),
            "secret_enc": SecretBox([TEST_KEY]).encrypt(SECRET),
            "old_secrets": "[]",
            "created_at": T0 + 4,
            "updated_at": T0 + 5,
        },
    ),
    *[
        (
            "deliveries",
            {
                "id": row_id,
                "delivery_id": f"00000000-0000-4000-8000-00000000000{n}",
                "user_id": "u_ada",
                "endpoint_id": "e_ada",
                "event": "resume.parsed",
                "url": "https://hooks.example.com/ada",
                "body": b'{"event":"resume.parsed","data":{"n":%d}}' % n,
                "status": status,
                "attempts": attempts,
                "max_attempts": 4,
                "next_attempt_at": T0 + 10 + n,
                "lease_owner": None,
                "lease_until": None,
                "last_status_code": 200 if attempts else None,
                "last_error": None,
                "delivered_at": T0 + 20 if attempts else None,
                "finished_at": T0 + 20 if attempts else None,
                "created_at": T0 + 10 + n,
            },
        )
        for n, row_id, status, attempts in [
            (1, "d_done", Status.SUCCEEDED.value, 1),
            (2, "d_queued", Status.PENDING.value, 0),
        ]
    ],
    (
        "delivery_attempts",
        {
            "delivery_pk": "d_done",
            "attempt": 1,
            "created_at": T0 + 20,
            "duration_ms": 12,
            "status_code": 200,
            "error": None,
            "response_excerpt": "ok",
        },
    ),
    (
        "delivery_stats",
        {
            "user_id": "u_ada",
            "event": "resume.parsed",
            "successful": 1,
            "failed": 0,
            "attempts_sum": 1,
        },
    ),
]


DISABLE_COLUMNS = (
    "disabled_at",
    "disabled_reason",
    "failure_streak",
    "failing_since",
    "failing_notified_at",
)


@pytest.fixture
def url_at_0003(unmigrated_database_url: str) -> Iterator[str]:
    upgrade(unmigrated_database_url, "0003")
    yield unmigrated_database_url


async def _populate(url: str, rows: list[tuple[str, dict[str, Any]]] = ROWS_AT_0003) -> None:
    writer, reader = create_engines(url)
    try:
        async with writer.begin() as conn:
            for table, row in rows:
                columns = ", ".join(row)
                values = ", ".join(f":{name}" for name in row)
                await conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({values})"), row)
    finally:
        await writer.dispose()
        await reader.dispose()


async def _snapshot(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tables filled, in a stable order, keyed by column name."""
    writer, reader = create_engines(url)
    try:
        async with reader.connect() as conn:
            tables = {}
            for name in sorted({table for table, _ in ROWS_AT_0003}):
                result = await conn.execute(text(f"SELECT * FROM {name}"))
                rows = [dict(row._mapping) for row in result]
                tables[name] = sorted(rows, key=lambda row: sorted(map(str, row.items())))
            return tables
    finally:
        await writer.dispose()
        await reader.dispose()


async def test_upgrading_from_0003_keeps_every_row(url_at_0003: str) -> None:
    await _populate(url_at_0003)
    before = await _snapshot(url_at_0003)
    assert sum(map(len, before.values())) == len(ROWS_AT_0003)

    await asyncio.to_thread(upgrade, url_at_0003)  # alembic runs an event loop of its own
    after = await _snapshot(url_at_0003)

    # The same rows, plus each token's last_used_at, never used so far (0004); each endpoint's
    # description, headers and rate limit, each delivery's message and each counter's
    # endpoint (0005): the counters were the user's webhook's, now its primary endpoint's.
    assert [row.pop("last_used_at") for row in after["api_tokens"]] == [None] * 3
    new_endpoint_columns = ("description", "headers", "rate_limit", "rate_window", "rate_count")
    for row in after["endpoints"]:
        assert [row.pop(name) for name in new_endpoint_columns] == ["", "{}", None, 0, 0]
    # Each endpoint's disabled reason and failure streak (0007): enabled, no streak.
    for row in after["endpoints"]:
        assert [row.pop(name) for name in DISABLE_COLUMNS] == [None, None, 0, None, None]
    assert [row.pop("message_id") for row in after["deliveries"]] == [None] * len(
        after["deliveries"]
    )
    primary = {row["user_id"]: row["id"] for row in after["endpoints"]}
    for row in after["delivery_stats"]:
        assert row.pop("endpoint_id") == primary.get(row["user_id"], "")
    # Each attempt's trigger and headers, each delivery's next trigger (0006).
    for row in after["delivery_attempts"]:
        assert (row.pop("trigger"), row.pop("request_headers")) == ("scheduled", None)
    assert {row.pop("next_trigger") for row in after["deliveries"]} == {"scheduled"}
    assert after == before

    store = Store(make_settings(url_at_0003))
    try:
        assert await current_revision(store.db) == head_revision()
        listed = await store.list_tokens()
        assert [(t.id, t.user_name, t.last_used_at) for t in listed] == [
            ("t_admin", "Publisher", None),
            ("t_ada", "Ada", None),
        ]
        admin = await store.authenticate(TOKENS["t_admin"])
        assert admin is not None and admin.id == "u_admin" and admin.is_admin
        assert await store.authenticate(REVOKED) is None
        assert [t.last_used_at is not None for t in await store.list_tokens()] == [True, False]

        endpoint = await store.get_config("u_ada")
        assert endpoint is not None and endpoint.url == "https://hooks.example.com/ada"
        assert store.signing_secrets(endpoint, utcnow()) == [SECRET]
        page, total = await store.logs_page("u_ada", 10, 0, None, None)
        assert total == 2 and {row.delivery_id for row in page} == {
            "00000000-0000-4000-8000-000000000001",
            "00000000-0000-4000-8000-000000000002",
        }
        counters, open_count = await store.stats("u_ada")
        assert counters["resume.parsed"].successful == 1 and open_count == 1
    finally:
        await store.close()


async def test_upgrading_from_0005_keeps_attempts_as_scheduled(
    unmigrated_database_url: str,
) -> None:
    """A 0005 database with attempts: after 0006 they read back as scheduled, without
    headers, and its finished delivery can be resent."""
    url = unmigrated_database_url
    await asyncio.to_thread(upgrade, url, "0005")
    # The same rows; 0005's counters name the endpoint.
    rows = [
        (table, {**row, "endpoint_id": "e_ada"} if table == "delivery_stats" else row)
        for table, row in ROWS_AT_0003
    ]
    await _populate(url, rows)
    await asyncio.to_thread(upgrade, url)
    store = Store(make_settings(url))
    try:
        detail = await store.log_detail("u_ada", "d_done")
        assert [(a.attempt, a.status_code, a.trigger.value) for a in detail.attempts] == [
            (1, 200, "scheduled")
        ]
        assert detail.attempts[0].request_headers is None
        assert detail.log.log_status.value == "succeeded" and detail.log.planned_at is None
        queued = await store.log_detail("u_ada", "d_queued")
        assert queued.log.log_status.value == "pending" and queued.log.planned_at is not None
        assert (await store.resend("u_ada", "d_done")).value == "requeued"
        counters, open_count = await store.stats("u_ada")
        assert counters["resume.parsed"].successful == 0 and open_count == 2
    finally:
        await store.close()


async def test_upgrading_from_0006_marks_disabled_endpoints_as_disabled_by_their_user(
    unmigrated_database_url: str,
) -> None:
    """A 0006 database with an enabled and a disabled endpoint: after 0007 the disabled one
    was disabled by its user when it was last updated; the enabled one has no reason and no
    streak; its deliveries and counters are untouched."""
    url = unmigrated_database_url
    await asyncio.to_thread(upgrade, url, "0006")
    off = {
        **dict(ROWS_AT_0003[5][1]),
        "id": "e_off",
        "slot": "e_off",
        "enabled": False,
        "updated_at": T0 + 99,
    }
    rows = [
        (table, {**row, "endpoint_id": "e_ada"} if table == "delivery_stats" else row)
        for table, row in ROWS_AT_0003
    ]
    await _populate(url, [*rows, ("endpoints", off)])
    await asyncio.to_thread(upgrade, url)
    after = await _snapshot(url)
    by_id = {row["id"]: row for row in after["endpoints"]}
    assert [by_id["e_off"][name] for name in DISABLE_COLUMNS] == [T0 + 99, "user", 0, None, None]
    assert [by_id["e_ada"][name] for name in DISABLE_COLUMNS] == [None, None, 0, None, None]
    assert len(after["deliveries"]) == 2 and len(after["delivery_stats"]) == 1
    store = Store(make_settings(url))
    try:
        counters, open_count = await store.stats("u_ada")
        assert counters["resume.parsed"].successful == 1 and open_count == 1
    finally:
        await store.close()


async def test_upgrading_from_0007_adds_idempotency_keys_and_keeps_every_row(
    unmigrated_database_url: str,
) -> None:
    """A populated 0007 database: after 0008 every row is as it was, and publishing under an
    idempotency key works at once (a retry answers the first answer)."""
    url = unmigrated_database_url
    await asyncio.to_thread(upgrade, url, "0007")
    rows = [
        (table, {**row, "endpoint_id": "e_ada"} if table == "delivery_stats" else row)
        for table, row in ROWS_AT_0003
    ]
    await _populate(url, rows)
    before = await _snapshot(url)
    await asyncio.to_thread(upgrade, url)
    assert await _snapshot(url) == before
    store = Store(make_settings(url))
    try:
        assert await current_revision(store.db) == head_revision() == "0008"
        data = {"resumeId": "r", "fileName": "a.pdf", "parsedAt": "t", "success": True}
        first = await store.publish("u_ada", "resume.parsed", data, idempotency_key="k")
        again = await store.publish("u_ada", "resume.parsed", data, idempotency_key="k")
        assert len(first.delivery_ids) == 1 and again == first
        _, open_count = await store.stats("u_ada")
        assert open_count == 2
    finally:
        await store.close()


async def test_the_migrations_build_exactly_the_declared_schema(
    unmigrated_database_url: str,
) -> None:
    """Every migration applied in order gives the tables, columns, indexes and keys that
    schema.py declares: nothing missing, nothing extra, on either database."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from hookline.store.schema import metadata

    await asyncio.to_thread(upgrade, unmigrated_database_url)
    writer, reader = create_engines(unmigrated_database_url)
    try:
        async with writer.connect() as conn:

            def diff(sync_conn: Any) -> list[Any]:
                context = MigrationContext.configure(
                    sync_conn, opts={"compare_type": False, "compare_server_default": False}
                )
                return [
                    change
                    for change in compare_metadata(context, metadata)
                    if not (
                        isinstance(change, tuple)
                        and change[0] == "remove_table"
                        and change[1].name == "alembic_version"
                    )
                ]

            changes = await conn.run_sync(diff)
    finally:
        await writer.dispose()
        await reader.dispose()
    assert changes == []
