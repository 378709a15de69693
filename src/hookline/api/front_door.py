"""The fast path of ``POST /api/events``: a well-formed publish by an admin token is served
here, without the framework's routing, dependency solving and response model, which cost
more than storing the event. Anything else (a bad header, body or token, an unknown event,
data too large) goes on to the FastAPI route untouched, with its body, so every error is the
route's own and the OpenAPI document is the route's.

It is a pure ASGI middleware inside the body limit, error and metrics middlewares: 413,
503 and the request metrics (under the route's template) are theirs as for any request.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookline.api.errors import ApiError, error_response
from hookline.api.routes.events import PATH, publish_checked
from hookline.api.schemas import PublishIn
from hookline.store.idempotency import KEY_PATTERN, KeyConflict

_KEY = re.compile(KEY_PATTERN)


@dataclass(frozen=True)
class _RouteLabel:
    """What the request metrics read of the route that served a request."""

    path_format: str


_ROUTE = _RouteLabel(PATH)


class _Declined(Exception):
    """The request is not one the fast path serves: the route answers it."""


class FastPublish:
    """Serve ``POST /api/events`` for admin tokens with valid events; pass on the rest."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != PATH
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:  # the body limit's receive raises past its limit: that is its answer
            message = await receive()
            if message["type"] != "http.request":  # gone before the body was in
                await self.app(scope, _replay(body, message, receive), send)
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            answer = await self._publish(scope, body)
        except _Declined:
            end = {"type": "http.request", "body": body, "more_body": False}
            await self.app(scope, _replay(b"", end, receive), send)
            return
        scope["route"] = _ROUTE  # the metrics' label
        await answer(scope, receive, send)

    async def _publish(self, scope: Scope, body: bytes) -> JSONResponse:
        token = key = None
        json_body = False
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                if token is not None or scheme.lower() != b"bearer":
                    raise _Declined
                token = credentials.strip().decode("latin-1")
            elif name == b"content-type":
                json_body = value == b"application/json"
            elif name == b"idempotency-key":
                if key is not None:
                    raise _Declined
                key = value.decode("latin-1")
        if not token or not json_body or (key is not None and not _KEY.match(key)):
            raise _Declined
        try:
            parsed = json.loads(body)
            event = PublishIn.model_validate(parsed) if isinstance(parsed, dict) else None
        except (ValueError, RecursionError, ValidationError):  # JSONDecodeError: a ValueError
            raise _Declined from None
        if event is None:
            raise _Declined
        state = scope["app"].state
        user = await state.store.authenticate(token)
        if user is None or not user.is_admin:
            raise _Declined
        try:
            published = await publish_checked(
                event, user.id, key, state.store, state.settings, state.wake, state.metrics
            )
        except KeyConflict as exc:
            return error_response(409, str(exc))
        except ApiError:
            raise _Declined from None
        return JSONResponse(published.model_dump(), status_code=202)


def _replay(body: bytes, last: Message, receive: Receive) -> Receive:
    """A receive that hands on what was already read (``body`` so far, then ``last``), then
    whatever comes next."""
    pending: list[Message] = [last]
    if body:
        pending.insert(0, {"type": "http.request", "body": body, "more_body": True})

    async def replayed() -> Any:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
