"""The last word on a request that failed: an exception escaping the app becomes a JSON answer
in the API's error shape, with a request id that is also in the log line, and goes no further.

The exception is not re-raised: Starlette's outer error middleware would answer
``text/plain`` and hand it on, and uvicorn then closes the keep-alive connection.

=========================== ====== ==============================================
What was raised             Status What the client gets
=========================== ====== ==============================================
database busy               503    ``Retry-After: 1``: no pooled connection came
                                   free, or a lock was not granted, in time
database unavailable        503    ``Retry-After``; try again shortly
database full               507    nothing was stored; an operator must make room
``KeyConfigError``          500    the stored secrets don't open with the keys
anything else               500    only the request id; the traceback is logged
=========================== ====== ==============================================

Every answer carries ``requestId`` in the body and ``X-Request-Id`` as a header.
"""

from __future__ import annotations

import logging

from sqlalchemy import exc as sa_exc
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookline import ids
from hookline.crypto import KeyConfigError
from hookline.logsetup import REQUEST_ID
from hookline.store.errors import DatabaseFault, classify

log = logging.getLogger("hookline.api")

RETRY_AFTER_S = 5  # an outage long enough to fail a request rarely ends sooner
BUSY_RETRY_AFTER_S = 1  # a busy pool or a held lock frees up in moments
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL: lock_timeout passed


class FailureResponses:
    """Answer any exception escaping ``app`` with JSON, unless the response already started."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Every request gets its id up front, so that each log line about it carries the id
        # (logsetup); only a failure's answer shows it to the client.
        request_id = ids.new_id()
        REQUEST_ID.set(request_id)
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            response = failure_response(exc, request_id, scope, started)
            if not started:
                await response(scope, receive, send)
            # Once started, nothing can be said: the server sees the response unfinished and
            # closes the connection itself.


def failure_response(
    exc: Exception, request_id: str, scope: Scope, started: bool = False
) -> JSONResponse:
    """Log ``exc`` under ``request_id`` and build the answer for it."""
    where = f"{scope.get('method', '')} {scope.get('path', '')}"
    if started:
        where += " (after the response started)"
    fault = classify(exc)
    headers = {"X-Request-Id": request_id}
    if fault is DatabaseFault.UNAVAILABLE and _busy(exc):
        # Load shedding, not an outage: the request started nothing it could not undo.
        log.warning("request %s %s: database busy: %s", request_id, where, _line(exc))
        status, message = 503, "The database is busy; try again shortly"
        headers["Retry-After"] = str(BUSY_RETRY_AFTER_S)
    elif fault is DatabaseFault.UNAVAILABLE:
        log.warning("request %s %s: database unavailable: %s", request_id, where, _line(exc))
        status, message = 503, "The database is unavailable; try again shortly"
        headers["Retry-After"] = str(RETRY_AFTER_S)
    elif fault is DatabaseFault.FULL:
        log.error("request %s %s: database full: %s", request_id, where, _line(exc))
        status, message = 507, "The database is out of space; nothing was stored"
    elif isinstance(exc, KeyConfigError):
        log.error("request %s %s: %s", request_id, where, exc, exc_info=exc)
        status = 500
        message = f"The stored webhook secrets do not open with the configured keys: {exc}"
    else:
        log.error("request %s %s failed", request_id, where, exc_info=exc)
        status, message = 500, "Internal server error"
    body = {"success": False, "error": message, "requestId": request_id}
    return JSONResponse(body, status_code=status, headers=headers)


def _busy(exc: BaseException) -> bool:
    """Whether ``exc`` is the database being busy rather than gone: no pooled connection came
    free in time, or a statement waited for a lock past ``lock_timeout``."""
    link: BaseException | None = exc
    for _ in range(8):
        if link is None:
            return False
        if isinstance(link, sa_exc.TimeoutError):
            return True
        if getattr(link, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            return True
        orig = getattr(link, "orig", None)
        link = orig if isinstance(orig, BaseException) else link.__cause__
    return False


def _line(exc: BaseException) -> str:
    """The exception in one line (SQLAlchemy's messages go on to the SQL and a link)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
