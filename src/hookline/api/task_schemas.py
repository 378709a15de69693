"""Request and response bodies of recoveries and /api/webhooks/tasks (camelCase on the wire)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from hookline.api.schemas import Succeeded, Timestamp, _In, _Out


class RecoverIn(_In):
    """The window of deliveries to recover: those created at or after ``since`` and before
    ``until``. Both ISO 8601 with a UTC offset (``2024-11-14T10:05:00Z``)."""

    since: AwareDatetime
    until: AwareDatetime | None = Field(
        default=None, description="Defaults to now; a time in the future counts as now."
    )


class TaskView(_Out):
    """A background task and its progress."""

    id: str
    kind: Literal["recover"]
    endpointId: str | None = Field(description="null once the endpoint was deleted")
    status: Literal["queued", "running", "succeeded", "failed"]
    since: Timestamp
    until: Timestamp
    total: int = Field(description="Failed deliveries in the window when the task was accepted")
    done: int = Field(description="Of those, how many were requeued (or passed by) so far")
    createdAt: Timestamp
    updatedAt: Timestamp
    finishedAt: Timestamp | None
    error: str | None = Field(description="Why a failed task stopped; null otherwise")


class TasksResponse(_Out):
    success: Succeeded = True
    tasks: list[TaskView]
