"""The retry policy: pure arithmetic from an attempt's outcome to what happens next."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    """Attempt 1 is immediate; attempt n+1 follows ``delays_s[n-1]`` after failure n."""

    delays_s: Sequence[float]
    retry_after_cap_s: float

    @property
    def max_attempts(self) -> int:
        return 1 + len(self.delays_s)

    def next_attempt_at(
        self,
        attempt: int,
        max_attempts: int,
        failed_at: datetime,
        retryable: bool,
        retry_after_s: float | None = None,
    ) -> datetime | None:
        """When to try again after failed attempt number ``attempt`` (1-based), or None to give up.

        A receiver's Retry-After (429/503) may push the retry later than the schedule, never
        beyond ``retry_after_cap_s``, and never earlier than the schedule.
        """
        if not retryable or attempt >= max_attempts:
            return None
        index = min(attempt - 1, len(self.delays_s) - 1)
        delay_s = self.delays_s[index] if self.delays_s else 0.0
        if retry_after_s is not None:
            delay_s = max(delay_s, min(retry_after_s, self.retry_after_cap_s))
        return failed_at + timedelta(seconds=delay_s)
