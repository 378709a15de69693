"""Time in one vocabulary: aware UTC datetimes inside, ISO 8601 with ``Z`` on the wire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, seconds precision plus milliseconds when present."""
    if moment is None:
        return None
    return iso_millis(moment)


def iso_millis(moment: datetime) -> str:
    """``2024-11-14T10:05:00.000Z``, the guide's payload timestamp form."""
    if moment.tzinfo is not UTC:  # what the store gives is UTC already
        moment = moment.astimezone(UTC)
    # isoformat ends in "+00:00" here; it truncates to milliseconds, as the payload does.
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def to_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch, the storage form of every timestamp."""
    delta = moment.astimezone(UTC) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    """The aware UTC datetime of ``value`` microseconds since the Unix epoch, exactly."""
    return EPOCH + timedelta(microseconds=value)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
