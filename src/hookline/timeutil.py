"""Time in one vocabulary: aware UTC datetimes inside, ISO 8601 with ``Z`` on the wire."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, seconds precision plus milliseconds when present."""
    if moment is None:
        return None
    return iso_millis(moment)


def iso_millis(moment: datetime) -> str:
    """``2024-11-14T10:05:00.000Z``, the guide's payload timestamp form."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def to_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch, the storage form of every timestamp."""
    delta = moment.astimezone(UTC) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    return datetime.fromtimestamp(value // 1_000_000, UTC).replace(microsecond=value % 1_000_000)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
