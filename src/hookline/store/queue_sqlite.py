"""The queue on SQLite: each move runs whole, as plain statements, in one write transaction on
SQLite's own thread (``Database.run_write``): one hop from the event loop per transaction.
SQLite's writer lock (BEGIN IMMEDIATE) admits one claimer or recorder at a time, so there is
nothing to skip and no maintainer lock to take. Workers in other processes learn of new
deliveries by watching the file (``sqlite_watch``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection, make_url

from hookline.store import sqlite_watch
from hookline.store.db import Database
from hookline.store.endpoints import COLUMNS as ENDPOINT_COLUMNS
from hookline.store.endpoints import EndpointRow, endpoint_from
from hookline.store.operational import apply_streaks_sync, enqueue_notices_sync
from hookline.store.queue import (
    DEFER,
    HELD,
    INSERT_ATTEMPTS,
    MOVE_ON,
    NEXT_DUE,
    AttemptRecord,
    Claimed,
    EndpointRules,
    Enqueued,
    Finished,
    NewEvent,
    Requeued,
    Stop,
    any_expired_statement,
    attempt_rows,
    bump_stats_sync,
    claimed_from,
    fan_out_sync,
    lease_due,
    move_rows,
    over_the_limit,
    purge_sync,
    rate_limited_wants,
    reclaim_statement,
    release_statement,
    requeue_sync,
    streak_changes,
    tally,
    window_of,
    with_grant_windows,
)
from hookline.store.schema import Status, Trigger, endpoints, messages

_LEASE = lease_due(postgres=False)
# Built once, as _LEASE: building them per claim cost more than running them at a trickle.
_ENDPOINTS_BY_ID = select(*ENDPOINT_COLUMNS).where(
    endpoints.c.id.in_(bindparam("ids", expanding=True))
)
_MESSAGES_BY_ID = select(messages.c.id, messages.c.data, messages.c.created_at).where(
    messages.c.id.in_(bindparam("ids", expanding=True))
)


def _claim_sync(
    conn: Connection, worker: str, limit: int, now: datetime, lease_until: datetime
) -> list[tuple[Claimed, EndpointRow | None]]:
    params = {"b_worker": worker, "b_limit": limit, "b_now": now, "b_lease_until": lease_until}
    leased = [dict(row._mapping) for row in conn.execute(_LEASE, params)]
    if not leased:
        return []
    wanted = sorted({row["endpoint_id"] for row in leased if row["endpoint_id"]})
    found = {}
    if wanted:
        rows = conn.execute(_ENDPOINTS_BY_ID, {"ids": wanted})
        found = {row.id: endpoint_from(row._mapping) for row in rows}
    message_ids = sorted({row["message_id"] for row in leased if row["message_id"]})
    bodies = {}
    if message_ids:
        rows = conn.execute(_MESSAGES_BY_ID, {"ids": message_ids})
        bodies = {row.id: (row.data, row.created_at) for row in rows}
    claimed = []
    for row in leased:
        data, published_at = bodies.get(row["message_id"], (None, None))
        claimed.append(
            (
                claimed_from({**row, "m_data": data, "m_created_at": published_at}),
                found.get(row["endpoint_id"] or ""),
            )
        )
    wants = rate_limited_wants(claimed)
    if not wants:
        return claimed
    window = latest = window_of(now)
    granted, windows = {}, {}
    for endpoint_id, want in sorted(wants.items()):
        limit_row = conn.execute(
            select(endpoints.c.rate_limit, endpoints.c.rate_window, endpoints.c.rate_count).where(
                endpoints.c.id == endpoint_id
            )
        ).one()
        # A claim whose time is older than another claimer's second counts in that second.
        current = max(window, limit_row.rate_window)
        latest = max(latest, current)
        used = limit_row.rate_count if limit_row.rate_window == current else 0
        granted[endpoint_id] = min(want, max(limit_row.rate_limit - used, 0))
        windows[endpoint_id] = current
        conn.execute(
            update(endpoints)
            .where(endpoints.c.id == endpoint_id)
            .values(rate_window=current, rate_count=used + granted[endpoint_id])
        )
    deferred = over_the_limit(claimed, granted)
    if deferred:
        next_second = datetime.fromtimestamp(latest + 1, now.tzinfo)
        conn.execute(DEFER, {"b_ids": deferred, "b_worker": worker, "b_next": next_second})
    held_back = set(deferred)
    return with_grant_windows([pair for pair in claimed if pair[0].id not in held_back], windows)


def _record_sync(
    conn: Connection,
    worker: str,
    records: Sequence[AttemptRecord],
    now: datetime,
    rules: EndpointRules,
) -> list[str]:
    """Attempt rows for every outcome (the request was made even if the lease was lost);
    moves, counters, failure streaks and notices only for deliveries this worker still
    holds."""
    conn.execute(INSERT_ATTEMPTS, attempt_rows(records))
    # SQLite's writer lock keeps anyone from reclaiming these until this commits.
    held = conn.execute(HELD, {"b_ids": [r.log_id for r in records], "b_worker": worker})
    owned = {row.id: row for row in held}
    mine = [r for r in records if r.log_id in owned]
    if not mine:
        return []
    conn.execute(MOVE_ON, move_rows(worker, mine, now))
    finished = [
        Finished(
            owned[r.log_id].user_id,
            owned[r.log_id].endpoint_id,
            owned[r.log_id].event,
            r.next_status.value,
            r.attempt,
        )
        for r in mine
        if r.next_status is not Status.PENDING
    ]
    bump_stats_sync(conn, *tally(finished), sign=1)
    ended = [
        (owned[r.log_id].endpoint_id, r.next_status, r.gone)
        for r in mine
        if r.next_status is not Status.PENDING and owned[r.log_id].endpoint_id is not None
    ]
    notices = apply_streaks_sync(conn, streak_changes(ended), now, rules)
    enqueue_notices_sync(conn, notices, now, rules.notice_attempts)
    return [r.log_id for r in mine]


class SqliteQueue:
    """``Queue`` on SQLite (see ``hookline.store.queue``)."""

    def __init__(self, db: Database, rules: EndpointRules | None = None) -> None:
        self.db = db
        self.rules = rules or EndpointRules()

    async def enqueue(self, event: NewEvent, now: datetime, max_attempts: int) -> Enqueued:
        [result] = await self.db.run_write(
            lambda conn: fan_out_sync(conn, [event], now, max_attempts)
        )
        return result

    async def enqueue_many(
        self, events: Sequence[NewEvent], now: datetime, max_attempts: int
    ) -> list[Enqueued]:
        if not events:
            return []
        return await self.db.run_write(lambda conn: fan_out_sync(conn, events, now, max_attempts))

    async def claim(
        self, worker: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[tuple[Claimed, EndpointRow | None]]:
        return await self.db.run_write(
            lambda conn: _claim_sync(conn, worker, limit, now, lease_until)
        )

    async def record(
        self, worker: str, records: Sequence[AttemptRecord], now: datetime
    ) -> list[str]:
        if not records:
            return []
        return await self.db.run_write(
            lambda conn: _record_sync(conn, worker, records, now, self.rules)
        )

    async def release(self, worker: str, log_ids: Sequence[str], now: datetime) -> int:
        if not log_ids:
            return 0
        statement = release_statement(now, worker, log_ids)
        return await self.db.run_write(lambda conn: conn.execute(statement).rowcount)

    async def requeue(self, user_id: str, log_id: str, now: datetime, trigger: Trigger) -> Requeued:
        return await self.db.run_write(
            lambda conn: requeue_sync(conn, user_id, log_id, now, trigger)
        )

    async def reclaim_expired(self, now: datetime) -> int:
        if not await self.db.read_rows(any_expired_statement(now)):
            return 0
        statement = reclaim_statement(now)
        return await self.db.run_write(lambda conn: conn.execute(statement).rowcount)

    async def purge(self, cutoff: datetime, batch: int) -> int:
        return await self.db.run_write(lambda conn: purge_sync(conn, cutoff, batch))

    async def next_due(self) -> datetime | None:
        [(value,)] = await self.db.read_rows(NEXT_DUE)
        return cast(datetime | None, value)

    async def listen(
        self, on_notify: Callable[[], None], busy: Callable[[], bool] | None = None
    ) -> Stop | None:
        path = make_url(self.db.url).database
        if not path or path == ":memory:":
            return None
        return await sqlite_watch.watch(path, on_notify)
