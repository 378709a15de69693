"""hookline: durable, signed, retried webhook notifications.

What a host application imports: ``publish`` / ``publish_many`` to enqueue events (inside its
own transaction if it likes), and the helpers a receiver uses to verify a delivery. A receiver
app imports ``hookline.receiver`` instead: verification, a FastAPI dependency, a Flask decorator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hookline.config import DEFAULT_RETRY_DELAYS_S, Settings
from hookline.events import DEFAULT_EVENTS, EventError, check_event
from hookline.payload import PayloadError, dumps, verify_guide_signature
from hookline.store.queries import Enqueued, enqueue, enqueue_many
from hookline.timeutil import utcnow

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_EVENTS",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_DATA_BYTES",
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

#: The most ``data`` may weigh as JSON, in bytes: ``Settings.max_event_data_bytes`` (256 KiB),
#: the limit POST /api/events applies.
DEFAULT_MAX_DATA_BYTES: int = Settings.model_fields["max_event_data_bytes"].default


def _check_data(data: Mapping[str, Any], max_data_bytes: int) -> None:
    """Raise PayloadError unless ``data`` can be sent as is and weighs at most
    ``max_data_bytes`` as JSON, as POST /api/events requires."""
    size = len(dumps(data))
    if size > max_data_bytes:
        raise PayloadError(f"data is {size} bytes; the limit is {max_data_bytes} bytes")


async def publish(
    db: AsyncEngine | AsyncConnection,
    user_id: str,
    event: str,
    data: Mapping[str, Any],
    *,
    catalog: Sequence[str] = DEFAULT_EVENTS,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
) -> Enqueued:
    """Enqueue ``event`` for ``user_id`` in hookline's database.

    Given an AsyncConnection, the deliveries are written in the caller's open transaction and
    exist only if it commits (the transactional outbox). Given an AsyncEngine, a transaction
    of its own is used. Running workers pick the deliveries up at once once it commits
    (LISTEN/NOTIFY on PostgreSQL; on SQLite they watch the file). Raises EventError for an
    unknown event or missing data fields, and PayloadError for data that cannot be sent as
    is: nested deeper than 32 levels (``payload.MAX_DEPTH``), integers beyond 2**53-1, NaN,
    or more than ``max_data_bytes`` of JSON. With a custom retry schedule or data limit, pass
    its ``Settings.max_attempts`` and ``Settings.max_event_data_bytes``.
    """
    check_event(catalog, event, data)
    _check_data(data, max_data_bytes)
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
    max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
) -> list[Enqueued]:
    """``publish`` for many ``(user_id, event, data)`` at once: one read of the endpoints and
    one multi-row insert, all in one transaction (the caller's, given an AsyncConnection).

    Every event is checked before anything is written: an EventError or PayloadError names
    the first bad one by its position (``events[3]: ...``) and nothing is enqueued. Returns
    one Enqueued per event, in order.
    """
    items = list(events)
    for position, (_, event, data) in enumerate(items):
        try:
            check_event(catalog, event, data)
            _check_data(data, max_data_bytes)
        except EventError as exc:
            fields = {f"events[{position}].{name}": why for name, why in exc.fields.items()}
            raise EventError(f"events[{position}]: {exc}", fields) from exc
        except PayloadError as exc:
            raise PayloadError(f"events[{position}]: {exc}") from exc
    if isinstance(db, AsyncConnection):
        return await enqueue_many(db, items, now=utcnow(), max_attempts=max_attempts)
    async with db.begin() as conn:
        return await enqueue_many(conn, items, now=utcnow(), max_attempts=max_attempts)
