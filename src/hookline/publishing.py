"""Publishing from a host application: enqueue events in hookline's database, inside the
host's own transaction if it likes (the transactional outbox)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hookline.config import DEFAULT_RETRY_DELAYS_S, Settings
from hookline.events import DEFAULT_EVENTS, EventError, check_event
from hookline.payload import PayloadError, dumps
from hookline.store import idempotency
from hookline.store.idempotency import KeyConflict
from hookline.store.queue import Enqueued, NewEvent
from hookline.timeutil import utcnow

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_DATA_BYTES",
    "Enqueued",
    "KeyConflict",
    "publish",
    "publish_many",
]

#: Attempts per delivery under the default schedule (``Settings.max_attempts``).
DEFAULT_MAX_ATTEMPTS = 1 + len(DEFAULT_RETRY_DELAYS_S)

#: The most ``data`` may weigh as JSON, in bytes: ``Settings.max_event_data_bytes`` (256 KiB),
#: the limit POST /api/events applies.
DEFAULT_MAX_DATA_BYTES: int = Settings.model_fields["max_event_data_bytes"].default


def _data_json(data: Mapping[str, Any], max_data_bytes: int) -> bytes:
    """``data`` as the JSON bytes it is sent as; PayloadError unless it can be sent as is and
    weighs at most ``max_data_bytes``, as POST /api/events requires."""
    data_json = dumps(data)
    if len(data_json) > max_data_bytes:
        raise PayloadError(f"data is {len(data_json)} bytes; the limit is {max_data_bytes} bytes")
    return data_json


async def publish(
    db: AsyncEngine | AsyncConnection,
    user_id: str,
    event: str,
    data: Mapping[str, Any],
    *,
    catalog: Sequence[str] = DEFAULT_EVENTS,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
    idempotency_key: str | None = None,
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

    With an ``idempotency_key`` (1 to 255 printable ASCII characters; ValueError otherwise)
    already used by ``publish`` for the same user, event and data in the
    last 24 hours, nothing is created and that call's result is returned; KeyConflict when it
    was used for a different one. These keys are apart from those sent over HTTP.
    """
    if idempotency_key is not None:
        idempotency.check_key(idempotency_key)
    check_event(catalog, event, data)
    new = NewEvent(user_id, event, _data_json(data, max_data_bytes))
    [result] = await _enqueue(db, [new], [idempotency_key], max_attempts)
    if isinstance(result, KeyConflict):
        raise result
    return result


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
    one Enqueued per event, in order. Each event makes one delivery per enabled endpoint of
    its user that subscribes to it.
    """
    items = []
    for position, (user_id, event, data) in enumerate(events):
        try:
            check_event(catalog, event, data)
            items.append(NewEvent(user_id, event, _data_json(data, max_data_bytes)))
        except EventError as exc:
            fields = {f"events[{position}].{name}": why for name, why in exc.fields.items()}
            raise EventError(f"events[{position}]: {exc}", fields) from exc
        except PayloadError as exc:
            raise PayloadError(f"events[{position}]: {exc}") from exc
    results = await _enqueue(db, items, [None] * len(items), max_attempts)
    return [result for result in results if isinstance(result, Enqueued)]


async def _enqueue(
    db: AsyncEngine | AsyncConnection,
    items: list[NewEvent],
    keys: list[str | None],
    max_attempts: int,
) -> list[Enqueued | KeyConflict]:
    """Fan the events out in the caller's transaction, or in one of the engine's own."""
    keyed = [
        None
        if key is None
        else idempotency.Keyed(idempotency.PYTHON_PUBLISHER, key, idempotency.request_hash(new))
        for new, key in zip(items, keys, strict=True)
    ]

    def publish(conn: Connection) -> list[Enqueued | KeyConflict]:
        return idempotency.publish_keyed_sync(conn, items, keyed, utcnow(), max_attempts)

    if isinstance(db, AsyncConnection):
        return await db.run_sync(publish)
    async with db.begin() as conn:
        return await conn.run_sync(publish)
