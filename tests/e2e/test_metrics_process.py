"""Metrics and logs of real processes: `hookline worker --metrics-port` serves its own metrics on
127.0.0.1, and with HOOKLINE_LOG_FORMAT=json every line `hookline worker` and `hookline serve`
write to stderr (uvicorn's included) is one JSON object."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hookline.store import Store
from tests.e2e.test_worker_process import statuses, worker_env
from tests.integration.test_publish import EXAMPLE_DATA
from tests.support import TEST_KEY, Receiver, free_port, make_settings, running_receiver, wait_until

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-c", "from hookline.cli import main; main()"]


def samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a log file, each of which must be a JSON object."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines and all(isinstance(line, dict) for line in lines)
    return lines


async def test_a_worker_serves_its_metrics_on_loopback(
    database_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    settings = make_settings(database_url)
    store = Store(settings)
    port = free_port()
    log = tmp_path / "worker.log"
    try:
        async with running_receiver() as refusing:
            refusing.default_status = 500
            ok_user, _, _ = await store.create_user("ok", False)
            bad_user, _, _ = await store.create_user("bad", False)
            await store.save_config(ok_user.id, receiver.url, True, None, list(EXAMPLE_DATA))
            await store.save_config(bad_user.id, refusing.url, True, None, list(EXAMPLE_DATA))
            data = EXAMPLE_DATA["resume.parsed"]
            for _ in range(3):
                await store.publish(ok_user.id, "resume.parsed", data)
            await store.publish(bad_user.id, "resume.parsed", data)

            env = worker_env(settings, HOOKLINE_LOG_FORMAT="json")
            args = ["worker", "--metrics-port", str(port)]
            with log.open("wb") as err:
                proc = await asyncio.create_subprocess_exec(*CLI, *args, env=env, stderr=err)
            try:

                async def all_final() -> bool:
                    counts = await statuses(store)
                    return counts["succeeded"] == 3 and counts["failed"] == 1

                await wait_until(all_final, timeout_s=60, every_s=0.1)
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                    response = await client.get("/metrics")
                assert response.status_code == 200
                proc.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(proc.wait(), timeout=20) == 0
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    finally:
        await store.close()

    found = samples(response.text)
    attempts = 1 + len([0.1, 0.1, 0.1])  # worker_env's HOOKLINE_RETRY_DELAYS_S
    event = frozenset({("event", "resume.parsed"), ("outcome", "succeeded")})
    assert found[("hookline_deliveries_finished_total", event)] == 3
    event = frozenset({("event", "resume.parsed"), ("outcome", "failed")})
    assert found[("hookline_deliveries_finished_total", event)] == 1
    event = frozenset({("event", "resume.parsed"), ("outcome", "http_status")})
    assert found[("hookline_delivery_attempts_total", event)] == attempts
    assert found[("hookline_worker_record_batch_size_sum", frozenset())] == 3 + attempts
    for state in ("due", "scheduled", "in_flight"):
        assert found[("hookline_queue_deliveries", frozenset({("state", state)}))] == 0
    assert ("process_cpu_seconds_total", frozenset()) in found
    for private in (ok_user.id, bad_user.id, receiver.url, refusing.url, str(receiver.port)):
        assert private not in response.text

    lines = json_lines(log)
    messages = [(line["logger"], line["message"]) for line in lines]
    assert ("hookline.metrics", f"metrics on http://127.0.0.1:{port}/metrics") in messages
    assert any(name == "hookline.worker" and "started" in text for name, text in messages)


def test_serve_writes_json_lines_with_its_own_access_log(
    sqlite_template: Path, tmp_path: Path
) -> None:
    db = tmp_path / "hookline.db"
    db.write_bytes(sqlite_template.read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    env.update(
        HOOKLINE_ENV="development",
        HOOKLINE_DATABASE_URL=f"sqlite+aiosqlite:///{db}",
        HOOKLINE_SECRET_KEYS=TEST_KEY,
        HOOKLINE_LOG_FORMAT="json",
    )
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [*CLI, "serve", "--no-worker", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,  # the first start's admin token
            stderr=err,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert httpx.get(f"{base}/api/webhooks/logs/zq-log-7").status_code == 401
        metrics = httpx.get(f"{base}/metrics")
        assert metrics.status_code == 200
        proc.terminate()
        proc.wait(20)  # uvicorn re-raises SIGTERM once it has shut down: no exit status to check
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    route = frozenset(
        {("method", "GET"), ("route", "/api/webhooks/logs/{log_id}"), ("status", "401")}
    )
    assert samples(metrics.text)[("hookline_http_request_duration_seconds_count", route)] == 1
    lines = json_lines(log)
    assert any(line["logger"] == "uvicorn.error" for line in lines)  # "Uvicorn running on ..."
    assert not any(line["logger"] == "uvicorn.access" for line in lines)
    access = [line for line in lines if line["logger"] == "hookline.access"]
    denied = next(line for line in access if line["status"] == 401)
    assert denied["method"] == "GET" and denied["route"] == "/api/webhooks/logs/{log_id}"
    assert denied["request_id"] and denied["duration_ms"] >= 0
    assert "zq-log-7" not in log.read_text()
