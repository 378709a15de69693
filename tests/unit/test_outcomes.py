"""What an outcome does to a delivery and to its endpoint: pure functions, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hookline.delivery.retry import RetryPolicy
from hookline.delivery.sender import Outcome, OutcomeKind
from hookline.delivery.worker import decide
from hookline.store import Claimed, Job, Status
from hookline.store.queue import (
    EndpointRules,
    StreakChange,
    StreakState,
    next_streak,
    streak_changes,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
POLICY = RetryPolicy(delays_s=[1, 5, 15], retry_after_cap_s=300)
ON = StreakState(True, None, None, 0, None, None)


def job() -> Job:
    delivery = Claimed(
        id="c1",
        delivery_id="d1",
        event_id="m1",
        user_id="u1",
        endpoint_id="e1",
        event="resume.parsed",
        body=b"",
        data_json=b"{}",
        published_at=T0,
        attempts=0,
        max_attempts=4,
    )
    return Job(delivery, "http://127.0.0.1:9/", ["whsec_x"])


def test_a_410_fails_the_delivery_at_once_and_marks_it_gone() -> None:
    gone = decide(job(), Outcome(OutcomeKind.HTTP_STATUS, 5, status_code=410), T0, POLICY)
    assert gone.next_status is Status.FAILED and gone.next_attempt_at is None and gone.gone
    other = decide(job(), Outcome(OutcomeKind.HTTP_STATUS, 5, status_code=404), T0, POLICY)
    assert other.next_status is Status.PENDING and not other.gone


def test_streak_changes_fold_a_batch_in_order() -> None:
    failed, ok = Status.FAILED, Status.SUCCEEDED
    changes = streak_changes(
        [("a", failed, False), ("a", ok, False), ("a", failed, False), ("b", failed, True)]
    )
    assert changes == {"a": StreakChange(True, 1, False), "b": StreakChange(False, 1, True)}


def test_the_failing_rules() -> None:
    by_count = EndpointRules(disable_after_failures=3)
    state, notices = next_streak(ON, StreakChange(False, 2, False), T0, by_count)
    assert state.failure_streak == 2 and state.failing_since == T0 and state.enabled
    assert notices == []
    later = T0 + timedelta(hours=1)
    state, notices = next_streak(state, StreakChange(False, 1, False), later, by_count)
    assert not state.enabled and state.disabled_reason == "failing"
    assert state.disabled_at == later and state.failing_since == T0
    assert notices == ["endpoint.disabled"]

    by_time = EndpointRules(disable_after_s=3600)
    state, _ = next_streak(ON, StreakChange(False, 1, False), T0, by_time)
    state, _ = next_streak(state, StreakChange(False, 1, False), later, by_time)
    assert not state.enabled  # failing since T0, for an hour now
    reset, _ = next_streak(state, StreakChange(True, 0, False), later, by_time)
    assert reset.failure_streak == 0 and reset.failing_since is None


def test_gone_disables_even_with_every_rule_off() -> None:
    state, notices = next_streak(ON, StreakChange(False, 1, True), T0, EndpointRules())
    assert (state.enabled, state.disabled_reason, notices) == (
        False,
        "gone",
        ["endpoint.disabled"],
    )
    # Already off: nothing changes but the count, and no notice.
    again, notices = next_streak(state, StreakChange(False, 1, True), T0, EndpointRules())
    assert again.disabled_at == T0 and again.failure_streak == 2 and notices == []


def test_failing_is_noticed_once_a_day_and_recovery_only_after_a_notice() -> None:
    rules = EndpointRules(notice_after=2)
    state, notices = next_streak(ON, StreakChange(False, 2, False), T0, rules)
    assert notices == ["endpoint.failing"] and state.failing_notified_at == T0
    state, notices = next_streak(state, StreakChange(False, 1, False), T0, rules)
    assert notices == []
    t1 = T0 + timedelta(minutes=5)
    state, notices = next_streak(state, StreakChange(True, 0, False), t1, rules)
    assert notices == ["endpoint.recovered"] and state.failing_notified_at == T0
    t2 = T0 + timedelta(hours=2)
    state, notices = next_streak(state, StreakChange(False, 2, False), t2, rules)
    assert notices == []  # the same day
    state, notices = next_streak(state, StreakChange(True, 0, False), t2, rules)
    assert notices == []  # this streak was not noticed
    t3 = T0 + timedelta(days=1, seconds=1)
    state, notices = next_streak(state, StreakChange(False, 2, False), t3, rules)
    assert notices == ["endpoint.failing"]
