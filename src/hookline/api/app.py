"""create_app(settings): the ASGI app, and the lifespan that owns the store, the sender and,
under ``hookline serve``, the delivery worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from hookline import __version__
from hookline.api import docs, errors
from hookline.api.failures import FailureResponses
from hookline.api.front_door import FastPublish, FastReads
from hookline.api.limits import BodySizeLimit
from hookline.api.metrics import RequestMetrics
from hookline.api.metrics import router as metrics_router
from hookline.api.ratelimit import RateLimiter
from hookline.api.routes import dashboard, endpoints, events, operational, tasks, webhooks
from hookline.api.shedding import Admission
from hookline.config import Settings
from hookline.crypto import load_box
from hookline.delivery.worker import Worker
from hookline.metrics import Metrics
from hookline.store import Store, readiness
from hookline.targets import policy_for, sender_for

log = logging.getLogger("hookline")

DESCRIPTION = """Webhook notifications: configure an endpoint, publish events, and hookline
delivers them signed (HMAC-SHA256), retried (1 s, 5 s, 15 s) and logged.

Authenticate with `Authorization: Bearer <token>` (use the Authorize button)."""


def create_app(settings: Settings | None = None, *, run_worker: bool = True) -> FastAPI:
    """The hookline API. With ``run_worker`` the delivery worker runs inside its lifespan."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings, load_box(settings))
        sender = sender_for(settings)
        wake = asyncio.Event()
        app.state.store, app.state.sender, app.state.wake = store, sender, wake
        app.state.queue_metrics = queue_metrics = metrics.watch_queue(store)
        worker_task = None
        worker = None
        if run_worker:
            worker = Worker(store, sender, settings, wake=wake, metrics=metrics)
            worker_task = asyncio.create_task(worker.run(), name="hookline-worker")
        try:
            yield
        finally:
            if worker is not None and worker_task is not None:
                worker.stop()
                await worker_task
            metrics.registry.unregister(queue_metrics)
            app.state.queue_metrics = None
            await sender.close()
            await store.close()

    app = FastAPI(
        title="hookline",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by docs.install, from the package rather than a CDN
        redoc_url=None,
        # hookline does not use OpenTelemetry; left on, FastAPI looks its providers up in the
        # environment on every request (8% of a publish's CPU).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.metrics = metrics = Metrics(settings.events)
    app.state.queue_metrics = None
    app.state.policy = policy_for(settings)
    app.state.test_limiter = RateLimiter(settings.test_rate_per_minute)
    errors.install(app)
    # Innermost of ours: inside the body limit, the error answers and the metrics.
    app.add_middleware(FastPublish)
    app.add_middleware(FastReads)
    app.add_middleware(
        BodySizeLimit,
        default_limit=settings.max_config_body_bytes,
        limits={
            "/api/events": settings.max_event_data_bytes + 16 * 1024,
            "/api/events/batch": settings.max_batch_body_bytes,
        },
    )
    # Whatever escapes the app is answered in JSON and not re-raised.
    app.add_middleware(FailureResponses)
    # At most max_concurrent_requests in progress; the rest wait briefly, then get 503.
    app.add_middleware(
        Admission,
        limit=settings.max_concurrent_requests,
        queue_timeout_s=settings.request_queue_timeout_s,
    )
    # Outermost of ours, so that it times and logs the answer FailureResponses gives.
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.include_router(webhooks.router)
    app.include_router(endpoints.router)
    app.include_router(tasks.router)
    app.include_router(operational.router)
    app.include_router(events.router)
    app.include_router(dashboard.router)
    app.include_router(metrics_router)
    docs.install(app, settings.events)

    @app.get("/healthz", tags=["ops"], include_in_schema=False)
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/readyz", tags=["ops"], include_in_schema=False)
    async def readyz() -> JSONResponse:
        """200 when the database answers and is at the newest migration; 503 otherwise."""
        problem = await readiness.not_ready(app.state.store.db)
        if problem is not None:
            return errors.error_response(503, f"Not ready: {problem}")
        return JSONResponse({"ok": True, "revision": readiness.head_revision()})

    return app
