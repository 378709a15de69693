"""Idempotency keys: a publisher that retries a request it already made (with the same key)
gets the first answer again, and nothing new is created. Keys belong to their publisher and
live ``TTL``; one key is one row of ``idempotency_keys``.

A request claims its keys before it publishes, in the transaction that publishes: a
concurrent request with the same key waits on PostgreSQL's row lock (on SQLite, on the writer
lock) until the first commits, then finds the key taken and answers what the first stored.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from hookline.store.queue import Enqueued, NewEvent, Unsent, fan_out_sync
from hookline.store.schema import Timestamp, idempotency_keys

#: How long a key is remembered.
TTL = timedelta(hours=24)

#: The publisher of keys given to ``hookline.publish`` and ``publish_many`` (API keys belong
#: to the admin user whose token published, whose ids are never empty).
PYTHON_PUBLISHER = ""

#: What a key may be: 1 to 255 printable ASCII characters.
KEY_PATTERN = r"^[\x20-\x7e]{1,255}$"
_KEY = re.compile(KEY_PATTERN)


class KeyConflict(ValueError):
    """The idempotency key was used within ``TTL`` for a different request."""


def check_key(key: str) -> None:
    """ValueError unless ``key`` is 1 to 255 printable ASCII characters."""
    if not _KEY.match(key):
        raise ValueError("an idempotency key is 1 to 255 printable ASCII characters")


def request_hash(event: NewEvent) -> str:
    """SHA-256 of what makes two publishes the same request: the user, the event and the data
    (compared as JSON values: whitespace and the order of object keys do not count)."""
    canonical = orjson.dumps(
        [event.user_id, event.event, orjson.loads(event.data_json)], option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True)
class Keyed:
    """An event to publish under an idempotency key of a publisher."""

    publisher: str
    key: str
    request_hash: str

    @property
    def name(self) -> tuple[str, str]:
        """The key's identity: keys belong to their publisher."""
        return self.publisher, self.key


def _claim_statement(dialect_insert: Any) -> Any:
    # A key whose row outlived TTL (not purged yet) is free again: the upsert takes it over.
    stmt = dialect_insert(idempotency_keys)
    return stmt.on_conflict_do_update(
        index_elements=[idempotency_keys.c.publisher, idempotency_keys.c.key],
        set_={
            "request_hash": stmt.excluded.request_hash,
            "result": None,
            "created_at": stmt.excluded.created_at,
        },
        where=idempotency_keys.c.created_at < bindparam("expired_before", type_=Timestamp()),
    ).returning(idempotency_keys.c.publisher, idempotency_keys.c.key)


_CLAIM = {
    "postgresql": _claim_statement(postgresql.insert),
    "sqlite": _claim_statement(sqlite.insert),
}

_STORE_RESULT = (
    update(idempotency_keys)
    .where(
        idempotency_keys.c.publisher == bindparam("b_publisher"),
        idempotency_keys.c.key == bindparam("b_key"),
    )
    .values(result=bindparam("b_result"))
)

_HELD = select(
    idempotency_keys.c.publisher,
    idempotency_keys.c.key,
    idempotency_keys.c.request_hash,
    idempotency_keys.c.result,
).where(
    tuple_(idempotency_keys.c.publisher, idempotency_keys.c.key).in_(
        bindparam("names", expanding=True)
    )
)


def _result_json(result: Enqueued) -> str:
    unsent = None if result.unsent is None else result.unsent.value
    return orjson.dumps({"deliveryIds": result.delivery_ids, "unsent": unsent}).decode()


def _result_from(event: str, stored: str) -> Enqueued:
    values = orjson.loads(stored)
    unsent = None if values["unsent"] is None else Unsent(values["unsent"])
    return Enqueued(event, list(values["deliveryIds"]), unsent)


_CONFLICT = "Idempotency key {key!r} was used in the last 24 hours for a different request"


def publish_keyed_sync(
    conn: Connection,
    events: Sequence[NewEvent],
    keys: Sequence[Keyed | None],
    now: datetime,
    max_attempts: int,
) -> list[Enqueued | KeyConflict]:
    """Publish ``events`` in the caller's transaction, each under its key (None: no key).

    An event whose key is new (or expired) is published and its answer stored under the key;
    one whose key holds the same request answers the stored answer; one whose key holds a
    different request answers KeyConflict. A key repeated within ``events`` counts from its
    first use. Results in the events' order."""
    results: list[Enqueued | KeyConflict | None] = [None] * len(events)
    first: dict[tuple[str, str], int] = {}  # key -> position of its first use here
    for position, keyed in enumerate(keys):
        if keyed is not None:
            first.setdefault(keyed.name, position)
    # key -> (hash of its request, its answer): what a repeated use is held to.
    held: dict[tuple[str, str], tuple[str, Enqueued]] = {}
    claimed: set[tuple[str, str]] = set()
    if first:
        rows = [
            {
                "publisher": publisher,
                "key": key,
                "request_hash": keys[position].request_hash,  # type: ignore[union-attr]
                "result": None,
                "created_at": now,
            }
            # In key order: concurrent transactions lock shared keys in the same order.
            for (publisher, key), position in sorted(first.items())
        ]
        statement = _CLAIM[conn.dialect.name].values(rows)
        found = conn.execute(statement, {"expired_before": now - TTL})
        claimed = {(row.publisher, row.key) for row in found}
        taken = [name for name in first if name not in claimed]
        if taken:
            for row in conn.execute(_HELD, {"names": taken}):
                name = (row.publisher, row.key)
                event = events[first[name]].event
                held[name] = (row.request_hash, _result_from(event, row.result))
    fresh = [
        position
        for position, keyed in enumerate(keys)
        if keyed is None or (keyed.name in claimed and first[keyed.name] == position)
    ]
    published = fan_out_sync(conn, [events[position] for position in fresh], now, max_attempts)
    stored = []
    for position, result in zip(fresh, published, strict=True):
        results[position] = result
        keyed = keys[position]
        if keyed is not None:
            held[keyed.name] = (keyed.request_hash, result)
            stored.append(
                {
                    "b_publisher": keyed.publisher,
                    "b_key": keyed.key,
                    "b_result": _result_json(result),
                }
            )
    if stored:
        conn.execute(_STORE_RESULT, stored)
    for position, keyed in enumerate(keys):
        if keyed is None or results[position] is not None:
            continue
        same_request, answer = held[keyed.name]
        if keyed.request_hash == same_request:
            results[position] = answer
        else:
            results[position] = KeyConflict(_CONFLICT.format(key=keyed.key))
    answered = [result for result in results if result is not None]
    assert len(answered) == len(events)
    return answered


def purge_sync(conn: Connection, now: datetime) -> int:
    """Delete keys older than ``TTL``; returns how many."""
    stale = idempotency_keys.c.created_at < now - TTL
    return int(conn.execute(delete(idempotency_keys).where(stale)).rowcount)
