"""POST /api/events: the host application publishes an event for a user."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Header, status

from hookline.api.deps import CurrentAdmin, MetricsDep, SettingsDep, StoreDep, WakeDep
from hookline.api.errors import ApiError, ErrorBody
from hookline.api.schemas import PublishIn, PublishResponse
from hookline.events import EventError, check_event
from hookline.payload import PayloadError, dumps
from hookline.store.idempotency import KEY_PATTERN, KeyConflict

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


@router.post(
    "/events",
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
        check_event(settings.events, body.event, body.data)
        data_json = dumps(body.data)
    except EventError as exc:
        raise ApiError(422, str(exc), exc.fields) from exc
    except PayloadError as exc:
        raise ApiError(422, str(exc), {"data": str(exc)}) from exc
    if len(data_json) > settings.max_event_data_bytes:
        raise ApiError(
            413,
            f"data is {len(data_json)} bytes; the limit is {settings.max_event_data_bytes} bytes",
        )
    started = time.perf_counter()
    try:
        result = await store.publish(
            body.userId,
            body.event,
            data_json,
            idempotency_key=idempotency_key,
            publisher=admin.id,
        )
    except KeyConflict as exc:
        raise ApiError(409, str(exc)) from exc
    metrics.publish_done(body.event, bool(result.delivery_ids), time.perf_counter() - started)
    if result.delivery_ids:
        wake.set()
    return PublishResponse(deliveryIds=result.delivery_ids, reason=result.reason)
