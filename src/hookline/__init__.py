"""hookline: durable, signed, retried webhook notifications.

What a host application imports: ``publish`` to enqueue an event (inside its own transaction
if it likes), and the helpers a receiver uses to verify a delivery.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hookline.events import DEFAULT_EVENTS, EventError, check_event
from hookline.payload import PayloadError, verify_guide_signature
from hookline.store.queries import Enqueued, enqueue
from hookline.timeutil import utcnow

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_EVENTS",
    "Enqueued",
    "EventError",
    "PayloadError",
    "__version__",
    "publish",
    "verify_guide_signature",
]


async def publish(
    db: AsyncEngine | AsyncConnection,
    user_id: str,
    event: str,
    data: Mapping[str, Any],
    *,
    catalog: Sequence[str] = DEFAULT_EVENTS,
    max_attempts: int = 4,
) -> Enqueued:
    """Enqueue ``event`` for ``user_id`` in hookline's database.

    Given an AsyncConnection, the deliveries are written in the caller's open transaction and
    exist only if it commits (the transactional outbox). Given an AsyncEngine, a transaction
    of its own is used. Running workers pick the deliveries up (at once on PostgreSQL, via
    LISTEN/NOTIFY; within the poll interval on SQLite when the worker runs in another process).
    Raises EventError for an unknown event or missing data fields.
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
