"""hookline: durable, signed, retried webhook notifications.

What a host application imports: ``publish`` / ``publish_many`` to enqueue events (inside its
own transaction if it likes), and the helpers a receiver uses to verify a delivery. A receiver
app imports ``hookline.receiver`` instead: verification, a FastAPI dependency, a Flask decorator.
Publishing needs SQLAlchemy and the store; they are imported on first use, so a receiver that
imports ``hookline.receiver`` loads neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hookline.events import DEFAULT_EVENTS, EventError
from hookline.payload import PayloadError, verify_guide_signature

if TYPE_CHECKING:
    from hookline.publishing import (
        DEFAULT_MAX_ATTEMPTS,
        DEFAULT_MAX_DATA_BYTES,
        Enqueued,
        KeyConflict,
        publish,
        publish_many,
    )

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_EVENTS",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_DATA_BYTES",
    "Enqueued",
    "EventError",
    "KeyConflict",
    "PayloadError",
    "__version__",
    "publish",
    "publish_many",
    "verify_guide_signature",
]

_PUBLISHING = {
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_DATA_BYTES",
    "Enqueued",
    "KeyConflict",
    "publish",
    "publish_many",
}


def __getattr__(name: str) -> Any:
    if name in _PUBLISHING:
        from hookline import publishing

        return getattr(publishing, name)
    raise AttributeError(f"module 'hookline' has no attribute {name!r}")
