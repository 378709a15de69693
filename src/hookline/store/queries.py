"""Named statements: the only SQL in hookline. Each function runs one unit of work on a
connection the caller owns, so several can share a transaction."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
    TextClause,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Update

from hookline import ids
from hookline.payload import build_body
from hookline.store.schema import (
    Status,
    Timestamp,
    deliveries,
    delivery_attempts,
    delivery_stats,
    endpoints,
)

# Users and tokens moved to their own module; re-exported while queries is split by subject.
from hookline.store.users import User as User
from hookline.store.users import count_users as count_users
from hookline.store.users import get_user as get_user
from hookline.store.users import hash_token as hash_token
from hookline.store.users import insert_token as insert_token
from hookline.store.users import insert_user as insert_user
from hookline.store.users import revoke_token as revoke_token
from hookline.store.users import user_by_token_hash as user_by_token_hash
from hookline.timeutil import to_micros

NOTIFY_CHANNEL = "hookline_deliveries"


def status_is(*wanted: Status) -> ColumnElement[bool]:
    """``deliveries.status`` in ``wanted``, written as SQL literals (not bound parameters) so
    that SQLite and PostgreSQL can match the partial indexes on status."""
    literals = [literal_column(f"'{status.value}'", String) for status in wanted]
    if len(literals) == 1:
        return deliveries.c.status == literals[0]
    return deliveries.c.status.in_(literals)


DEFAULT_SLOT = "default"


# --- endpoints --------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointRow:
    id: str
    user_id: str
    url: str
    enabled: bool
    enabled_events: list[str]
    secret_enc: str
    old_secrets: list[dict[str, Any]]  # [{"enc": fernet token, "until": epoch seconds}]
    created_at: datetime
    updated_at: datetime


_ENDPOINT_COLUMNS = (
    endpoints.c.id,
    endpoints.c.user_id,
    endpoints.c.url,
    endpoints.c.enabled,
    endpoints.c.enabled_events,
    endpoints.c.secret_enc,
    endpoints.c.old_secrets,
    endpoints.c.created_at,
    endpoints.c.updated_at,
)


def _endpoint(row: Any, prefix: str = "") -> EndpointRow:
    values = row._mapping
    return EndpointRow(
        id=values[prefix + "id"],
        user_id=values[prefix + "user_id"],
        url=values[prefix + "url"],
        enabled=bool(values[prefix + "enabled"]),
        enabled_events=json.loads(values[prefix + "enabled_events"]),
        secret_enc=values[prefix + "secret_enc"],
        old_secrets=json.loads(values[prefix + "old_secrets"]),
        created_at=values[prefix + "created_at"],
        updated_at=values[prefix + "updated_at"],
    )


_ENDPOINT_OF_USER = select(*_ENDPOINT_COLUMNS).where(
    endpoints.c.user_id == bindparam("user_id"), endpoints.c.slot == bindparam("slot")
)


async def get_endpoint(
    conn: AsyncConnection, user_id: str, slot: str = DEFAULT_SLOT
) -> EndpointRow | None:
    """A user's endpoint in a slot."""
    row = (await conn.execute(_ENDPOINT_OF_USER, {"user_id": user_id, "slot": slot})).first()
    return None if row is None else _endpoint(row)


async def endpoints_by_id(
    conn: AsyncConnection, endpoint_ids: Iterable[str]
) -> dict[str, EndpointRow]:
    """Endpoints by id, for the deliveries a worker just claimed."""
    wanted = sorted(set(endpoint_ids))
    if not wanted:
        return {}
    rows = await conn.execute(select(*_ENDPOINT_COLUMNS).where(endpoints.c.id.in_(wanted)))
    return {row.id: _endpoint(row) for row in rows}


async def some_secrets(conn: AsyncConnection, limit: int) -> list[str]:
    """Up to ``limit`` stored secrets (ciphertexts, current and previous), newest endpoints
    first: enough to tell whether the configured keys open what is stored."""
    rows = await conn.execute(
        select(endpoints.c.secret_enc, endpoints.c.old_secrets)
        .order_by(endpoints.c.updated_at.desc())
        .limit(limit)
    )
    found: list[str] = []
    for row in rows:
        found.append(row.secret_enc)
        found += [old["enc"] for old in json.loads(row.old_secrets)]
    return found


async def all_endpoints(conn: AsyncConnection) -> list[EndpointRow]:
    """Every endpoint (for re-encrypting secrets)."""
    return [_endpoint(row) for row in await conn.execute(select(*_ENDPOINT_COLUMNS))]


async def insert_endpoint(
    conn: AsyncConnection,
    user_id: str,
    url: str,
    enabled: bool,
    events: Sequence[str],
    secret_enc: str,
    now: datetime,
) -> str:
    """Create a user's default endpoint; returns its id."""
    endpoint_id = ids.new_id()
    await conn.execute(
        insert(endpoints).values(
            id=endpoint_id,
            user_id=user_id,
            slot=DEFAULT_SLOT,
            url=url,
            enabled=enabled,
            enabled_events=json.dumps(list(events)),
            secret_enc=secret_enc,
            old_secrets="[]",
            created_at=now,
            updated_at=now,
        )
    )
    return endpoint_id


async def update_endpoint(
    conn: AsyncConnection,
    endpoint_id: str,
    url: str,
    enabled: bool,
    events: Sequence[str],
    now: datetime,
) -> None:
    """Change an endpoint's URL, switch and events; its secret stays."""
    await conn.execute(
        update(endpoints)
        .where(endpoints.c.id == endpoint_id)
        .values(url=url, enabled=enabled, enabled_events=json.dumps(list(events)), updated_at=now)
    )


async def set_secrets(
    conn: AsyncConnection,
    endpoint_id: str,
    secret_enc: str,
    old_secrets: list[dict[str, Any]],
    now: datetime | None = None,
) -> None:
    """Replace an endpoint's current and previous secrets."""
    values: dict[str, Any] = {"secret_enc": secret_enc, "old_secrets": json.dumps(old_secrets)}
    if now is not None:
        values["updated_at"] = now
    await conn.execute(update(endpoints).where(endpoints.c.id == endpoint_id).values(**values))


async def delete_endpoint(conn: AsyncConnection, user_id: str, slot: str = DEFAULT_SLOT) -> bool:
    """Delete a user's endpoint; its delivery log stays. False when there was none."""
    result = await conn.execute(
        delete(endpoints).where(endpoints.c.user_id == user_id, endpoints.c.slot == slot)
    )
    return result.rowcount == 1


# --- enqueueing -------------------------------------------------------------------------


@dataclass(frozen=True)
class Enqueued:
    """What publishing an event did: the delivery ids created, or why there are none."""

    delivery_ids: list[str]
    reason: str | None = None


_INSERT_DELIVERY = insert(deliveries)


def new_delivery_row(
    *,
    user_id: str,
    endpoint: EndpointRow,
    event: str,
    data: Mapping[str, Any],
    now: datetime,
    max_attempts: int,
    status: Status = Status.PENDING,
    lease_owner: str | None = None,
    lease_until: datetime | None = None,
) -> dict[str, Any]:
    """A new delivery's row, its final body bytes included."""
    delivery_id = ids.new_delivery_id()
    return {
        "id": ids.new_id(),
        "delivery_id": delivery_id,
        "user_id": user_id,
        "endpoint_id": endpoint.id,
        "event": event,
        "url": endpoint.url,
        "body": build_body(event, delivery_id, now, user_id, data),
        "status": status.value,
        "attempts": 0,
        "max_attempts": max_attempts,
        "next_attempt_at": now,
        "lease_owner": lease_owner,
        "lease_until": lease_until,
        "created_at": now,
    }


async def insert_delivery(conn: AsyncConnection, row: Mapping[str, Any]) -> None:
    """Store one delivery (a ``new_delivery_row``). On PostgreSQL the insert wakes the
    workers by itself (a NOTIFY trigger, migration 0003)."""
    await conn.execute(_INSERT_DELIVERY, dict(row))


def _delivery_for(
    endpoint: EndpointRow | None,
    *,
    user_id: str,
    event: str,
    data: Mapping[str, Any],
    now: datetime,
    max_attempts: int,
) -> tuple[dict[str, Any] | None, Enqueued]:
    """The delivery row an event makes for this endpoint (None when it makes none), and
    what publishing answers: its deliveryId, or why there is none."""
    if endpoint is None:
        return None, Enqueued([], "User has no webhook configuration")
    if not endpoint.enabled:
        return None, Enqueued([], "Webhook is disabled")
    if event not in endpoint.enabled_events:
        return None, Enqueued([], f"Event {event} is not enabled for this webhook")
    row = new_delivery_row(
        user_id=user_id,
        endpoint=endpoint,
        event=event,
        data=data,
        now=now,
        max_attempts=max_attempts,
    )
    return row, Enqueued([row["delivery_id"]])


def _enqueue_sql(postgres: bool) -> TextClause:
    """Insert the delivery if the user's endpoint is enabled for the event: one statement."""
    subscribed = (
        "CAST(e.enabled_events AS jsonb) ? :event"
        if postgres
        else "EXISTS (SELECT 1 FROM json_each(e.enabled_events) AS j WHERE j.value = :event)"
    )
    return text(
        f"""
        INSERT INTO deliveries (id, delivery_id, user_id, endpoint_id, event, url, body, status,
                                attempts, max_attempts, next_attempt_at, created_at)
        SELECT :id, :delivery_id, CAST(:user_id AS VARCHAR), e.id, CAST(:event AS VARCHAR),
               e.url, :body, '{Status.PENDING.value}', 0, :max_attempts,
               CAST(:now AS BIGINT), CAST(:now AS BIGINT)
        FROM endpoints AS e
        WHERE e.user_id = :user_id AND e.slot = '{DEFAULT_SLOT}' AND e.enabled AND {subscribed}
        RETURNING id
        """
    )


_ENQUEUE = {"postgresql": _enqueue_sql(True), "sqlite": _enqueue_sql(False)}


async def enqueue(
    conn: AsyncConnection,
    *,
    user_id: str,
    event: str,
    data: Mapping[str, Any],
    now: datetime,
    max_attempts: int,
) -> Enqueued:
    """Create the deliveries an event calls for, inside the caller's transaction (or as one
    statement in autocommit): see ``enqueue_sync``."""
    return await conn.run_sync(
        lambda sync: enqueue_sync(
            sync, user_id=user_id, event=event, data=data, now=now, max_attempts=max_attempts
        )
    )


def enqueue_sync(
    conn: Connection,
    *,
    user_id: str,
    event: str,
    data: Mapping[str, Any],
    now: datetime,
    max_attempts: int,
) -> Enqueued:
    """``enqueue`` as plain statements (SQLite's store runs it whole on SQLite's thread). The
    insert checks the endpoint itself; only an event that makes no delivery reads the
    endpoint, to say why."""
    delivery_id = ids.new_delivery_id()
    params = {
        "id": ids.new_id(),
        "delivery_id": delivery_id,
        "user_id": user_id,
        "event": event,
        "body": build_body(event, delivery_id, now, user_id, data),
        "max_attempts": max_attempts,
        "now": to_micros(now),
    }
    if conn.execute(_ENQUEUE[conn.dialect.name], params).first() is not None:
        return Enqueued([delivery_id])
    found = conn.execute(_ENDPOINT_OF_USER, {"user_id": user_id, "slot": DEFAULT_SLOT}).first()
    # A row here means the endpoint was configured between the two statements: insert as read.
    row, answer = _delivery_for(
        None if found is None else _endpoint(found),
        user_id=user_id,
        event=event,
        data=data,
        now=now,
        max_attempts=max_attempts,
    )
    if row is not None:
        conn.execute(_INSERT_DELIVERY, row)
    return answer


async def enqueue_many(
    conn: AsyncConnection,
    items: Sequence[tuple[str, str, Mapping[str, Any]]],
    *,
    now: datetime,
    max_attempts: int,
) -> list[Enqueued]:
    """``enqueue`` for many (user id, event, data) at once, inside the caller's transaction:
    one read of the endpoints and one multi-row insert. Results are in the items' order."""
    wanted = sorted({user_id for user_id, _, _ in items})
    found: dict[str, EndpointRow] = {}
    if wanted:
        rows = await conn.execute(
            select(*_ENDPOINT_COLUMNS).where(
                endpoints.c.user_id.in_(wanted), endpoints.c.slot == DEFAULT_SLOT
            )
        )
        found = {row.user_id: _endpoint(row) for row in rows}
    results, new_rows = [], []
    for user_id, event, data in items:
        row, answer = _delivery_for(
            found.get(user_id),
            user_id=user_id,
            event=event,
            data=data,
            now=now,
            max_attempts=max_attempts,
        )
        if row is not None:
            new_rows.append(row)
        results.append(answer)
    if new_rows:
        await conn.execute(_INSERT_DELIVERY, new_rows)
    return results


# --- the worker's statements ------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A delivery leased to a worker for one attempt."""

    id: str
    delivery_id: str
    user_id: str
    endpoint_id: str | None
    event: str
    url: str
    body: bytes
    attempts: int  # attempts made before this one
    max_attempts: int


_CLAIMED_COLUMNS = (
    deliveries.c.id,
    deliveries.c.delivery_id,
    deliveries.c.user_id,
    deliveries.c.endpoint_id,
    deliveries.c.event,
    deliveries.c.url,
    deliveries.c.body,
    deliveries.c.attempts,
    deliveries.c.max_attempts,
)


def _claimed(row: Any) -> Claimed:
    return Claimed(
        id=row.id,
        delivery_id=row.delivery_id,
        user_id=row.user_id,
        endpoint_id=row.endpoint_id,
        event=row.event,
        url=row.url,
        body=bytes(row.body),
        attempts=row.attempts,
        max_attempts=row.max_attempts,
    )


def _lease_due(postgres: bool) -> Update:
    """Lease the ``b_limit`` longest-due pending deliveries to ``b_worker``."""
    due = (
        select(deliveries.c.id)
        .where(
            status_is(Status.PENDING),
            deliveries.c.next_attempt_at <= bindparam("b_now", type_=Timestamp()),
        )
        .order_by(deliveries.c.next_attempt_at)
        .limit(bindparam("b_limit", type_=Integer()))
    )
    if postgres:
        due = due.with_for_update(skip_locked=True)
    return (
        update(deliveries)
        .where(deliveries.c.id.in_(due.scalar_subquery()))
        .values(
            status=Status.IN_FLIGHT.value,
            lease_owner=bindparam("b_worker"),
            lease_until=bindparam("b_lease_until", type_=Timestamp()),
        )
        .returning(*_CLAIMED_COLUMNS)
    )


_ENDPOINT_PREFIX = "e_"


def _claim_with_endpoints() -> Select[Any]:
    """PostgreSQL's claim: the lease (a CTE) joined to the leased rows' endpoints."""
    leased = _lease_due(postgres=True).cte("leased")
    endpoint_columns = [
        column.label(_ENDPOINT_PREFIX + column.name) for column in _ENDPOINT_COLUMNS
    ]
    return select(leased, *endpoint_columns).outerjoin_from(
        leased, endpoints, endpoints.c.id == leased.c.endpoint_id
    )


# Built once: building these per claim cost more than running them at a trickle.
_CLAIM_POSTGRES = _claim_with_endpoints()
_CLAIM_SQLITE = _lease_due(postgres=False)


async def claim_due_postgres(
    conn: AsyncConnection, worker: str, limit: int, now: datetime, lease_until: datetime
) -> list[tuple[Claimed, EndpointRow | None]]:
    """Lease up to ``limit`` due pending deliveries to ``worker`` until ``lease_until``, each
    with its endpoint (None once the endpoint is deleted).

    One statement: it skips rows other workers are claiming (SKIP LOCKED) and joins the
    endpoints to the leased rows. SQLite's is ``claim_due_sqlite``.
    """
    params = {"b_worker": worker, "b_limit": limit, "b_now": now, "b_lease_until": lease_until}
    rows = await conn.execute(_CLAIM_POSTGRES, params)
    return [
        (_claimed(row), None if row.e_id is None else _endpoint(row, _ENDPOINT_PREFIX))
        for row in rows
    ]


def claim_due_sqlite(
    conn: Connection, worker: str, limit: int, now: datetime, lease_until: datetime
) -> list[tuple[Claimed, EndpointRow | None]]:
    """``claim_due_postgres`` on SQLite, as plain (synchronous) statements in the caller's
    write transaction: the store runs the whole transaction on SQLite's thread in one hop.
    SQLite's writer lock (BEGIN IMMEDIATE) serialises claimers; the endpoints are read after
    the lease."""
    params = {"b_worker": worker, "b_limit": limit, "b_now": now, "b_lease_until": lease_until}
    claimed = [_claimed(row) for row in conn.execute(_CLAIM_SQLITE, params)]
    wanted = sorted({c.endpoint_id for c in claimed if c.endpoint_id})
    found = {}
    if wanted:
        rows = conn.execute(select(*_ENDPOINT_COLUMNS).where(endpoints.c.id.in_(wanted)))
        found = {row.id: _endpoint(row) for row in rows}
    return [(c, found.get(c.endpoint_id or "")) for c in claimed]


async def held_delivery(conn: AsyncConnection, log_id: str, worker: str) -> Claimed | None:
    """Read back a delivery ``worker`` holds (the test endpoint's own)."""
    row = (
        await conn.execute(
            select(*_CLAIMED_COLUMNS).where(
                deliveries.c.id == log_id,
                status_is(Status.IN_FLIGHT),
                deliveries.c.lease_owner == worker,
            )
        )
    ).first()
    return None if row is None else _claimed(row)


async def reclaim_expired(conn: AsyncConnection, now: datetime) -> int:
    """Put deliveries whose worker's lease ran out back in the queue, due now."""
    result = await conn.execute(
        update(deliveries)
        .where(status_is(Status.IN_FLIGHT), deliveries.c.lease_until < now)
        .values(
            status=Status.PENDING.value, lease_owner=None, lease_until=None, next_attempt_at=now
        )
    )
    return result.rowcount


async def release(conn: AsyncConnection, worker: str, log_ids: Sequence[str], now: datetime) -> int:
    """Give back leased deliveries unattempted (graceful stop), due now."""
    if not log_ids:
        return 0
    result = await conn.execute(
        update(deliveries)
        .where(
            deliveries.c.id.in_(list(log_ids)),
            status_is(Status.IN_FLIGHT),
            deliveries.c.lease_owner == worker,
        )
        .values(
            status=Status.PENDING.value, lease_owner=None, lease_until=None, next_attempt_at=now
        )
    )
    return result.rowcount


@dataclass(frozen=True)
class AttemptRecord:
    """The outcome of one attempt and what it decides for the delivery."""

    log_id: str
    attempt: int  # 1-based number of this attempt
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    response_excerpt: str | None
    next_status: Status  # SUCCEEDED, FAILED or PENDING (retry)
    next_attempt_at: datetime | None = None
    delivery_id: str = ""  # the receiver-facing id, for log messages


def record_attempts_sqlite(
    conn: Connection, worker: str, records: Sequence[AttemptRecord], now: datetime
) -> list[str]:
    """Record attempts and move each delivery on, guarded by this worker's lease, as plain
    (synchronous) statements in the caller's write transaction (see ``claim_due_sqlite``).

    Returns the ids whose state changed; a delivery whose lease this worker lost keeps its
    attempt row (the request was made) but is left to its new owner.
    """
    if not records:
        return []
    conn.execute(
        insert(delivery_attempts),
        [
            {
                "delivery_pk": r.log_id,
                "attempt": r.attempt,
                "created_at": r.started_at,
                "duration_ms": r.duration_ms,
                "status_code": r.status_code,
                "error": r.error,
                "response_excerpt": r.response_excerpt,
            }
            for r in records
        ],
    )
    # SQLite's writer lock keeps anyone from reclaiming these until this commits.
    held = conn.execute(_HELD, {"b_ids": [r.log_id for r in records], "b_worker": worker})
    owned = {row.id: row for row in held}
    mine = [r for r in records if r.log_id in owned]
    if not mine:
        return []
    conn.execute(
        _MOVE_ON,
        [
            {
                "b_id": r.log_id,
                "b_worker": worker,
                "b_status": r.next_status.value,
                "b_attempts": r.attempt,
                "b_code": r.status_code,
                "b_error": r.error,
                "b_next": r.next_attempt_at,
                "b_finished": None if r.next_status is Status.PENDING else now,
                "b_delivered": now if r.next_status is Status.SUCCEEDED else None,
            }
            for r in mine
        ],
    )
    finished: Counter[tuple[str, str, Status]] = Counter()
    attempt_sums: Counter[tuple[str, str]] = Counter()
    for r in mine:
        if r.next_status is not Status.PENDING:
            row = owned[r.log_id]
            finished[(row.user_id, row.event, r.next_status)] += 1
            attempt_sums[(row.user_id, row.event)] += r.attempt
    _bump_stats_sync(conn, finished, attempt_sums, sign=1)
    return [r.log_id for r in mine]


async def record_attempts_postgres(
    conn: AsyncConnection, worker: str, records: Sequence[AttemptRecord], now: datetime
) -> list[str]:
    """``record_attempts_sqlite`` on PostgreSQL, as one statement (``_RECORD``): one round
    trip for the batch."""
    if not records:
        return []
    now_us = to_micros(now)

    def micros(moment: datetime | None) -> int | None:
        return None if moment is None else to_micros(moment)

    finished_us = [None if r.next_status is Status.PENDING else now_us for r in records]
    params = {
        "worker": worker,
        "ids": [r.log_id for r in records],
        "statuses": [r.next_status.value for r in records],
        "attempts": [r.attempt for r in records],
        "codes": [r.status_code for r in records],
        "errors": [r.error for r in records],
        "next_at": [micros(r.next_attempt_at) for r in records],
        "finished_at": finished_us,
        "delivered_at": [now_us if r.next_status is Status.SUCCEEDED else None for r in records],
        "started_at": [to_micros(r.started_at) for r in records],
        "durations": [r.duration_ms for r in records],
        "excerpts": [r.response_excerpt for r in records],
    }
    return [row.id for row in await conn.execute(_RECORD, params)]


# Each outcome's attempt row, the move of its delivery (only while this worker's lease
# holds) and the counters of those that finished, in one statement. The counters are
# upserted in (user_id, event) order, so concurrent workers lock them in the same order.
_RECORD = text(
    f"""
    WITH outcome AS (
        SELECT * FROM unnest(
            CAST(:ids AS text[]), CAST(:statuses AS text[]), CAST(:attempts AS integer[]),
            CAST(:codes AS integer[]), CAST(:errors AS text[]), CAST(:next_at AS bigint[]),
            CAST(:finished_at AS bigint[]), CAST(:delivered_at AS bigint[]),
            CAST(:started_at AS bigint[]), CAST(:durations AS integer[]),
            CAST(:excerpts AS text[])
        ) AS o(id, status, attempt, code, error, next_at, finished_at, delivered_at,
               started_at, duration_ms, excerpt)
    ),
    attempt_rows AS (
        INSERT INTO delivery_attempts
            (delivery_pk, attempt, created_at, duration_ms, status_code, error, response_excerpt)
        SELECT id, attempt, started_at, duration_ms, code, error, excerpt FROM outcome
    ),
    moved AS (
        UPDATE deliveries AS d SET
            status = o.status, attempts = o.attempt, last_status_code = o.code,
            last_error = o.error, lease_owner = NULL, lease_until = NULL,
            next_attempt_at = coalesce(o.next_at, d.next_attempt_at),
            finished_at = o.finished_at, delivered_at = o.delivered_at
        FROM outcome AS o
        WHERE d.id = o.id AND d.status = '{Status.IN_FLIGHT.value}' AND d.lease_owner = :worker
        RETURNING d.id, d.user_id, d.event, o.status, o.attempt
    ),
    counted AS (
        INSERT INTO delivery_stats (user_id, event, successful, failed, attempts_sum)
        SELECT user_id, event,
               count(*) FILTER (WHERE status = '{Status.SUCCEEDED.value}'),
               count(*) FILTER (WHERE status = '{Status.FAILED.value}'),
               sum(attempt)
        FROM moved WHERE status <> '{Status.PENDING.value}'
        GROUP BY user_id, event ORDER BY user_id, event
        ON CONFLICT (user_id, event) DO UPDATE SET
            successful = delivery_stats.successful + excluded.successful,
            failed = delivery_stats.failed + excluded.failed,
            attempts_sum = delivery_stats.attempts_sum + excluded.attempts_sum
    )
    SELECT id FROM moved
    """
)


_HELD = select(deliveries.c.id, deliveries.c.user_id, deliveries.c.event).where(
    deliveries.c.id.in_(bindparam("b_ids", expanding=True)),
    status_is(Status.IN_FLIGHT),
    deliveries.c.lease_owner == bindparam("b_worker"),
)

# One statement for every outcome, run as an executemany over a batch of attempts.
_MOVE_ON = (
    update(deliveries)
    .where(
        deliveries.c.id == bindparam("b_id"),
        status_is(Status.IN_FLIGHT),
        deliveries.c.lease_owner == bindparam("b_worker"),
    )
    .values(
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        last_status_code=bindparam("b_code"),
        last_error=bindparam("b_error"),
        lease_owner=None,
        lease_until=None,
        next_attempt_at=func.coalesce(
            bindparam("b_next", type_=Timestamp()), deliveries.c.next_attempt_at
        ),
        finished_at=bindparam("b_finished", type_=Timestamp()),
        delivered_at=bindparam("b_delivered", type_=Timestamp()),
    )
)


async def _bump_stats(
    conn: AsyncConnection,
    finished: Mapping[tuple[str, str, Status], int],
    attempt_sums: Mapping[tuple[str, str], int],
    sign: int,
) -> None:
    """Add (sign=1) or remove (sign=-1) finished deliveries from the counters."""
    await conn.run_sync(_bump_stats_sync, finished, attempt_sums, sign)


def _bump_stats_sync(
    conn: Connection,
    finished: Mapping[tuple[str, str, Status], int],
    attempt_sums: Mapping[tuple[str, str], int],
    sign: int,
) -> None:
    keys = set(attempt_sums) | {(user, event) for user, event, _ in finished}
    if not keys:
        return
    rows = [
        {
            "user_id": user,
            "event": event,
            "successful": sign * finished.get((user, event, Status.SUCCEEDED), 0),
            "failed": sign * finished.get((user, event, Status.FAILED), 0),
            "attempts_sum": sign * attempt_sums.get((user, event), 0),
        }
        for user, event in sorted(keys)
    ]
    conn.execute(_BUMP_STATS[conn.dialect.name], rows)


def _bump_stats_statement(dialect_insert: Any) -> Any:
    stmt = dialect_insert(delivery_stats)
    return stmt.on_conflict_do_update(
        index_elements=[delivery_stats.c.user_id, delivery_stats.c.event],
        set_={
            "successful": delivery_stats.c.successful + stmt.excluded.successful,
            "failed": delivery_stats.c.failed + stmt.excluded.failed,
            "attempts_sum": delivery_stats.c.attempts_sum + stmt.excluded.attempts_sum,
        },
    )


_BUMP_STATS = {
    "postgresql": _bump_stats_statement(postgresql.insert),
    "sqlite": _bump_stats_statement(sqlite.insert),
}


#: The advisory lock key of the one maintainer at a time (PostgreSQL): "hook" in ASCII.
MAINTENANCE_LOCK_KEY = 0x686F6F6B
_TRY_MAINTENANCE_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")


async def take_maintenance_lock(conn: AsyncConnection) -> bool:
    """Become the one maintainer (purge, lease reclaim) until this transaction ends; False
    when another process is maintaining right now. On PostgreSQL an advisory lock; SQLite's
    write lock already admits one writer at a time."""
    if conn.dialect.name != "postgresql":
        return True
    result = await conn.execute(_TRY_MAINTENANCE_LOCK, {"key": MAINTENANCE_LOCK_KEY})
    return bool(result.scalar_one())


async def purge_before(conn: AsyncConnection, cutoff: datetime, batch: int) -> int:
    """Delete up to ``batch`` finished deliveries created before ``cutoff`` (their attempts go
    with them, ON DELETE CASCADE) and take them out of the counters. Returns how many.

    The counters lose exactly the rows this statement deleted (``RETURNING``): a row that a
    concurrent purge deleted first is neither returned nor subtracted twice."""
    doomed = (
        select(deliveries.c.id)
        .where(deliveries.c.created_at < cutoff, status_is(Status.SUCCEEDED, Status.FAILED))
        .limit(batch)
        .scalar_subquery()
    )
    rows = (
        await conn.execute(
            delete(deliveries)
            .where(deliveries.c.id.in_(doomed))
            .returning(
                deliveries.c.user_id,
                deliveries.c.event,
                deliveries.c.status,
                deliveries.c.attempts,
            )
        )
    ).all()
    if not rows:
        return 0
    finished: Counter[tuple[str, str, Status]] = Counter()
    attempt_sums: Counter[tuple[str, str]] = Counter()
    for row in rows:
        finished[(row.user_id, row.event, Status(row.status))] += 1
        attempt_sums[(row.user_id, row.event)] += row.attempts
    await _bump_stats(conn, finished, attempt_sums, sign=-1)
    return len(rows)


# --- the views: logs and stats ----------------------------------------------------------

_LOG_COLUMNS = (
    deliveries.c.id,
    deliveries.c.event,
    deliveries.c.url,
    deliveries.c.status,
    deliveries.c.last_status_code,
    deliveries.c.attempts,
    deliveries.c.last_error,
    deliveries.c.delivery_id,
    deliveries.c.delivered_at,
    deliveries.c.created_at,
)


def _open_count_sql(on_sqlite: bool, by_event: bool) -> TextClause:
    # SQLite's statistics average over users: once another user has a big backlog it thinks
    # the partial index is as long as that backlog and walks the log index instead, so the
    # index is named there. PostgreSQL's per-value statistics choose it by themselves.
    hint = " INDEXED BY ix_deliveries_open" if on_sqlite else ""
    event = " AND event = :event" if by_event else ""
    return text(
        f"SELECT count(*) FROM deliveries{hint}"
        f" WHERE user_id = :user_id"
        f" AND status IN ('{Status.PENDING.value}', '{Status.IN_FLIGHT.value}'){event}"
    )


_OPEN_COUNT = {
    (on_sqlite, by_event): _open_count_sql(on_sqlite, by_event)
    for on_sqlite in (False, True)
    for by_event in (False, True)
}


async def open_count(conn: AsyncConnection, user_id: str, event: str | None = None) -> int:
    """Deliveries of a user not yet finished (pending or in flight), from the partial index."""
    query = _OPEN_COUNT[conn.dialect.name == "sqlite", event is not None]
    params = {"user_id": user_id} if event is None else {"user_id": user_id, "event": event}
    return int((await conn.execute(query, params)).scalar_one())


@dataclass(frozen=True)
class Counts:
    successful: int
    failed: int
    attempts_sum: int


async def counters(conn: AsyncConnection, user_id: str) -> dict[str, Counts]:
    """A user's finished-delivery counters by event."""
    rows = await conn.execute(
        select(
            delivery_stats.c.event,
            delivery_stats.c.successful,
            delivery_stats.c.failed,
            delivery_stats.c.attempts_sum,
        ).where(delivery_stats.c.user_id == user_id)
    )
    return {row.event: Counts(row.successful, row.failed, row.attempts_sum) for row in rows}


async def logs_page(
    conn: AsyncConnection,
    user_id: str,
    limit: int,
    offset: int,
    event: str | None,
    success: bool | None,
) -> tuple[list[Any], int]:
    """A page of a user's delivery log, newest first, and the total the filters match.

    The total comes from the counters plus the (few) open deliveries, never from a scan.
    """
    # A deferred join: the offset is walked in the per-user index alone (an index-only scan),
    # and only the page's rows are read from the table.
    newest_first = (deliveries.c.created_at.desc(), deliveries.c.id.desc())
    ids = select(deliveries.c.id).where(deliveries.c.user_id == user_id)
    if event is not None:
        ids = ids.where(deliveries.c.event == event)
    if success is True:
        ids = ids.where(deliveries.c.status == Status.SUCCEEDED.value)
    elif success is False:
        ids = ids.where(deliveries.c.status != Status.SUCCEEDED.value)
    page = ids.order_by(*newest_first).limit(limit).offset(offset).subquery("page")
    query = (
        select(*_LOG_COLUMNS)
        .join_from(deliveries, page, deliveries.c.id == page.c.id)
        .order_by(*newest_first)
    )
    rows = list((await conn.execute(query)).all())

    by_event = await counters(conn, user_id)
    counts = [c for name, c in by_event.items() if event is None or name == event]
    successful = sum(c.successful for c in counts)
    failed = sum(c.failed for c in counts)
    total = successful
    if success is not True:
        pending = await open_count(conn, user_id, event)
        total = failed + pending if success is False else successful + failed + pending
    return rows, total


async def log_detail(
    conn: AsyncConnection, user_id: str, log_id: str
) -> tuple[Any, list[Any]] | None:
    """One delivery of a user with its body and every attempt, oldest attempt first."""
    row = (
        await conn.execute(
            select(*_LOG_COLUMNS, deliveries.c.body).where(
                deliveries.c.id == log_id, deliveries.c.user_id == user_id
            )
        )
    ).first()
    if row is None:
        return None
    attempts = (
        await conn.execute(
            select(
                delivery_attempts.c.attempt,
                delivery_attempts.c.status_code,
                delivery_attempts.c.error,
                delivery_attempts.c.duration_ms,
                delivery_attempts.c.response_excerpt,
                delivery_attempts.c.created_at,
            )
            .where(delivery_attempts.c.delivery_pk == log_id)
            .order_by(delivery_attempts.c.attempt, delivery_attempts.c.id)
        )
    ).all()
    return row, list(attempts)


async def timeseries(
    conn: AsyncConnection, user_id: str, start: datetime, bucket: timedelta
) -> dict[tuple[int, str], int]:
    """Finished deliveries created since ``start``, counted by (bucket index, status)."""
    bucket_us = int(bucket.total_seconds() * 1_000_000)
    created_us = type_coerce(deliveries.c.created_at, BigInteger)
    index = ((created_us - to_micros(start)) // bucket_us).label("bucket")
    rows = await conn.execute(
        select(index, deliveries.c.status, func.count())
        .where(
            and_(
                deliveries.c.user_id == user_id,
                deliveries.c.created_at >= start,
                status_is(Status.SUCCEEDED, Status.FAILED),
            )
        )
        .group_by(text("1"), deliveries.c.status)
    )
    return {(int(b), status): int(n) for b, status, n in rows}


async def next_due(conn: AsyncConnection) -> datetime | None:
    """When the earliest pending delivery comes due (None when the queue is empty)."""
    value: datetime | None = (
        await conn.execute(
            select(func.min(deliveries.c.next_attempt_at)).where(status_is(Status.PENDING))
        )
    ).scalar_one()
    return value


# --- metrics: the queue at a glance (read at scrape time) -------------------------------


@dataclass(frozen=True)
class QueueStats:
    """The queue as a metrics scrape reports it."""

    read_at: datetime
    due: int  #: pending and due now
    scheduled: int  #: pending, due later (waiting for a retry)
    in_flight: int  #: leased to a worker
    oldest_due_at: datetime | None  #: when the longest-waiting due delivery came due
    endpoints_disabled: int  #: webhooks switched off

    @property
    def oldest_due_age_s(self) -> float:
        """How long the longest-waiting due delivery had been due when this was read."""
        if self.oldest_due_at is None:
            return 0.0
        return max(0.0, (self.read_at - self.oldest_due_at).total_seconds())


def _count(table: Any, *where: ColumnElement[bool]) -> Any:
    return select(func.count()).select_from(table).where(*where).scalar_subquery()


async def queue_stats(conn: AsyncConnection, now: datetime) -> QueueStats:
    """The open deliveries by state, the oldest due one and the disabled endpoints, in one
    statement. It walks the partial indexes on pending and in-flight rows, so it costs as much
    as the backlog is long: callers cache it (``metrics.QUEUE_CACHE_S``)."""
    due = deliveries.c.next_attempt_at <= now
    row = (
        await conn.execute(
            select(
                _count(deliveries, status_is(Status.PENDING), due).label("due"),
                _count(deliveries, status_is(Status.PENDING), ~due).label("scheduled"),
                _count(deliveries, status_is(Status.IN_FLIGHT)).label("in_flight"),
                select(func.min(deliveries.c.next_attempt_at))
                .where(status_is(Status.PENDING), due)
                .scalar_subquery()
                .label("oldest_due_at"),
                _count(endpoints, ~endpoints.c.enabled).label("endpoints_disabled"),
            )
        )
    ).one()
    return QueueStats(
        read_at=now,
        due=int(row.due),
        scheduled=int(row.scheduled),
        in_flight=int(row.in_flight),
        oldest_due_at=row.oldest_due_at,
        endpoints_disabled=int(row.endpoints_disabled),
    )
