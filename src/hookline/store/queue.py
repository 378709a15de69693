"""The delivery queue: one interface (``Queue``), what goes in and out of it, and the
statements both databases share. ``queue_postgres`` and ``queue_sqlite`` implement it; the
store picks one when it is built, and nothing above the store knows which it has.
``tests/integration/test_queue_conformance.py`` holds both to the same behaviour.

A delivery is one row that moves pending -> in_flight (leased to one worker) -> succeeded or
failed, or back to pending for a retry. Every move out of in_flight is guarded by the lease
(``status = 'in_flight' AND lease_owner = :me``) in the statement itself.
"""

from __future__ import annotations

import enum
import functools
import operator
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Update

from hookline import ids
from hookline.events import unsent_reason
from hookline.store.endpoints import COLUMNS as ENDPOINT_COLUMNS
from hookline.store.endpoints import EndpointRow, endpoint_from
from hookline.store.schema import (
    DisabledReason,
    Status,
    Timestamp,
    Trigger,
    deliveries,
    delivery_attempts,
    delivery_stats,
    endpoints,
    messages,
)
from hookline.timeutil import to_micros

NOTIFY_CHANNEL = "hookline_deliveries"

Stop = Callable[[], Awaitable[None]]


def status_is(*wanted: Status) -> ColumnElement[bool]:
    """``deliveries.status`` in ``wanted``, written as SQL literals (not bound parameters) so
    that SQLite and PostgreSQL can match the partial indexes on status."""
    literals = [literal_column(f"'{status.value}'", String) for status in wanted]
    if len(literals) == 1:
        return deliveries.c.status == literals[0]
    return deliveries.c.status.in_(literals)


# --- what goes in and out -----------------------------------------------------------------


class Unsent(enum.StrEnum):
    """Why publishing an event made no delivery."""

    NO_ENDPOINT = "no_endpoint"  #: the user has no endpoint at all
    DISABLED = "disabled"  #: every endpoint of the user that wants the event is switched off
    NOT_SUBSCRIBED = "not_subscribed"  #: no endpoint of the user subscribes to the event


@dataclass(frozen=True)
class NewEvent:
    """An event to publish: its data already serialised (``payload.dumps``) by the caller."""

    user_id: str
    event: str
    data_json: bytes


@dataclass(frozen=True)
class Enqueued:
    """What publishing an event did: the deliveries it made (one per endpoint that wants it,
    in the endpoints' order), or why there are none."""

    event: str
    delivery_ids: list[str]
    unsent: Unsent | None = None

    @property
    def reason(self) -> str | None:
        """Why nothing is delivered, in the guide's words (None when something is)."""
        return None if self.unsent is None else unsent_reason(self.unsent.value, self.event)


@dataclass(frozen=True)
class Claimed:
    """A delivery leased to a worker for one attempt, with what its body is built from."""

    id: str
    delivery_id: str
    event_id: str  #: the same for every delivery of one event (its message; else delivery_id)
    user_id: str
    endpoint_id: str | None
    event: str
    body: bytes  #: the stored body of a delivery made before messages; else empty
    data_json: bytes | None  #: the event's data (its message), when ``body`` is empty
    published_at: datetime  #: the body's "timestamp"
    attempts: int  #: attempts made before this one
    max_attempts: int
    trigger: Trigger = Trigger.SCHEDULED  #: what set off this attempt
    #: A rate-limited delivery's start was granted for one calendar second: the end of that
    #: second (Unix seconds). A worker that gets to it later gives it back instead of sending.
    start_before: float | None = None


@dataclass(frozen=True)
class AttemptRecord:
    """The outcome of one attempt and what it decides for the delivery."""

    log_id: str
    attempt: int  #: 1-based number of this attempt
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    response_excerpt: str | None
    next_status: Status  #: SUCCEEDED, FAILED or PENDING (retry)
    next_attempt_at: datetime | None = None
    delivery_id: str = ""  #: the receiver-facing id, for log messages
    trigger: Trigger = Trigger.SCHEDULED  #: what set off this attempt
    request_headers: str | None = None  #: the headers sent, as a JSON object (None: none sent)
    gone: bool = False  #: the receiver answered 410 Gone: switch its endpoint off now


@dataclass(frozen=True)
class EndpointRules:
    """What finished deliveries do to their endpoint (``Settings``: ``auto_disable_*``,
    ``failing_notice_after``); 0 turns a rule off. ``notice_attempts`` is how many attempts
    an operational notice gets."""

    disable_after_s: float = 0.0  #: every delivery failed for this long: disable (failing)
    disable_after_failures: int = 0  #: this many failed deliveries in a row: disable (failing)
    notice_after: int = 0  #: a streak this long sends endpoint.failing (once a day at most)
    notice_attempts: int = 4


#: How often at most an endpoint.failing notice goes out about one endpoint.
NOTICE_EVERY = timedelta(days=1)


@dataclass(frozen=True)
class StreakChange:
    """What one batch of finished deliveries says about one endpoint."""

    reset: bool  #: one succeeded: the streak starts again from the failures after it
    failed: int  #: failed deliveries after the last success (all of them, without one)
    gone: bool  #: one was answered 410 Gone


def streak_changes(finished: Sequence[tuple[str, Status, bool]]) -> dict[str, StreakChange]:
    """(endpoint id, final status, gone) of finished deliveries, in the order they finished,
    folded into one change per endpoint."""
    changes: dict[str, StreakChange] = {}
    for endpoint_id, status, gone in finished:
        was = changes.get(endpoint_id, StreakChange(False, 0, False))
        if status is Status.SUCCEEDED:
            changes[endpoint_id] = StreakChange(True, 0, was.gone)
        else:
            changes[endpoint_id] = StreakChange(was.reset, was.failed + 1, was.gone or gone)
    return changes


@dataclass(frozen=True)
class StreakState:
    """An endpoint's switch and failure streak, as stored."""

    enabled: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    failure_streak: int
    failing_since: datetime | None
    failing_notified_at: datetime | None


def next_streak(
    state: StreakState, change: StreakChange, now: datetime, rules: EndpointRules
) -> tuple[StreakState, list[str]]:
    """The endpoint's state after ``change``, and the notices it sends (``NoticeKind``
    values). ``queue_postgres._RECORD`` says the same in SQL; the conformance suite holds
    both to it."""
    streak = change.failed if change.reset else state.failure_streak + change.failed
    if change.failed == 0:
        since = None if change.reset else state.failing_since
    else:
        since = now if change.reset or state.failing_since is None else state.failing_since
    disable: DisabledReason | None = None
    if state.enabled and change.gone:
        disable = DisabledReason.GONE
    elif state.enabled and streak > 0 and since is not None:
        too_many = 0 < rules.disable_after_failures <= streak
        too_long = rules.disable_after_s > 0 and since <= now - timedelta(
            seconds=rules.disable_after_s
        )
        if too_many or too_long:
            disable = DisabledReason.FAILING
    notices = []
    notified = state.failing_notified_at
    if (
        state.enabled
        and change.reset
        and state.failing_since is not None
        and notified is not None
        and notified >= state.failing_since
    ):
        notices.append("endpoint.recovered")
    if disable is not None:
        notices.append("endpoint.disabled")
    elif (
        state.enabled
        and 0 < rules.notice_after <= streak
        and (notified is None or notified <= now - NOTICE_EVERY)
    ):
        notified = now
        notices.append("endpoint.failing")
    return (
        StreakState(
            enabled=state.enabled and disable is None,
            disabled_at=now if disable is not None else state.disabled_at,
            disabled_reason=disable.value if disable is not None else state.disabled_reason,
            failure_streak=streak,
            failing_since=since,
            failing_notified_at=notified,
        ),
        notices,
    )


class Requeued(enum.StrEnum):
    """What asking to send a finished delivery again did."""

    REQUEUED = "requeued"  #: pending now, due now, with one more attempt allowed
    NOT_FOUND = "not_found"  #: no such delivery of this user
    NOT_FINISHED = "not_finished"  #: still pending or in flight: it will be attempted anyway
    ENDPOINT_DELETED = "endpoint_deleted"  #: its endpoint is gone: nowhere to send it
    ENDPOINT_DISABLED = "endpoint_disabled"  #: its endpoint is switched off


@runtime_checkable
class Queue(Protocol):
    """Every move of a delivery row, on one database."""

    async def enqueue(self, event: NewEvent, now: datetime, max_attempts: int) -> Enqueued:
        """Store the event's data once and one pending delivery per enabled endpoint of its
        user that subscribes to it, atomically; durable when this returns."""
        ...

    async def enqueue_many(
        self, events: Sequence[NewEvent], now: datetime, max_attempts: int
    ) -> list[Enqueued]:
        """``enqueue`` for many events at once, atomically (in one statement or one
        transaction); a result per event, in order."""
        ...

    async def claim(
        self, worker: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[tuple[Claimed, EndpointRow | None]]:
        """Lease up to ``limit`` due deliveries to ``worker`` until ``lease_until``, longest
        due first, each with its endpoint (None once deleted). A delivery whose endpoint is
        over its rate limit this second goes back to pending, due the next second."""
        ...

    async def record(
        self, worker: str, records: Sequence[AttemptRecord], now: datetime
    ) -> list[str]:
        """Record attempts and move each delivery on, only while ``worker`` holds its lease,
        with the counters of those that finished, atomically. Returns the ids it moved."""
        ...

    async def release(self, worker: str, log_ids: Sequence[str], now: datetime) -> int:
        """Give back deliveries ``worker`` holds, unattempted and due now."""
        ...

    async def requeue(self, user_id: str, log_id: str, now: datetime, trigger: Trigger) -> Requeued:
        """Make a finished delivery of ``user_id`` pending again, due now, allowed one more
        attempt, its next attempt recorded as ``trigger``; take it out of the counters in the
        same transaction (recording its outcome puts it back)."""
        ...

    async def reclaim_expired(self, now: datetime) -> int:
        """Put deliveries whose lease ran out back in the queue, due now (one maintainer at a
        time: 0 when another process is at it)."""
        ...

    async def purge(self, cutoff: datetime, batch: int) -> int:
        """Delete up to ``batch`` finished deliveries created before ``cutoff``, their
        attempts and orphaned messages, and take them out of the counters (one maintainer at
        a time: 0 when another process is at it). Returns how many deliveries went."""
        ...

    async def next_due(self) -> datetime | None:
        """When the earliest pending delivery comes due (None when there is none)."""
        ...

    async def listen(
        self, on_notify: Callable[[], None], busy: Callable[[], bool] | None = None
    ) -> Stop | None:
        """Call ``on_notify`` soon after any process enqueues; returns how to stop. Where
        listeners take turns (PostgreSQL), one that is ``busy()`` lets another take over."""
        ...


# --- publishing: shared by both databases and by hookline.publish() ------------------------


def _subscribed(endpoint: EndpointRow, event: str) -> bool:
    return endpoint.enabled and event in endpoint.enabled_events


def unsent_for(found: Sequence[EndpointRow], event: str) -> Unsent:
    """Why an event makes no delivery for a user with these endpoints."""
    if not found:
        return Unsent.NO_ENDPOINT
    wanting = [e for e in found if event in e.enabled_events]
    if wanting and not any(e.enabled for e in wanting):
        return Unsent.DISABLED
    # (An enabled endpoint that wants it here was configured after the event was accepted.)
    return Unsent.NOT_SUBSCRIBED


ENDPOINTS_OF_USERS = (
    select(*ENDPOINT_COLUMNS)
    .where(endpoints.c.user_id.in_(bindparam("user_ids", expanding=True)))
    .order_by(endpoints.c.user_id, endpoints.c.slot != "default", endpoints.c.created_at)
)
#: The columns a new message and a new delivery are inserted with (``delivery_values`` puts a
#: delivery's row in this order); the others take their defaults.
NEW_MESSAGE_COLUMNS = ("id", "user_id", "event", "data", "created_at")
NEW_DELIVERY_COLUMNS = (
    "id",
    "delivery_id",
    "user_id",
    "endpoint_id",
    "event",
    "url",
    "body",
    "message_id",
    "status",
    "attempts",
    "max_attempts",
    "next_attempt_at",
    "lease_owner",
    "lease_until",
    "created_at",
)


@functools.cache
def _insert_sql(paramstyle: str, table: str, columns: tuple[str, ...]) -> str:
    if paramstyle == "qmark":  # SQLite
        marks = ", ".join("?" for _ in columns)
    elif paramstyle == "numeric_dollar":  # asyncpg
        marks = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    else:
        raise ValueError(f"no insert written for the {paramstyle!r} parameter style")
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"


def insert_rows_sync(
    conn: Connection, table: str, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert ``rows`` (values in ``columns``' order, in their stored form: timestamps as epoch
    microseconds) in one executemany, straight to the driver. Publishing inserts a message and
    a delivery per event; through SQLAlchemy's parameter processing each row cost more than
    SQLite's own insert of it."""
    conn.exec_driver_sql(_insert_sql(conn.dialect.paramstyle, table, columns), list(rows))


def delivery_row(
    *,
    message_id: str | None,
    user_id: str,
    endpoint: EndpointRow,
    event: str,
    now: datetime,
    max_attempts: int,
    body: bytes = b"",
    status: Status = Status.PENDING,
    lease_owner: str | None = None,
    lease_until: datetime | None = None,
    now_us: int | None = None,
) -> dict[str, Any]:
    """A new delivery's row: its ``NEW_DELIVERY_COLUMNS``, timestamps in epoch microseconds
    (``now_us``, when given, is ``now`` in them already)."""
    at = to_micros(now) if now_us is None else now_us
    return {
        "id": ids.new_id(),
        "delivery_id": ids.new_delivery_id(),
        "user_id": user_id,
        "endpoint_id": endpoint.id,
        "event": event,
        "url": endpoint.url,
        "body": body,
        "message_id": message_id,
        "status": status.value,
        "attempts": 0,
        "max_attempts": max_attempts,
        "next_attempt_at": at,
        "lease_owner": lease_owner,
        "lease_until": None if lease_until is None else to_micros(lease_until),
        "created_at": at,
    }


def fan_out_sync(
    conn: Connection, events: Sequence[NewEvent], now: datetime, max_attempts: int
) -> list[Enqueued]:
    """Enqueue ``events`` in the caller's transaction: one read of their users' endpoints,
    one insert of their messages and one of their deliveries. Results in the events' order."""
    user_ids = sorted({e.user_id for e in events})
    found: dict[str, list[EndpointRow]] = {user_id: [] for user_id in user_ids}
    if user_ids:
        for row in conn.execute(ENDPOINTS_OF_USERS, {"user_ids": user_ids}):
            found[row.user_id].append(endpoint_from(row._mapping))
    now_us = to_micros(now)
    results: list[Enqueued] = []
    message_rows: list[tuple[Any, ...]] = []
    delivery_rows: list[tuple[Any, ...]] = []
    for new in events:
        targets = [e for e in found[new.user_id] if _subscribed(e, new.event)]
        if not targets:
            results.append(Enqueued(new.event, [], unsent_for(found[new.user_id], new.event)))
            continue
        message_id = ids.new_id()
        message_rows.append((message_id, new.user_id, new.event, new.data_json, now_us))
        made = []
        for endpoint in targets:
            new_row = delivery_row(
                message_id=message_id,
                user_id=new.user_id,
                endpoint=endpoint,
                event=new.event,
                now=now,
                now_us=now_us,
                max_attempts=max_attempts,
            )
            delivery_rows.append(delivery_values(new_row))
            made.append(new_row["delivery_id"])
        results.append(Enqueued(new.event, made))
    if message_rows:
        insert_rows_sync(conn, "messages", NEW_MESSAGE_COLUMNS, message_rows)
        insert_rows_sync(conn, "deliveries", NEW_DELIVERY_COLUMNS, delivery_rows)
    return results


def insert_message_sync(
    conn: Connection, user_id: str, event: str, data_json: bytes, now: datetime
) -> str:
    """Store one event's data; returns the message id (the test webhook's own)."""
    message_id = ids.new_id()
    row = (message_id, user_id, event, data_json, to_micros(now))
    insert_rows_sync(conn, "messages", NEW_MESSAGE_COLUMNS, [row])
    return message_id


def insert_delivery_sync(conn: Connection, row: Mapping[str, Any]) -> None:
    """Store one delivery made by ``delivery_row``."""
    insert_rows_sync(conn, "deliveries", NEW_DELIVERY_COLUMNS, [delivery_values(row)])


#: A ``delivery_row``'s values in ``NEW_DELIVERY_COLUMNS``' order, for ``insert_rows_sync``.
delivery_values: Callable[[Mapping[str, Any]], tuple[Any, ...]] = operator.itemgetter(
    *NEW_DELIVERY_COLUMNS
)


# --- claiming ------------------------------------------------------------------------------

CLAIMED_COLUMNS = (
    deliveries.c.id,
    deliveries.c.delivery_id,
    deliveries.c.user_id,
    deliveries.c.endpoint_id,
    deliveries.c.event,
    deliveries.c.body,
    deliveries.c.message_id,
    deliveries.c.attempts,
    deliveries.c.max_attempts,
    deliveries.c.created_at,
    deliveries.c.next_trigger,
)

ENDPOINT_PREFIX = "e_"


def claimed_from(values: Mapping[Any, Any]) -> Claimed:
    """A Claimed from a row of a claim (deliveries' columns, the message's ``m_data`` and
    ``m_created_at``)."""
    has_message = values["message_id"] is not None and values["m_data"] is not None
    return Claimed(
        id=values["id"],
        delivery_id=values["delivery_id"],
        event_id=values["message_id"] or values["delivery_id"],
        user_id=values["user_id"],
        endpoint_id=values["endpoint_id"],
        event=values["event"],
        body=bytes(values["body"]),
        data_json=bytes(values["m_data"]) if has_message else None,
        published_at=values["m_created_at"] if has_message else values["created_at"],
        attempts=values["attempts"],
        max_attempts=values["max_attempts"],
        trigger=Trigger(values["next_trigger"]),
    )


def lease_due(postgres: bool) -> Update:
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
        .returning(*CLAIMED_COLUMNS)
    )


MESSAGE_COLUMNS = (messages.c.data.label("m_data"), messages.c.created_at.label("m_created_at"))
PREFIXED_ENDPOINT_COLUMNS = tuple(c.label(ENDPOINT_PREFIX + c.name) for c in ENDPOINT_COLUMNS)


def over_the_limit(
    claimed: Sequence[tuple[Claimed, EndpointRow | None]], granted: Mapping[str, int]
) -> list[str]:
    """The claimed deliveries (ids) beyond what each rate-limited endpoint was granted this
    second, in claim order."""
    left = dict(granted)
    deferred = []
    for delivery, endpoint in claimed:
        if endpoint is None or endpoint.rate_limit is None or not endpoint.enabled:
            continue
        if left.get(endpoint.id, 0) > 0:
            left[endpoint.id] -= 1
        else:
            deferred.append(delivery.id)
    return deferred


def with_grant_windows(
    claimed: Sequence[tuple[Claimed, EndpointRow | None]], windows: Mapping[str, int]
) -> list[tuple[Claimed, EndpointRow | None]]:
    """The claimed deliveries, each of a rate-limited endpoint marked with the end of the
    second (``windows``: each endpoint's granted window) its start was granted in."""
    return [
        (replace(delivery, start_before=windows[endpoint.id] + 1), endpoint)
        if endpoint is not None and endpoint.id in windows
        else (delivery, endpoint)
        for delivery, endpoint in claimed
    ]


def rate_limited_wants(claimed: Sequence[tuple[Claimed, EndpointRow | None]]) -> Counter[str]:
    """How many deliveries each rate-limited (and enabled) endpoint's claim wants to start."""
    wants: Counter[str] = Counter()
    for _, endpoint in claimed:
        if endpoint is not None and endpoint.rate_limit is not None and endpoint.enabled:
            wants[endpoint.id] += 1
    return wants


# Puts deliveries this worker holds back to pending without an attempt, due at ``b_next``.
DEFER = (
    update(deliveries)
    .where(
        deliveries.c.id.in_(bindparam("b_ids", expanding=True)),
        status_is(Status.IN_FLIGHT),
        deliveries.c.lease_owner == bindparam("b_worker"),
    )
    .values(
        status=Status.PENDING.value,
        lease_owner=None,
        lease_until=None,
        next_attempt_at=bindparam("b_next", type_=Timestamp()),
    )
)


def window_of(now: datetime) -> int:
    """The rate limit's window: the calendar second ``now`` is in (Unix seconds)."""
    return int(now.timestamp())


# --- recording, releasing, reclaiming --------------------------------------------------------

HELD = select(
    deliveries.c.id, deliveries.c.user_id, deliveries.c.endpoint_id, deliveries.c.event
).where(
    deliveries.c.id.in_(bindparam("b_ids", expanding=True)),
    status_is(Status.IN_FLIGHT),
    deliveries.c.lease_owner == bindparam("b_worker"),
)

# One statement for every outcome, run as an executemany over a batch of attempts.
MOVE_ON = (
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
        next_trigger=Trigger.SCHEDULED.value,
    )
)

INSERT_ATTEMPTS = insert(delivery_attempts)


def attempt_rows(records: Sequence[AttemptRecord]) -> list[dict[str, Any]]:
    return [
        {
            "delivery_pk": r.log_id,
            "attempt": r.attempt,
            "created_at": r.started_at,
            "duration_ms": r.duration_ms,
            "status_code": r.status_code,
            "error": r.error,
            "response_excerpt": r.response_excerpt,
            "trigger": r.trigger.value,
            "request_headers": r.request_headers,
        }
        for r in records
    ]


def move_rows(worker: str, records: Sequence[AttemptRecord], now: datetime) -> list[dict[str, Any]]:
    return [
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
        for r in records
    ]


def release_statement(now: datetime, worker: str, log_ids: Sequence[str]) -> Update:
    return (
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


def reclaim_statement(now: datetime) -> Update:
    return (
        update(deliveries)
        .where(status_is(Status.IN_FLIGHT), deliveries.c.lease_until < now)
        .values(
            status=Status.PENDING.value, lease_owner=None, lease_until=None, next_attempt_at=now
        )
    )


NEXT_DUE = select(func.min(deliveries.c.next_attempt_at)).where(status_is(Status.PENDING))


def any_expired_statement(now: datetime) -> Select[tuple[str]]:
    """Whether some lease ran out (ix_deliveries_lease): the read before reclaiming, so an
    idle database is not written to every few seconds."""
    expired = and_(status_is(Status.IN_FLIGHT), deliveries.c.lease_until < now)
    return select(deliveries.c.id).where(expired).limit(1)


# --- resending -------------------------------------------------------------------------------

_TO_REQUEUE = (
    select(
        deliveries.c.id,
        deliveries.c.user_id,
        deliveries.c.endpoint_id,
        deliveries.c.event,
        deliveries.c.status,
        deliveries.c.attempts,
        endpoints.c.enabled,
    )
    .outerjoin_from(deliveries, endpoints, endpoints.c.id == deliveries.c.endpoint_id)
    .where(
        deliveries.c.id == bindparam("b_id"),
        deliveries.c.user_id == bindparam("b_user"),
    )
    .with_for_update(of=deliveries)  # PostgreSQL: one requeue or purge of a row at a time
)

_REQUEUE = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("b_id"), deliveries.c.status == bindparam("b_was"))
    .values(
        status=Status.PENDING.value,
        max_attempts=deliveries.c.attempts + 1,
        next_attempt_at=bindparam("b_now", type_=Timestamp()),
        next_trigger=bindparam("b_trigger"),
        finished_at=None,
        delivered_at=None,
    )
)


def requeue_sync(
    conn: Connection, user_id: str, log_id: str, now: datetime, trigger: Trigger
) -> Requeued:
    """``Queue.requeue`` in the caller's transaction. The delivery keeps its last attempt's
    status code and error until its next attempt is recorded."""
    row = conn.execute(_TO_REQUEUE, {"b_id": log_id, "b_user": user_id}).first()
    if row is None:
        return Requeued.NOT_FOUND
    if row.status not in (Status.SUCCEEDED, Status.FAILED):
        return Requeued.NOT_FINISHED
    if row.endpoint_id is None:
        return Requeued.ENDPOINT_DELETED
    if not row.enabled:
        return Requeued.ENDPOINT_DISABLED
    params = {"b_id": log_id, "b_was": row.status, "b_now": now, "b_trigger": trigger.value}
    if conn.execute(_REQUEUE, params).rowcount != 1:
        return Requeued.NOT_FINISHED  # moved meanwhile (SQLite's writer lock rules it out)
    bump_stats_sync(conn, *tally([row]), sign=-1)
    return Requeued.REQUEUED


# --- the counters ----------------------------------------------------------------------------

#: A finished delivery's counter key: (user, endpoint or "" once deleted, event).
StatsKey = tuple[str, str, str]


def bump_stats_sync(
    conn: Connection,
    finished: Mapping[tuple[StatsKey, Status], int],
    attempt_sums: Mapping[StatsKey, int],
    sign: int,
) -> None:
    """Add (sign=1) or remove (sign=-1) finished deliveries from the counters, in key order
    so that concurrent writers lock the rows in the same order."""
    keys = set(attempt_sums) | {key for key, _ in finished}
    if not keys:
        return
    rows = [
        {
            "user_id": user,
            "endpoint_id": endpoint,
            "event": event,
            "successful": sign * finished.get(((user, endpoint, event), Status.SUCCEEDED), 0),
            "failed": sign * finished.get(((user, endpoint, event), Status.FAILED), 0),
            "attempts_sum": sign * attempt_sums.get((user, endpoint, event), 0),
        }
        for user, endpoint, event in sorted(keys)
    ]
    conn.execute(_BUMP_STATS[conn.dialect.name], rows)


def _bump_stats_statement(dialect_insert: Any) -> Any:
    stmt = dialect_insert(delivery_stats)
    return stmt.on_conflict_do_update(
        index_elements=[
            delivery_stats.c.user_id,
            delivery_stats.c.endpoint_id,
            delivery_stats.c.event,
        ],
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


@dataclass(frozen=True)
class Finished:
    """A delivery that reached a final status, as the counters see it."""

    user_id: str
    endpoint_id: str | None
    event: str
    status: str
    attempts: int


def tally(
    rows: Sequence[Any],
) -> tuple[Counter[tuple[StatsKey, Status]], Counter[StatsKey]]:
    """Counter changes for finished rows (``Finished``, or rows with the same columns)."""
    finished: Counter[tuple[StatsKey, Status]] = Counter()
    attempt_sums: Counter[StatsKey] = Counter()
    for row in rows:
        key = (row.user_id, row.endpoint_id or "", row.event)
        finished[(key, Status(row.status))] += 1
        attempt_sums[key] += row.attempts
    return finished, attempt_sums


# --- purging ---------------------------------------------------------------------------------


def purge_sync(conn: Connection, cutoff: datetime, batch: int) -> int:
    """Delete up to ``batch`` finished deliveries created before ``cutoff`` (their attempts go
    with them, ON DELETE CASCADE), then their messages no other delivery needs, and take them
    out of the counters. The counters lose exactly the rows this DELETE removed
    (``RETURNING``): a row a concurrent purge deleted first is neither returned nor counted."""
    doomed = (
        select(deliveries.c.id)
        .where(deliveries.c.created_at < cutoff, status_is(Status.SUCCEEDED, Status.FAILED))
        .limit(batch)
        .scalar_subquery()
    )
    rows = conn.execute(
        delete(deliveries)
        .where(deliveries.c.id.in_(doomed))
        .returning(
            deliveries.c.user_id,
            deliveries.c.endpoint_id,
            deliveries.c.event,
            deliveries.c.status,
            deliveries.c.attempts,
            deliveries.c.message_id,
        )
    ).all()
    if not rows:
        return 0
    message_ids = sorted({row.message_id for row in rows if row.message_id is not None})
    if message_ids:
        still_used = exists().where(deliveries.c.message_id == messages.c.id)
        conn.execute(delete(messages).where(messages.c.id.in_(message_ids), ~still_used))
    bump_stats_sync(conn, *tally(rows), sign=-1)
    return len(rows)
