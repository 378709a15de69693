"""Request and response bodies, exactly as the guide shows them (camelCase on the wire)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConfigIn(_In):
    """Create or update the webhook; an omitted field keeps its current value."""

    url: StrictStr | None = Field(
        default=None, max_length=2048, examples=["https://your-app.com/webhooks"]
    )
    enabled: StrictBool | None = None
    enabledEvents: list[StrictStr] | None = Field(default=None, max_length=1000)


class ConfigView(BaseModel):
    id: str
    url: str
    enabled: bool
    enabledEvents: list[str]
    createdAt: str
    updatedAt: str


class ConfigResponse(BaseModel):
    configured: bool
    config: ConfigView | None
    availableEvents: list[str]


class SavedConfig(BaseModel):
    id: str
    url: str
    secret: str
    enabled: bool
    enabledEvents: list[str]


class SaveConfigResponse(BaseModel):
    success: Literal[True] = True
    config: SavedConfig
    message: str = "Webhook configuration saved successfully"


class MessageResponse(BaseModel):
    success: Literal[True] = True
    message: str


class RegenerateResponse(BaseModel):
    success: Literal[True] = True
    message: str = "Webhook secret regenerated successfully"
    secret: str
    previousSecretExpiresAt: str | None = Field(
        description="Until when deliveries are also signed with the previous secret; null if not."
    )


class TestSuccess(BaseModel):
    success: Literal[True] = True
    message: str = "Test webhook sent successfully"
    statusCode: int
    deliveryId: str


class TestFailure(BaseModel):
    success: Literal[False] = False
    error: str = "Failed to deliver test webhook"
    details: str | None
    statusCode: int | None
    deliveryId: str


class LogItem(BaseModel):
    id: str
    event: str
    url: str
    success: bool
    statusCode: int | None
    attempts: int
    error: str | None
    deliveryId: str
    deliveredAt: str | None
    createdAt: str
    endpointId: str | None = Field(description="The endpoint it went to; null once deleted.")


class Pagination(BaseModel):
    total: int
    limit: int
    offset: int
    hasMore: bool


class LogsResponse(BaseModel):
    logs: list[LogItem]
    pagination: Pagination


class AttemptView(BaseModel):
    attempt: int
    statusCode: int | None
    error: str | None
    durationMs: int
    responseExcerpt: str | None
    createdAt: str


class LogDetail(BaseModel):
    """One delivery in full: the log item's fields, but ``attempts`` lists every attempt."""

    id: str
    event: str
    url: str
    success: bool
    status: Literal["pending", "in_flight", "succeeded", "failed"]
    statusCode: int | None
    attemptCount: int
    error: str | None
    deliveryId: str
    deliveredAt: str | None
    createdAt: str
    endpointId: str | None = Field(description="The endpoint it went to; null once deleted.")
    payload: str = Field(description="The exact request body, as sent on every attempt.")
    attempts: list[AttemptView]


class LogDetailResponse(BaseModel):
    log: LogDetail


class EventCounts(BaseModel):
    total: int
    successful: int
    failed: int


class StatsResponse(BaseModel):
    total: int
    successful: int
    failed: int
    pending: int
    successRate: str
    averageAttempts: str
    byEvent: dict[str, EventCounts]


class Bucket(BaseModel):
    start: str
    successful: int
    failed: int


class TimeseriesResponse(BaseModel):
    window: Literal["24h", "7d", "30d"]
    bucketSeconds: int
    buckets: list[Bucket]


class PublishIn(_In):
    userId: StrictStr = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    event: StrictStr = Field(min_length=1, max_length=100, examples=["resume.parsed"])
    data: dict[str, Any]


class PublishResponse(BaseModel):
    success: Literal[True] = True
    deliveryIds: list[str]
    reason: str | None = Field(default=None, description="Why no delivery was created.")
