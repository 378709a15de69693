"""/api/admin/operational-webhooks: the operator's webhooks that receive signed notices about
endpoints (endpoint.disabled, endpoint.failing, endpoint.recovered); /api/admin/operational-logs:
their delivery log.
Admin tokens only. The one set by HOOKLINE_OPERATIONAL_WEBHOOK_URL is listed too
(``fromSettings``) and changes only with the settings."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response, status
from pydantic import Field, StrictBool, StrictStr, field_validator

from hookline.api.deps import CurrentAdmin, PolicyDep, SettingsDep, StoreDep
from hookline.api.endpoint_rules import could_be_id
from hookline.api.endpoint_schemas import DISABLED_AT_DOC, DISABLED_REASON_DOC
from hookline.api.errors import ApiError, ErrorBody
from hookline.api.routes.webhooks import (
    AUTH_ERRORS,
    BAD_BODY,
    INVALID,
    Responses,
    json_response,
    logs_payload,
)
from hookline.api.routes.webhooks import get_log as user_log
from hookline.api.schemas import (
    LogDetailResponse,
    LogsResponse,
    MessageResponse,
    Succeeded,
    Timestamp,
    _In,
    _Out,
)
from hookline.store import EndpointFields, EndpointRow, NotFound, User
from hookline.store.operational import OPERATIONAL_EVENTS, OPERATOR_USER_ID
from hookline.store.schema import DisabledReason
from hookline.targets import TargetError, check_target, check_url
from hookline.timeutil import iso, iso_millis

router = APIRouter(prefix="/api/admin", tags=["operational webhooks"])
HOOKS = "/operational-webhooks"
LOGS = "/operational-logs"

OperationalEvent = Literal["endpoint.disabled", "endpoint.failing", "endpoint.recovered"]

ADMIN_ERRORS: Responses = {
    **AUTH_ERRORS,
    403: {"model": ErrorBody, "description": "Not an admin token"},
}
NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "No such operational webhook"}}
FROM_SETTINGS: Responses = {
    409: {"model": ErrorBody, "description": "Set by the settings: change it there"},
}

#: The reserved user as the log views see it.
OPERATOR = User(OPERATOR_USER_ID, "operational webhooks", False)


class OperationalWebhookIn(_In):
    """A new operational webhook: ``url`` is required; it is enabled and gets every notice
    unless told otherwise."""

    url: StrictStr = Field(max_length=2048, examples=["https://ops.example.com/hookline"])
    description: StrictStr | None = Field(default=None, max_length=500)
    enabled: StrictBool | None = None
    enabledEvents: list[OperationalEvent] | None = Field(default=None, max_length=10)


class OperationalWebhookPatch(_In):
    """Change the fields present; none may be null."""

    url: StrictStr | None = Field(default=None, max_length=2048)
    description: StrictStr | None = Field(default=None, max_length=500)
    enabled: StrictBool | None = None
    enabledEvents: list[OperationalEvent] | None = Field(default=None, max_length=10)

    @field_validator("url", "description", "enabled", "enabledEvents", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must not be null; leave the field out to keep its value")
        return value


class OperationalWebhookView(_Out):
    """An operational webhook; never its secret."""

    id: str
    url: str
    description: str
    enabled: bool
    enabledEvents: list[str]
    fromSettings: bool = Field(description="Set by HOOKLINE_OPERATIONAL_WEBHOOK_URL.")
    createdAt: Timestamp
    updatedAt: Timestamp
    disabledAt: Timestamp | None = Field(description=DISABLED_AT_DOC)
    disabledReason: DisabledReason | None = Field(description=DISABLED_REASON_DOC)


class OperationalWebhooksResponse(_Out):
    success: Succeeded = True
    webhooks: list[OperationalWebhookView]


class OperationalWebhookResponse(_Out):
    success: Succeeded = True
    webhook: OperationalWebhookView


class CreatedOperationalWebhookResponse(_Out):
    success: Succeeded = True
    webhook: OperationalWebhookView
    secret: str = Field(description="The signing secret, shown only in this response.")


def _view(hook: EndpointRow) -> OperationalWebhookView:
    return OperationalWebhookView(
        id=hook.id,
        url=hook.url,
        description=hook.description,
        enabled=hook.enabled,
        enabledEvents=hook.enabled_events,
        fromSettings=hook.primary,
        createdAt=iso_millis(hook.created_at),
        updatedAt=iso_millis(hook.updated_at),
        disabledAt=iso(hook.disabled_at),
        disabledReason=hook.disabled_reason,
    )


def _not_found(hook_id: str) -> ApiError:
    return ApiError(404, f"No operational webhook with id {hook_id[:64]}")


async def _hook_id(hook_id: Annotated[str, Path()], _: CurrentAdmin) -> str:
    if not could_be_id(hook_id):
        raise _not_found(hook_id)
    return hook_id


HookId = Annotated[str, Depends(_hook_id)]


async def _find(store: StoreDep, hook_id: str) -> EndpointRow:
    try:
        return await store.get_endpoint(OPERATOR_USER_ID, hook_id)
    except NotFound as exc:
        raise _not_found(hook_id) from exc


async def _check_url(url: str | None, settings: SettingsDep, policy: PolicyDep) -> None:
    if url is None:
        return
    try:
        check_url(url, settings)
        await check_target(url, policy)
    except TargetError as exc:
        raise ApiError(422, f"Invalid operational webhook: url {exc}", {"url": str(exc)}) from exc


def _folded(events: list[OperationalEvent] | None) -> list[str] | None:
    return None if events is None else list(dict.fromkeys(events))


@router.get(
    HOOKS,
    operation_id="listOperationalWebhooks",
    response_model=OperationalWebhooksResponse,
    responses=ADMIN_ERRORS,
)
async def list_operational_webhooks(
    _: CurrentAdmin, store: StoreDep
) -> OperationalWebhooksResponse:
    """Every operational webhook, the one set by the settings first."""
    hooks = await store.list_operational_webhooks()
    return OperationalWebhooksResponse(webhooks=[_view(hook) for hook in hooks])


@router.post(
    HOOKS,
    operation_id="createOperationalWebhook",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedOperationalWebhookResponse,
    responses={**ADMIN_ERRORS, **BAD_BODY, **INVALID},
)
async def create_operational_webhook(
    body: OperationalWebhookIn,
    _: CurrentAdmin,
    store: StoreDep,
    settings: SettingsDep,
    policy: PolicyDep,
) -> CreatedOperationalWebhookResponse:
    """Add an operational webhook. The answer carries its secret, shown only this once."""
    await _check_url(body.url, settings, policy)
    fields = EndpointFields(
        url=body.url,
        description=body.description,
        enabled=body.enabled,
        enabled_events=_folded(body.enabledEvents) or list(OPERATIONAL_EVENTS),
    )
    hook, secret = await store.create_operational_webhook(fields)
    return CreatedOperationalWebhookResponse(webhook=_view(hook), secret=secret)


@router.get(
    LOGS,
    operation_id="listOperationalLogs",
    response_model=LogsResponse,
    responses={**ADMIN_ERRORS, **INVALID, **NOT_FOUND},
)
async def list_operational_logs(
    _: CurrentAdmin,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    event: OperationalEvent | None = None,
    success: bool | None = None,
    webhook_id: Annotated[
        str | None, Query(alias="webhookId", max_length=64, description="Only this webhook's")
    ] = None,
) -> Response:
    """The notices' delivery log, newest first, as /api/webhooks/logs shows a user's."""
    if webhook_id is not None:
        if not could_be_id(webhook_id):
            raise _not_found(webhook_id)
        await _find(store, webhook_id)
    return json_response(
        await logs_payload(store, OPERATOR_USER_ID, limit, offset, event, success, webhook_id)
    )


@router.get(
    LOGS + "/{log_id}",
    operation_id="getOperationalLog",
    response_model=LogDetailResponse,
    responses={
        **ADMIN_ERRORS,
        **INVALID,
        404: {"model": ErrorBody, "description": "No such delivery"},
    },
)
async def get_operational_log(
    _: CurrentAdmin, store: StoreDep, log_id: Annotated[str, Path(max_length=64)]
) -> LogDetailResponse:
    """One notice delivery: every attempt, and the exact payload that was sent."""
    return await user_log(OPERATOR, store, log_id)


@router.get(
    HOOKS + "/{hook_id}",
    operation_id="getOperationalWebhook",
    response_model=OperationalWebhookResponse,
    responses={**ADMIN_ERRORS, **NOT_FOUND, **INVALID},
)
async def get_operational_webhook(hook_id: HookId, store: StoreDep) -> OperationalWebhookResponse:
    """One operational webhook, without its secret."""
    return OperationalWebhookResponse(webhook=_view(await _find(store, hook_id)))


@router.patch(
    HOOKS + "/{hook_id}",
    operation_id="updateOperationalWebhook",
    response_model=OperationalWebhookResponse,
    responses={**ADMIN_ERRORS, **BAD_BODY, **INVALID, **NOT_FOUND, **FROM_SETTINGS},
)
async def update_operational_webhook(
    hook_id: HookId,
    body: OperationalWebhookPatch,
    store: StoreDep,
    settings: SettingsDep,
    policy: PolicyDep,
) -> OperationalWebhookResponse:
    """Change the fields present; the others, and the secret, stay. Switching it on again
    clears `disabledAt` and `disabledReason`."""
    hook = await _find(store, hook_id)
    if hook.primary and (body.url is not None or body.enabledEvents is not None):
        raise ApiError(409, "This operational webhook is set by the settings; change it there")
    await _check_url(body.url, settings, policy)
    fields = EndpointFields(
        url=body.url,
        description=body.description,
        enabled=body.enabled,
        enabled_events=_folded(body.enabledEvents),
    )
    try:
        hook = await store.update_endpoint(OPERATOR_USER_ID, hook_id, fields)
    except NotFound as exc:
        raise _not_found(hook_id) from exc
    return OperationalWebhookResponse(webhook=_view(hook))


@router.delete(
    HOOKS + "/{hook_id}",
    operation_id="deleteOperationalWebhook",
    response_model=MessageResponse,
    responses={**ADMIN_ERRORS, **NOT_FOUND, **INVALID, **FROM_SETTINGS},
)
async def delete_operational_webhook(hook_id: HookId, store: StoreDep) -> MessageResponse:
    """Delete an operational webhook. Its log stays until retention."""
    if (await _find(store, hook_id)).primary:
        raise ApiError(409, "This operational webhook is set by the settings; remove it there")
    try:
        await store.delete_endpoint(OPERATOR_USER_ID, hook_id)
    except NotFound as exc:
        raise _not_found(hook_id) from exc
    return MessageResponse(message="Operational webhook deleted")
