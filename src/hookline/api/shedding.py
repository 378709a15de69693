"""Admission: at most ``max_concurrent_requests`` API requests in progress at once. Others
wait in line, first come first served, up to ``request_queue_timeout_s``; past it they are
answered ``503`` with ``Retry-After`` and never start. Under overload some requests are
refused at once instead of all of them getting slow, and the database pool (sized from the
same limit) never has to open a connection beyond it.

``/healthz`` and ``/metrics`` are never held up: they must answer while the API is busiest.
"""

from __future__ import annotations

import asyncio
from collections import deque

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from hookline import ids

#: Paths outside the limit: liveness and metrics, which touch no database.
EXEMPT = frozenset({"/healthz", "/metrics"})
#: What a refused request is told: slots free up in milliseconds, so try again soon.
RETRY_AFTER_S = 1
BUSY = "The server is busy; try again shortly"


class Admission:
    """A pure ASGI middleware that admits at most ``limit`` requests at once."""

    def __init__(self, app: ASGIApp, limit: int, queue_timeout_s: float) -> None:
        self.app = app
        self.limit = limit
        self.queue_timeout_s = queue_timeout_s
        self.in_progress = 0
        # Each waiting request's turn; a leaving request hands its slot to the first one.
        self._line: deque[asyncio.Future[None]] = deque()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        if not await self._admit():
            # Shaped as FailureResponses answers: with a request id to quote.
            request_id = ids.new_id()
            headers = {"Retry-After": str(RETRY_AFTER_S), "X-Request-Id": request_id}
            body = {"success": False, "error": BUSY, "requestId": request_id}
            await JSONResponse(body, 503, headers)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._leave()

    async def _admit(self) -> bool:
        """Take a slot, waiting in line for at most the queue timeout; False if none came."""
        while self._line and self._line[0].done():
            self._line.popleft()  # those that gave up
        if self.in_progress < self.limit and not self._line:
            self.in_progress += 1
            return True
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._line.append(turn)
        try:
            async with asyncio.timeout(self.queue_timeout_s):
                await turn
        except TimeoutError:
            # Handed a slot just as the time ran out: take it rather than drop it.
            return turn.done() and not turn.cancelled()
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._leave()  # the slot was ours: pass it on
            raise
        return True

    def _leave(self) -> None:
        """Give the slot to the first request still waiting, or free it."""
        while self._line:
            turn = self._line.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.in_progress -= 1
