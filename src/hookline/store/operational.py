"""Operational webhooks: notices to the operator about endpoints (``endpoint.disabled``,
``endpoint.failing``, ``endpoint.recovered``).

They are the endpoints of one reserved user, ``OPERATOR_USER_ID``, so the same queue and
worker deliver them, with retries, signatures and logs. The reserved user has no token, is
not listed with the others, and its events are not in the user event catalog. A notice is
enqueued in the transaction that changes the endpoint it describes (on PostgreSQL, by the
recording statement itself, which builds the same data in SQL; see ``queue_postgres``), and
never to that endpoint itself.
The one configured with settings (``HOOKLINE_OPERATIONAL_WEBHOOK_URL``) is the reserved
user's primary endpoint; those made through the admin API are its others.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from hookline import ids
from hookline.payload import dumps
from hookline.store.endpoints import COLUMNS as ENDPOINT_COLUMNS
from hookline.store.endpoints import EndpointRow, endpoint_from
from hookline.store.queue import (
    EndpointRules,
    StreakChange,
    StreakState,
    delivery_row,
    insert_delivery_sync,
    insert_message_sync,
    next_streak,
)
from hookline.store.schema import PRIMARY_SLOT, endpoints, users
from hookline.store.users import RESERVED_USER_ID
from hookline.timeutil import iso, iso_millis

#: The reserved user whose endpoints are the operational webhooks.
OPERATOR_USER_ID = RESERVED_USER_ID
OPERATOR_NAME = "hookline operational webhooks"

DISABLED = "endpoint.disabled"  #: hookline switched an endpoint off (410 Gone, or failing)
FAILING = "endpoint.failing"  #: a failure streak reached HOOKLINE_FAILING_NOTICE_AFTER
RECOVERED = "endpoint.recovered"  #: a noticed streak ended, or an automatic disable was lifted

#: What an operational webhook can subscribe to.
OPERATIONAL_EVENTS: tuple[str, ...] = (DISABLED, FAILING, RECOVERED)

#: How an endpoint recovered (``recoveredBy``).
BY_DELIVERY = "delivery"  #: a delivery to it succeeded after a noticed streak
BY_REENABLE = "reenable"  #: it was switched back on after hookline switched it off


@dataclass(frozen=True)
class Notice:
    """One notice about one endpoint, as it is after the change."""

    event: str
    endpoint_id: str
    user_id: str
    url: str
    at: datetime
    failure_streak: int = 0
    failing_since: datetime | None = None
    disabled_reason: str | None = None
    recovered_by: str | None = None

    def data(self) -> dict[str, Any]:
        """The notice's ``data`` (documented in docs/api.md, "Operational webhooks")."""
        data: dict[str, Any] = {
            "endpointId": self.endpoint_id,
            "userId": self.user_id,
            "url": self.url,
        }
        if self.event == RECOVERED:
            data["recoveredAt"] = iso_millis(self.at)
            data["recoveredBy"] = self.recovered_by
            return data
        if self.event == DISABLED:
            data["reason"] = self.disabled_reason
            data["disabledAt"] = iso_millis(self.at)
        data["failureStreak"] = self.failure_streak
        data["failingSince"] = iso(self.failing_since)
        return data


_OPERATOR_ENDPOINTS = select(*ENDPOINT_COLUMNS).where(endpoints.c.user_id == OPERATOR_USER_ID)


def enqueue_notices_sync(
    conn: Connection, notices: Sequence[Notice], now: datetime, max_attempts: int
) -> list[str]:
    """Enqueue each notice for every enabled operational webhook subscribed to it, except the
    endpoint it is about, in the caller's transaction. Returns the delivery ids made."""
    if not notices:
        return []
    hooks = [endpoint_from(row._mapping) for row in conn.execute(_OPERATOR_ENDPOINTS)]
    made: list[str] = []
    for notice in notices:
        targets = [
            hook
            for hook in hooks
            if hook.enabled
            and notice.event in hook.enabled_events
            and hook.id != notice.endpoint_id
        ]
        if not targets:
            continue
        message_id = insert_message_sync(
            conn, OPERATOR_USER_ID, notice.event, dumps(notice.data()), now
        )
        for hook in targets:
            row = delivery_row(
                message_id=message_id,
                user_id=OPERATOR_USER_ID,
                endpoint=hook,
                event=notice.event,
                now=now,
                max_attempts=max_attempts,
            )
            insert_delivery_sync(conn, row)
            made.append(row["delivery_id"])
    return made


# --- failure streaks on SQLite (PostgreSQL does this inside its recording statement) --------

_STATES = select(
    endpoints.c.id,
    endpoints.c.user_id,
    endpoints.c.url,
    endpoints.c.enabled,
    endpoints.c.disabled_at,
    endpoints.c.disabled_reason,
    endpoints.c.failure_streak,
    endpoints.c.failing_since,
    endpoints.c.failing_notified_at,
).where(endpoints.c.id.in_(bindparam("b_ids", expanding=True)))

_SET_STREAK = (
    update(endpoints)
    .where(endpoints.c.id == bindparam("b_id"))
    .values(
        enabled=bindparam("b_enabled"),
        disabled_at=bindparam("b_disabled_at"),
        disabled_reason=bindparam("b_disabled_reason"),
        failure_streak=bindparam("b_streak"),
        failing_since=bindparam("b_since"),
        failing_notified_at=bindparam("b_notified"),
    )
)


def apply_streaks_sync(
    conn: Connection, changes: Mapping[str, StreakChange], now: datetime, rules: EndpointRules
) -> list[Notice]:
    """Apply each endpoint's change (``queue.next_streak``) in the caller's transaction;
    returns the notices they send."""
    if not changes:
        return []
    rows = conn.execute(_STATES, {"b_ids": sorted(changes)}).all()
    updates, notices = [], []
    for row in rows:
        state = StreakState(
            enabled=bool(row.enabled),
            disabled_at=row.disabled_at,
            disabled_reason=row.disabled_reason,
            failure_streak=row.failure_streak,
            failing_since=row.failing_since,
            failing_notified_at=row.failing_notified_at,
        )
        after, events = next_streak(state, changes[row.id], now, rules)
        if after != state:
            updates.append(
                {
                    "b_id": row.id,
                    "b_enabled": after.enabled,
                    "b_disabled_at": after.disabled_at,
                    "b_disabled_reason": after.disabled_reason,
                    "b_streak": after.failure_streak,
                    "b_since": after.failing_since,
                    "b_notified": after.failing_notified_at,
                }
            )
        notices += [
            notice_of(event, row.id, row.user_id, row.url, after, now, BY_DELIVERY)
            for event in events
        ]
    if updates:
        conn.execute(_SET_STREAK, updates)
    return notices


def notice_of(
    event: str,
    endpoint_id: str,
    user_id: str,
    url: str,
    after: StreakState,
    now: datetime,
    recovered_by: str,
) -> Notice:
    """The notice ``event`` about an endpoint now in state ``after``."""
    return Notice(
        event=event,
        endpoint_id=endpoint_id,
        user_id=user_id,
        url=url,
        at=now,
        failure_streak=after.failure_streak,
        failing_since=after.failing_since,
        disabled_reason=after.disabled_reason,
        recovered_by=recovered_by if event == RECOVERED else None,
    )


# --- the reserved user and the settings' webhook ---------------------------------------------


def ensure_operator_sync(conn: Connection, now: datetime) -> None:
    """Create the reserved user unless it exists (concurrent callers are fine)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(
        insert(users)
        .values(id=OPERATOR_USER_ID, name=OPERATOR_NAME, is_admin=False, created_at=now)
        .on_conflict_do_nothing(index_elements=[users.c.id])
    )


def operational_endpoints_sync(conn: Connection) -> list[EndpointRow]:
    """Every operational webhook, the settings' one first, then oldest first."""
    rows = conn.execute(
        _OPERATOR_ENDPOINTS.order_by(
            endpoints.c.slot != PRIMARY_SLOT, endpoints.c.created_at, endpoints.c.id
        )
    )
    return [endpoint_from(row._mapping) for row in rows]


def sync_settings_webhook_sync(
    conn: Connection,
    url: str | None,
    secret_enc: str | None,
    opens: Callable[[str], bool],
    now: datetime,
) -> None:
    """Make the reserved user's primary endpoint match the settings: created (all events,
    enabled) when a URL is set, its URL and secret updated when they changed (its switch
    stays as it is), deleted when no URL is set. ``opens(secret_enc_stored)`` tells whether
    the stored secret is the configured one."""
    found = conn.execute(
        select(endpoints.c.id, endpoints.c.url, endpoints.c.secret_enc).where(
            endpoints.c.user_id == OPERATOR_USER_ID, endpoints.c.slot == PRIMARY_SLOT
        )
    ).first()
    if url is None or secret_enc is None:
        if found is not None:
            conn.execute(delete(endpoints).where(endpoints.c.id == found.id))
        return
    if found is None:
        ensure_operator_sync(conn, now)
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(
            insert(endpoints)
            .values(
                id=ids.new_id(),
                user_id=OPERATOR_USER_ID,
                slot=PRIMARY_SLOT,
                url=url,
                description="HOOKLINE_OPERATIONAL_WEBHOOK_URL",
                enabled=True,
                enabled_events=json.dumps(list(OPERATIONAL_EVENTS)),
                headers="{}",
                secret_enc=secret_enc,
                old_secrets="[]",
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=[endpoints.c.user_id, endpoints.c.slot])
        )
        return
    if found.url != url or not opens(found.secret_enc):
        conn.execute(
            update(endpoints)
            .where(endpoints.c.id == found.id)
            .values(url=url, secret_enc=secret_enc, old_secrets="[]", updated_at=now)
        )
