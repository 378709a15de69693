"""Request and response bodies of /api/webhooks/endpoints (camelCase on the wire)."""

from __future__ import annotations

from pydantic import Field, StrictBool, StrictInt, StrictStr, field_validator

from hookline.api.schemas import EventName, Succeeded, Timestamp, _In, _Out
from hookline.store.schema import DisabledReason

MAX_DESCRIPTION_CHARS = 500
MAX_RATE_LIMIT = 10_000

DISABLED_AT_DOC = "When the endpoint was switched off; null while it is enabled."
DISABLED_REASON_DOC = (
    "Why it is off: `gone` (its receiver answered 410), `failing` (the auto-disable rule), "
    "`user` (switched off by hand); null while it is enabled."
)
RATE_LIMIT_DOC = "At most this many deliveries per second to this endpoint; null for no limit."


class EndpointIn(_In):
    """A new endpoint: ``url`` is required; the rest default (enabled, every event, no
    headers, no rate limit)."""

    url: StrictStr = Field(max_length=2048, examples=["https://your-app.com/webhooks"])
    description: StrictStr | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)
    enabled: StrictBool | None = None
    enabledEvents: list[EventName] | None = Field(default=None, max_length=1000)
    headers: dict[StrictStr, StrictStr] | None = None
    rateLimit: StrictInt | None = Field(
        default=None, ge=1, le=MAX_RATE_LIMIT, description=RATE_LIMIT_DOC
    )


class EndpointPatch(_In):
    """Change the fields present; ``rateLimit: null`` removes the limit. Other fields may not
    be null."""

    url: StrictStr | None = Field(default=None, max_length=2048)
    description: StrictStr | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)
    enabled: StrictBool | None = None
    enabledEvents: list[EventName] | None = Field(default=None, max_length=1000)
    headers: dict[StrictStr, StrictStr] | None = None
    rateLimit: StrictInt | None = Field(
        default=None, ge=1, le=MAX_RATE_LIMIT, description=RATE_LIMIT_DOC
    )

    @field_validator("url", "description", "enabled", "enabledEvents", "headers", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Runs only for fields the body carries: an omitted field keeps its value, a null is
        # a mistake (only rateLimit has a "none" to go back to).
        if value is None:
            raise ValueError("must not be null; leave the field out to keep its value")
        return value


class EndpointView(_Out):
    """An endpoint as the API shows it; never its secret."""

    id: str
    url: str
    description: str
    enabled: bool
    enabledEvents: list[str]
    headers: dict[str, str]
    rateLimit: int | None
    primary: bool = Field(description="The guide's webhook: /api/webhooks/config manages this one.")
    createdAt: Timestamp
    updatedAt: Timestamp
    disabledAt: Timestamp | None = Field(description=DISABLED_AT_DOC)
    disabledReason: DisabledReason | None = Field(description=DISABLED_REASON_DOC)


class EndpointsResponse(_Out):
    success: Succeeded = True
    endpoints: list[EndpointView]


class EndpointResponse(_Out):
    success: Succeeded = True
    endpoint: EndpointView


class CreatedEndpointResponse(_Out):
    success: Succeeded = True
    endpoint: EndpointView
    secret: str = Field(description="The signing secret, shown only in this response.")
