"""Cheap when quiet, graceful when overloaded (``--only quiet``; part of ``make bench``).

For each backend (SQLite and PostgreSQL), on a database of its own:

1. Idle: ``hookline serve`` (with its worker) and a ``hookline worker`` beside it, both left
   alone; CPU share of each over ``quiet_idle_s`` once they have settled. Then how soon a
   delivery published by another process (this one, ``Store.publish``) reaches the receiver.
2. Trickle against flat out, with ``serve --no-worker`` + 1 ``worker``: CPU per event of the
   API and per delivery of the worker at ``latency_rate`` events/s (HTTP), against the API's
   CPU per event publishing flat out (``http_concurrency`` in flight) and the worker's per
   delivery draining ``quiet_drain_n`` seeded deliveries.
3. PostgreSQL: the same trickle with 2 workers instead of 1: deliveries per second and p99.
4. PostgreSQL: new connections (``pg_stat_database.sessions``) per 1,000 requests in steady
   state (after warm-up rounds until one opens none: the pool opens a connection the first
   time that many requests overlap and keeps it), at several concurrencies up to twice the
   API's admission limit, with the ``application_name`` of whoever holds the new sessions.
5. PostgreSQL: overload. ``quiet_overload_publishers`` concurrent publishers (honouring
   ``Retry-After``) while the benchmark holds ``LOCK TABLE deliveries IN EXCLUSIVE MODE`` for
   ``quiet_stall_s``: p99 of the accepted requests, how many were refused with 503, the
   accept rate before and after the stall, and whether every accepted event's deliveries exist.
6. The latency case (``latency_rate`` events/s for ``latency_s``) while a CPU hog (a Python
   busy loop) takes one core: p50, p99 and max.

Every process here runs with hookline's default settings (the rest of the benchmark polls
every 0.05 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import asyncpg
from sqlalchemy import select
from sqlalchemy.engine import make_url

from bench import db, load, seed
from bench.bare_client import EVENT, event_data
from bench.procs import Proc, cpu_seconds, free_port, log, run_slices, wait_http, wait_log
from bench.stats import summary_ms
from hookline.config import Settings
from hookline.store.schema import deliveries

if TYPE_CHECKING:
    from bench.run import Bench

#: hookline's default: these parts measure the defaults (the rest of the benchmark's processes
#: poll every 0.05 s).
DEFAULT_POLL_INTERVAL_S = "1"
HOG = [sys.executable, "-c", "while True: pass"]
#: The idle baseline: a process that only wakes once a second. What it costs is what one
#: wake-up a second costs on this machine (on small VMs, far more than the work it does).
SLEEPER = [sys.executable, "-c", "import time\nwhile True: time.sleep(1)"]
#: The trickle's baseline: a process that wakes 200 times a second and does nothing else.
TICKER = [sys.executable, "-c", "import time\nwhile True: time.sleep(0.005)"]


def _share(proc: Proc, cpu0: float, seconds: float) -> float:
    return round(100 * (cpu_seconds(proc.pid) - cpu0) / seconds, 3)


async def _settled(proc: Proc, timeout_s: float = 60.0) -> None:
    """Until a whole second passes in which ``proc`` used under 2 % of a core."""
    deadline = time.monotonic() + timeout_s
    used = cpu_seconds(proc.pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        now = cpu_seconds(proc.pid)
        if now - used < 0.02:
            return
        used = now
    raise RuntimeError(f"{proc.name} did not settle within {timeout_s:g} s")


async def _start_serve(bench: Bench, name: str, url: str, *args: str) -> tuple[Proc, str]:
    port = free_port()
    proc = bench.start_hookline(name, ["serve", "--port", str(port), *args], url)
    base = f"http://127.0.0.1:{port}"
    await asyncio.to_thread(wait_http, base + "/healthz", proc, 60.0)
    return proc, base


async def _start_worker(bench: Bench, name: str, url: str) -> Proc:
    proc = bench.start_hookline(name, ["worker"], url)
    await asyncio.to_thread(wait_log, proc, " started", 60.0)
    return proc


async def idle(bench: Bench, backend: str, url: str) -> dict[str, Any]:
    """Idle CPU of serve and worker, then pick-up latency of a delivery from elsewhere."""
    plan = bench.plan
    serve, _ = await _start_serve(bench, f"quiet-{backend}-idle-serve", url)
    worker = await _start_worker(bench, f"quiet-{backend}-idle-worker", url)
    sleeper = bench.procs.start(f"quiet-{backend}-idle-sleeper", SLEEPER)
    try:
        user = await db.make_user(url, bench.key, "idle", bench.hook_url)
        await _settled(serve)
        await _settled(worker)
        procs = (serve, worker, sleeper)
        cpu0 = {p.name: cpu_seconds(p.pid) for p in procs}
        slices0 = {p.name: run_slices(p.pid) for p in procs}
        started = time.monotonic()
        await asyncio.sleep(plan.quiet_idle_s)
        seconds = time.monotonic() - started
        result: dict[str, Any] = {"seconds": round(seconds, 1)}
        for who, proc in (("serve", serve), ("worker", worker), ("sleeper", sleeper)):
            result[f"{who}_pct_of_core"] = _share(proc, cpu0[proc.name], seconds)
            woke = run_slices(proc.pid) - slices0[proc.name]
            result[f"{who}_wakeups_per_s"] = round(woke / seconds, 2)
        result["sleeper_note"] = "a process that only sleeps 1 s at a time: the baseline"
        await load.receiver_reset(bench.receiver)
        store = db.open_store(url, bench.key)
        lags = []
        try:
            for i in range(plan.quiet_pickups):
                sent = time.time()
                published = await store.publish(user.id, EVENT, event_data(i))
                [delivery_id] = published.delivery_ids
                deadline = time.monotonic() + 5
                arrived = None
                while arrived is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.002)
                    arrived = (await load.receiver_arrivals(bench.receiver)).get(delivery_id)
                if arrived is not None:
                    lags.append((arrived - sent) * 1000)
                await asyncio.sleep(0.5)  # idle again before the next
        finally:
            await store.close()
        result["pickup"] = summary_ms(lags)
        result["pickup_note"] = "Store.publish in the benchmark's process -> receipt"
        return result
    finally:
        bench.procs.stop(sleeper)
        bench.procs.stop(worker)
        bench.procs.stop(serve)


async def _trickle(
    bench: Bench, url: str, base: str, token: str, serve: Proc, workers: list[Proc]
) -> dict[str, Any]:
    from bench.run import latency

    engine = db.writer_engine(url)
    ticker = bench.procs.start(f"{serve.name}-ticker", TICKER)
    try:
        await asyncio.sleep(0.5)
        slices0 = {p.name: run_slices(p.pid) for p in (serve, *workers, ticker)}
        ticker_cpu0 = cpu_seconds(ticker.pid)
        result = await latency(bench, "http_api", url, base, token, [serve, *workers], engine)
        woke = {p.name: run_slices(p.pid) - slices0[p.name] for p in (serve, *workers, ticker)}
        ticker_cpu = cpu_seconds(ticker.pid) - ticker_cpu0
    finally:
        bench.procs.stop(ticker)
        await engine.dispose()
    published, delivered = result["published"], result["succeeded"]
    cpu = result["cpu_s"]
    worker_cpu = sum(cpu[p.name] for p in workers)
    worker_wakeups = sum(woke[p.name] for p in workers)
    elapsed = published / result["achieved_rate"] if result.get("achieved_rate") else None
    return {
        # What a wake-up costs here, from a process that only wakes 200 times a second.
        "baseline_ms_per_wakeup": round(1000 * ticker_cpu / woke[ticker.name], 4)
        if woke[ticker.name]
        else None,
        "api_wakeups_per_event": round(woke[serve.name] / published, 2) if published else None,
        "worker_wakeups_per_delivery": round(worker_wakeups / delivered, 2) if delivered else None,
        "rate_offered": result["offered_rate"],
        "published": published,
        "delivered": delivered,
        "delivered_per_s": round(delivered / elapsed, 1) if elapsed else None,
        "p50_ms": result.get("p50_ms"),
        "p99_ms": result.get("p99_ms"),
        "max_ms": result.get("max_ms"),
        "api_cpu_ms_per_event": round(1000 * cpu[serve.name] / published, 3) if published else None,
        "worker_cpu_ms_per_delivery": round(1000 * worker_cpu / delivered, 3)
        if delivered
        else None,
        "cpu_s": cpu,
    }


async def trickle_and_drain(bench: Bench, backend: str, url: str, token: str) -> dict[str, Any]:
    """serve --no-worker + 1 worker (then 2 on PostgreSQL): trickle, flat out, drain, hog."""
    plan = bench.plan
    out: dict[str, Any] = {}
    serve, base = await _start_serve(bench, f"quiet-{backend}-serve", url, "--no-worker")
    workers = [await _start_worker(bench, f"quiet-{backend}-worker1", url)]
    engine = db.writer_engine(url)
    try:
        status, body = await load.http_json(
            "POST", base + "/api/webhooks/config", token, {"url": bench.hook_url}
        )
        if status != 200:
            raise RuntimeError(f"POST /api/webhooks/config answered {status}: {body}")
        log(f"quiet {backend}: trickle at {plan.latency_rate:g}/s, 1 worker")
        out["trickle_1_worker"] = await _trickle(bench, url, base, token, serve, workers)

        log(f"quiet {backend}: publishing flat out, {plan.http_concurrency} in flight")
        user = await db.make_user(url, bench.key, "flat-out", bench.hook_url)
        serve.mark()
        pub = await load.publish_http(
            base, token, user.id, plan.quiet_flat_out_n, plan.http_concurrency
        )
        api_cpu = serve.cpu_since_mark()
        await db.wait_finished(engine, user.id, pub.count, plan.drain_timeout_s)
        out["flat_out"] = {
            "events": pub.accepted,
            "errors": pub.errors,
            "events_per_s": round(pub.accepted / (pub.ended - pub.started), 1),
            "api_cpu_ms_per_event": round(1000 * api_cpu / pub.accepted, 3)
            if pub.accepted
            else None,
        }
        log(f"quiet {backend}: drain of {plan.quiet_drain_n:,} seeded deliveries, 1 worker")
        out["drain"] = await _drain(bench, url, workers, engine)

        log(f"quiet {backend}: trickle while a CPU hog takes one core")
        hog = bench.procs.start(f"quiet-{backend}-hog", HOG)
        try:
            await asyncio.sleep(1.0)
            out["trickle_with_hog"] = await _trickle(bench, url, base, token, serve, workers)
        finally:
            bench.procs.stop(hog)

        if backend == "postgres":
            workers.append(await _start_worker(bench, f"quiet-{backend}-worker2", url))
            log(f"quiet {backend}: trickle at {plan.latency_rate:g}/s, 2 workers")
            out["trickle_2_workers"] = await _trickle(bench, url, base, token, serve, workers)
            # The API's pool alone: the workers' pools (4 connections each, never closed) would
            # count here while they fill under the deliveries this load makes.
            for worker in workers:
                bench.procs.stop(worker)
            log(f"quiet {backend}: new connections per 1,000 requests (API only)")
            out["connections"] = await connections(bench, url, base, token)
    finally:
        await engine.dispose()
        for proc in [*workers, serve]:
            bench.procs.stop(proc)
    trickle, flat, drained = out["trickle_1_worker"], out["flat_out"], out["drain"]
    out["ratios"] = {
        "api_trickle_over_flat_out": _ratio(
            trickle["api_cpu_ms_per_event"], flat["api_cpu_ms_per_event"]
        ),
        "worker_trickle_over_drain": _ratio(
            trickle["worker_cpu_ms_per_delivery"], drained["worker_cpu_ms_per_delivery"]
        ),
    }
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


async def _drain(bench: Bench, url: str, workers: list[Proc], engine: Any) -> dict[str, Any]:
    """The worker alone draining seeded deliveries: its CPU per delivery."""
    plan = bench.plan
    user = await db.make_user(url, bench.key, "quiet-drain", bench.hook_url)
    await load.receiver_reset(bench.receiver)
    for proc in workers:
        proc.mark()
    started = time.time()
    await seed.seed_deliveries(
        engine,
        user_id=user.id,
        endpoint_id=user.endpoint_id,
        url=bench.hook_url,
        n=plan.quiet_drain_n,
        finished=False,
    )
    done, seen_at = await db.wait_finished(
        engine, user.id, plan.quiet_drain_n, plan.drain_timeout_s
    )
    cpu = sum(p.cpu_since_mark() for p in workers)
    seconds = seen_at - started
    return {
        "n": plan.quiet_drain_n,
        "delivered": done.succeeded,
        "rate": round(done.succeeded / seconds, 1) if seconds > 0 else None,
        "worker_cpu_ms_per_delivery": round(1000 * cpu / done.succeeded, 3)
        if done.succeeded
        else None,
    }


#: At most this many warm-up rounds before the connection count (each of at least 500 requests).
WARM_ROUNDS_MAX = 6
#: Warm-up ends after this many rounds in a row that opened no connection.
WARM_QUIET_ROUNDS = 2


@dataclass
class SessionCount:
    """PostgreSQL's count of sessions opened into a database so far, when it was read (the
    server's clock), and the sessions connected then by ``application_name``."""

    opened: int
    at: Any
    held: Counter[str]


async def _sessions(url: str, since: Any = None) -> tuple[SessionCount, Counter[str]]:
    """The count now, and the sessions connected now that started after ``since``, by
    ``application_name`` (hookline's pool: ``hookline``; its listeners: ``hookline-listen``;
    this benchmark's own connections: empty)."""
    conn = await asyncpg.connect(db._plain_dsn(url, "postgres"))
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        name = make_url(url).database
        value = await conn.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = $1", name
        )
        rows = await conn.fetch(
            "SELECT application_name, backend_start FROM pg_stat_activity "
            "WHERE datname = $1 AND backend_type = 'client backend'",
            name,
        )
        at = await conn.fetchval("SELECT now()")
    finally:
        await conn.close()
    held = Counter(row["application_name"] or "(unnamed)" for row in rows)
    new = Counter(
        row["application_name"] or "(unnamed)"
        for row in rows
        if since is not None and row["backend_start"] > since
    )
    return SessionCount(int(value or 0), at, held), new


async def connections(bench: Bench, url: str, base: str, token: str) -> dict[str, Any]:
    """New PostgreSQL connections per 1,000 POST /api/events, once warm, by concurrency; with
    who holds the sessions, so that a new one can be told apart from hookline's pool."""
    plan = bench.plan
    # 16 for code from before the admission limit existed (the old default pool was 20).
    limit = getattr(Settings(secret_keys=[bench.key]), "max_concurrent_requests", 16)
    user = await db.make_user(url, bench.key, "connections", bench.hook_url)
    out: dict[str, Any] = {"max_concurrent_requests": limit}
    for concurrency in sorted({limit // 2, limit, 2 * limit}):
        # Warm until steady: the pool opens a connection the first time that many requests
        # overlap, and keeps it. At a low concurrency the moment can take a thousand requests
        # to come (in the 15:28 run, the API held 4 connections after a warm-up of 500 at 8
        # in flight, and the measured 1,000 opened a fifth, which stayed; at 19:00 one quiet
        # round was not enough either: the measured round grew the pool from 4 to 8). So
        # warm in rounds until two in a row open nothing (at most six), and count what the
        # warm-up opened too.
        warm_opened, rounds, quiet = 0, 0, 0
        last, _ = await _sessions(url)
        while rounds < WARM_ROUNDS_MAX and quiet < WARM_QUIET_ROUNDS:
            rounds += 1
            await load.publish_http(base, token, user.id, max(500, 20 * concurrency), concurrency)
            await asyncio.sleep(1.5)  # PostgreSQL's statistics catch up
            now, _ = await _sessions(url)
            warm_opened += now.opened - last.opened
            quiet = quiet + 1 if now.opened == last.opened else 0
            last = now
        before, _ = await _sessions(url)
        pub = await load.publish_http(base, token, user.id, plan.quiet_requests, concurrency)
        await asyncio.sleep(1.5)
        after, new = await _sessions(url, since=before.at)
        opened = after.opened - before.opened
        out[str(concurrency)] = {
            "requests": pub.accepted + pub.errors,
            "errors": pub.errors,
            "warm_up_rounds": rounds,
            "warm_up_new_connections": warm_opened,
            "new_connections": opened,
            "per_1000_requests": round(1000 * opened / max(1, pub.accepted + pub.errors), 2),
            # Who holds the new sessions still connected; the rest came and went meanwhile.
            "new_still_connected": dict(new),
            "new_gone": opened - sum(new.values()),
            "held_before": dict(before.held),
            "held_after": dict(after.held),
        }
    return out


async def overload(bench: Bench, url: str, token: str) -> dict[str, Any]:
    """Many publishers while the deliveries table is locked: shedding, and recovery."""
    plan = bench.plan
    user = await db.make_user(url, bench.key, "overload", bench.hook_url)
    serve, base = await _start_serve(bench, "quiet-postgres-overload-serve", url)
    body = {"userId": user.id, "event": EVENT, "data": event_data(0)}
    answers: list[tuple[float, float, int, list[str], bool]] = []

    async def publisher(session: aiohttp.ClientSession, until: float) -> None:
        while time.monotonic() < until:
            sent = time.monotonic()
            try:
                async with session.post(f"{base}/api/events", json=body) as response:
                    payload = await response.json()
                    retry_after = response.headers.get("Retry-After")
                    ids = payload.get("deliveryIds", []) if response.status == 202 else []
                    answers.append(
                        (sent, time.monotonic() - sent, response.status, ids, bool(retry_after))
                    )
            except (aiohttp.ClientError, TimeoutError, ValueError):
                answers.append((sent, time.monotonic() - sent, 0, [], False))
                continue
            if response.status == 503:
                await asyncio.sleep(float(retry_after or 1))

    try:
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(
            headers=headers,
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=60),
        ) as session:
            warm = time.monotonic() + 1.0
            await asyncio.gather(*(publisher(session, warm) for _ in range(16)))
            answers.clear()
            started = time.monotonic()
            until = started + 2.0 + plan.quiet_stall_s + 4.0
            load_tasks = [
                asyncio.create_task(publisher(session, until))
                for _ in range(plan.quiet_overload_publishers)
            ]
            await asyncio.sleep(2.0)
            locker = await asyncpg.connect(db._plain_dsn(url, str(make_url(url).database)))
            try:
                async with locker.transaction():
                    await locker.execute("LOCK TABLE deliveries IN EXCLUSIVE MODE")
                    stall_began = time.monotonic()
                    await asyncio.sleep(plan.quiet_stall_s)
                stall_ended = time.monotonic()
            finally:
                await locker.close()
            await asyncio.gather(*load_tasks)
    finally:
        bench.procs.stop(serve)
    accepted = [a for a in answers if a[2] == 202]
    refused = [a for a in answers if a[2] != 202]
    seconds = [a[1] * 1000 for a in accepted]
    ids = {i for a in accepted for i in a[3]}
    engine = db.writer_engine(url)
    try:
        async with engine.connect() as conn:
            stored = {r.delivery_id for r in await conn.execute(select(deliveries.c.delivery_id))}
    finally:
        await engine.dispose()

    def rate(lo: float, hi: float) -> float:
        return round(sum(1 for a in accepted if lo <= a[0] < hi) / (hi - lo), 1)

    return {
        "publishers": plan.quiet_overload_publishers,
        "stall_s": plan.quiet_stall_s,
        "requests": len(answers),
        "accepted": len(accepted),
        "refused_503": sum(1 for a in refused if a[2] == 503),
        "refused_503_with_retry_after": sum(1 for a in refused if a[2] == 503 and a[4]),
        "other_failures": sum(1 for a in refused if a[2] != 503),
        "accepted_latency": summary_ms(seconds),
        "accepted_per_s_before_stall": rate(started, stall_began),
        "accepted_per_s_during_stall": rate(stall_began, stall_ended),
        "accepted_per_s_from_1s_after_stall": rate(stall_ended + 1.0, until),
        "accepted_lost": len(ids - stored),
    }


async def run_quiet(bench: Bench) -> dict[str, Any]:
    """Every part above, on each backend the run has."""
    results: dict[str, Any] = {}
    backends = ["sqlite"] + (["postgres"] if bench.postgres_url else [])
    env = dict(bench.procs.env)
    # hookline's defaults, not the faster poll the rest of the benchmark runs with.
    bench.procs.env["HOOKLINE_POLL_INTERVAL_S"] = DEFAULT_POLL_INTERVAL_S
    for backend in backends:
        try:
            if backend == "sqlite":
                url = db.sqlite_url(bench.work / "quiet.db")
            else:
                assert bench.postgres_url is not None
                url = await db.recreate_postgres(bench.postgres_url, "hookline_bench_quiet")
            await bench.migrate(url)
            admin = json.loads(
                await bench.cli(
                    "users create", ["users", "create", "quiet-admin", "--admin", "--json"], url
                )
            )
            out: dict[str, Any] = {}
            log(f"quiet {backend}: idle serve and worker, {bench.plan.quiet_idle_s:g} s")
            out["idle"] = await idle(bench, backend, url)
            out.update(await trickle_and_drain(bench, backend, url, admin["token"]))
            if backend == "postgres":
                log("quiet postgres: overload against a locked deliveries table")
                out["overload"] = await overload(bench, url, admin["token"])
            results[backend] = out
        except Exception as exc:
            if bench.smoke:
                raise
            log(f"quiet/{backend} failed: {exc!r}")
            results[backend] = {"error": repr(exc)}
        finally:
            await db.dispose_readers()
            if backend == "postgres" and not bench.keep:
                with contextlib.suppress(Exception):
                    await db.drop_postgres(url)
    bench.procs.env = env
    return results


def quiet_rows(quiet: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Rows of the benchmark's table: (figure, value, target, verdict)."""

    def fmt(value: Any, digits: int = 2) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    def verdict(met: bool | None) -> str:
        return "" if met is None else ("met" if met else "MISSED")

    rows: list[tuple[str, str, str, str]] = []
    for backend, out in quiet.items():
        if "error" in out:
            rows.append((f"quiet {backend}", "error", "", out["error"][:60]))
            continue
        idle_ = out["idle"]
        for who in ("serve", "worker"):
            pct = idle_[f"{who}_pct_of_core"]
            rows.append(
                (f"{backend}: idle {who}, % of a core", fmt(pct), "<= 0.5", verdict(pct <= 0.5))
            )
            wakeups = fmt(idle_.get(f"{who}_wakeups_per_s"))
            rows.append((f"{backend}: idle {who}, wake-ups/s", wakeups, "", ""))
        if "sleeper_pct_of_core" in idle_:
            rows.append(
                (
                    f"{backend}: baseline, a 1 s sleep loop: % of a core (wake-ups/s)",
                    f"{fmt(idle_['sleeper_pct_of_core'], 3)}"
                    f" ({fmt(idle_['sleeper_wakeups_per_s'])})",
                    "",
                    "",
                )
            )
        pick = idle_["pickup"].get("p50_ms")
        rows.append(
            (
                f"{backend}: pick-up from another process, p50 / max ms",
                f"{fmt(pick, 1)} / {fmt(idle_['pickup'].get('max_ms'), 1)}",
                "<= 10",
                verdict(pick is not None and pick <= 10),
            )
        )
        trickle, ratios = out["trickle_1_worker"], out["ratios"]
        rows.append(
            (
                f"{backend}: API cpu/event, trickle vs flat out (ms)",
                f"{fmt(trickle['api_cpu_ms_per_event'])} vs "
                f"{fmt(out['flat_out']['api_cpu_ms_per_event'])} = "
                f"{fmt(ratios['api_trickle_over_flat_out'])} x",
                "<= 2 x",
                verdict((ratios["api_trickle_over_flat_out"] or 99) <= 2),
            )
        )
        rows.append(
            (
                f"{backend}: worker cpu/delivery, trickle vs drain (ms)",
                f"{fmt(trickle['worker_cpu_ms_per_delivery'])} vs "
                f"{fmt(out['drain']['worker_cpu_ms_per_delivery'])} = "
                f"{fmt(ratios['worker_trickle_over_drain'])} x",
                "<= 2 x",
                verdict((ratios["worker_trickle_over_drain"] or 99) <= 2),
            )
        )
        rows.append(
            (
                f"{backend}: trickle wake-ups per event, API / worker (one costs ms)",
                f"{fmt(trickle.get('api_wakeups_per_event'))} / "
                f"{fmt(trickle.get('worker_wakeups_per_delivery'))} "
                f"({fmt(trickle.get('baseline_ms_per_wakeup'), 3)})",
                "",
                "",
            )
        )
        hog = out["trickle_with_hog"]
        rows.append(
            (
                f"{backend}: {fmt(hog['rate_offered'], 0)}/s with a CPU hog, p50/p99/max ms",
                f"{fmt(hog['p50_ms'], 1)} / {fmt(hog['p99_ms'], 1)} / {fmt(hog['max_ms'], 1)}",
                "p99 <= 50",
                verdict((hog["p99_ms"] or 1e9) <= 50),
            )
        )
        if "trickle_2_workers" in out:
            one, two = out["trickle_1_worker"], out["trickle_2_workers"]
            rows.append(
                (
                    f"{backend}: trickle 1 vs 2 workers, delivered/s, p99 ms",
                    f"{fmt(one['delivered_per_s'], 0)} vs {fmt(two['delivered_per_s'], 0)}/s, "
                    f"{fmt(one['p99_ms'], 1)} vs {fmt(two['p99_ms'], 1)} ms",
                    "2 no worse",
                    "",
                )
            )
        if "connections" in out:
            conn = out["connections"]
            per = {k: v["per_1000_requests"] for k, v in conn.items() if isinstance(v, dict)}
            rows.append(
                (
                    f"{backend}: new connections per 1,000 requests, by concurrency",
                    ", ".join(f"{k}: {fmt(v, 1)}" for k, v in per.items()),
                    "0",
                    verdict(all(v == 0 for v in per.values())),
                )
            )
        if "overload" in out:
            over = out["overload"]
            p99 = over["accepted_latency"].get("p99_ms")
            rows.append(
                (
                    f"{backend}: overload, {over['publishers']} publishers, "
                    f"{fmt(over['stall_s'], 0)} s lock: accepted p99 ms",
                    f"{fmt(p99, 0)} ({over['accepted']:,} accepted, "
                    f"{over['refused_503']:,} refused 503, {over['accepted_lost']} lost)",
                    "<= 1000",
                    verdict((p99 or 1e9) <= 1000 and over["accepted_lost"] == 0),
                )
            )
            rows.append(
                (
                    f"{backend}: overload, accepted/s before / during / after the stall",
                    f"{fmt(over['accepted_per_s_before_stall'], 0)} / "
                    f"{fmt(over['accepted_per_s_during_stall'], 0)} / "
                    f"{fmt(over['accepted_per_s_from_1s_after_stall'], 0)}",
                    "",
                    "",
                )
            )
    return rows
