"""A per-user sliding-window limit for expensive calls (the test endpoint)."""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from typing import Annotated

from fastapi import Depends, Request

from hookline.api.errors import ApiError


class RateLimiter:
    """At most ``limit`` calls per user in any ``window_s`` seconds, in this process."""

    def __init__(self, limit: int, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._calls: defaultdict[str, deque[float]] = defaultdict(deque)

    def check(self, key: str) -> None:
        """Count a call, or raise 429 with Retry-After when over the limit."""
        now = time.monotonic()
        calls = self._calls[key]
        while calls and calls[0] <= now - self.window_s:
            calls.popleft()
        if len(calls) >= self.limit:
            retry_after = max(1, math.ceil(calls[0] + self.window_s - now))
            raise ApiError(
                429,
                f"Too many test webhooks: at most {self.limit} per minute; "
                f"try again in {retry_after}s",
                headers={"Retry-After": str(retry_after)},
            )
        calls.append(now)


async def get_test_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.test_limiter
    return limiter


RateLimiterDep = Annotated[RateLimiter, Depends(get_test_limiter)]
