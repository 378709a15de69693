"""The queue on PostgreSQL: each hot move is one statement in autocommit (one round trip).
Claims skip rows other workers are claiming (``FOR UPDATE SKIP LOCKED``); a statement trigger
sends NOTIFY on every insert into deliveries (migration 0003), which ``listen`` receives."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Select, select, text
from sqlalchemy.engine import make_url

from hookline import ids
from hookline.store import listen as listening
from hookline.store.db import Database
from hookline.store.endpoints import EndpointRow, endpoint_from
from hookline.store.endpoints import of_user as endpoints_of_user
from hookline.store.operational import (
    BY_DELIVERY,
    DISABLED,
    FAILING,
    OPERATOR_USER_ID,
    RECOVERED,
)
from hookline.store.queue import (
    DEFER,
    ENDPOINT_PREFIX,
    ENDPOINTS_OF_USERS,
    MESSAGE_COLUMNS,
    NEXT_DUE,
    NOTICE_EVERY,
    NOTIFY_CHANNEL,
    PREFIXED_ENDPOINT_COLUMNS,
    AttemptRecord,
    Claimed,
    EndpointRules,
    Enqueued,
    NewEvent,
    Requeued,
    Stop,
    any_expired_statement,
    claimed_from,
    lease_due,
    over_the_limit,
    purge_sync,
    rate_limited_wants,
    reclaim_statement,
    release_statement,
    requeue_sync,
    unsent_for,
    window_of,
    with_grant_windows,
)
from hookline.store.schema import (
    PRIMARY_SLOT,
    DisabledReason,
    Status,
    Trigger,
    endpoints,
    messages,
)
from hookline.timeutil import to_micros

#: ``to_char``'s pattern for the API's times (without the ``Z``), passed as a parameter: its
#: colons would read as bind parameters in the statement's text.
ISO_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.MS'

#: The advisory lock key of the one maintainer at a time: "hook" in ASCII.
MAINTENANCE_LOCK_KEY = 0x686F6F6B
#: The advisory lock key of the one listener at a time (``listen``): "hool" in ASCII.
LISTEN_TOKEN_KEY = 0x686F6F6C
_TRY_MAINTENANCE_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")
_NOTIFY = text("SELECT pg_notify(:channel, '')")

# The event's data once, and a delivery per enabled endpoint of the user subscribed to the
# event, in one statement. Delivery ids are the message id plus the endpoint's rank, and
# UUIDs from gen_random_uuid(); nothing is written when no endpoint wants the event.
_ENQUEUE = text(
    f"""
    WITH targets AS (
        SELECT e.id, e.url,
               row_number() OVER (ORDER BY e.slot <> '{PRIMARY_SLOT}', e.created_at, e.id) AS n
        FROM endpoints AS e
        WHERE e.user_id = :user_id AND e.enabled
          AND CAST(e.enabled_events AS jsonb) ? CAST(:event AS text)
    ),
    message AS (
        INSERT INTO messages (id, user_id, event, data, created_at)
        SELECT CAST(:message_id AS VARCHAR), CAST(:user_id AS VARCHAR),
               CAST(:event AS VARCHAR), :data, CAST(:now AS BIGINT)
        WHERE EXISTS (SELECT 1 FROM targets)
        RETURNING id
    ),
    made AS (
        INSERT INTO deliveries (id, delivery_id, user_id, endpoint_id, event, url, body,
                                message_id, status, attempts, max_attempts, next_attempt_at,
                                created_at)
        SELECT m.id || lpad(CAST(t.n AS text), 2, '0'), CAST(gen_random_uuid() AS text),
               CAST(:user_id AS VARCHAR), t.id, CAST(:event AS VARCHAR), t.url,
               CAST('' AS bytea), m.id, '{Status.PENDING.value}', 0, :max_attempts,
               CAST(:now AS BIGINT), CAST(:now AS BIGINT)
        FROM targets AS t CROSS JOIN message AS m
        RETURNING id, delivery_id
    )
    SELECT delivery_id FROM made ORDER BY id
    """
)


# ``_ENQUEUE`` for many events in one statement: each event's data once, and its deliveries,
# their ids made as ``_ENQUEUE`` makes them. Nothing joins one CTE to another (a prepared
# statement's generic plan may do such a join row by row): an event's first target (n = 1)
# writes its message, and every target its delivery.
_ENQUEUE_MANY = text(
    f"""
    WITH ev AS (
        SELECT * FROM unnest(CAST(:message_ids AS text[]), CAST(:user_ids AS text[]),
                             CAST(:events AS text[]), CAST(:datas AS bytea[]))
            AS ev(message_id, user_id, event, data)
    ),
    targets AS (
        SELECT ev.message_id, ev.user_id, ev.event, ev.data, e.id, e.url,
               row_number() OVER (PARTITION BY ev.message_id
                                  ORDER BY e.slot <> '{PRIMARY_SLOT}', e.created_at, e.id) AS n
        FROM ev JOIN endpoints AS e ON e.user_id = ev.user_id
        WHERE e.enabled AND CAST(e.enabled_events AS jsonb) ? ev.event
    ),
    message AS (
        INSERT INTO messages (id, user_id, event, data, created_at)
        SELECT t.message_id, t.user_id, t.event, t.data, CAST(:now AS BIGINT)
        FROM targets AS t WHERE t.n = 1
    ),
    made AS (
        INSERT INTO deliveries (id, delivery_id, user_id, endpoint_id, event, url, body,
                                message_id, status, attempts, max_attempts, next_attempt_at,
                                created_at)
        SELECT t.message_id || lpad(CAST(t.n AS text), 2, '0'), CAST(gen_random_uuid() AS text),
               t.user_id, t.id, t.event, t.url, CAST('' AS bytea), t.message_id,
               '{Status.PENDING.value}', 0, :max_attempts, CAST(:now AS BIGINT),
               CAST(:now AS BIGINT)
        FROM targets AS t
        RETURNING id, delivery_id, message_id
    )
    SELECT message_id, delivery_id FROM made ORDER BY id
    """
)


def _claim_statement() -> Select[tuple[object, ...]]:
    """The lease (a CTE) joined to the leased rows' endpoints and messages."""
    leased = lease_due(postgres=True).cte("leased")
    return (
        select(leased, *PREFIXED_ENDPOINT_COLUMNS, *MESSAGE_COLUMNS)
        .outerjoin_from(leased, endpoints, endpoints.c.id == leased.c.endpoint_id)
        .outerjoin(messages, messages.c.id == leased.c.message_id)
    )


# Built once: building these per claim cost more than running them at a trickle.
_CLAIM = _claim_statement()

# Take up to ``want`` starts this second from each endpoint's rate limit; the row lock of
# FOR UPDATE makes concurrent workers take turns and see each other's counts. A claim whose
# time is older than the second another claimer has started counts in that newer second.
_TAKE_STARTS = text(
    """
    WITH wanted AS (
        SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:wants AS integer[])) AS w(id, want)
    ),
    current AS (
        SELECT e.id, e.rate_limit, greatest(e.rate_window, :window) AS win,
               CASE WHEN e.rate_window >= :window THEN e.rate_count ELSE 0 END AS used
        FROM endpoints AS e WHERE e.id = ANY(CAST(:ids AS text[]))
        ORDER BY e.id FOR UPDATE
    ),
    granted AS (
        SELECT c.id, c.win, c.used, least(w.want, greatest(c.rate_limit - c.used, 0)) AS n
        FROM current AS c JOIN wanted AS w ON w.id = c.id
    )
    UPDATE endpoints AS e SET rate_window = g.win, rate_count = g.used + g.n
    FROM granted AS g WHERE e.id = g.id
    RETURNING e.id, g.n, g.win
    """
)

# What a batch's finished deliveries do to their endpoints, in SQL (``queue.next_streak``
# says the same in Python). Each SET expression sees the row as it was. ``was`` locks the
# endpoints in id order first (concurrent workers then never wait on each other in a
# cycle) and keeps the locked values, for telling what changed.
_STREAK = "(CASE WHEN c.reset THEN c.failed ELSE e.failure_streak + c.failed END)"
_SINCE = (
    "(CASE WHEN c.failed = 0 THEN (CASE WHEN c.reset THEN NULL ELSE e.failing_since END)"
    " WHEN c.reset THEN p.now"
    " ELSE coalesce(e.failing_since, p.now) END)"
)
_DISABLE = (
    f"(CASE WHEN NOT e.enabled THEN NULL WHEN c.gone THEN '{DisabledReason.GONE.value}'"
    f" WHEN {_STREAK} > 0 AND ((p.after_failures > 0 AND {_STREAK} >= p.after_failures)"
    f" OR (p.after_us > 0 AND {_SINCE} <= p.now - p.after_us))"
    f" THEN '{DisabledReason.FAILING.value}' END)"
)


def _iso(micros: str) -> str:
    """SQL for a BIGINT of epoch microseconds as the API writes times (``timeutil.iso_millis``)
    in JSON: ``"2024-11-14T10:05:00.000Z"``, or ``null``."""
    moment = f"(TIMESTAMP 'epoch' + {micros} * INTERVAL '1 microsecond')"
    return f"coalesce('\"' || to_char({moment}, p.iso_format) || 'Z\"', 'null')"


# A notice's data (``operational.Notice.data``), byte for byte as payload.dumps writes it.
_NOTICE_COMMON = (
    """'{"endpointId":' || CAST(to_json(s.id) AS text)"""
    """ || ',"userId":' || CAST(to_json(s.user_id) AS text)"""
    """ || ',"url":' || CAST(to_json(s.url) AS text)"""
)
_NOTICE_STREAK = (
    """ || ',"failureStreak":' || CAST(s.failure_streak AS text)"""
    f""" || ',"failingSince":' || {_iso("s.failing_since")} || '}}'"""
)
_NOTICE_DATA = (
    f"(CASE k.event WHEN '{RECOVERED}' THEN {_NOTICE_COMMON}"
    f""" || ',"recoveredAt":' || {_iso("p.now")} || ',"recoveredBy":"{BY_DELIVERY}"}}'"""
    f" WHEN '{DISABLED}' THEN {_NOTICE_COMMON}"
    """ || ',"reason":' || CAST(to_json(s.disabled_reason) AS text)"""
    f""" || ',"disabledAt":' || {_iso("p.now")} {_NOTICE_STREAK}"""
    f" ELSE {_NOTICE_COMMON} {_NOTICE_STREAK} END)"
)

# Each outcome's attempt row, the move of its delivery (only while this worker's lease
# holds), the counters of those that finished and their endpoints' failure streaks (with
# any automatic disable), in one statement. The counters are upserted in key order, so
# concurrent workers lock them in the same order. Returns the ids moved and the endpoints
# whose change sends a notice.
_RECORD = text(
    f"""
    WITH outcome AS (
        SELECT * FROM unnest(
            CAST(:ids AS text[]), CAST(:statuses AS text[]), CAST(:attempts AS integer[]),
            CAST(:codes AS integer[]), CAST(:errors AS text[]), CAST(:next_at AS bigint[]),
            CAST(:finished_at AS bigint[]), CAST(:delivered_at AS bigint[]),
            CAST(:started_at AS bigint[]), CAST(:durations AS integer[]),
            CAST(:excerpts AS text[]), CAST(:triggers AS text[]), CAST(:headers AS text[]),
            CAST(:gone AS boolean[])
        ) WITH ORDINALITY AS o(id, status, attempt, code, error, next_at, finished_at,
                               delivered_at, started_at, duration_ms, excerpt, trigger,
                               headers, gone, n)
    ),
    attempt_rows AS (
        INSERT INTO delivery_attempts
            (delivery_pk, attempt, created_at, duration_ms, status_code, error, response_excerpt,
             "trigger", request_headers)
        SELECT id, attempt, started_at, duration_ms, code, error, excerpt, o."trigger", headers
        FROM outcome AS o
    ),
    moved AS (
        UPDATE deliveries AS d SET
            status = o.status, attempts = o.attempt, last_status_code = o.code,
            last_error = o.error, lease_owner = NULL, lease_until = NULL,
            next_attempt_at = coalesce(o.next_at, d.next_attempt_at),
            finished_at = o.finished_at, delivered_at = o.delivered_at,
            next_trigger = '{Trigger.SCHEDULED.value}'
        FROM outcome AS o
        WHERE d.id = o.id AND d.status = '{Status.IN_FLIGHT.value}' AND d.lease_owner = :worker
        RETURNING d.id, d.user_id, coalesce(d.endpoint_id, '') AS endpoint_id, d.event,
                  o.status, o.attempt, o.gone, o.n
    ),
    counted AS (
        INSERT INTO delivery_stats (user_id, endpoint_id, event, successful, failed,
                                    attempts_sum)
        SELECT user_id, endpoint_id, event,
               count(*) FILTER (WHERE status = '{Status.SUCCEEDED.value}'),
               count(*) FILTER (WHERE status = '{Status.FAILED.value}'),
               sum(attempt)
        FROM moved WHERE status <> '{Status.PENDING.value}'
        GROUP BY user_id, endpoint_id, event ORDER BY user_id, endpoint_id, event
        ON CONFLICT (user_id, endpoint_id, event) DO UPDATE SET
            successful = delivery_stats.successful + excluded.successful,
            failed = delivery_stats.failed + excluded.failed,
            attempts_sum = delivery_stats.attempts_sum + excluded.attempts_sum
    ),
    rules AS (
        SELECT CAST(:now AS bigint) AS now, CAST(:after_us AS bigint) AS after_us,
               CAST(:after_failures AS integer) AS after_failures,
               CAST(:notice_after AS integer) AS notice_after,
               CAST(:notice_every AS bigint) AS notice_every,
               CAST(:notice_attempts AS integer) AS notice_attempts,
               CAST(:iso_format AS text) AS iso_format
    ),
    ended AS (
        SELECT endpoint_id, status, gone, n,
               max(n) FILTER (WHERE status = '{Status.SUCCEEDED.value}')
                   OVER (PARTITION BY endpoint_id) AS last_ok
        FROM moved WHERE status <> '{Status.PENDING.value}' AND endpoint_id <> ''
    ),
    change AS (
        SELECT endpoint_id AS id, bool_or(last_ok IS NOT NULL) AS reset,
               count(*) FILTER (
                   WHERE status = '{Status.FAILED.value}' AND n > coalesce(last_ok, 0)
               ) AS failed,
               bool_or(gone AND status = '{Status.FAILED.value}') AS gone
        FROM ended GROUP BY endpoint_id
    ),
    was AS (
        SELECT e.id, e.enabled, e.failing_since, e.failing_notified_at
        FROM endpoints AS e WHERE e.id IN (SELECT id FROM change)
        ORDER BY e.id FOR UPDATE
    ),
    streaked AS (
        UPDATE endpoints AS e SET
            failure_streak = {_STREAK},
            failing_since = {_SINCE},
            enabled = e.enabled AND {_DISABLE} IS NULL,
            disabled_at = CASE WHEN {_DISABLE} IS NULL THEN e.disabled_at ELSE p.now END,
            disabled_reason = coalesce({_DISABLE}, e.disabled_reason),
            failing_notified_at = CASE
                WHEN {_DISABLE} IS NULL AND e.enabled AND p.notice_after > 0
                     AND {_STREAK} >= p.notice_after
                     AND (e.failing_notified_at IS NULL
                          OR e.failing_notified_at <= p.now - p.notice_every)
                THEN p.now ELSE e.failing_notified_at END
        FROM was JOIN change AS c ON c.id = was.id CROSS JOIN rules AS p
        WHERE e.id = was.id
        RETURNING e.id, e.user_id, e.url, e.disabled_at, e.disabled_reason, e.failure_streak,
                  e.failing_since,
                  (c.reset AND was.enabled AND was.failing_since IS NOT NULL
                   AND was.failing_notified_at >= was.failing_since) AS recovered,
                  (was.enabled AND NOT e.enabled) AS disabled,
                  (e.failing_notified_at = p.now
                   AND was.failing_notified_at IS DISTINCT FROM e.failing_notified_at) AS failing
    ),
    noticed AS (
        SELECT s.*, k.event, k.ord, {_NOTICE_DATA} AS data
        FROM streaked AS s CROSS JOIN rules AS p
        CROSS JOIN LATERAL (VALUES ('{RECOVERED}', 1, s.recovered), ('{DISABLED}', 2, s.disabled),
                                   ('{FAILING}', 3, s.failing)) AS k(event, ord, wanted)
        WHERE k.wanted
    ),
    numbered AS (
        SELECT n.*, CAST(:notice_prefix AS text)
                    || lpad(CAST(row_number() OVER (ORDER BY n.id, n.ord) AS text), 3, '0')
                    AS message_id
        FROM noticed AS n
    ),
    targets AS (
        SELECT n.message_id, n.event, h.id AS hook_id, h.url,
               row_number() OVER (PARTITION BY n.message_id ORDER BY h.created_at, h.id) AS r
        FROM numbered AS n JOIN endpoints AS h
          ON h.user_id = '{OPERATOR_USER_ID}' AND h.enabled AND h.id <> n.id
         AND CAST(h.enabled_events AS jsonb) ? n.event
        WHERE h.id NOT IN (SELECT id FROM streaked WHERE disabled)
    ),
    notice_messages AS (
        INSERT INTO messages (id, user_id, event, data, created_at)
        SELECT n.message_id, '{OPERATOR_USER_ID}', n.event, convert_to(n.data, 'UTF8'), p.now
        FROM numbered AS n CROSS JOIN rules AS p
        WHERE n.message_id IN (SELECT message_id FROM targets)
    ),
    notice_deliveries AS (
        INSERT INTO deliveries (id, delivery_id, user_id, endpoint_id, event, url, body,
                                message_id, status, attempts, max_attempts, next_attempt_at,
                                created_at)
        SELECT t.message_id || lpad(CAST(t.r AS text), 2, '0'), CAST(gen_random_uuid() AS text),
               '{OPERATOR_USER_ID}', t.hook_id, t.event, t.url, CAST('' AS bytea), t.message_id,
               '{Status.PENDING.value}', 0, p.notice_attempts, p.now, p.now
        FROM targets AS t CROSS JOIN rules AS p
    )
    SELECT array_agg(id) AS moved FROM moved
    """
)


def _micros(moment: datetime | None) -> int | None:
    return None if moment is None else to_micros(moment)


class PostgresQueue:
    """``Queue`` on PostgreSQL (see ``hookline.store.queue``)."""

    def __init__(self, db: Database, rules: EndpointRules | None = None) -> None:
        self.db = db
        self.rules = rules or EndpointRules()

    async def enqueue(self, event: NewEvent, now: datetime, max_attempts: int) -> Enqueued:
        params = {
            "message_id": ids.new_id(),
            "user_id": event.user_id,
            "event": event.event,
            "data": event.data_json,
            "max_attempts": max_attempts,
            "now": to_micros(now),
        }
        async with self.db.write_once() as conn:
            made = [row.delivery_id for row in await conn.execute(_ENQUEUE, params)]
            if made:
                return Enqueued(event.event, made)
            # Nothing wanted it: say why (only this path reads the endpoints).
            found = await endpoints_of_user(conn, event.user_id)
        return Enqueued(event.event, [], unsent_for(found, event.event))

    async def enqueue_many(
        self, events: Sequence[NewEvent], now: datetime, max_attempts: int
    ) -> list[Enqueued]:
        if len(events) <= 1:
            return [await self.enqueue(event, now, max_attempts) for event in events]
        message_ids = [ids.new_id() for _ in events]
        params = {
            "message_ids": message_ids,
            "user_ids": [event.user_id for event in events],
            "events": [event.event for event in events],
            "datas": [event.data_json for event in events],
            "max_attempts": max_attempts,
            "now": to_micros(now),
        }
        made: dict[str, list[str]] = {}
        async with self.db.write_once() as conn:
            for row in await conn.execute(_ENQUEUE_MANY, params):
                made.setdefault(row.message_id, []).append(row.delivery_id)
            # Why the others made nothing (only then are the endpoints read).
            pairs = zip(events, message_ids, strict=True)
            unsent = sorted({event.user_id for event, m in pairs if m not in made})
            found: dict[str, list[EndpointRow]] = {user_id: [] for user_id in unsent}
            if unsent:
                for row in await conn.execute(ENDPOINTS_OF_USERS, {"user_ids": unsent}):
                    found[row.user_id].append(endpoint_from(row._mapping))
        return [
            Enqueued(event.event, made[message_id])
            if message_id in made
            else Enqueued(event.event, [], unsent_for(found[event.user_id], event.event))
            for event, message_id in zip(events, message_ids, strict=True)
        ]

    async def claim(
        self, worker: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[tuple[Claimed, EndpointRow | None]]:
        params = {"b_worker": worker, "b_limit": limit, "b_now": now, "b_lease_until": lease_until}
        async with self.db.write_once() as conn:
            rows = await conn.execute(_CLAIM, params)
            claimed = [
                (
                    claimed_from(row._mapping),
                    None if row.e_id is None else endpoint_from(row._mapping, ENDPOINT_PREFIX),
                )
                for row in rows
            ]
            wants = rate_limited_wants(claimed)
            if not wants:
                return claimed
            window = latest = window_of(now)
            granted, windows = {}, {}
            for row in await conn.execute(
                _TAKE_STARTS,
                {"ids": list(wants), "wants": list(wants.values()), "window": window},
            ):
                granted[row.id] = row.n
                windows[row.id] = row.win
                latest = max(latest, row.win)
            deferred = over_the_limit(claimed, granted)
            if deferred:
                next_second = datetime.fromtimestamp(latest + 1, now.tzinfo) + timedelta()
                await conn.execute(
                    DEFER, {"b_ids": deferred, "b_worker": worker, "b_next": next_second}
                )
        held_back = set(deferred)
        return with_grant_windows(
            [pair for pair in claimed if pair[0].id not in held_back], windows
        )

    async def record(
        self, worker: str, records: Sequence[AttemptRecord], now: datetime
    ) -> list[str]:
        if not records:
            return []
        now_us = to_micros(now)
        params = {
            "worker": worker,
            "ids": [r.log_id for r in records],
            "statuses": [r.next_status.value for r in records],
            "attempts": [r.attempt for r in records],
            "codes": [r.status_code for r in records],
            "errors": [r.error for r in records],
            "next_at": [_micros(r.next_attempt_at) for r in records],
            "finished_at": [None if r.next_status is Status.PENDING else now_us for r in records],
            "delivered_at": [
                now_us if r.next_status is Status.SUCCEEDED else None for r in records
            ],
            "started_at": [to_micros(r.started_at) for r in records],
            "durations": [r.duration_ms for r in records],
            "excerpts": [r.response_excerpt for r in records],
            "triggers": [r.trigger.value for r in records],
            "headers": [r.request_headers for r in records],
            "gone": [r.gone for r in records],
            "now": now_us,
            "after_us": int(self.rules.disable_after_s * 1_000_000),
            "after_failures": self.rules.disable_after_failures,
            "notice_after": self.rules.notice_after,
            "notice_every": int(NOTICE_EVERY.total_seconds() * 1_000_000),
            "notice_attempts": self.rules.notice_attempts,
            "notice_prefix": ids.new_id(),
            "iso_format": ISO_FORMAT,
        }
        async with self.db.write_once() as conn:
            row = (await conn.execute(_RECORD, params)).one()
        return list(row.moved or [])

    async def release(self, worker: str, log_ids: Sequence[str], now: datetime) -> int:
        if not log_ids:
            return 0
        async with self.db.write_once() as conn:
            return (await conn.execute(release_statement(now, worker, log_ids))).rowcount

    async def requeue(self, user_id: str, log_id: str, now: datetime, trigger: Trigger) -> Requeued:
        async with self.db.write() as conn:
            result = await conn.run_sync(requeue_sync, user_id, log_id, now, trigger)
            if result is Requeued.REQUEUED:  # wake the workers, as an insert does (0003)
                await conn.execute(_NOTIFY, {"channel": NOTIFY_CHANNEL})
            return result

    async def reclaim_expired(self, now: datetime) -> int:
        async with self.db.read() as conn:
            if (await conn.execute(any_expired_statement(now))).first() is None:
                return 0
        async with self.db.write() as conn:
            if not await self._maintainer(conn):
                return 0
            return (await conn.execute(reclaim_statement(now))).rowcount

    async def purge(self, cutoff: datetime, batch: int) -> int:
        async with self.db.write() as conn:
            if not await self._maintainer(conn):
                return 0
            return await conn.run_sync(purge_sync, cutoff, batch)

    async def next_due(self) -> datetime | None:
        async with self.db.read() as conn:
            value: datetime | None = (await conn.execute(NEXT_DUE)).scalar_one()
        return value

    async def listen(
        self, on_notify: Callable[[], None], busy: Callable[[], bool] | None = None
    ) -> Stop | None:
        dsn = make_url(self.db.url).set(drivername="postgresql")
        return await listening.listen(
            dsn.render_as_string(hide_password=False),
            NOTIFY_CHANNEL,
            on_notify,
            token_key=LISTEN_TOKEN_KEY,
            busy=busy,
        )

    @staticmethod
    async def _maintainer(conn: object) -> bool:
        """Become the one maintainer until this transaction ends (an advisory lock); False
        when another process is maintaining right now."""
        from sqlalchemy.ext.asyncio import AsyncConnection

        assert isinstance(conn, AsyncConnection)
        result = await conn.execute(_TRY_MAINTENANCE_LOCK, {"key": MAINTENANCE_LOCK_KEY})
        return bool(result.scalar_one())
