"""``GET /metrics``, and the middleware that times every API request by its route template and
status and writes its access-log line."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookline.metrics import Metrics, QueueCollector, all_processes, shared_directory

access_log = logging.getLogger("hookline.access")

#: The route label of a request no route matched (a 404): never the raw path.
UNMATCHED = "unmatched"

router = APIRouter(include_in_schema=False)


@router.get("/metrics", tags=["ops"])
async def metrics(request: Request) -> Response:
    """This process's metrics in Prometheus's text format (unauthenticated, like /healthz);
    under ``serve --workers N``, the sum of all N processes' counters and histograms."""
    queue: QueueCollector | None = request.app.state.queue_metrics
    if queue is not None:
        await queue.refresh()  # the collector then reports what this read (or left out)
    registry = request.app.state.metrics.registry
    if shared_directory() is not None:
        registry = all_processes(queue)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def route_of(scope: Scope) -> str:
    """The template of the route that served the request, e.g. ``/api/webhooks/logs/{log_id}``."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else UNMATCHED


class RequestMetrics:
    """Time each HTTP request into ``metrics`` and log one access line for it (a pure ASGI
    middleware: it adds a timer and a wrapped ``send``, no task or body buffering)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app sends nothing

        async def status_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, status_send)
        finally:
            duration_s = time.perf_counter() - started
            method, route = scope["method"], route_of(scope)
            self.metrics.request_done(method, route, status, duration_s)
            if access_log.isEnabledFor(logging.INFO):
                # The line carries the request id that the error middleware inside this one
                # set (logsetup.REQUEST_ID): the same task, so the same context.
                ms = round(duration_s * 1000, 2)
                fields = {"method": method, "route": route, "status": status, "duration_ms": ms}
                access_log.info("%s %s %d %.2fms", method, route, status, ms, extra=fields)
