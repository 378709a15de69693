"""Prometheus metrics of one process: what it counts as it works (attempts, finished deliveries,
publishing, API requests, worker batches) and what it reads from the database when scraped
(the queue, disabled endpoints). Each process exposes its own: ``hookline serve`` on
``GET /metrics``, each ``hookline worker`` on its ``--metrics-port``.

Labels are bounded: an event outside the catalog counts as ``other``; routes are templates;
no user id or URL is ever a label. Children of labelled metrics are looked up once and kept,
so the hot paths pay a dictionary lookup and an increment, not ``labels()``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from hookline.delivery.sender import Outcome, OutcomeKind
from hookline.events import TEST_EVENT
from hookline.store import Status, Store
from hookline.store.views import QueueStats

log = logging.getLogger("hookline.metrics")

# No ``*_created`` series beside every counter and histogram: they would double what each
# scrape carries, and rate() does not need them. (A process-wide switch of prometheus_client.)
disable_created_metrics()  # type: ignore[no-untyped-call]

#: The label of events outside the catalog (keeps the number of series bounded).
OTHER_EVENT = "other"
#: How long the queue gauges are reused: a scrape storm costs one query per this many seconds.
QUEUE_CACHE_S = 5.0
#: How long a scrape waits for the database before leaving the queue gauges out.
QUEUE_TIMEOUT_S = 2.0

ATTEMPT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REQUEST_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class _EventChildren:
    """One event's delivery counters, looked up once."""

    attempts: dict[OutcomeKind, Counter]
    succeeded: Counter
    failed: Counter


class Metrics:
    """The metrics of one process, in a registry of its own (several apps in one process,
    as in tests, never mix their counts)."""

    def __init__(self, events: Iterable[str]) -> None:
        self.registry = registry = CollectorRegistry()
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
        self.attempts = Counter(
            "hookline_delivery_attempts",
            "Delivery attempts made, by event and outcome "
            "(success, http_status, timeout, connection_failed, blocked).",
            ["event", "outcome"],
            registry=registry,
        )
        self.attempt_duration = Histogram(
            "hookline_delivery_attempt_duration_seconds",
            "Duration of one delivery attempt, by outcome.",
            ["outcome"],
            buckets=ATTEMPT_BUCKETS_S,
            registry=registry,
        )
        self.finished = Counter(
            "hookline_deliveries_finished",
            "Deliveries that reached a final state, by event and outcome (succeeded, failed).",
            ["event", "outcome"],
            registry=registry,
        )
        self.published = Counter(
            "hookline_events_published",
            "Events accepted by POST /api/events (each event of a batch too), by event and "
            "outcome (enqueued: a delivery was stored; skipped: the user's webhook is missing, "
            "off or not subscribed).",
            ["event", "outcome"],
            registry=registry,
        )
        self.publish_duration = Histogram(
            "hookline_publish_duration_seconds",
            "Time to store published events durably: the database part of POST /api/events, "
            "observed once per request (a batch's events are stored together).",
            buckets=REQUEST_BUCKETS_S,
            registry=registry,
        )
        self.requests = Histogram(
            "hookline_http_request_duration_seconds",
            "API requests, by method, route template and status.",
            ["method", "route", "status"],
            buckets=REQUEST_BUCKETS_S,
            registry=registry,
        )
        self.claim_batch = Histogram(
            "hookline_worker_claim_batch_size",
            "Deliveries leased by one claim of a worker (0 when nothing was due).",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.record_batch = Histogram(
            "hookline_worker_record_batch_size",
            "Attempt outcomes written by one transaction of a worker.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.worker_errors = Counter(
            "hookline_worker_database_errors",
            "Worker statements that failed, by operation (claim, record).",
            ["operation"],
            registry=registry,
        )
        self.queue_errors = Counter(
            "hookline_queue_scrape_errors",
            "Scrapes that could not read the queue from the database (its gauges were left out).",
            registry=registry,
        )
        catalog = [*events, OTHER_EVENT]
        self._events = {event: self._children(event) for event in [*catalog, TEST_EVENT]}
        self._other = self._events[OTHER_EVENT]
        # By event, then by whether a delivery was enqueued; the test event is never published.
        self._published = {
            event: {
                True: self.published.labels(event, "enqueued"),
                False: self.published.labels(event, "skipped"),
            }
            for event in catalog
        }
        self._durations = {kind: self.attempt_duration.labels(kind.value) for kind in OutcomeKind}
        self._requests: dict[tuple[str, str, int], Histogram] = {}
        self.claim_failed = self.worker_errors.labels("claim")
        self.record_failed = self.worker_errors.labels("record")

    def _children(self, event: str) -> _EventChildren:
        return _EventChildren(
            attempts={kind: self.attempts.labels(event, kind.value) for kind in OutcomeKind},
            succeeded=self.finished.labels(event, Status.SUCCEEDED.value),
            failed=self.finished.labels(event, Status.FAILED.value),
        )

    def attempted(self, event: str, outcome: Outcome, next_status: Status) -> None:
        """Count one attempt, and its delivery when this attempt finished it."""
        children = self._events.get(event, self._other)
        children.attempts[outcome.kind].inc()
        self._durations[outcome.kind].observe(outcome.duration_ms / 1000)
        if next_status is Status.SUCCEEDED:
            children.succeeded.inc()
        elif next_status is Status.FAILED:
            children.failed.inc()

    def publish_done(self, event: str, enqueued: bool, duration_s: float) -> None:
        """Count one published event and how long storing it took."""
        (self._published.get(event) or self._published[OTHER_EVENT])[enqueued].inc()
        self.publish_duration.observe(duration_s)

    def batch_published(self, counts: Mapping[tuple[str, bool], int], duration_s: float) -> None:
        """Count a batch's published events, by (event, enqueued), and how long storing them
        (together) took: one increment per kind and one observation, not one per event."""
        for (event, enqueued), count in counts.items():
            (self._published.get(event) or self._published[OTHER_EVENT])[enqueued].inc(count)
        self.publish_duration.observe(duration_s)

    def request_done(self, method: str, route: str, status: int, duration_s: float) -> None:
        """Time one API request. ``route`` must be a template, never the raw path."""
        key = (method, route, status)
        child = self._requests.get(key)
        if child is None:
            if method not in HTTP_METHODS:
                method = "other"
            child = self._requests[key] = self.requests.labels(method, route, str(status))
        child.observe(duration_s)

    def watch_queue(self, store: Store) -> QueueCollector:
        """Report ``store``'s queue when scraped; call on the event loop the store runs on."""
        collector = QueueCollector(store, self.queue_errors, asyncio.get_running_loop())
        self.registry.register(collector)
        return collector

    def serve(self, host: str, port: int) -> Callable[[], Awaitable[None]]:
        """Serve ``/metrics`` on ``host:port`` from a thread of its own (a worker process has
        no web server); returns the coroutine function that stops it. Raises OSError when
        the port cannot be bound."""
        server, thread = start_http_server(port, host, registry=self.registry)
        log.info("metrics on http://%s:%d/metrics", host, port)

        async def stop() -> None:
            await asyncio.to_thread(server.shutdown)
            server.server_close()
            thread.join(timeout=5)

        return stop


#: The environment variable of prometheus_client's multiprocess mode: the directory where each
#: process writes its values (``serve --workers N`` sets it for its children).
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def shared_directory() -> str | None:
    """Where this process's metric values live when several API processes count together
    (``serve --workers N`` sets it before prometheus_client is imported); None otherwise."""
    return os.environ.get(MULTIPROC_DIR_ENV) or None


def all_processes(queue: Collector | None) -> CollectorRegistry:
    """A registry that reads every API process's counters and histograms from the shared
    directory and sums them, with ``queue``'s gauges (the same database for all). Per-process
    figures (``process_*``, ``python_gc_*``) are left out: no one process speaks for all."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    if queue is not None:
        registry.register(queue)
    return registry


class QueueCollector(Collector):
    """The queue by state, the age of its oldest due delivery and the disabled endpoints, read
    from the database at scrape time and reused for ``QUEUE_CACHE_S``. When the database does
    not answer, the scrape goes on without these gauges and ``errors`` counts it."""

    def __init__(self, store: Store, errors: Counter, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.errors = errors
        self.loop = loop
        self.cache_s = QUEUE_CACHE_S
        self._stats: QueueStats | None = None
        self._read_at: float | None = None  # time.monotonic() of the last read, good or bad
        self._read_lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read the database unless the last read (or failure) is recent enough."""
        async with self._read_lock:
            if self._read_at is not None and time.monotonic() - self._read_at < self.cache_s:
                return
            try:
                self._stats = await asyncio.wait_for(self.store.queue_stats(), QUEUE_TIMEOUT_S)
            except Exception as exc:  # a scrape must not fail with the database
                self._stats = None
                self.errors.inc()
                log.warning("metrics: reading the queue failed: %s", type(exc).__name__)
            self._read_at = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        if _running_loop() is not self.loop:
            # A scrape on the metrics server's own thread: read on the store's loop.
            try:
                future = asyncio.run_coroutine_threadsafe(self.refresh(), self.loop)
            except RuntimeError:  # the loop is closed: the process is stopping
                return
            try:
                future.result(timeout=QUEUE_TIMEOUT_S + 1)
            except Exception:  # the loop is stuck: leave the gauges out
                future.cancel()
                self.errors.inc()
                return
        # On the loop (GET /metrics) the route awaited refresh() before exposing.
        stats = self._stats
        if stats is None:
            return
        queue = GaugeMetricFamily(
            "hookline_queue_deliveries",
            "Deliveries not yet final, by state (due: pending and due now; scheduled: waiting "
            "for a retry; in_flight: leased to a worker). Read from the database.",
            labels=["state"],
        )
        queue.add_metric(["due"], stats.due)
        queue.add_metric(["scheduled"], stats.scheduled)
        queue.add_metric(["in_flight"], stats.in_flight)
        yield queue
        yield GaugeMetricFamily(
            "hookline_queue_oldest_due_age_seconds",
            "How long the longest-waiting due delivery has been due (0 when none is due).",
            value=stats.oldest_due_age_s,
        )
        yield GaugeMetricFamily(
            "hookline_endpoints_disabled",
            "Webhook endpoints switched off.",
            value=stats.endpoints_disabled,
        )

    def describe(self) -> Iterator[Metric]:
        for name in (
            "hookline_queue_deliveries",
            "hookline_queue_oldest_due_age_seconds",
            "hookline_endpoints_disabled",
        ):
            yield GaugeMetricFamily(name, "")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
