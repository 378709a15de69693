"""Bulk seeding with set-based SQL: an INSERT ... SELECT per table and batch of rows, no API, no
ORM.

PostgreSQL numbers the rows with ``generate_series``, SQLite with a recursive CTE. Rows look
like the ones publishing makes: each delivery points at a ``messages`` row holding its event's
data (the same data for all) and stores no body; the worker builds the body from the message.
"""

from __future__ import annotations

import secrets
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.bare_client import EVENT, event_data
from hookline.events import DEFAULT_EVENTS
from hookline.payload import dumps

CHUNK = 250_000  # rows per statement: keeps each transaction and WAL burst moderate


def _now_us() -> int:
    return int(time.time() * 1_000_000)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def seed_deliveries(
    engine: AsyncEngine,
    *,
    user_id: str,
    endpoint_id: str,
    url: str,
    n: int,
    finished: bool,
) -> float:
    """Insert ``n`` deliveries for ``user_id``; returns the seconds it took.

    ``finished=False``: pending and due now (a backlog), oldest first, all event resume.parsed.
    ``finished=True``: a delivery log spread over the last 30 days, the seven events in turn,
    1 in 50 failed after 4 attempts, the rest succeeded at the first; the per-event
    ``delivery_stats`` counters are then added from the same rows, so they agree. Each delivery
    has a message of its own (one endpoint per event), created with it.
    """
    postgres = engine.dialect.name == "postgresql"
    tag = secrets.token_hex(4)
    now_us = _now_us()
    step_us = (30 * 86_400 * 1_000_000) // max(n, 1) if finished else 1
    events = DEFAULT_EVENTS if finished else (EVENT,)
    if postgres:
        hex12 = "lpad(to_hex(i), 12, '0')"
        pad10 = "lpad(i::text, 10, '0')"
        event_sql = f"(ARRAY[{', '.join(_quote(e) for e in events)}])[1 + i % {len(events)}]"
    else:
        hex12 = "printf('%012x', i)"
        pad10 = "printf('%010d', i)"
        cases = " ".join(f"WHEN {k} THEN {_quote(e)}" for k, e in enumerate(events))
        event_sql = f"CASE i % {len(events)} {cases} END"
    delivery_id = f"'{tag}-0000-4000-8000-' || {hex12}"
    message_id = f"'m{tag}' || {pad10}"
    empty_body = "CAST('' AS BYTEA)" if postgres else "CAST('' AS BLOB)"
    created = f"(CAST(:now_us AS BIGINT) - (CAST(:n AS BIGINT) - i) * {step_us})"
    failed = "i % 50 = 0"
    if finished:
        status = f"CASE WHEN {failed} THEN 'failed' ELSE 'succeeded' END"
        attempts = f"CASE WHEN {failed} THEN 4 ELSE 1 END"
        code = f"CASE WHEN {failed} THEN 500 ELSE 200 END"
        error = f"CASE WHEN {failed} THEN 'HTTP 500 Internal Server Error' END"
        delivered = f"CASE WHEN {failed} THEN NULL ELSE {created} + 40000 END"
        finished_at = f"{created} + 40000"
    else:
        status, attempts, code, error, delivered, finished_at = (
            "'pending'",
            "0",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
        )
    select_message = f"""
        SELECT {message_id}, :user_id, {event_sql}, :data, {created}"""
    select = f"""
        SELECT 'b{tag}' || {pad10}, {delivery_id}, :user_id, :endpoint_id, {event_sql}, :url,
               {empty_body}, {message_id}, {status}, {attempts}, 4, {created}, NULL, NULL,
               {code}, {error}, {delivered}, {finished_at}, {created}"""
    columns = """(id, delivery_id, user_id, endpoint_id, event, url, body, message_id, status,
        attempts, max_attempts, next_attempt_at, lease_owner, lease_until, last_status_code,
        last_error, delivered_at, finished_at, created_at)"""
    message_columns = "(id, user_id, event, data, created_at)"
    if postgres:
        series = "generate_series(CAST(:lo AS INTEGER), CAST(:hi AS INTEGER)) AS i"
        statements = [
            f"INSERT INTO messages {message_columns} {select_message} FROM {series}",
            f"INSERT INTO deliveries {columns} {select} FROM {series}",
        ]
    else:
        seq = "WITH RECURSIVE seq(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM seq WHERE i < :hi)"
        statements = [
            f"{seq} INSERT INTO messages {message_columns} {select_message} FROM seq",
            f"{seq} INSERT INTO deliveries {columns} {select} FROM seq",
        ]
    started = time.perf_counter()
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK) - 1
        params = {
            "lo": lo,
            "hi": hi,
            "n": n,
            "now_us": now_us,
            "user_id": user_id,
            "endpoint_id": endpoint_id,
            "url": url,
            "data": dumps(event_data(0)),
        }
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement), params)
    if finished:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    """INSERT INTO delivery_stats
                        (user_id, endpoint_id, event, successful, failed, attempts_sum)
                    SELECT user_id, coalesce(endpoint_id, ''), event,
                           SUM(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END),
                           SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END),
                           SUM(attempts)
                    FROM deliveries
                    WHERE user_id = :user_id AND status IN ('succeeded', 'failed')
                    GROUP BY user_id, coalesce(endpoint_id, ''), event"""
                ),
                {"user_id": user_id},
            )
    return time.perf_counter() - started


async def analyze(engine: AsyncEngine) -> float:
    """Refresh planner statistics (and, on PostgreSQL, the visibility map), as autovacuum
    would shortly after a bulk load."""
    started = time.perf_counter()
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM (ANALYZE) deliveries"))
            await conn.execute(text("VACUUM (ANALYZE) messages"))
            await conn.execute(text("ANALYZE delivery_stats"))
    else:
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
    return time.perf_counter() - started
