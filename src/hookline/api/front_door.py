"""The fast paths of the busiest routes: ``POST /api/events`` (``FastPublish``), and the
dashboard's and clients' reads, ``GET /api/webhooks/logs``, ``/stats`` and ``/config``
(``FastReads``). A well-formed request with a valid token is served here, without the
framework's routing, dependency solving and response model, which cost more than the
database work. Anything else (a bad header, body, query or token, an unknown event, data too
large) goes on to the FastAPI route untouched, with its body, so every error is the route's
own and the OpenAPI document is the route's. The answers are built by the routes' own
functions (``publish_checked``, ``logs_payload``, ``stats_payload``, ``config_payload``).

These are pure ASGI middlewares inside the body limit, error and metrics middlewares: 413,
503 and the request metrics (under the route's template) are theirs as for any request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookline.api.errors import ApiError, error_response
from hookline.api.routes.events import PATH, publish_checked
from hookline.api.routes.webhooks import config_payload, logs_payload, stats_payload
from hookline.api.schemas import PublishIn
from hookline.store.idempotency import KEY_PATTERN, KeyConflict

_KEY = re.compile(KEY_PATTERN)
_DIGITS = re.compile(r"[0-9]{1,9}")


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

    async def _publish(self, scope: Scope, body: bytes) -> Response:
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
            # The json module, as the route reads bodies: orjson reads an integer past 2**64
            # as a float, which publishing would accept where the route refuses it (422).
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
        return Response(orjson.dumps(published.model_dump()), 202, media_type="application/json")


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


#: The reads served here: path -> (query parameters taken, with their bounds).
_READS: dict[str, dict[str, tuple[int, int, int]]] = {
    # name: (default, least, most), as the route's Query declares them
    "/api/webhooks/logs": {"limit": (50, 1, 100), "offset": (0, 0, 10_000_000)},
    "/api/webhooks/stats": {},
    "/api/webhooks/config": {},
}
_READ_ROUTES = {path: _RouteLabel(path) for path in _READS}
Read = Callable[[Any, str, dict[str, int]], Awaitable[dict[str, Any]]]


def _logs(state: Any, user_id: str, page: dict[str, int]) -> Awaitable[dict[str, Any]]:
    return logs_payload(state.store, user_id, page["limit"], page["offset"])


def _stats(state: Any, user_id: str, _: dict[str, int]) -> Awaitable[dict[str, Any]]:
    return stats_payload(state.store, state.settings, user_id)


def _config(state: Any, user_id: str, _: dict[str, int]) -> Awaitable[dict[str, Any]]:
    return config_payload(state.store, state.settings, user_id)


_ANSWERS: dict[str, Read] = {
    "/api/webhooks/logs": _logs,
    "/api/webhooks/stats": _stats,
    "/api/webhooks/config": _config,
}


class FastReads:
    """Serve ``GET /api/webhooks/logs`` (at most ``limit`` and ``offset`` in the query),
    ``/stats`` and ``/config`` (no query) for a valid ``Bearer`` token; pass on the rest."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or scope["path"] not in _READS
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        token = _token(scope)
        query = _query(scope["query_string"], _READS[path])
        state = scope["app"].state
        user = None if token is None or query is None else await state.store.authenticate(token)
        if user is None or query is None:  # the route says what is wrong
            await self.app(scope, receive, send)
            return
        payload = await _ANSWERS[path](state, user.id, query)
        scope["route"] = _READ_ROUTES[path]  # the metrics' label
        await Response(orjson.dumps(payload), media_type="application/json")(scope, receive, send)


def _token(scope: Scope) -> str | None:
    """The token of the one ``Authorization: Bearer <token>`` header, exactly so written."""
    token = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            if token is not None or not value.startswith(b"Bearer "):
                return None
            token = value[7:].decode("latin-1")
    return token if token and token.strip() == token else None


def _query(raw: bytes, bounds: dict[str, tuple[int, int, int]]) -> dict[str, int] | None:
    """The query's parameters, each once, as plain digits within its bounds (defaults for
    those left out); None for anything else."""
    values = {name: default for name, (default, _, _) in bounds.items()}
    if not raw:
        return values
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    seen = set()
    for name, text in pairs:
        if name not in bounds or name in seen or not _DIGITS.fullmatch(text):
            return None
        seen.add(name)
        _, least, most = bounds[name]
        if not least <= int(text) <= most:
            return None
        values[name] = int(text)
    return values
