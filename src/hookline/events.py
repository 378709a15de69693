"""The event catalog: the guide's event names and the data fields each one promises."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Fields the guide lists for each event's ``data``; publishers must supply them.
REQUIRED_FIELDS: Mapping[str, tuple[str, ...]] = {
    "resume.parsed": ("resumeId", "fileName", "parsedAt", "success"),
    "resume.parse_failed": ("fileName", "error", "failedAt"),
    "ats.check_completed": (
        "resumeId",
        "score",
        "matchedKeywords",
        "missingKeywords",
        "completedAt",
    ),
    "ats.check_failed": ("resumeId", "error", "failedAt"),
    "tailoring.completed": ("resumeId", "jobTitle", "mode", "atsScoreImprovement", "completedAt"),
    "tailoring.failed": ("resumeId", "error", "failedAt"),
    "operation.cancelled": ("operationType", "operationId", "cancelledAt"),
}

DEFAULT_EVENTS: tuple[str, ...] = tuple(REQUIRED_FIELDS)

#: The guide's example ``data`` for each event, for the API docs.
EXAMPLES: Mapping[str, Mapping[str, Any]] = {
    "resume.parsed": {
        "resumeId": "clx...",
        "fileName": "john_doe_resume.pdf",
        "parsedAt": "2024-11-14T10:05:00Z",
        "success": True,
    },
    "resume.parse_failed": {
        "fileName": "corrupted_file.pdf",
        "error": "Failed to extract text from PDF",
        "failedAt": "2024-11-14T10:05:00Z",
    },
    "ats.check_completed": {
        "resumeId": "clx...",
        "score": 85.5,
        "matchedKeywords": 12,
        "missingKeywords": 3,
        "completedAt": "2024-11-14T10:05:00Z",
    },
    "ats.check_failed": {
        "resumeId": "clx...",
        "error": "Failed to analyze job description",
        "failedAt": "2024-11-14T10:05:00Z",
    },
    "tailoring.completed": {
        "resumeId": "clx...",
        "jobTitle": "Senior Software Engineer",
        "mode": "PARTIAL",
        "atsScoreImprovement": 15.5,
        "completedAt": "2024-11-14T10:05:00Z",
    },
    "tailoring.failed": {
        "resumeId": "clx...",
        "error": "OpenAI API timeout",
        "failedAt": "2024-11-14T10:05:00Z",
    },
    "operation.cancelled": {
        "operationType": "tailoring",
        "operationId": "clx...",
        "cancelledAt": "2024-11-14T10:05:00Z",
    },
}

#: The event sent by POST /api/webhooks/test; always delivered, never subscribable.
TEST_EVENT = "webhook.test"


class EventError(ValueError):
    """A published event is not acceptable; ``fields`` maps each offending name to why."""

    def __init__(self, message: str, fields: dict[str, str]) -> None:
        super().__init__(message)
        self.fields = fields


def missing_fields(event: str, data: Mapping[str, object]) -> list[str]:
    """The guide's fields for ``event`` that ``data`` lacks (none for custom events)."""
    return [name for name in REQUIRED_FIELDS.get(event, ()) if name not in data]


def data_schema(event: str) -> dict[str, Any]:
    """The JSON Schema of ``data`` for ``event``, as check_event accepts it: an object holding the
    guide's fields for the event (any JSON value each), and whatever else the publisher adds."""
    schema: dict[str, Any] = {"type": "object", "additionalProperties": True}
    fields = REQUIRED_FIELDS.get(event, ())
    if fields:
        schema["properties"] = {name: {} for name in fields}
        schema["required"] = list(fields)
    if event in EXAMPLES:
        schema["examples"] = [dict(EXAMPLES[event])]
    return schema


def check_event(catalog: Sequence[str], event: str, data: object) -> None:
    """Raise EventError unless ``event`` is in the catalog and ``data`` carries its fields."""
    if event not in catalog:
        raise EventError(f"Unknown event: {event}", {"event": f"unknown event: {event}"})
    if not isinstance(data, Mapping):
        raise EventError("data must be a JSON object", {"data": "must be a JSON object"})
    missing = missing_fields(event, data)
    if missing:
        raise EventError(
            f"data is missing fields for {event}: {', '.join(missing)}",
            {f"data.{name}": "required" for name in missing},
        )


def unsent_reason(unsent: str, event: str) -> str:
    """Why publishing ``event`` made no delivery, in the guide's words (``store.Unsent``)."""
    if unsent == "no_endpoint":
        return "User has no webhook configuration"
    if unsent == "disabled":
        return "Webhook is disabled"
    return f"Event {event} is not enabled for this webhook"
