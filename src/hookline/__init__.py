"""hookline: durable, signed, retried webhook notifications.

What a host application imports: ``publish`` / ``publish_many`` to enqueue events (inside its
own transaction if it likes), and the helpers a receiver uses to verify a delivery.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hookline.config import DEFAULT_RETRY_DELAYS_S
from hookline.events import DEFAULT_EVENTS, EventError, check_event
from hookline.payload import PayloadError, verify_guide_signature
from hookline.store.queries import Enqueued, enqueue, enqueue_many
from hookline.timeutil import utcnow

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_EVENTS",
    "DEFAULT_MAX_ATTEMPTS",
    "Enqueued",
    "EventError",
    "PayloadError",
    "__version__",
    "publish",
    "publish_many",
    "verify_guide_signature",
]


#: Attempts per delivery under the default schedule (``Settings.max_attempts``).
DEFAULT_MAX_ATTEMPTS = 1 + len(DEFAULT_RETRY_DELAYS_S)


async def publish(
    db: AsyncEngine | AsyncConnection,
    user_id: str,
    event: str,
    data: Mapping[str, Any],
    *,
    catalog: Sequence[str] = DEFAULT_EVENTS,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> Enqueued:
    """Enqueue ``event`` for ``user_id`` in hookline's database.

    Given an AsyncConnection, the deliveries are written in the caller's open transaction and
    exist only if it commits (the transactional outbox). Given an AsyncEngine, a transaction
    of its own is used. Running workers pick the deliveries up at once once it commits
    (LISTEN/NOTIFY on PostgreSQL; on SQLite they watch the file). Raises EventError for an
    unknown event or missing data fields. With a custom retry schedule, pass its
    ``Settings.max_attempts``.
    """
    check_event(catalog, event, data)
    if isinstance(db, AsyncConnection):
        return await enqueue(
            db, user_id=user_id, event=event, data=data, now=utcnow(), max_attempts=max_attempts
        )
    async with db.begin() as conn:
        return await enqueue(
            conn, user_id=user_id, event=event, data=data, now=utcnow(), max_attempts=max_attempts
        )


async def publish_many(
    db: AsyncEngine | AsyncConnection,
    events: Iterable[tuple[str, str, Mapping[str, Any]]],
    *,
    catalog: Sequence[str] = DEFAULT_EVENTS,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> list[Enqueued]:
    """``publish`` for many ``(user_id, event, data)`` at once: one read of the endpoints and
    one multi-row insert, all in one transaction (the caller's, given an AsyncConnection).

    Every event is checked before anything is written: an EventError names the first bad
    one by its position (``events[3]: ...``) and nothing is enqueued. Returns one Enqueued
    per event, in order.
    """
    items = list(events)
    for position, (_, event, data) in enumerate(items):
        try:
            check_event(catalog, event, data)
        except EventError as exc:
            fields = {f"events[{position}].{name}": why for name, why in exc.fields.items()}
            raise EventError(f"events[{position}]: {exc}", fields) from exc
    if isinstance(db, AsyncConnection):
        return await enqueue_many(db, items, now=utcnow(), max_attempts=max_attempts)
    async with db.begin() as conn:
        return await enqueue_many(conn, items, now=utcnow(), max_attempts=max_attempts)
