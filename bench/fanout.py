"""Several endpoints per user: one event fanned out to K endpoints, against events to one.

For each backend, on a database of its own (the K endpoints are K paths of the one receiver,
``/hook/0`` ... ``/hook/K-1``):

1. Publishing, with nothing delivering meanwhile (no worker runs), so that publishing's cost
   is its own: ``Store.publish`` in this process, one event a call, and ``POST /api/events``
   to ``hookline serve --no-worker``, each to a user with 1 endpoint and to a user with K.
   Events accepted and deliveries made per second, and CPU per event.
2. Delivering what was published: a fresh ``hookline worker`` drains the single-endpoint
   deliveries of step 1 (K x ``fanout_events`` events), another the fan-out ones
   (``fanout_events`` events to K endpoints), the same number of deliveries each; a third
   drains what ``POST /api/events`` made. Deliveries per second, timed from the first request
   the receiver sees to the poll that sees the last success committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bench import db, load
from bench.bare_client import EVENT
from bench.procs import Proc, free_port, log, machine_cpu_seconds, wait_http, wait_log
from hookline.store import Store

if TYPE_CHECKING:
    from bench.run import Bench

APIS = ("store_publish", "http_api")


def _per_event_ms(seconds: float, events: int) -> float | None:
    return round(1000 * seconds / events, 3) if events else None


async def _publishing(
    publish: Callable[[], Awaitable[load.Published]], api_proc: Proc | None
) -> dict[str, Any]:
    """Run one publisher and report its rates and the CPU it cost per event: this process
    (the publisher; on SQLite ``Store.publish`` writes here too), the API process, and the
    rest of the machine (mostly PostgreSQL; on a shared machine, others' work too)."""
    if api_proc is not None:
        api_proc.mark()
    machine0 = machine_cpu_seconds()
    pub = await publish()
    machine = machine_cpu_seconds() - machine0
    api = api_proc.cpu_since_mark() if api_proc is not None else 0.0
    seconds = pub.ended - pub.started
    events = pub.accepted
    return {
        "events": events,
        "deliveries": pub.count,
        "errors": pub.errors,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds, 1) if seconds > 0 else None,
        "deliveries_per_s": round(pub.count / seconds, 1) if seconds > 0 else None,
        "cpu_ms_per_event": {
            "publisher": _per_event_ms(pub.cpu_s, events),
            "api_process": _per_event_ms(api, events) if api_proc is not None else None,
            "rest_mostly_postgresql": _per_event_ms(machine - pub.cpu_s - api, events),
            "machine": _per_event_ms(machine, events),
        },
    }


def _compare(one: dict[str, Any], many: dict[str, Any], k: int, api: str) -> dict[str, Any]:
    """What publishing to K endpoints costs next to publishing to one."""
    hookline_cpu = "publisher" if api == "store_publish" else "api_process"
    cpu_one = one["cpu_ms_per_event"][hookline_cpu] or math.nan
    cpu_many = many["cpu_ms_per_event"][hookline_cpu] or math.nan
    rate_one = one["events_per_s"] or math.nan
    rate_many = many["events_per_s"] or math.nan
    return {
        "cost_ratio": round(rate_one / rate_many, 3),
        "cost_ratio_note": (
            f"events/s to 1 endpoint / events/s to {k}: what one {k}-endpoint publish costs in"
            f" single publishes ({k} would be no better than {k} publishes)"
        ),
        "share_of_single_publishes": round(rate_one / rate_many / k, 3),
        "deliveries_per_s_gain": round(
            (many["deliveries_per_s"] or math.nan) / (one["deliveries_per_s"] or math.nan), 2
        ),
        "hookline_cpu_ratio": round(cpu_many / cpu_one, 3),
        "hookline_cpu_is": hookline_cpu,
    }


async def _drain(
    bench: Bench, url: str, engine: Any, label: str, expected: dict[str, int]
) -> dict[str, Any]:
    """Start one ``hookline worker`` on a queue already holding ``expected`` deliveries (user
    id -> how many) and time it until every one is recorded as succeeded."""
    plan = bench.plan
    n = sum(expected.values())
    await load.receiver_reset(bench.receiver)
    worker = bench.start_hookline(f"fanout-{label}-worker", ["worker"], url)
    try:
        await asyncio.to_thread(wait_log, worker, " started", 60.0)
        worker.mark()
        machine0 = machine_cpu_seconds()
        deadline = time.monotonic() + plan.drain_timeout_s
        succeeded = failed = 0
        seen_at = time.time()
        for user_id, want in expected.items():
            left_s = max(0.1, deadline - time.monotonic())
            done, seen_at = await db.wait_finished(engine, user_id, want, left_s)
            succeeded += done.succeeded
            failed += done.failed
        cpu = worker.cpu_since_mark()
        machine = machine_cpu_seconds() - machine0
        peak_rss = worker.peak_rss_mib()
    finally:
        bench.procs.stop(worker)
    received = await load.receiver_count(bench.receiver)
    first_at = received["first_at"] or math.nan
    seconds = seen_at - first_at
    return {
        "n": n,
        "succeeded": succeeded,
        "failed": failed,
        "complete": succeeded == n and received["unique"] == n and received["duplicates"] == 0,
        "seconds": round(seconds, 3),
        "rate": round(succeeded / seconds, 1) if seconds > 0 else None,
        "rate_note": "succeeded / (first request received -> every success committed)",
        "receive_rate": (
            round(n / (received["last_at"] - first_at), 1)
            if received["last_at"] > first_at
            else None
        ),
        "worker_cpu_ms_per_delivery": round(1000 * cpu / succeeded, 3) if succeeded else None,
        "worker_peak_rss_mib": round(peak_rss, 1),
        "machine_cpu_ms_per_delivery": round(1000 * machine / succeeded, 3) if succeeded else None,
        "receiver": received,
    }


async def run_fanout(bench: Bench, backend: str) -> dict[str, Any]:
    plan = bench.plan
    k = plan.fanout_endpoints
    if backend == "sqlite":
        url = db.sqlite_url(bench.work / "fanout.db")
    else:
        assert bench.postgres_url is not None
        name = "hookline_bench_fanout_smoke" if bench.smoke else "hookline_bench_fanout"
        url = await db.recreate_postgres(bench.postgres_url, name)
    await bench.migrate(url)
    store: Store = db.open_store(url, bench.key)
    engine = db.writer_engine(url)
    urls = [f"{bench.receiver}/hook/{i}" for i in range(k)]
    single_n = plan.fanout_events * k  # as many deliveries as the fan-out makes
    result: dict[str, Any] = {
        "backend": backend,
        "endpoints": k,
        "concurrency": plan.http_concurrency,
        "worker": "1 x hookline worker, started on a full queue",
    }
    try:
        admin = await db.make_user_with_endpoints(store, "fanout-admin", [], [], admin=True)
        users = {
            (api, n): await db.make_user_with_endpoints(store, f"{api}-{n}", urls[:n], [EVENT])
            for api in APIS
            for n in (1, k)
        }
        conc = plan.http_concurrency

        # 1a. Store.publish, nothing delivering. The warm-up opens the pool's connections.
        one, many = users[("store_publish", 1)].id, users[("store_publish", k)].id
        await load.publish_store(store, one, plan.fanout_warmup, conc)
        log(f"fanout/{backend}: Store.publish, {single_n:,} events to 1 endpoint")
        pub_one = await _publishing(lambda: load.publish_store(store, one, single_n, conc), None)
        log(f"fanout/{backend}: drain {single_n:,} single-endpoint deliveries")
        expected = {one: plan.fanout_warmup + single_n}
        drain_single = await _drain(bench, url, engine, f"{backend}-single", expected)
        log(f"fanout/{backend}: Store.publish, {plan.fanout_events:,} events to {k} endpoints")
        pub_many = await _publishing(
            lambda: load.publish_store(store, many, plan.fanout_events, conc), None
        )
        log(f"fanout/{backend}: drain {plan.fanout_events * k:,} fan-out deliveries")
        expected = {many: plan.fanout_events * k}
        drain_fanout = await _drain(bench, url, engine, f"{backend}-fanout", expected)
        result["store_publish"] = {
            "1": pub_one,
            str(k): pub_many,
            "compare": _compare(pub_one, pub_many, k, "store_publish"),
        }
        result["drain_single"] = drain_single
        result["drain_fanout"] = drain_fanout
        result["drain_fanout_vs_single"] = round(
            (drain_fanout["rate"] or math.nan) / (drain_single["rate"] or math.nan), 3
        )

        # 1b. POST /api/events to `serve --no-worker`, nothing delivering.
        one, many = users[("http_api", 1)].id, users[("http_api", k)].id
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = bench.start_hookline(
            f"fanout-{backend}-serve", ["serve", "--no-worker", "--port", str(port)], url
        )
        try:
            await asyncio.to_thread(wait_http, base + "/healthz", server, 60.0)
            await load.publish_http(base, admin.token, one, plan.fanout_warmup, conc)
            n_http = plan.fanout_http_events
            log(f"fanout/{backend}: POST /api/events, {n_http:,} events to 1 endpoint")
            http_one = await _publishing(
                lambda: load.publish_http(base, admin.token, one, n_http, conc), server
            )
            log(f"fanout/{backend}: POST /api/events, {n_http:,} events to {k} endpoints")
            http_many = await _publishing(
                lambda: load.publish_http(base, admin.token, many, n_http, conc), server
            )
        finally:
            bench.procs.stop(server)
        result["http_api"] = {
            "1": http_one,
            str(k): http_many,
            "compare": _compare(http_one, http_many, k, "http_api"),
        }
        log(f"fanout/{backend}: drain what POST /api/events made")
        expected = {one: plan.fanout_warmup + n_http, many: n_http * k}
        result["drain_http"] = await _drain(bench, url, engine, f"{backend}-http", expected)
        return result
    finally:
        await store.close()
        await engine.dispose()
        await db.dispose_readers()
        bench.procs.stop_all(keep=("receiver",))
        if backend == "postgres" and not bench.keep:
            with contextlib.suppress(Exception):
                await db.drop_postgres(url)
