"""POST /api/events: the host application publishes an event for a user."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response, status
from pydantic import TypeAdapter, ValidationError

from hookline.api.deps import CurrentAdmin, MetricsDep, SettingsDep, StoreDep, WakeDep
from hookline.api.errors import ApiError, ErrorBody
from hookline.api.routes.webhooks import json_response
from hookline.api.schemas import (
    MAX_BATCH_EVENTS,
    PublishBatchIn,
    PublishBatchItem,
    PublishBatchResponse,
    PublishIn,
    PublishResponse,
)
from hookline.config import Settings
from hookline.events import EventError, check_event
from hookline.metrics import Metrics
from hookline.payload import PayloadError, dumps
from hookline.store import Store
from hookline.store.idempotency import KEY_PATTERN, KeyConflict
from hookline.store.queue import NewEvent

#: The ``Idempotency-Key`` header: a retry with the same key and body answers the first answer.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=KEY_PATTERN,
        description="Up to 255 printable ASCII characters. A retry with the same key and the "
        "same body within 24 hours answers the first answer and creates nothing; the same key "
        "with a different body answers 409.",
    ),
]

router = APIRouter(prefix="/api", tags=["events"])

#: The path of a single publish (also served by ``hookline.api.front_door``).
PATH = "/api/events"


@router.post(
    PATH.removeprefix("/api"),
    operation_id="publishEvent",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PublishResponse,
    responses={
        400: {"model": ErrorBody, "description": "The body is not a JSON object"},
        401: {"model": ErrorBody, "description": "Missing, malformed, unknown or revoked token"},
        403: {"model": ErrorBody, "description": "Not an admin token"},
        413: {"model": ErrorBody, "description": "`data` is larger than the limit"},
        409: {
            "model": ErrorBody,
            "description": "The Idempotency-Key was used in the last 24 hours with another body",
        },
        415: {"model": ErrorBody, "description": "The body is not sent as application/json"},
        422: {
            "model": ErrorBody,
            "description": "Unknown event, missing data fields, data receivers cannot read "
            "back exactly (nested deeper than 32 levels, integers beyond 2^53-1, NaN), or a "
            "malformed Idempotency-Key",
        },
    },
)
async def publish(
    body: PublishIn,
    admin: CurrentAdmin,
    store: StoreDep,
    settings: SettingsDep,
    wake: WakeDep,
    metrics: MetricsDep,
    idempotency_key: IdempotencyKey = None,
) -> PublishResponse:
    """Accept an event. When this answers 202, its deliveries are stored and will be sent."""
    try:
        return await publish_checked(
            body, admin.id, idempotency_key, store, settings, wake, metrics
        )
    except KeyConflict as exc:
        raise ApiError(409, str(exc)) from exc


async def publish_checked(
    body: PublishIn,
    publisher: str,
    idempotency_key: str | None,
    store: Store,
    settings: Settings,
    wake: asyncio.Event,
    metrics: Metrics,
) -> PublishResponse:
    """Check the event (ApiError: 422, 413), store it (KeyConflict), count it and wake the
    worker: what POST /api/events does once its caller is known to be an admin."""
    data_json = _checked(settings, body.event, body.data)
    started = time.perf_counter()
    result = await store.publish(
        body.userId,
        body.event,
        data_json,
        idempotency_key=idempotency_key,
        publisher=publisher,
    )
    metrics.publish_done(body.event, bool(result.delivery_ids), time.perf_counter() - started)
    if result.delivery_ids:
        wake.set()
    return PublishResponse(deliveryIds=result.delivery_ids, reason=result.reason)


def _checked(settings: Settings, event: str, data: dict[str, Any]) -> bytes:
    """The event's data as the JSON it is sent as; ApiError (422, 413) for a bad event."""
    try:
        check_event(settings.events, event, data)
        data_json = dumps(data)
    except EventError as exc:
        raise ApiError(422, str(exc), exc.fields) from exc
    except PayloadError as exc:
        raise ApiError(422, str(exc), {"data": str(exc)}) from exc
    if len(data_json) > settings.max_event_data_bytes:
        raise ApiError(
            413,
            f"data is {len(data_json)} bytes; the limit is {settings.max_event_data_bytes} bytes",
        )
    return data_json


_ITEM = TypeAdapter(PublishBatchItem)


@router.post(
    "/events/batch",
    operation_id="publishEvents",
    response_model=PublishBatchResponse,
    responses={
        400: {"model": ErrorBody, "description": "The body is not a JSON object"},
        401: {"model": ErrorBody, "description": "Missing, malformed, unknown or revoked token"},
        403: {"model": ErrorBody, "description": "Not an admin token"},
        413: {"model": ErrorBody, "description": "The body is larger than the limit"},
        415: {"model": ErrorBody, "description": "The body is not sent as application/json"},
        422: {
            "model": ErrorBody,
            "description": f"`events` is missing, not a list, or longer than {MAX_BATCH_EVENTS}",
        },
    },
)
async def publish_batch(
    body: PublishBatchIn,
    admin: CurrentAdmin,
    store: StoreDep,
    settings: SettingsDep,
    wake: WakeDep,
    metrics: MetricsDep,
) -> Response:
    """Accept up to 1,000 events in one transaction, with a result for each, in order. Each
    event is checked as POST /api/events checks it: a bad one is refused in its result (the
    status and error it alone would have got) and the others are published."""
    results: list[dict[str, Any] | None] = []
    accepted: list[tuple[int, NewEvent, str | None]] = []
    for position, raw in enumerate(body.events):
        try:
            item = _item(raw)
            data_json = _checked(settings, item.event, item.data)
        except ApiError as exc:
            results.append(_refused(exc.status, exc.message, exc.fields))
            continue
        results.append(None)
        new = NewEvent(item.userId, item.event, data_json)
        accepted.append((position, new, item.idempotencyKey))
    started = time.perf_counter()
    published = await store.publish_batch(admin.id, [(new, key) for _, new, key in accepted])
    elapsed_s = time.perf_counter() - started
    counts: Counter[tuple[str, bool]] = Counter()
    for (position, new, _), outcome in zip(accepted, published, strict=True):
        if isinstance(outcome, KeyConflict):
            results[position] = _refused(409, str(outcome))
            continue
        counts[new.event, bool(outcome.delivery_ids)] += 1
        results[position] = {
            "status": 202,
            "deliveryIds": outcome.delivery_ids,
            "reason": outcome.reason,
            "error": None,
            "fields": None,
        }
    if counts:
        metrics.batch_published(counts, elapsed_s)
    if any(enqueued for _, enqueued in counts):
        wake.set()
    # A PublishBatchResponse, built from plain values (see json_response).
    return json_response({"success": True, "results": results})


def _item(raw: object) -> PublishBatchItem:
    """One event of a batch, validated as POST /api/events validates its body."""
    if not isinstance(raw, dict):
        raise ApiError(422, "An event must be a JSON object")
    try:
        return _ITEM.validate_python(raw)
    except ValidationError as exc:
        fields: dict[str, str] = {}
        for err in exc.errors():
            name = ".".join(str(part) for part in err["loc"]) or "body"
            kind = err["type"]
            fields.setdefault(
                name, "is not a known field" if kind == "extra_forbidden" else err["msg"]
            )
        summary = "; ".join(f"{name}: {why}" for name, why in fields.items())
        raise ApiError(422, f"Invalid event: {summary}", fields) from exc


def _refused(status: int, error: str, fields: dict[str, str] | None = None) -> dict[str, Any]:
    """A PublishBatchResult refusing one event."""
    return {
        "status": status,
        "deliveryIds": [],
        "reason": None,
        "error": error,
        "fields": fields or None,
    }
