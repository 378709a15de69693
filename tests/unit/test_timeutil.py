"""The wire and storage forms of time: exact, and the same for every kind of input."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hookline.timeutil import from_micros, iso, iso_millis, to_micros


def _reference_iso(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def test_micros_round_trip_exactly() -> None:
    rng = random.Random(7)
    values = [0, 1, 999_999, 1_000_000, -1, 1_764_525_000_123_456, 4_102_444_800_000_000]
    values += [rng.randrange(-(10**15), 10**17) for _ in range(2_000)]
    for value in values:
        moment = from_micros(value)
        assert moment.tzinfo is UTC
        assert moment == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)
        assert to_micros(moment) == value


def test_iso_millis_truncates_to_milliseconds_in_utc() -> None:
    assert iso_millis(from_micros(1_731_578_700_999_999)) == "2024-11-14T10:05:00.999Z"
    assert iso_millis(datetime(2024, 11, 14, 10, 5, tzinfo=UTC)) == "2024-11-14T10:05:00.000Z"
    # Other zones, fixed offsets and a zone called UTC that is not datetime.UTC: all in UTC.
    berlin = datetime(2024, 11, 14, 11, 5, 0, 123_456, tzinfo=ZoneInfo("Europe/Berlin"))
    assert iso_millis(berlin) == "2024-11-14T10:05:00.123Z"
    plus_zero = datetime(2024, 1, 1, tzinfo=timezone(timedelta(0)))
    assert iso_millis(plus_zero) == "2024-01-01T00:00:00.000Z"
    assert iso_millis(datetime(2024, 1, 1, tzinfo=ZoneInfo("UTC"))) == "2024-01-01T00:00:00.000Z"
    assert iso(None) is None


def test_iso_millis_agrees_with_strftime() -> None:
    rng = random.Random(11)
    zones = [UTC, ZoneInfo("America/New_York"), timezone(timedelta(hours=5, minutes=30))]
    for _ in range(2_000):
        moment = from_micros(rng.randrange(10**15, 4 * 10**15)).astimezone(rng.choice(zones))
        assert iso_millis(moment) == _reference_iso(moment)
