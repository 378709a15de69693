"""Endpoint statements: a user's endpoints, each with its URL, encrypted secret (and previous
secrets in their grace period), event filter, switch, static headers and rate limit. The
primary endpoint (slot ``PRIMARY_SLOT``) is the one the guide's /api/webhooks/config manages."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, delete, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline import ids
from hookline.store.schema import PRIMARY_SLOT, DisabledReason, endpoints


@dataclass(frozen=True)
class EndpointRow:
    """One endpoint as stored (its secrets still encrypted)."""

    id: str
    user_id: str
    primary: bool  #: the guide's webhook: /api/webhooks/config shows and changes this one
    url: str
    description: str
    enabled: bool
    enabled_events: list[str]
    headers: dict[str, str]  #: static headers sent with every delivery
    rate_limit: int | None  #: at most this many deliveries per second; None: no limit
    secret_enc: str
    old_secrets: list[dict[str, Any]]  #: [{"enc": fernet token, "until": epoch seconds}]
    created_at: datetime
    updated_at: datetime
    disabled_at: datetime | None = None  #: when it was switched off (None while enabled)
    disabled_reason: DisabledReason | None = None  #: why it was switched off


@dataclass(frozen=True)
class EndpointFields:
    """What a user sets on an endpoint (the secret aside); None leaves a field as it is."""

    url: str | None = None
    description: str | None = None
    enabled: bool | None = None
    enabled_events: Sequence[str] | None = None
    headers: Mapping[str, str] | None = None
    rate_limit: int | None = None
    clear_rate_limit: bool = False  #: set rate_limit to None (no limit)


COLUMNS = (
    endpoints.c.id,
    endpoints.c.user_id,
    endpoints.c.slot,
    endpoints.c.url,
    endpoints.c.description,
    endpoints.c.enabled,
    endpoints.c.enabled_events,
    endpoints.c.headers,
    endpoints.c.rate_limit,
    endpoints.c.secret_enc,
    endpoints.c.old_secrets,
    endpoints.c.created_at,
    endpoints.c.updated_at,
    endpoints.c.disabled_at,
    endpoints.c.disabled_reason,
)


def endpoint_from(values: Mapping[Any, Any], prefix: str = "") -> EndpointRow:
    """An EndpointRow from a row's mapping whose endpoint columns carry ``prefix``."""
    reason = values[prefix + "disabled_reason"]
    return EndpointRow(
        id=values[prefix + "id"],
        user_id=values[prefix + "user_id"],
        primary=values[prefix + "slot"] == PRIMARY_SLOT,
        url=values[prefix + "url"],
        description=values[prefix + "description"],
        enabled=bool(values[prefix + "enabled"]),
        enabled_events=json.loads(values[prefix + "enabled_events"]),
        headers=json.loads(values[prefix + "headers"]),
        rate_limit=values[prefix + "rate_limit"],
        secret_enc=values[prefix + "secret_enc"],
        old_secrets=json.loads(values[prefix + "old_secrets"]),
        created_at=values[prefix + "created_at"],
        updated_at=values[prefix + "updated_at"],
        disabled_at=values[prefix + "disabled_at"],
        disabled_reason=None if reason is None else DisabledReason(reason),
    )


def _endpoint(row: Any) -> EndpointRow:
    return endpoint_from(row._mapping)


PRIMARY_OF_USER = select(*COLUMNS).where(
    endpoints.c.user_id == bindparam("user_id"), endpoints.c.slot == PRIMARY_SLOT
)


async def get_primary(conn: AsyncConnection, user_id: str) -> EndpointRow | None:
    """A user's primary endpoint."""
    row = (await conn.execute(PRIMARY_OF_USER, {"user_id": user_id})).first()
    return None if row is None else _endpoint(row)


async def get(conn: AsyncConnection, user_id: str, endpoint_id: str) -> EndpointRow | None:
    """One endpoint of a user."""
    row = (
        await conn.execute(
            select(*COLUMNS).where(endpoints.c.id == endpoint_id, endpoints.c.user_id == user_id)
        )
    ).first()
    return None if row is None else _endpoint(row)


async def of_user(conn: AsyncConnection, user_id: str) -> list[EndpointRow]:
    """A user's endpoints, the primary first, then oldest first."""
    rows = await conn.execute(
        select(*COLUMNS)
        .where(endpoints.c.user_id == user_id)
        .order_by((endpoints.c.slot != PRIMARY_SLOT), endpoints.c.created_at, endpoints.c.id)
    )
    return [_endpoint(row) for row in rows]


async def count_of_user(conn: AsyncConnection, user_id: str) -> int:
    """How many endpoints a user has (for the per-user cap)."""
    query = select(func.count()).select_from(endpoints).where(endpoints.c.user_id == user_id)
    return int((await conn.execute(query)).scalar_one())


async def by_id(conn: AsyncConnection, endpoint_ids: Iterable[str]) -> dict[str, EndpointRow]:
    """Endpoints by id."""
    wanted = sorted(set(endpoint_ids))
    if not wanted:
        return {}
    rows = await conn.execute(select(*COLUMNS).where(endpoints.c.id.in_(wanted)))
    return {row.id: _endpoint(row) for row in rows}


async def all_ids(conn: AsyncConnection) -> list[str]:
    """Every endpoint's id (for re-encrypting secrets)."""
    return [row.id for row in await conn.execute(select(endpoints.c.id))]


async def some_secrets(conn: AsyncConnection, limit: int) -> list[str]:
    """Up to ``limit`` endpoints' stored secrets (ciphertexts, current and previous), the most
    recently changed first: enough to tell whether the configured keys open what is stored."""
    rows = await conn.execute(
        select(endpoints.c.secret_enc, endpoints.c.old_secrets)
        .order_by(endpoints.c.updated_at.desc())
        .limit(limit)
    )
    found: list[str] = []
    for row in rows:
        found.append(row.secret_enc)
        found += [old["enc"] for old in json.loads(row.old_secrets)]
    return found


async def insert_one(
    conn: AsyncConnection,
    user_id: str,
    fields: EndpointFields,
    secret_enc: str,
    now: datetime,
    *,
    primary: bool,
) -> str:
    """Create an endpoint (``fields.url`` and ``fields.enabled_events`` set); returns its id."""
    assert fields.url is not None and fields.enabled_events is not None
    endpoint_id = ids.new_id()
    enabled = True if fields.enabled is None else fields.enabled
    await conn.execute(
        insert(endpoints).values(
            id=endpoint_id,
            user_id=user_id,
            slot=PRIMARY_SLOT if primary else endpoint_id,
            url=fields.url,
            description=fields.description or "",
            enabled=enabled,
            disabled_at=None if enabled else now,
            disabled_reason=None if enabled else DisabledReason.USER.value,
            enabled_events=json.dumps(list(fields.enabled_events)),
            headers=json.dumps(dict(fields.headers or {})),
            rate_limit=fields.rate_limit,
            secret_enc=secret_enc,
            old_secrets="[]",
            created_at=now,
            updated_at=now,
        )
    )
    return endpoint_id


async def update_one(
    conn: AsyncConnection, endpoint_id: str, fields: EndpointFields, now: datetime
) -> None:
    """Change the fields that are set; the secret stays."""
    values: dict[str, Any] = {"updated_at": now}
    if fields.url is not None:
        values["url"] = fields.url
    if fields.description is not None:
        values["description"] = fields.description
    if fields.enabled is not None:
        values.update(switched(fields.enabled, now))
    if fields.enabled_events is not None:
        values["enabled_events"] = json.dumps(list(fields.enabled_events))
    if fields.headers is not None:
        values["headers"] = json.dumps(dict(fields.headers))
    if fields.clear_rate_limit:
        values["rate_limit"] = None
    elif fields.rate_limit is not None:
        values["rate_limit"] = fields.rate_limit
    await conn.execute(update(endpoints).where(endpoints.c.id == endpoint_id).values(**values))


def switched(enabled: bool, now: datetime) -> dict[str, Any]:
    """The column values that switch an endpoint on or off by its user's hand.

    Switching off records ``user`` as the reason, unless the endpoint is already off (then
    the first reason and time stay). Switching on clears the reason and the failure streak,
    unless it is already on (then the streak stays: asking for what is already so must not
    wipe the auto-disable rule's count). ``failing_notified_at`` stays either way: the
    endpoint.failing notice is sent at most once a day per endpoint."""
    was_on = endpoints.c.enabled
    if not enabled:
        return {
            "enabled": False,
            "disabled_at": case(
                (was_on, literal(now, endpoints.c.disabled_at.type)), else_=endpoints.c.disabled_at
            ),
            "disabled_reason": case(
                (was_on, DisabledReason.USER.value),
                else_=func.coalesce(endpoints.c.disabled_reason, DisabledReason.USER.value),
            ),
        }
    return {
        "enabled": True,
        "disabled_at": None,
        "disabled_reason": None,
        "failure_streak": case((was_on, endpoints.c.failure_streak), else_=0),
        "failing_since": case((was_on, endpoints.c.failing_since), else_=None),
    }


#: The reasons a successful test lifts: hookline switched the endpoint off, not its user.
AUTOMATIC = (DisabledReason.GONE.value, DisabledReason.FAILING.value)


async def reenable_automatic(
    conn: AsyncConnection, endpoint_id: str, now: datetime
) -> EndpointRow | None:
    """Switch back on an endpoint hookline switched off (``gone`` or ``failing``), clearing
    its reason and streak; returns it as it was, or None when there was nothing to do."""
    row = (
        await conn.execute(
            select(*COLUMNS).where(
                endpoints.c.id == endpoint_id,
                ~endpoints.c.enabled,
                endpoints.c.disabled_reason.in_(AUTOMATIC),
            )
        )
    ).first()
    if row is None:
        return None
    changed = await conn.execute(
        update(endpoints)
        .where(endpoints.c.id == endpoint_id, endpoints.c.disabled_reason.in_(AUTOMATIC))
        .values(updated_at=now, **switched(True, now))
    )
    return _endpoint(row) if changed.rowcount == 1 else None


async def set_secrets(
    conn: AsyncConnection,
    endpoint_id: str,
    secret_enc: str,
    old_secrets: list[dict[str, Any]],
    now: datetime | None = None,
) -> None:
    """Replace an endpoint's current and previous secrets."""
    values: dict[str, Any] = {"secret_enc": secret_enc, "old_secrets": json.dumps(old_secrets)}
    if now is not None:
        values["updated_at"] = now
    await conn.execute(update(endpoints).where(endpoints.c.id == endpoint_id).values(**values))


async def delete_one(conn: AsyncConnection, user_id: str, endpoint_id: str) -> bool:
    """Delete an endpoint of a user; its delivery log stays. False when there was none."""
    result = await conn.execute(
        delete(endpoints).where(endpoints.c.id == endpoint_id, endpoints.c.user_id == user_id)
    )
    return result.rowcount == 1
