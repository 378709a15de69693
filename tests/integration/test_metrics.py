"""Metrics and logs: GET /metrics after real deliveries (one succeeds, one fails), the queue
gauges read from the database, a scrape while the database is down, and JSON log lines that
carry the request id and the delivery id.

Real parts: both databases, receivers on loopback, the worker inside the app."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete, update

from hookline.logsetup import JsonFormatter, TextFormatter
from hookline.store import AttemptRecord, Status
from hookline.store.schema import deliveries
from hookline.timeutil import utcnow
from tests.integration.test_delivery import PARSED, finished, publish, setup
from tests.support import Api, Receiver, make_settings, running_api, running_receiver, wait_until


def parse(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition by (name, labels). Raises if the text does not parse."""
    samples = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples[(name, frozenset(labels.items()))]


async def scrape(api: Api) -> tuple[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    response = await api.client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return response.text, parse(response.text)


async def test_a_batch_counts_each_event_and_times_the_request_once(
    database_url: str, receiver: Receiver
) -> None:
    settings = make_settings(database_url)
    async with running_api(settings, run_worker=False) as api:
        user_id, _, _ = await setup(api, receiver)
        _, admin = await api.user("publisher", admin=True)
        events = [
            {"userId": user_id, "event": "resume.parsed", "data": PARSED},
            {"userId": user_id, "event": "resume.parsed", "data": PARSED},
            {"userId": "nobody", "event": "resume.parsed", "data": PARSED},
            {"userId": user_id, "event": "ats.check_failed", "data": {}},  # refused: 422
        ]
        answer = await api.client.post("/api/events/batch", headers=admin, json={"events": events})
        assert [r["status"] for r in answer.json()["results"]] == [202, 202, 202, 422]
        _, samples = await scrape(api)
    published = "hookline_events_published_total"
    assert value(samples, published, event="resume.parsed", outcome="enqueued") == 2
    assert value(samples, published, event="resume.parsed", outcome="skipped") == 1
    assert value(samples, published, event="ats.check_failed", outcome="enqueued") == 0
    # The three stored events were stored together: one observation of the time it took.
    assert value(samples, "hookline_publish_duration_seconds_count") == 1


async def test_metrics_after_a_success_and_a_failure(api: Api, receiver: Receiver) -> None:
    async with running_receiver() as refusing:
        refusing.default_status = 500
        ok_user, ok_auth, _ = await setup(api, receiver)
        bad_user, bad_auth, _ = await setup(api, refusing)
        ok_id = (await publish(api, ok_user))["deliveryIds"][0]
        bad_id = (await publish(api, bad_user))["deliveryIds"][0]
        ok_log = await finished(api, ok_auth, ok_id)
        bad_log = await finished(api, bad_auth, bad_id)
        assert ok_log["status"] == "succeeded" and bad_log["status"] == "failed"
        attempts = api.settings.max_attempts
        assert len(refusing.received) == attempts

        text, samples = await scrape(api)

    event = "resume.parsed"
    finished_total = "hookline_deliveries_finished_total"
    assert value(samples, finished_total, event=event, outcome="succeeded") == 1
    assert value(samples, finished_total, event=event, outcome="failed") == 1
    attempts_total = "hookline_delivery_attempts_total"
    assert value(samples, attempts_total, event=event, outcome="success") == 1
    assert value(samples, attempts_total, event=event, outcome="http_status") == attempts
    duration = "hookline_delivery_attempt_duration_seconds"
    assert value(samples, f"{duration}_count", outcome="success") == 1
    assert value(samples, f"{duration}_count", outcome="http_status") == attempts
    assert value(samples, f"{duration}_bucket", outcome="http_status", le="+Inf") == attempts

    published = "hookline_events_published_total"
    assert value(samples, published, event=event, outcome="enqueued") == 2
    assert value(samples, published, event=event, outcome="skipped") == 0
    assert value(samples, "hookline_publish_duration_seconds_count") == 2

    requests = "hookline_http_request_duration_seconds_count"
    assert value(samples, requests, method="POST", route="/api/events", status="202") == 2
    assert value(samples, requests, method="POST", route="/api/webhooks/config", status="200") == 2
    # finished() read each log by id: the label is the route's template, never the path.
    detail = value(
        samples, requests, method="GET", route="/api/webhooks/logs/{log_id}", status="200"
    )
    assert detail >= 2

    # Every attempt was claimed and recorded once, in batches of some size.
    assert value(samples, "hookline_worker_claim_batch_size_sum") == 1 + attempts
    assert value(samples, "hookline_worker_record_batch_size_sum") == 1 + attempts

    # Everything is final: the queue is empty.
    for state in ("due", "scheduled", "in_flight"):
        assert value(samples, "hookline_queue_deliveries", state=state) == 0
    assert value(samples, "hookline_queue_oldest_due_age_seconds") == 0
    assert value(samples, "hookline_endpoints_disabled") == 0
    assert value(samples, "hookline_queue_scrape_errors_total") == 0

    # No user id, URL or delivery anywhere in the exposition.
    secrets = [ok_user, bad_user, ok_id, bad_id, ok_log["id"], bad_log["id"], receiver.url]
    secrets += [refusing.url, "127.0.0.1", "/hook", str(receiver.port), str(refusing.port)]
    leaked = [s for s in secrets if s in text]
    assert not leaked, leaked


async def test_an_unknown_path_is_one_series(api: Api) -> None:
    for path in ("/zq-nowhere/7f3e", "/api/webhooks/logs/zq81/extra", "/users/zq92?token=zq93"):
        assert (await api.client.get(path)).status_code == 404
    text, samples = await scrape(api)
    count = "hookline_http_request_duration_seconds_count"
    assert value(samples, count, method="GET", route="unmatched", status="404") == 3
    assert "zq" not in text


async def test_queue_gauges_follow_the_database(database_url: str) -> None:
    settings = make_settings(database_url)
    async with running_receiver() as receiver, running_api(settings, run_worker=False) as api:
        api.app.state.queue_metrics.cache_s = 0  # read the database at every scrape
        user_id, _, _ = await setup(api, receiver)
        _, off_auth = await api.user("switched off")
        saved = await api.client.post(
            "/api/webhooks/config", headers=off_auth, json={"url": receiver.url, "enabled": False}
        )
        assert saved.status_code == 200, saved.text
        for _ in range(4):
            await publish(api, user_id)

        _, samples = await scrape(api)
        gauge = "hookline_queue_deliveries"
        assert value(samples, gauge, state="due") == 4
        assert value(samples, gauge, state="in_flight") == 0
        assert value(samples, "hookline_endpoints_disabled") == 1

        # A worker leases two; one of them fails and waits for its retry an hour from now.
        jobs = await api.store.claim("metrics-test", 2)
        assert len(jobs) == 2
        retried = jobs[0].delivery
        await api.store.record(
            "metrics-test",
            [
                AttemptRecord(
                    log_id=retried.id,
                    attempt=1,
                    started_at=utcnow(),
                    duration_ms=3,
                    status_code=500,
                    error="HTTP 500",
                    response_excerpt=None,
                    next_status=Status.PENDING,
                    next_attempt_at=utcnow() + timedelta(hours=1),
                )
            ],
        )
        # The longest-waiting due delivery came due ten minutes ago.
        async with api.store.db.write() as conn:
            oldest = (
                update(deliveries)
                .where(deliveries.c.status == "pending", deliveries.c.id != retried.id)
                .values(next_attempt_at=utcnow() - timedelta(minutes=10))
            )
            await conn.execute(oldest)

        _, samples = await scrape(api)
        assert value(samples, gauge, state="due") == 2
        assert value(samples, gauge, state="scheduled") == 1
        assert value(samples, gauge, state="in_flight") == 1
        assert 595 <= value(samples, "hookline_queue_oldest_due_age_seconds") <= 660


async def test_the_queue_read_is_cached(database_url: str) -> None:
    settings = make_settings(database_url)
    async with running_receiver() as receiver, running_api(settings, run_worker=False) as api:
        user_id, _, _ = await setup(api, receiver)
        _, samples = await scrape(api)
        assert value(samples, "hookline_queue_deliveries", state="due") == 0
        await publish(api, user_id)
        _, samples = await scrape(api)  # within the cache period: the earlier read
        assert value(samples, "hookline_queue_deliveries", state="due") == 0
        api.app.state.queue_metrics.cache_s = 0
        _, samples = await scrape(api)
        assert value(samples, "hookline_queue_deliveries", state="due") == 1


@pytest.fixture(params=["postgres", "sqlite"])
def unavailable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that cannot be opened (as in test_failures): a loopback port where nothing
    listens, or a SQLite "file" that is a directory."""
    if request.param == "postgres":
        return "postgresql+asyncpg://postgres@127.0.0.1:1/hookline"
    (tmp_path / "hookline.db").mkdir()
    return f"sqlite+aiosqlite:///{tmp_path / 'hookline.db'}"


async def test_a_scrape_while_the_database_is_down_leaves_the_queue_out(
    unavailable_url: str,
) -> None:
    async with running_api(make_settings(unavailable_url), run_worker=False) as api:
        text, samples = await scrape(api)
        assert "hookline_queue_deliveries" not in text
        assert "hookline_endpoints_disabled" not in text
        assert value(samples, "hookline_queue_scrape_errors_total") == 1
        assert (
            value(
                samples,
                "hookline_events_published_total",
                event="resume.parsed",
                outcome="enqueued",
            )
            == 0
        )
        text, samples = await scrape(api)  # the failure is remembered as a read would be
        assert value(samples, "hookline_queue_scrape_errors_total") == 1


# --- logs -------------------------------------------------------------------------------------


@contextmanager
def log_lines(formatter: logging.Formatter) -> Iterator[io.StringIO]:
    """What hookline logs at INFO and above while the block runs, formatted as it is written."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    logger = logging.getLogger("hookline")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_json_log_lines_carry_the_request_id(database_url: str) -> None:
    settings = make_settings(database_url)
    async with running_api(settings, run_worker=False) as api:

        async def boom() -> None:
            raise RuntimeError("kaboom")

        api.app.add_api_route("/test-only/boom/{thing}", boom)
        with log_lines(JsonFormatter()) as out, log_lines(TextFormatter()) as text_out:
            failed = await api.client.get("/test-only/boom/u123")
            assert failed.status_code == 500
            request_id = failed.json()["requestId"]
            assert (await api.client.get("/healthz")).status_code == 200

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert all(line["time"].endswith("Z") for line in lines)
    error = next(line for line in lines if line["logger"] == "hookline.api")
    assert error["level"] == "ERROR" and error["request_id"] == request_id
    assert "kaboom" in error["exception"]
    access = [line for line in lines if line["logger"] == "hookline.access"]
    assert [(a["method"], a["route"], a["status"]) for a in access] == [
        ("GET", "/test-only/boom/{thing}", 500),
        ("GET", "/healthz", 200),
    ]
    assert access[0]["request_id"] == request_id
    assert access[1]["request_id"] not in (None, request_id)
    assert all(isinstance(a["duration_ms"], float) for a in access)
    assert "u123" not in access[0]["message"]
    # The default text lines are readable, with the id at the end of the first line.
    text_lines = text_out.getvalue().splitlines()
    assert "GET /test-only/boom/{thing} 500" in text_out.getvalue()
    assert any(line.endswith(f"request_id={request_id}") for line in text_lines)


async def test_json_log_lines_carry_the_delivery_id(database_url: str) -> None:
    """A worker warning about one delivery (its outcome cannot be recorded: the row was
    deleted while its request was in flight) names the delivery in a field of its own."""
    settings = make_settings(database_url, poll_interval_s=0.05)
    async with running_receiver() as slow, running_api(settings) as api:
        slow.script = [{"status": 200, "delay_s": 0.3}]
        user_id, _, _ = await setup(api, slow)
        with log_lines(JsonFormatter()) as out:
            delivery_id = (await publish(api, user_id, data=PARSED))["deliveryIds"][0]
            await slow.wait_for(1)
            async with api.store.db.write() as conn:
                await conn.execute(
                    delete(deliveries).where(deliveries.c.delivery_id == delivery_id)
                )

            def warned() -> list[dict[str, Any]]:
                lines = [json.loads(line) for line in out.getvalue().splitlines()]
                return [line for line in lines if line.get("delivery_id") == delivery_id]

            async def logged() -> bool:
                return bool(warned())

            await wait_until(logged, timeout_s=10)
            await asyncio.sleep(0)
        line = warned()[0]
        assert line["logger"] == "hookline.worker" and line["level"] == "WARNING"
        assert delivery_id in line["message"]
