"""The retry policy is pure arithmetic: no clock, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hookline.delivery.retry import RetryPolicy

T0 = datetime(2024, 1, 1, tzinfo=UTC)
GUIDE = RetryPolicy(delays_s=[1, 5, 15], retry_after_cap_s=300)


def test_the_guide_schedule() -> None:
    assert GUIDE.max_attempts == 4
    assert GUIDE.next_attempt_at(1, 4, T0, True) == T0 + timedelta(seconds=1)
    assert GUIDE.next_attempt_at(2, 4, T0, True) == T0 + timedelta(seconds=5)
    assert GUIDE.next_attempt_at(3, 4, T0, True) == T0 + timedelta(seconds=15)
    assert GUIDE.next_attempt_at(4, 4, T0, True) is None


def test_not_retryable_gives_up_at_once() -> None:
    assert GUIDE.next_attempt_at(1, 4, T0, retryable=False) is None


def test_single_attempt_deliveries_are_never_retried() -> None:
    assert GUIDE.next_attempt_at(1, 1, T0, True) is None


def test_retry_after_can_only_push_later_and_is_capped() -> None:
    assert GUIDE.next_attempt_at(1, 4, T0, True, retry_after_s=30) == T0 + timedelta(seconds=30)
    assert GUIDE.next_attempt_at(2, 4, T0, True, retry_after_s=1) == T0 + timedelta(seconds=5)
    assert GUIDE.next_attempt_at(1, 4, T0, True, retry_after_s=10_000) == T0 + timedelta(
        seconds=300
    )


def test_no_delays_means_one_attempt() -> None:
    assert RetryPolicy(delays_s=[], retry_after_cap_s=0).max_attempts == 1
