"""Request and response bodies, exactly as the guide shows them (camelCase on the wire)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    SkipValidation,
    StrictBool,
    StrictStr,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from hookline.store.idempotency import KEY_PATTERN
from hookline.store.schema import DisabledReason

#: Marks a schema whose values come from the configured event catalog: create_app's OpenAPI
#: document (hookline.api.docs) puts the catalog there, since models are the same for every app.
CATALOG = "x-hookline-catalog"

#: An event of the catalog (HOOKLINE_EVENTS).
EventName = Annotated[StrictStr, Field(json_schema_extra={CATALOG: "events"})]

#: An event a delivery can be logged under: the catalog's, or ``webhook.test``.
LoggedEvent = Annotated[str, Field(json_schema_extra={CATALOG: "logged"})]

#: A time as sent: ISO 8601 in UTC with ``Z`` (``2024-11-14T10:05:00.000Z``), kept a string
#: inside so the bytes on the wire are the ones the routes format.
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


#: ``success`` of an answer. Its schema is a bare ``{"const": true}``: with ``type: boolean``
#: beside it, generators such as openapi-python-client drop the const, and a client could no
#: longer tell a failed test's answer from a successful one.
Succeeded = Annotated[Literal[True], WithJsonSchema({"const": True})]
Failed = Annotated[Literal[False], WithJsonSchema({"const": False})]


class Window(StrEnum):
    """The span of a stats timeseries; each has its own bucket size."""

    HOURS_24 = "24h"  #: the last 24 hours, hourly buckets
    DAYS_7 = "7d"  #: the last 7 days, 6-hourly buckets
    DAYS_30 = "30d"  #: the last 30 days, daily buckets

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # Member names for generated clients, which would otherwise call them VALUE_0, ...
        schema = handler.resolve_ref_schema(handler(core_schema))
        schema["x-enum-varnames"] = [member.name for member in cls]
        return schema


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    """A response body. Every field is always sent (null when empty), so the schema marks every
    field required, defaults included: generated clients then tell the answers apart."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class ConfigIn(_In):
    """Create or update the webhook; an omitted field keeps its current value."""

    url: StrictStr | None = Field(
        default=None, max_length=2048, examples=["https://your-app.com/webhooks"]
    )
    enabled: StrictBool | None = None
    enabledEvents: list[EventName] | None = Field(default=None, max_length=1000)


class ConfigView(_Out):
    id: str
    url: str
    enabled: bool
    enabledEvents: list[str]
    createdAt: Timestamp
    updatedAt: Timestamp
    # hookline's additions to the guide's fields (docs/api.md "Disabled endpoints").
    disabledAt: Timestamp | None = Field(
        description="When the webhook was switched off; null while it is enabled."
    )
    disabledReason: DisabledReason | None = Field(
        description="Why it is off (`gone`, `failing`, `user`); null while it is enabled."
    )


class ConfigResponse(_Out):
    configured: bool
    config: ConfigView | None
    availableEvents: list[EventName]


class SavedConfig(_Out):
    id: str
    url: str
    secret: str
    enabled: bool
    enabledEvents: list[str]


class SaveConfigResponse(_Out):
    success: Succeeded = True
    config: SavedConfig
    message: str = "Webhook configuration saved successfully"


class MessageResponse(_Out):
    success: Succeeded = True
    message: str


class RegenerateResponse(_Out):
    success: Succeeded = True
    message: str = "Webhook secret regenerated successfully"
    secret: str
    previousSecretExpiresAt: Timestamp | None = Field(
        description="Until when deliveries are also signed with the previous secret; null if not."
    )


class TestSuccess(_Out):
    success: Succeeded = True
    message: str = "Test webhook sent successfully"
    statusCode: int
    deliveryId: str


class TestFailure(_Out):
    success: Failed = False
    error: str = "Failed to deliver test webhook"
    details: str | None
    statusCode: int | None
    deliveryId: str


#: The test's answer: ``success`` tells which shape it is.
TestResult = Annotated[TestSuccess | TestFailure, Field(discriminator="success")]


#: A delivery's state in the log (``hookline.store.views.LogStatus``).
LogStatusName = Annotated[
    Literal["pending", "retrying", "succeeded", "failed"],
    Field(
        description="pending: no attempt failed yet; retrying: the last attempt failed and "
        "another is planned; succeeded, failed: final. An attempt under way counts as "
        "pending or retrying."
    ),
]

NextAttemptAt = Annotated[
    Timestamp | None,
    Field(
        description="When the next attempt is due (in the past while it is under way); "
        "null once the delivery is finished."
    ),
]


class LogItem(_Out):
    id: str
    event: str
    url: str
    success: bool
    statusCode: int | None
    attempts: int
    error: str | None
    deliveryId: str
    deliveredAt: Timestamp | None
    createdAt: Timestamp
    endpointId: str | None = Field(description="The endpoint it went to; null once deleted.")
    status: LogStatusName
    nextAttemptAt: NextAttemptAt


class Pagination(_Out):
    total: int
    limit: int
    offset: int
    hasMore: bool


class LogsResponse(_Out):
    logs: list[LogItem]
    pagination: Pagination


class AttemptView(_Out):
    attempt: int
    statusCode: int | None
    error: str | None
    durationMs: int
    responseExcerpt: str | None
    createdAt: Timestamp
    trigger: Literal["scheduled", "manual", "recovery"] = Field(
        description="scheduled: the queue (first attempt, retries); manual: a resend; "
        "recovery: an endpoint's recovery."
    )
    requestHeaders: dict[str, str] | None = Field(
        description="The headers hookline sent (the endpoint's own headers with their values "
        "redacted); null for attempts that sent nothing or were made before this was kept."
    )


class LogDetail(_Out):
    """One delivery in full: the log item's fields, but ``attempts`` lists every attempt."""

    id: str
    event: str
    url: str
    success: bool
    status: LogStatusName
    nextAttemptAt: NextAttemptAt
    statusCode: int | None
    attemptCount: int
    error: str | None
    deliveryId: str
    deliveredAt: Timestamp | None
    createdAt: Timestamp
    endpointId: str | None = Field(description="The endpoint it went to; null once deleted.")
    payload: str = Field(description="The exact request body, as sent on every attempt.")
    attempts: list[AttemptView]


class LogDetailResponse(_Out):
    log: LogDetail


class ResendResponse(_Out):
    success: Succeeded = True
    message: str = "Delivery queued to be sent again"
    log: LogItem


class EventCounts(_Out):
    total: int
    successful: int
    failed: int


class StatsResponse(_Out):
    total: int
    successful: int
    failed: int
    pending: int
    successRate: str
    averageAttempts: str
    byEvent: dict[str, EventCounts]


class Bucket(_Out):
    start: Timestamp
    successful: int
    failed: int


class TimeseriesResponse(_Out):
    window: Window
    bucketSeconds: int
    buckets: list[Bucket]


class PublishIn(_In):
    userId: StrictStr = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    event: EventName = Field(min_length=1, max_length=100, examples=["resume.parsed"])
    data: dict[str, Any]


class PublishResponse(_Out):
    success: Succeeded = True
    deliveryIds: list[str]
    reason: str | None = Field(default=None, description="Why no delivery was created.")


#: The most events one POST /api/events/batch may carry.
MAX_BATCH_EVENTS = 1000


class PublishBatchItem(PublishIn):
    """One event of a batch, with its own idempotency key if it likes."""

    idempotencyKey: StrictStr | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        pattern=KEY_PATTERN,
        description="As the Idempotency-Key header of POST /api/events, for this event.",
    )


class PublishBatchIn(_In):
    """Events to publish at once. Each is checked on its own: a bad one is refused in its
    result, and the others are still published."""

    # Items are validated one by one in the route, so that a bad one refuses only itself.
    events: list[SkipValidation[PublishBatchItem]] = Field(max_length=MAX_BATCH_EVENTS)


class PublishBatchResult(_Out):
    """What became of one event of a batch: 202 with its deliveries (or why there are none),
    or the status and error the event alone would have got from POST /api/events."""

    status: int = Field(description="202 accepted; 409, 413 or 422 refused.")
    deliveryIds: list[str]
    reason: str | None = Field(default=None, description="Why no delivery was created.")
    error: str | None = Field(default=None, description="Why the event was refused.")
    fields: dict[str, str] | None = Field(
        default=None, description="Each offending field of the event and why; 422 only."
    )


class PublishBatchResponse(_Out):
    success: Succeeded = True
    results: list[PublishBatchResult] = Field(description="One per event, in order.")
