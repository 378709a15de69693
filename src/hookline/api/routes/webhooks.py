"""The guide's /api/webhooks endpoints: configuration, test, logs, stats, secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Response

from hookline.api.deps import (
    CurrentUser,
    MetricsDep,
    PolicyDep,
    SenderDep,
    SettingsDep,
    StoreDep,
    WakeDep,
)
from hookline.api.endpoint_rules import could_be_id
from hookline.api.errors import ApiError, ErrorBody
from hookline.api.ratelimit import RateLimiter, RateLimiterDep
from hookline.api.schemas import (
    AttemptView,
    Bucket,
    ConfigIn,
    ConfigResponse,
    LogDetail,
    LogDetailResponse,
    LoggedEvent,
    LogItem,
    LogsResponse,
    MessageResponse,
    RegenerateResponse,
    ResendResponse,
    SaveConfigResponse,
    SavedConfig,
    StatsResponse,
    TestFailure,
    TestResult,
    TestSuccess,
    TimeseriesResponse,
    Window,
)
from hookline.config import Settings
from hookline.delivery.sender import Sender
from hookline.delivery.worker import attempt, decide, policy_for
from hookline.events import TEST_EVENT
from hookline.metrics import Metrics
from hookline.payload import delivery_body
from hookline.store import (
    EndpointRow,
    LogDetailRow,
    LogRow,
    NotFound,
    Requeued,
    Status,
    Store,
    TooMany,
)
from hookline.targets import TargetError, check_target, check_url
from hookline.timeutil import iso, iso_millis, utcnow

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])

Responses = dict[int | str, dict[str, Any]]

AUTH_ERRORS: Responses = {
    401: {"model": ErrorBody, "description": "Missing, malformed, unknown or revoked token"},
}
NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "No webhook configuration"}}
NO_ENDPOINT: Responses = {
    404: {"model": ErrorBody, "description": "`endpointId` is not one of your endpoints"}
}
INVALID: Responses = {
    422: {"model": ErrorBody, "description": "Invalid input; `fields` names each problem"}
}
BAD_BODY: Responses = {
    400: {"model": ErrorBody, "description": "The body is not a JSON object"},
    413: {"model": ErrorBody, "description": "The body is larger than the limit"},
    415: {"model": ErrorBody, "description": "The body is not sent as application/json"},
}


def _config_fields(endpoint: EndpointRow) -> dict[str, Any]:
    """A ConfigView's fields."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "enabled": endpoint.enabled,
        "enabledEvents": endpoint.enabled_events,
        "createdAt": iso_millis(endpoint.created_at),
        "updatedAt": iso_millis(endpoint.updated_at),
        "disabledAt": iso(endpoint.disabled_at),
        "disabledReason": endpoint.disabled_reason,
    }


def json_response(payload: dict[str, Any]) -> Response:
    """A read route's answer, built from plain values: the bytes FastAPI would send for the
    route's response model, without building and re-validating the model (most of a read's
    CPU). The response models still describe these answers in the OpenAPI document, and the
    schema tests hold the answers to them."""
    return Response(orjson.dumps(payload), media_type="application/json")


@router.get(
    "/config", operation_id="getConfig", response_model=ConfigResponse, responses=AUTH_ERRORS
)
async def get_config(user: CurrentUser, store: StoreDep, settings: SettingsDep) -> Response:
    """The user's webhook configuration (never its secret) and the events on offer."""
    return json_response(await config_payload(store, settings, user.id))


async def config_payload(store: Store, settings: Settings, user_id: str) -> dict[str, Any]:
    """GET /api/webhooks/config's answer (a ConfigResponse), as the route and the fast path
    (``hookline.api.front_door``) send it."""
    endpoint = await store.get_config(user_id)
    return {
        "configured": endpoint is not None,
        "config": None if endpoint is None else _config_fields(endpoint),
        "availableEvents": list(settings.events),
    }


@router.post(
    "/config",
    operation_id="saveConfig",
    response_model=SaveConfigResponse,
    responses={**AUTH_ERRORS, **BAD_BODY, **INVALID},
)
async def save_config(
    body: ConfigIn, user: CurrentUser, store: StoreDep, settings: SettingsDep, policy: PolicyDep
) -> SaveConfigResponse:
    """Create or update the webhook. The response carries the secret; an update keeps it."""
    fields: dict[str, str] = {}
    if body.url is not None:
        try:
            check_url(body.url, settings)
            await check_target(body.url, policy)
        except TargetError as exc:
            fields["url"] = str(exc)
    events = None
    if body.enabledEvents is not None:
        unknown = [name for name in body.enabledEvents if name not in settings.events]
        if unknown:
            fields["enabledEvents"] = f"unknown events: {', '.join(sorted(set(unknown)))}"
        events = list(dict.fromkeys(body.enabledEvents))  # fold duplicates, keep order
    if body.url is None and await store.get_config(user.id) is None:
        fields["url"] = "is required to create a webhook"
    if fields:
        summary = "; ".join(f"{name} {msg}" for name, msg in fields.items())
        raise ApiError(422, f"Invalid webhook configuration: {summary}", fields)
    try:
        endpoint, secret = await store.save_config(
            user.id, body.url, body.enabled, events, default_events=settings.events
        )
    except TooMany as exc:  # no primary, and the user already has the most endpoints
        raise ApiError(422, f"Too many endpoints: {exc}", {"endpoints": str(exc)}) from exc
    return SaveConfigResponse(
        config=SavedConfig(
            id=endpoint.id,
            url=endpoint.url,
            secret=secret,
            enabled=endpoint.enabled,
            enabledEvents=endpoint.enabled_events,
        )
    )


@router.delete(
    "/config",
    operation_id="deleteConfig",
    response_model=MessageResponse,
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
async def delete_config(user: CurrentUser, store: StoreDep) -> MessageResponse:
    """Delete the webhook. Its delivery logs stay until retention removes them."""
    try:
        await store.delete_config(user.id)
    except NotFound as exc:
        raise ApiError(404, "No webhook configuration to delete") from exc
    return MessageResponse(message="Webhook configuration deleted successfully")


@router.post(
    "/regenerate-secret",
    operation_id="regenerateSecret",
    response_model=RegenerateResponse,
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
async def regenerate_secret(
    user: CurrentUser, store: StoreDep, settings: SettingsDep
) -> RegenerateResponse:
    """Give the webhook a new secret. The old one also signs deliveries for a grace period."""
    try:
        secret, old_until = await store.regenerate_secret(user.id, settings.secret_grace_s)
    except NotFound as exc:
        raise ApiError(404, "No webhook configuration: create one first") from exc
    return RegenerateResponse(secret=secret, previousSecretExpiresAt=iso(old_until))


@router.post(
    "/test",
    operation_id="sendTest",
    response_model=TestResult,
    responses={
        **AUTH_ERRORS,
        **NOT_FOUND,
        429: {"model": ErrorBody, "description": "Too many tests; see Retry-After"},
    },
)
async def send_test(
    user: CurrentUser,
    store: StoreDep,
    sender: SenderDep,
    settings: SettingsDep,
    limiter: RateLimiterDep,
    metrics: MetricsDep,
) -> TestSuccess | TestFailure:
    """Send one `webhook.test` delivery now, wait for it, and report. Never retried."""
    not_found = ApiError(404, "No webhook configuration: create one first")
    return await deliver_test(user.id, None, store, sender, settings, limiter, metrics, not_found)


async def deliver_test(
    user_id: str,
    endpoint_id: str | None,
    store: Store,
    sender: Sender,
    settings: Settings,
    limiter: RateLimiter,
    metrics: Metrics,
    not_found: ApiError,
) -> TestSuccess | TestFailure:
    """Send a `webhook.test` delivery to an endpoint (the primary when ``endpoint_id`` is
    None) now, record it, and say how it went; ``not_found`` when there is no such endpoint."""
    # Only a test that can be sent counts against the limit.
    try:
        if endpoint_id is None:
            if await store.get_config(user_id) is None:
                raise NotFound("no webhook configuration")
        else:
            await store.get_endpoint(user_id, endpoint_id)
    except NotFound as exc:
        raise not_found from exc
    limiter.check(user_id)
    data = {
        "message": "This is a test webhook from hookline",
        "testedAt": iso_millis(utcnow()),
    }
    try:
        job, owner = await store.start_test(user_id, data, endpoint_id)
    except NotFound as exc:
        raise not_found from exc
    outcome, started_at, sent = await attempt(job, sender, settings)
    record = decide(job, outcome, started_at, policy_for(settings), sent)
    metrics.attempted(TEST_EVENT, outcome, record.next_status)
    await store.record(owner, [record])
    if outcome.ok and job.delivery.endpoint_id is not None:
        # The receiver answers again: lift an automatic disable (gone, failing).
        await store.reenable_after_test(job.delivery.endpoint_id)
    if outcome.ok and outcome.status_code is not None:
        return TestSuccess(statusCode=outcome.status_code, deliveryId=job.delivery.delivery_id)
    return TestFailure(
        details=outcome.error,
        statusCode=outcome.status_code,
        deliveryId=job.delivery.delivery_id,
    )


def _check_event_filter(event: str | None, catalog: list[str]) -> None:
    if event is not None and event not in catalog and event != TEST_EVENT:
        raise ApiError(
            422, f"Invalid request: event: unknown event {event}", {"event": "unknown event"}
        )


def _log_fields(row: LogRow) -> dict[str, Any]:
    """The fields a log item and a log detail share, from a deliveries row."""
    return {
        "id": row.id,
        "event": row.event,
        "url": row.url,
        "success": row.status == Status.SUCCEEDED,
        "statusCode": row.last_status_code,
        "error": row.last_error,
        "deliveryId": row.delivery_id,
        "deliveredAt": iso(row.delivered_at),
        "createdAt": iso_millis(row.created_at),
        "endpointId": row.endpoint_id,
        "status": row.log_status.value,
        "nextAttemptAt": iso(row.planned_at),
    }


EndpointFilter = Annotated[
    str | None,
    Query(alias="endpointId", max_length=64, description="Only this endpoint's deliveries"),
]


async def _check_endpoint_filter(store: Store, user_id: str, endpoint_id: str | None) -> None:
    """404 unless the filter names one of the user's endpoints."""
    if endpoint_id is None:
        return
    if could_be_id(endpoint_id):
        try:
            await store.get_endpoint(user_id, endpoint_id)
            return
        except NotFound:
            pass
    raise ApiError(404, f"No endpoint with id {endpoint_id}")


@router.get(
    "/logs",
    operation_id="listLogs",
    response_model=LogsResponse,
    responses={**AUTH_ERRORS, **INVALID, **NO_ENDPOINT},
)
async def list_logs(
    user: CurrentUser,
    store: StoreDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    event: Annotated[LoggedEvent | None, Query(max_length=100)] = None,
    success: bool | None = None,
    endpoint_id: EndpointFilter = None,
) -> Response:
    """The delivery log, newest first. `statusCode` and `error` are the last attempt's."""
    _check_event_filter(event, settings.events)
    await _check_endpoint_filter(store, user.id, endpoint_id)
    return json_response(
        await logs_payload(store, user.id, limit, offset, event, success, endpoint_id)
    )


async def logs_payload(
    store: Store,
    user_id: str,
    limit: int,
    offset: int,
    event: str | None = None,
    success: bool | None = None,
    endpoint_id: str | None = None,
) -> dict[str, Any]:
    """GET /api/webhooks/logs's answer (a LogsResponse) for checked parameters, as the route
    and the fast path (``hookline.api.front_door``) send it."""
    rows, total = await store.logs_page(
        user_id, limit, offset, event, success, endpoint_id=endpoint_id
    )
    return {
        "logs": [{**_log_fields(row), "attempts": row.attempts} for row in rows],
        "pagination": {
            "total": total,
            "limit": limit,
            "offset": offset,
            "hasMore": offset + len(rows) < total,
        },
    }


@router.get(
    "/logs/{log_id}",
    operation_id="getLog",
    response_model=LogDetailResponse,
    responses={
        **AUTH_ERRORS,
        **INVALID,
        404: {"model": ErrorBody, "description": "No such delivery"},
    },
)
async def get_log(
    user: CurrentUser, store: StoreDep, log_id: Annotated[str, Path(max_length=64)]
) -> LogDetailResponse:
    """One delivery: every attempt, and the exact payload that was sent."""
    detail = await _log_detail(store, user.id, log_id)
    row, attempts = detail.log, detail.attempts
    body = delivery_body(
        detail.body,
        event=row.event,
        delivery_id=row.delivery_id,
        published_at=detail.published_at,
        user_id=detail.user_id,
        data_json=detail.data_json,
    )
    return LogDetailResponse(
        log=LogDetail(
            **_log_fields(row),
            attemptCount=row.attempts,
            payload=body.decode("utf-8"),
            attempts=[
                AttemptView(
                    attempt=a.attempt,
                    statusCode=a.status_code,
                    error=a.error,
                    durationMs=a.duration_ms,
                    responseExcerpt=a.response_excerpt,
                    createdAt=iso_millis(a.created_at),
                    trigger=a.trigger.value,
                    requestHeaders=None
                    if a.request_headers is None
                    else json.loads(a.request_headers),
                )
                for a in attempts
            ],
        )
    )


async def _log_detail(store: Store, user_id: str, log_id: str) -> LogDetailRow:
    """One of the user's deliveries, or 404."""
    if not (log_id.isascii() and log_id.isalnum()):  # ids are [0-9a-z]; no lookup needed
        raise ApiError(404, "No delivery log with that id")
    try:
        return await store.log_detail(user_id, log_id)
    except NotFound as exc:
        raise ApiError(404, f"No delivery log with id {log_id}") from exc


RESEND_REFUSED = {
    Requeued.NOT_FINISHED: "Delivery is still pending or in flight; it will be attempted anyway",
    Requeued.ENDPOINT_DELETED: "Delivery's endpoint was deleted; there is nowhere to send it",
    Requeued.ENDPOINT_DISABLED: "Delivery's endpoint is disabled; enable it to resend",
}


@router.post(
    "/logs/{log_id}/resend",
    operation_id="resendDelivery",
    status_code=202,
    response_model=ResendResponse,
    responses={
        **AUTH_ERRORS,
        **INVALID,
        404: {"model": ErrorBody, "description": "No such delivery"},
        409: {
            "model": ErrorBody,
            "description": "Still pending or in flight, or its endpoint is deleted or disabled",
        },
    },
)
async def resend_delivery(
    user: CurrentUser,
    store: StoreDep,
    wake: WakeDep,
    log_id: Annotated[str, Path(max_length=64)],
) -> ResendResponse:
    """Send a finished delivery again now: the same body and delivery id, fresh timestamp
    and signatures, as one more attempt (trigger `manual`). Stats count it once, by how its
    last attempt went."""
    if not (log_id.isascii() and log_id.isalnum()):
        raise ApiError(404, "No delivery log with that id")
    result = await store.resend(user.id, log_id)
    if result is Requeued.NOT_FOUND:
        raise ApiError(404, f"No delivery log with id {log_id}")
    if result is not Requeued.REQUEUED:
        raise ApiError(409, RESEND_REFUSED[result])
    wake.set()  # this process's worker; PostgreSQL's NOTIFY tells the others
    row = (await _log_detail(store, user.id, log_id)).log
    return ResendResponse(log=LogItem(**_log_fields(row), attempts=row.attempts))


def _ratio(numerator: float, denominator: int) -> str:
    return "0.00" if denominator == 0 else f"{numerator / denominator:.2f}"


@router.get(
    "/stats",
    operation_id="getStats",
    response_model=StatsResponse,
    responses={**AUTH_ERRORS, **INVALID, **NO_ENDPOINT},
)
async def stats(
    user: CurrentUser, store: StoreDep, settings: SettingsDep, endpoint_id: EndpointFilter = None
) -> Response:
    """Finished deliveries: totals, success rate, average attempts, and by event."""
    await _check_endpoint_filter(store, user.id, endpoint_id)
    return json_response(await stats_payload(store, settings, user.id, endpoint_id))


async def stats_payload(
    store: Store, settings: Settings, user_id: str, endpoint_id: str | None = None
) -> dict[str, Any]:
    """GET /api/webhooks/stats's answer (a StatsResponse), as the route and the fast path
    (``hookline.api.front_door``) send it."""
    by_event, pending = await store.stats(user_id, endpoint_id)
    successful = sum(c.successful for c in by_event.values())
    failed = sum(c.failed for c in by_event.values())
    attempts = sum(c.attempts_sum for c in by_event.values())
    total = successful + failed
    order = {name: i for i, name in enumerate(settings.events)}
    names = sorted(by_event, key=lambda name: (order.get(name, len(order)), name))
    return {
        "total": total,
        "successful": successful,
        "failed": failed,
        "pending": pending,
        "successRate": _ratio(successful * 100, total),
        "averageAttempts": _ratio(attempts, total),
        "byEvent": {
            name: {
                "total": by_event[name].successful + by_event[name].failed,
                "successful": by_event[name].successful,
                "failed": by_event[name].failed,
            }
            for name in names
            if by_event[name].successful + by_event[name].failed > 0
        },
    }


WINDOWS: dict[Window, tuple[timedelta, timedelta]] = {
    Window.HOURS_24: (timedelta(hours=24), timedelta(hours=1)),
    Window.DAYS_7: (timedelta(days=7), timedelta(hours=6)),
    Window.DAYS_30: (timedelta(days=30), timedelta(days=1)),
}


@router.get(
    "/stats/timeseries",
    operation_id="getTimeseries",
    response_model=TimeseriesResponse,
    responses={**AUTH_ERRORS, **INVALID, **NO_ENDPOINT},
)
async def stats_timeseries(
    user: CurrentUser,
    store: StoreDep,
    window: Window = Window.DAYS_7,
    endpoint_id: EndpointFilter = None,
) -> TimeseriesResponse:
    """Finished deliveries over time, successful against failed, in buckets fit to the window."""
    await _check_endpoint_filter(store, user.id, endpoint_id)
    span, bucket = WINDOWS[window]
    bucket_s = int(bucket.total_seconds())
    now_s = int(utcnow().timestamp())
    end_s = (now_s // bucket_s + 1) * bucket_s
    count = int(span.total_seconds()) // bucket_s
    start = datetime.fromtimestamp(end_s - count * bucket_s, UTC)
    counts = await store.timeseries(user.id, start, bucket, endpoint_id)
    return TimeseriesResponse(
        window=window,
        bucketSeconds=bucket_s,
        buckets=[
            Bucket(
                start=iso_millis(start + i * bucket),
                successful=counts.get((i, Status.SUCCEEDED.value), 0),
                failed=counts.get((i, Status.FAILED.value), 0),
            )
            for i in range(count)
        ],
    )
