"""Views of the delivery log: a user's log pages and one delivery with its attempts, the
counters behind stats, and finished deliveries over time. Typed records out; what they say to
people (wording, JSON) is the API's business."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    TextClause,
    and_,
    bindparam,
    func,
    select,
    text,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline.store.queue import status_is
from hookline.store.schema import (
    Status,
    Timestamp,
    Trigger,
    deliveries,
    delivery_attempts,
    endpoints,
    messages,
)
from hookline.timeutil import from_micros, to_micros


class LogStatus(enum.StrEnum):
    """A delivery's state as the log shows it. An attempt under way counts as what the
    delivery was before it: pending or retrying."""

    PENDING = "pending"  #: no attempt failed yet; waiting for (or making) its next attempt
    RETRYING = "retrying"  #: its last attempt failed; waiting for (or making) another
    SUCCEEDED = "succeeded"  #: its last attempt got a 2xx; final
    FAILED = "failed"  #: no attempt left, or the target is blocked; final


@dataclass(frozen=True)
class LogRow:
    """One delivery as the log shows it."""

    id: str
    delivery_id: str
    endpoint_id: str | None
    event: str
    url: str
    status: Status
    last_status_code: int | None
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    delivered_at: datetime | None
    created_at: datetime

    @property
    def log_status(self) -> LogStatus:
        if self.status is Status.SUCCEEDED:
            return LogStatus.SUCCEEDED
        if self.status is Status.FAILED:
            return LogStatus.FAILED
        # A failed attempt always leaves an error; a success (before a resend) leaves none.
        if self.attempts > 0 and self.last_error is not None:
            return LogStatus.RETRYING
        return LogStatus.PENDING

    @property
    def planned_at(self) -> datetime | None:
        """When its next attempt is due (past while one is under way); None once finished."""
        if self.status in (Status.SUCCEEDED, Status.FAILED):
            return None
        return self.next_attempt_at


@dataclass(frozen=True)
class AttemptRow:
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: int
    response_excerpt: str | None
    created_at: datetime
    trigger: Trigger
    request_headers: str | None  #: a JSON object; None before migration 0006 or if none sent


@dataclass(frozen=True)
class LogDetailRow:
    """A delivery, what its body is made of, and every attempt, oldest first."""

    log: LogRow
    user_id: str
    body: bytes  #: the stored body of a delivery made before messages; else empty
    data_json: bytes | None  #: its event's data, when ``body`` is empty
    published_at: datetime
    attempts: list[AttemptRow]


@dataclass(frozen=True)
class Counts:
    successful: int
    failed: int
    attempts_sum: int


_LOG_COLUMNS = (
    deliveries.c.id,
    deliveries.c.delivery_id,
    deliveries.c.endpoint_id,
    deliveries.c.event,
    deliveries.c.url,
    deliveries.c.status,
    deliveries.c.last_status_code,
    deliveries.c.attempts,
    deliveries.c.last_error,
    deliveries.c.next_attempt_at,
    deliveries.c.delivered_at,
    deliveries.c.created_at,
)


# The same columns with their timestamps as stored (epoch microseconds): a page converts
# them itself, cheaper than the column types' per-value processing.
_RAW_LOG_COLUMNS = tuple(
    type_coerce(c, BigInteger).label(c.name) if isinstance(c.type, Timestamp) else c
    for c in _LOG_COLUMNS
)

_STATUSES = {status.value: status for status in Status}


def _raw_log_row(
    id: str,
    delivery_id: str,
    endpoint_id: str | None,
    event: str,
    url: str,
    status: str,
    last_status_code: int | None,
    attempts: int,
    last_error: str | None,
    next_attempt_us: int,
    delivered_us: int | None,
    created_us: int,
) -> LogRow:
    return LogRow(
        id,
        delivery_id,
        endpoint_id,
        event,
        url,
        _STATUSES[status],
        last_status_code,
        attempts,
        last_error,
        from_micros(next_attempt_us),
        None if delivered_us is None else from_micros(delivered_us),
        from_micros(created_us),
    )


def _log_row(row: Any) -> LogRow:
    return LogRow(
        id=row.id,
        delivery_id=row.delivery_id,
        endpoint_id=row.endpoint_id,
        event=row.event,
        url=row.url,
        status=Status(row.status),
        last_status_code=row.last_status_code,
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        delivered_at=row.delivered_at,
        created_at=row.created_at,
    )


def _open_count_sql(on_sqlite: bool, by_event: bool, by_endpoint: bool) -> TextClause:
    # SQLite's statistics average over users: once another user has a big backlog it thinks
    # the partial index is as long as that backlog and walks the log index instead, so the
    # index is named there. PostgreSQL's per-value statistics choose it by themselves.
    hint = " INDEXED BY ix_deliveries_open" if on_sqlite else ""
    event = " AND event = :event" if by_event else ""
    endpoint = " AND endpoint_id = :endpoint_id" if by_endpoint else ""
    return text(
        f"SELECT count(*) FROM deliveries{hint}"
        f" WHERE user_id = :user_id"
        f" AND status IN ('{Status.PENDING.value}', '{Status.IN_FLIGHT.value}'){event}{endpoint}"
    )


def _counters_sql(by_endpoint: bool) -> str:
    endpoint = " AND endpoint_id = :endpoint_id" if by_endpoint else ""
    return (
        "SELECT event, sum(successful), sum(failed), sum(attempts_sum) FROM delivery_stats"
        f" WHERE user_id = :user_id{endpoint} GROUP BY event"
    )


def _counts_and_open_sql(on_sqlite: bool, by_event: bool, by_endpoint: bool) -> TextClause:
    # The counters by event and, in a row of its own (event NULL), the open deliveries: one
    # statement, one round trip, for what a log page and the stats both need.
    open_sql = _open_count_sql(on_sqlite, by_event, by_endpoint).text
    return text(f"{_counters_sql(by_endpoint)} UNION ALL SELECT NULL, ({open_sql}), 0, 0")


_COUNTS_AND_OPEN = {
    (on_sqlite, by_event, by_endpoint): _counts_and_open_sql(on_sqlite, by_event, by_endpoint)
    for on_sqlite in (False, True)
    for by_event in (False, True)
    for by_endpoint in (False, True)
}


async def counts_and_open(
    conn: AsyncConnection, user_id: str, event: str | None = None, endpoint_id: str | None = None
) -> tuple[dict[str, Counts], int]:
    """A user's finished-delivery counters by event (as ``counters``), and how many of its
    deliveries are open, pending or in flight (of ``event`` only, if given), from the partial
    index: one statement."""
    query = _COUNTS_AND_OPEN[
        conn.dialect.name == "sqlite", event is not None, endpoint_id is not None
    ]
    params = {"user_id": user_id, "event": event, "endpoint_id": endpoint_id}
    by_event: dict[str, Counts] = {}
    pending = 0
    wanted = {k: v for k, v in params.items() if v is not None}
    for name, s, f, a in await conn.execute(query, wanted):
        if name is None:
            pending = int(s)
        else:
            by_event[name] = Counts(int(s), int(f), int(a))
    return by_event, pending


# Built once: SQLAlchemy then finds each statement's compiled form by a memoised key rather
# than building and hashing the statement again for every request.
_COUNTERS = {by_endpoint: text(_counters_sql(by_endpoint)) for by_endpoint in (False, True)}


async def counters(
    conn: AsyncConnection, user_id: str, endpoint_id: str | None = None
) -> dict[str, Counts]:
    """A user's finished-delivery counters by event (of one endpoint, or of all)."""
    params = {"user_id": user_id}
    if endpoint_id is not None:
        params["endpoint_id"] = endpoint_id
    rows = await conn.execute(_COUNTERS[endpoint_id is not None], params)
    return {event: Counts(int(s), int(f), int(a)) for event, s, f, a in rows}


def _logs_page_query(by_event: bool, by_endpoint: bool, success: bool | None) -> Select[Any]:
    # A deferred join: the offset is walked in the per-user index alone (an index-only scan),
    # and only the page's rows are read from the table.
    newest_first = (deliveries.c.created_at.desc(), deliveries.c.id.desc())
    ids = select(deliveries.c.id).where(deliveries.c.user_id == bindparam("user_id"))
    if by_event:
        ids = ids.where(deliveries.c.event == bindparam("event"))
    if by_endpoint:
        ids = ids.where(deliveries.c.endpoint_id == bindparam("endpoint_id"))
    if success is True:
        ids = ids.where(deliveries.c.status == Status.SUCCEEDED.value)
    elif success is False:
        ids = ids.where(deliveries.c.status != Status.SUCCEEDED.value)
    page = (
        ids.order_by(*newest_first)
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
        .subquery("page")
    )
    return (
        select(*_RAW_LOG_COLUMNS)
        .join_from(deliveries, page, deliveries.c.id == page.c.id)
        .order_by(*newest_first)
    )


_LOGS_PAGE = {
    (by_event, by_endpoint, success): _logs_page_query(by_event, by_endpoint, success)
    for by_event in (False, True)
    for by_endpoint in (False, True)
    for success in (None, True, False)
}


async def logs_page(
    conn: AsyncConnection,
    user_id: str,
    limit: int,
    offset: int,
    *,
    event: str | None = None,
    success: bool | None = None,
    endpoint_id: str | None = None,
) -> tuple[list[LogRow], int]:
    """A page of a user's delivery log, newest first, and the total the filters match.

    The total comes from the counters plus the (few) open deliveries, never from a scan.
    """
    params: dict[str, Any] = {"user_id": user_id, "limit": limit, "offset": offset}
    if event is not None:
        params["event"] = event
    if endpoint_id is not None:
        params["endpoint_id"] = endpoint_id
    query = _LOGS_PAGE[event is not None, endpoint_id is not None, success]
    rows = [_raw_log_row(*row) for row in await conn.execute(query, params)]

    if success is True:  # only finished deliveries count: no need for the open ones
        by_event, pending = await counters(conn, user_id, endpoint_id), 0
    else:
        by_event, pending = await counts_and_open(conn, user_id, event, endpoint_id)
    counts = [c for name, c in by_event.items() if event is None or name == event]
    successful = sum(c.successful for c in counts)
    failed = sum(c.failed for c in counts)
    if success is True:
        return rows, successful
    if success is False:
        return rows, failed + pending
    return rows, successful + failed + pending


async def log_detail(conn: AsyncConnection, user_id: str, log_id: str) -> LogDetailRow | None:
    """One delivery of a user with what its body is made of and every attempt."""
    row = (
        await conn.execute(
            select(
                *_LOG_COLUMNS,
                deliveries.c.user_id,
                deliveries.c.body,
                messages.c.data.label("m_data"),
                messages.c.created_at.label("m_created_at"),
            )
            .outerjoin_from(deliveries, messages, messages.c.id == deliveries.c.message_id)
            .where(deliveries.c.id == log_id, deliveries.c.user_id == user_id)
        )
    ).first()
    if row is None:
        return None
    attempts = await conn.execute(
        select(
            delivery_attempts.c.attempt,
            delivery_attempts.c.status_code,
            delivery_attempts.c.error,
            delivery_attempts.c.duration_ms,
            delivery_attempts.c.response_excerpt,
            delivery_attempts.c.created_at,
            delivery_attempts.c.trigger,
            delivery_attempts.c.request_headers,
        )
        .where(delivery_attempts.c.delivery_pk == log_id)
        .order_by(delivery_attempts.c.attempt, delivery_attempts.c.id)
    )
    has_message = row.m_data is not None
    return LogDetailRow(
        log=_log_row(row),
        user_id=row.user_id,
        body=bytes(row.body),
        data_json=bytes(row.m_data) if has_message else None,
        published_at=row.m_created_at if has_message else row.created_at,
        attempts=[
            AttemptRow(
                a.attempt,
                a.status_code,
                a.error,
                a.duration_ms,
                a.response_excerpt,
                a.created_at,
                Trigger(a.trigger),
                a.request_headers,
            )
            for a in attempts
        ],
    )


async def timeseries(
    conn: AsyncConnection,
    user_id: str,
    start: datetime,
    bucket: timedelta,
    endpoint_id: str | None = None,
) -> dict[tuple[int, str], int]:
    """Finished deliveries created since ``start``, counted by (bucket index, status)."""
    bucket_us = int(bucket.total_seconds() * 1_000_000)
    created_us = type_coerce(deliveries.c.created_at, BigInteger)
    index = ((created_us - to_micros(start)) // bucket_us).label("bucket")
    conditions = [
        deliveries.c.user_id == user_id,
        deliveries.c.created_at >= start,
        status_is(Status.SUCCEEDED, Status.FAILED),
    ]
    if endpoint_id is not None:
        conditions.append(deliveries.c.endpoint_id == endpoint_id)
    rows = await conn.execute(
        select(index, deliveries.c.status, func.count())
        .where(and_(*conditions))
        .group_by(text("1"), deliveries.c.status)
    )
    return {(int(b), status): int(n) for b, status, n in rows}


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
