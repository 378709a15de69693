"""How log lines look: readable text by default, or one JSON object per line
(``HOOKLINE_LOG_FORMAT=json``). Both carry the request id of the API request and the delivery
id of the delivery a line is about, taken from ``extra`` or else from the context variables
below (set by the API's error middleware and by the worker for each attempt)."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

#: The id of the API request being served (``api.failures.FailureResponses`` sets it).
REQUEST_ID: ContextVar[str | None] = ContextVar("hookline_request_id", default=None)
#: The ``deliveryId`` of the delivery being attempted (the worker sets it per attempt).
DELIVERY_ID: ContextVar[str | None] = ContextVar("hookline_delivery_id", default=None)

# Attributes ``extra=`` may add that JSON lines carry as fields of their own.
_FIELDS = ("method", "route", "status", "duration_ms")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _ids(record: logging.LogRecord) -> tuple[str | None, str | None]:
    """The request id and delivery id of ``record``: its own (``extra``), else the context's."""
    return (
        getattr(record, "request_id", None) or REQUEST_ID.get(),
        getattr(record, "delivery_id", None) or DELIVERY_ID.get(),
    )


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``, then ``request_id=...`` / ``delivery_id=...`` if any."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request, delivery = _ids(record)
        if request is None and delivery is None:
            return line
        head, newline, rest = line.partition("\n")  # keep a traceback below the ids
        if request is not None:
            head += f" request_id={request}"
        if delivery is not None:
            head += f" delivery_id={delivery}"
        return head + newline + rest


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, request_id and
    delivery_id when there is one, the access-log fields, and a traceback as ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request, delivery = _ids(record)
        if request is not None:
            line["request_id"] = request
        if delivery is not None:
            line["delivery_id"] = delivery
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


def configure(log_format: Literal["text", "json"], level: int = logging.INFO) -> None:
    """Send every log line (uvicorn's too, when it leaves logging to us) to stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler])
    # Neither format shows the caller's file and line, thread or process: not collecting them
    # makes each record cheaper (the logging HOWTO's "Optimization"), and the API writes one
    # access line per request.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
