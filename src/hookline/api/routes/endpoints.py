"""/api/webhooks/endpoints: a user's several endpoints, each with its own URL, secret, event
filter, static headers and rate limit. The guide's /api/webhooks/config is the primary one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from hookline.api.deps import (
    CurrentUser,
    MetricsDep,
    PolicyDep,
    SenderDep,
    SettingsDep,
    StoreDep,
)
from hookline.api.endpoint_rules import could_be_id, header_problems
from hookline.api.endpoint_schemas import (
    CreatedEndpointResponse,
    EndpointIn,
    EndpointPatch,
    EndpointResponse,
    EndpointsResponse,
    EndpointView,
)
from hookline.api.errors import ApiError, ErrorBody
from hookline.api.ratelimit import RateLimiterDep
from hookline.api.routes.webhooks import AUTH_ERRORS, BAD_BODY, INVALID, Responses, deliver_test
from hookline.api.schemas import (
    MessageResponse,
    RegenerateResponse,
    TestFailure,
    TestResult,
    TestSuccess,
)
from hookline.config import Settings
from hookline.ssrf import TargetPolicy
from hookline.store import EndpointFields, EndpointRow, NotFound, Store, TooMany
from hookline.targets import TargetError, check_target, check_url
from hookline.timeutil import iso, iso_millis

router = APIRouter(prefix="/api/webhooks/endpoints", tags=["endpoints"])

NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "No such endpoint"}}


def _not_found(endpoint_id: str) -> ApiError:
    return ApiError(404, f"No endpoint with id {endpoint_id}")


async def _endpoint_id(endpoint_id: Annotated[str, Path()], _: CurrentUser) -> str:
    """The path's endpoint id; 404 without a lookup when it cannot be one (ids are [0-9a-z]).
    The token is checked first, so a caller without one learns nothing from the answer."""
    if not could_be_id(endpoint_id):
        raise _not_found(endpoint_id[:64])
    return endpoint_id


EndpointId = Annotated[str, Depends(_endpoint_id)]


def _view(endpoint: EndpointRow) -> EndpointView:
    return EndpointView(
        id=endpoint.id,
        url=endpoint.url,
        description=endpoint.description,
        enabled=endpoint.enabled,
        enabledEvents=endpoint.enabled_events,
        headers=endpoint.headers,
        rateLimit=endpoint.rate_limit,
        primary=endpoint.primary,
        createdAt=iso_millis(endpoint.created_at),
        updatedAt=iso_millis(endpoint.updated_at),
        disabledAt=iso(endpoint.disabled_at),
        disabledReason=endpoint.disabled_reason,
    )


async def _find(store: Store, user_id: str, endpoint_id: str) -> EndpointRow:
    """One of the user's endpoints, or 404 (another user's endpoint is not found either)."""
    try:
        return await store.get_endpoint(user_id, endpoint_id)
    except NotFound as exc:
        raise _not_found(endpoint_id) from exc


async def _check(
    settings: Settings,
    policy: TargetPolicy,
    url: str | None,
    events: Sequence[str] | None,
    headers: dict[str, str] | None,
) -> list[str] | None:
    """Refuse (422, every problem named) what the schema cannot judge alone: the URL's target,
    unknown events, and headers. Returns the events with duplicates folded."""
    fields: dict[str, str] = {}
    if url is not None:
        try:
            check_url(url, settings)
            await check_target(url, policy)
        except TargetError as exc:
            fields["url"] = str(exc)
    folded = None
    if events is not None:
        unknown = [name for name in events if name not in settings.events]
        if unknown:
            fields["enabledEvents"] = f"unknown events: {', '.join(sorted(set(unknown)))}"
        folded = list(dict.fromkeys(events))  # fold duplicates, keep order
    if headers is not None:
        fields.update(header_problems(headers))
    if fields:
        summary = "; ".join(f"{name} {msg}" for name, msg in fields.items())
        raise ApiError(422, f"Invalid endpoint: {summary}", fields)
    return folded


@router.get(
    "", operation_id="listEndpoints", response_model=EndpointsResponse, responses=AUTH_ERRORS
)
async def list_endpoints(user: CurrentUser, store: StoreDep) -> EndpointsResponse:
    """The user's endpoints, the primary first, then oldest first. Never their secrets."""
    return EndpointsResponse(endpoints=[_view(e) for e in await store.list_endpoints(user.id)])


@router.post(
    "",
    operation_id="createEndpoint",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedEndpointResponse,
    responses={**AUTH_ERRORS, **BAD_BODY, **INVALID},
)
async def create_endpoint(
    body: EndpointIn, user: CurrentUser, store: StoreDep, settings: SettingsDep, policy: PolicyDep
) -> CreatedEndpointResponse:
    """Add an endpoint. The answer carries its secret, shown only this once. The user's first
    endpoint (while they have no primary one) becomes the primary."""
    events = await _check(settings, policy, body.url, body.enabledEvents, body.headers)
    fields = EndpointFields(
        url=body.url,
        description=body.description,
        enabled=body.enabled,
        enabled_events=list(settings.events) if events is None else events,
        headers=body.headers,
        rate_limit=body.rateLimit,
    )
    try:
        endpoint, secret = await store.create_endpoint(user.id, fields)
    except TooMany as exc:
        cap = settings.max_endpoints_per_user
        raise ApiError(
            422,
            f"Too many endpoints: a user may have at most {cap}",
            {"endpoints": f"at most {cap} per user; delete one first"},
        ) from exc
    return CreatedEndpointResponse(endpoint=_view(endpoint), secret=secret)


@router.get(
    "/{endpoint_id}",
    operation_id="getEndpoint",
    response_model=EndpointResponse,
    responses={**AUTH_ERRORS, **NOT_FOUND, **INVALID},
)
async def get_endpoint(
    endpoint_id: EndpointId, user: CurrentUser, store: StoreDep
) -> EndpointResponse:
    """One endpoint, without its secret."""
    return EndpointResponse(endpoint=_view(await _find(store, user.id, endpoint_id)))


@router.patch(
    "/{endpoint_id}",
    operation_id="updateEndpoint",
    response_model=EndpointResponse,
    responses={**AUTH_ERRORS, **BAD_BODY, **INVALID, **NOT_FOUND},
)
async def update_endpoint(
    endpoint_id: EndpointId,
    body: EndpointPatch,
    user: CurrentUser,
    store: StoreDep,
    settings: SettingsDep,
    policy: PolicyDep,
) -> EndpointResponse:
    """Change the fields present; the others, and the secret, stay."""
    await _find(store, user.id, endpoint_id)
    events = await _check(settings, policy, body.url, body.enabledEvents, body.headers)
    fields = EndpointFields(
        url=body.url,
        description=body.description,
        enabled=body.enabled,
        enabled_events=events,
        headers=body.headers,
        rate_limit=body.rateLimit,
        clear_rate_limit="rateLimit" in body.model_fields_set and body.rateLimit is None,
    )
    try:
        endpoint = await store.update_endpoint(user.id, endpoint_id, fields)
    except NotFound as exc:  # deleted meanwhile
        raise _not_found(endpoint_id) from exc
    return EndpointResponse(endpoint=_view(endpoint))


@router.delete(
    "/{endpoint_id}",
    operation_id="deleteEndpoint",
    response_model=MessageResponse,
    responses={**AUTH_ERRORS, **NOT_FOUND, **INVALID},
)
async def delete_endpoint(
    endpoint_id: EndpointId, user: CurrentUser, store: StoreDep
) -> MessageResponse:
    """Delete an endpoint. Its log stays; deliveries still waiting for it fail when due."""
    try:
        await store.delete_endpoint(user.id, endpoint_id)
    except NotFound as exc:
        raise _not_found(endpoint_id) from exc
    return MessageResponse(message="Endpoint deleted")


@router.post(
    "/{endpoint_id}/regenerate-secret",
    operation_id="regenerateEndpointSecret",
    response_model=RegenerateResponse,
    responses={**AUTH_ERRORS, **NOT_FOUND, **INVALID},
)
async def regenerate_endpoint_secret(
    endpoint_id: EndpointId, user: CurrentUser, store: StoreDep, settings: SettingsDep
) -> RegenerateResponse:
    """Give the endpoint a new secret. The old one also signs deliveries for a grace period."""
    try:
        secret, old_until = await store.regenerate_secret(
            user.id, settings.secret_grace_s, endpoint_id
        )
    except NotFound as exc:
        raise _not_found(endpoint_id) from exc
    return RegenerateResponse(secret=secret, previousSecretExpiresAt=iso(old_until))


@router.post(
    "/{endpoint_id}/test",
    operation_id="sendEndpointTest",
    response_model=TestResult,
    responses={
        **AUTH_ERRORS,
        **NOT_FOUND,
        **INVALID,
        429: {"model": ErrorBody, "description": "Too many tests; see Retry-After"},
    },
)
async def send_endpoint_test(
    endpoint_id: EndpointId,
    user: CurrentUser,
    store: StoreDep,
    sender: SenderDep,
    settings: SettingsDep,
    limiter: RateLimiterDep,
    metrics: MetricsDep,
) -> TestSuccess | TestFailure:
    """Send one `webhook.test` delivery to this endpoint now, wait for it, and report, as
    /api/webhooks/test does for the primary one (and counted against the same limit)."""
    not_found = _not_found(endpoint_id)
    return await deliver_test(
        user.id, endpoint_id, store, sender, settings, limiter, metrics, not_found
    )
