"""Background tasks: recovering an endpoint's failed deliveries
(POST /api/webhooks/endpoints/{id}/recover), and following its progress
(/api/webhooks/tasks). Any worker process carries a task out (hookline.delivery.recovery)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from hookline.api.deps import CurrentUser, SettingsDep, StoreDep
from hookline.api.endpoint_rules import could_be_id
from hookline.api.errors import ApiError, ErrorBody
from hookline.api.routes.endpoints import EndpointId
from hookline.api.routes.webhooks import (
    AUTH_ERRORS,
    BAD_BODY,
    INVALID,
    NO_ENDPOINT,
    EndpointFilter,
    _check_endpoint_filter,
)
from hookline.api.task_schemas import RecoverIn, TasksResponse, TaskView
from hookline.store import EndpointDisabled, NotFound, TaskRow
from hookline.timeutil import iso, iso_millis, utcnow

router = APIRouter(prefix="/api/webhooks", tags=["tasks"])


def task_view(task: TaskRow) -> TaskView:
    return TaskView(
        id=task.id,
        kind="recover",
        endpointId=task.endpoint_id,
        status=task.status.value,
        since=iso_millis(task.since),
        until=iso_millis(task.until),
        total=task.total,
        done=task.done,
        createdAt=iso_millis(task.created_at),
        updatedAt=iso_millis(task.updated_at),
        finishedAt=iso(task.finished_at),
        error=task.error,
    )


@router.post(
    "/endpoints/{endpoint_id}/recover",
    operation_id="recoverEndpoint",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskView,
    responses={
        **AUTH_ERRORS,
        **BAD_BODY,
        **INVALID,
        404: {"model": ErrorBody, "description": "No such endpoint"},
        409: {"model": ErrorBody, "description": "The endpoint is disabled: enable it first"},
    },
)
async def recover_endpoint(
    endpoint_id: EndpointId,
    body: RecoverIn,
    user: CurrentUser,
    store: StoreDep,
    settings: SettingsDep,
    response: Response,
) -> TaskView:
    """Send the endpoint's failed deliveries created in [since, until) again, oldest first,
    in the background, at most `HOOKLINE_RECOVERY_RATE` a second. Each is one more attempt
    (trigger `recovery`) with the same body and delivery id. Answers with the task; follow it
    at the `Location` given."""
    now = utcnow()
    until = now if body.until is None or body.until > now else body.until
    since = body.since
    oldest = now - timedelta(days=settings.retention_days)
    if since < oldest:
        days = f"{settings.retention_days:g}"
        raise ApiError(
            422,
            f"Invalid window: since is beyond retention (deliveries are kept {days} days)",
            {"since": f"must be within the last {days} days (beyond retention)"},
        )
    if since >= until:
        raise ApiError(
            422,
            "Invalid window: since must be before until",
            {"since": "must be before until (and until defaults to now)"},
        )
    try:
        task = await store.start_recovery(user.id, endpoint_id, since, until)
    except NotFound as exc:
        raise ApiError(404, f"No endpoint with id {endpoint_id}") from exc
    except EndpointDisabled as exc:
        raise ApiError(409, "The endpoint is disabled; enable it first") from exc
    response.headers["Location"] = f"/api/webhooks/tasks/{task.id}"
    return task_view(task)


@router.get(
    "/tasks",
    operation_id="listTasks",
    response_model=TasksResponse,
    responses={**AUTH_ERRORS, **INVALID, **NO_ENDPOINT},
)
async def list_tasks(
    user: CurrentUser,
    store: StoreDep,
    endpoint_id: EndpointFilter = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> TasksResponse:
    """Your tasks, newest first (of one endpoint with `endpointId`)."""
    await _check_endpoint_filter(store, user.id, endpoint_id)
    tasks = await store.list_tasks(user.id, endpoint_id, limit)
    return TasksResponse(tasks=[task_view(task) for task in tasks])


@router.get(
    "/tasks/{task_id}",
    operation_id="getTask",
    response_model=TaskView,
    responses={**AUTH_ERRORS, **INVALID, 404: {"model": ErrorBody, "description": "No such task"}},
)
async def get_task(
    user: CurrentUser, store: StoreDep, task_id: Annotated[str, Path(max_length=64)]
) -> TaskView:
    """One task and its progress: `done` of `total`, and `status`."""
    if not could_be_id(task_id):
        raise ApiError(404, "No task with that id")
    try:
        return task_view(await store.get_task(user.id, task_id))
    except NotFound as exc:
        raise ApiError(404, f"No task with id {task_id}") from exc
