"""The front door: how fast the API accepts events, apart from delivering them.

For each backend, on a database of its own, against ``hookline serve --no-worker`` (the API
alone, as publishers meet it; with ``frontdoor_serve_workers`` > 1, that many API processes
sharing the port), whose user's webhook points at the receiver (deliveries are stored, and
nothing sends them):

1. ``POST /api/events``, one event per request, ``frontdoor_concurrency`` (32) in flight over
   keep-alive connections: requests accepted per second, each request's latency (p50, p99,
   max), the API processes' CPU per accepted event, and on PostgreSQL the connections the
   server opened (``pg_stat_database.sessions``) per 1,000 requests;
2. the same with an ``Idempotency-Key`` on every request (each its own key);
3. ``POST /api/events/batch`` with ``frontdoor_batch`` (1,000) events per request,
   ``frontdoor_batch_concurrency`` requests in flight: events accepted per second, and CPU
   per event;
4. the mix: ``frontdoor_mix_clients`` (200) clients for ``frontdoor_mix_s`` (30) seconds, each
   looping over publish (``POST /api/events``, admin token), logs (``GET /api/webhooks/logs``),
   stats (``GET /api/webhooks/stats``) and config (``GET /api/webhooks/config``), the last
   three with the token of a user of its own (whose logs hold only what the mix publishes):
   requests per second, answers other than 2xx counted by status, each route's latency (p50,
   p99, max), API CPU per request and on PostgreSQL the
   connections opened per 1,000 requests.

Rates are reported as ratios to the bare client measured in the same run (``bench.run``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import aiohttp
import asyncpg
from sqlalchemy.engine import make_url

from bench import db
from bench.bare_client import EVENT, event_data
from bench.procs import Proc, free_port, log, machine_cpu_seconds, tree_cpu_seconds, wait_http
from bench.stats import summary_ms

if TYPE_CHECKING:
    from bench.run import Bench


class Sessions:
    """Connections PostgreSQL has accepted into the database so far, read through one
    connection of its own opened before anything is measured (so it is not counted)."""

    def __init__(self, conn: asyncpg.Connection | None) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, url: str) -> Sessions:
        if url.startswith("sqlite"):
            return cls(None)
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn)
        await conn.execute("SELECT 1")
        await asyncio.sleep(1.2)  # its own session is counted once it has been idle a moment
        return cls(conn)

    async def count(self) -> int | None:
        if self.conn is None:
            return None
        await self.conn.execute("SELECT pg_stat_clear_snapshot()")
        value = await self.conn.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        )
        return int(value)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


async def _singles(
    base: str, token: str, user_id: str, n: int, concurrency: int, keyed: bool, first: int
) -> dict[str, Any]:
    """POST /api/events ``n`` times, ``concurrency`` in flight; latencies in ms."""
    latencies: list[float] = []
    errors = 0
    accepted = 0
    numbers = iter(range(first, first + n))
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout
    ) as session:

        async def lane() -> None:
            nonlocal errors, accepted
            for i in numbers:
                extra = {"Idempotency-Key": f"bench-{i}"} if keyed else None
                body = {"userId": user_id, "event": EVENT, "data": event_data(i)}
                started = time.perf_counter()
                try:
                    async with session.post(
                        base + "/api/events", json=body, headers=extra
                    ) as response:
                        await response.read()
                        ok = response.status == 202
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                latencies.append((time.perf_counter() - started) * 1000)
                if ok:
                    accepted += 1
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {
        "requests": n,
        "accepted": accepted,
        "errors": errors,
        "seconds": round(seconds, 3),
        "rate": round(accepted / seconds, 1) if seconds > 0 else None,
        "latency": summary_ms(latencies),
    }


async def _batches(
    base: str, token: str, user_id: str, batches: int, size: int, concurrency: int, first: int
) -> dict[str, Any]:
    """POST /api/events/batch ``batches`` times with ``size`` events each."""
    accepted = 0
    errors = 0
    latencies: list[float] = []
    numbers = iter(range(batches))
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout
    ) as session:

        async def lane() -> None:
            nonlocal accepted, errors
            for b in numbers:
                lo = first + b * size
                events = [
                    {"userId": user_id, "event": EVENT, "data": event_data(i)}
                    for i in range(lo, lo + size)
                ]
                started = time.perf_counter()
                async with session.post(
                    base + "/api/events/batch", json={"events": events}
                ) as response:
                    body = await response.read()
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status != 200:
                    errors += size
                    continue
                results = json.loads(body)["results"]
                good = sum(1 for r in results if r["status"] == 202 and r["deliveryIds"])
                accepted += good
                errors += size - good

        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {
        "requests": batches,
        "events_per_request": size,
        "accepted": accepted,
        "errors": errors,
        "seconds": round(seconds, 3),
        "rate": round(accepted / seconds, 1) if seconds > 0 else None,
        "request_latency": summary_ms(latencies),
    }


MIX_ROUTES = ("publish", "logs", "stats", "config")


async def _mix(
    base: str,
    admin_token: str,
    user_token: str,
    user_id: str,
    clients: int,
    seconds: float,
    first: int,
) -> dict[str, Any]:
    """``clients`` clients, each looping over MIX_ROUTES (each client starting at a different
    route) until ``seconds`` have passed; latencies in ms per route, answers by status."""
    latencies: dict[str, list[float]] = {route: [] for route in MIX_ROUTES}
    statuses: dict[str, Counter[str]] = {route: Counter() for route in MIX_ROUTES}
    numbers = iter(range(first, first + 10**9))
    admin = {"Authorization": f"Bearer {admin_token}"}
    user = {"Authorization": f"Bearer {user_token}"}
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def request(route: str) -> int:
            if route == "publish":
                body = {"userId": user_id, "event": EVENT, "data": event_data(next(numbers))}
                call = session.post(base + "/api/events", json=body, headers=admin)
            elif route == "logs":
                call = session.get(base + "/api/webhooks/logs?limit=50", headers=user)
            else:
                call = session.get(f"{base}/api/webhooks/{route}", headers=user)
            async with call as response:
                await response.read()
                return response.status

        async def client(index: int) -> None:
            turn = index
            while time.perf_counter() < deadline:
                route = MIX_ROUTES[turn % len(MIX_ROUTES)]
                turn += 1
                started = time.perf_counter()
                try:
                    status = str(await request(route))
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status = type(exc).__name__
                latencies[route].append((time.perf_counter() - started) * 1000)
                statuses[route][status] += 1

        cpu0 = time.process_time()
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(client(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - cpu0
    requests = sum(len(v) for v in latencies.values())
    errors: Counter[str] = Counter()
    for counts in statuses.values():
        errors.update({s: n for s, n in counts.items() if not s.startswith("2")})
    return {
        "clients": clients,
        "seconds": round(elapsed, 3),
        "requests": requests,
        "accepted": requests,  # what _measured divides CPU by: here, every request
        "rate": round(requests / elapsed, 1) if elapsed > 0 else None,
        "errors": sum(errors.values()),
        "errors_by_status": dict(sorted(errors.items())),
        "routes": {
            route: {
                "requests": len(latencies[route]),
                "rate": round(len(latencies[route]) / elapsed, 1) if elapsed > 0 else None,
                "statuses": dict(sorted(statuses[route].items())),
                "latency": summary_ms(latencies[route]),
            }
            for route in MIX_ROUTES
        },
        "bench_client_cpu_s": round(client_cpu, 3),
    }


async def _measured(run: Any, procs: list[Proc], sessions: Sessions) -> dict[str, Any]:
    """Run one load and add the API processes' CPU per accepted event and, on PostgreSQL,
    the connections opened per 1,000 requests."""
    sessions0 = await sessions.count()
    cpu0 = sum(tree_cpu_seconds(p.pid) for p in procs)
    machine0 = machine_cpu_seconds()
    result: dict[str, Any] = await run
    cpu = sum(tree_cpu_seconds(p.pid) for p in procs) - cpu0
    machine = machine_cpu_seconds() - machine0
    accepted = result["accepted"]
    result["api_cpu_s"] = round(cpu, 3)
    result["machine_cpu_s"] = round(machine, 3)
    result["api_cpu_ms_per_event"] = round(1000 * cpu / accepted, 3) if accepted else None
    result["machine_cpu_ms_per_event"] = round(1000 * machine / accepted, 3) if accepted else None
    if sessions0 is not None:
        await asyncio.sleep(1.2)  # backends flush their statistics when idle
        sessions1 = await sessions.count()
        assert sessions1 is not None
        opened = sessions1 - sessions0
        result["db_connections_opened"] = opened
        result["db_connections_per_1000_requests"] = round(1000 * opened / result["requests"], 1)
    return result


async def run_frontdoor(bench: Bench, backend: str) -> dict[str, Any]:
    plan = bench.plan
    if backend == "sqlite":
        url = db.sqlite_url(bench.work / "frontdoor.db")
    else:
        assert bench.postgres_url is not None
        dbname = "hookline_bench_frontdoor_smoke" if bench.smoke else "hookline_bench_frontdoor"
        url = await db.recreate_postgres(bench.postgres_url, dbname)
    await bench.migrate(url)
    admin = json.loads(
        await bench.cli("users create", ["users", "create", "fd-admin", "--admin", "--json"], url)
    )
    user = await db.make_user(url, bench.key, "frontdoor", bench.hook_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["serve", "--no-worker", "--port", str(port)]
    if plan.frontdoor_serve_workers > 1:
        args += ["--workers", str(plan.frontdoor_serve_workers)]
    server = bench.start_hookline(f"frontdoor-{backend}-serve", args, url)
    token = admin["token"]
    result: dict[str, Any] = {
        "backend": backend,
        "api_processes": plan.frontdoor_serve_workers,
        "concurrency": plan.frontdoor_concurrency,
    }
    sessions = await Sessions.open(url)
    try:
        await asyncio.to_thread(wait_http, base + "/healthz", server, 60.0)
        n, c = plan.frontdoor_n, plan.frontdoor_concurrency
        log(f"frontdoor/{backend}: warm-up, then POST /api/events x {n:,}, {c} in flight")
        await _singles(base, token, user.id, plan.frontdoor_warmup, c, False, 0)
        first = plan.frontdoor_warmup
        result["single"] = await _measured(
            _singles(base, token, user.id, n, c, False, first), [server], sessions
        )
        first += n
        log(f"frontdoor/{backend}: the same with an Idempotency-Key each")
        result["single_keyed"] = await _measured(
            _singles(base, token, user.id, n, c, True, first), [server], sessions
        )
        first += n
        size, bc = plan.frontdoor_batch, plan.frontdoor_batch_concurrency
        log(f"frontdoor/{backend}: POST /api/events/batch x {plan.frontdoor_batches}, {size} each")
        result["batch"] = await _measured(
            _batches(base, token, user.id, plan.frontdoor_batches, size, bc, first),
            [server],
            sessions,
        )
        first += plan.frontdoor_batches * size
        clients, seconds = plan.frontdoor_mix_clients, plan.frontdoor_mix_s
        log(f"frontdoor/{backend}: the mix, {clients} clients for {seconds:g} s")
        # A user of its own, whose logs and stats hold only what the mix publishes, so that
        # its figures do not depend on how much the loads before it published.
        mixer = await db.make_user(url, bench.key, "frontdoor-mix", bench.hook_url)
        result["mix"] = await _measured(
            _mix(base, token, mixer.token, mixer.id, clients, seconds, first), [server], sessions
        )
        mix = result["mix"]
        del mix["accepted"]
        mix["api_cpu_ms_per_request"] = mix.pop("api_cpu_ms_per_event")
        mix["machine_cpu_ms_per_request"] = mix.pop("machine_cpu_ms_per_event")
        return result
    finally:
        await sessions.close()
        bench.procs.stop(server)
        if backend != "sqlite" and not bench.keep:
            with contextlib.suppress(Exception):
                await db.drop_postgres(url)


def frontdoor_targets(results: dict[str, Any], limit: float, add: Any) -> None:
    """Ratios to the bare client, and the issue's targets, for each backend measured."""
    for backend, fd in results.items():
        if "error" in fd:
            continue
        for label in ("single", "single_keyed", "batch"):
            rate = fd[label]["rate"] or 0.0
            fd[label]["ratio_to_bare"] = round(rate / limit, 3) if limit else None
        ratio = fd["single"]["ratio_to_bare"] or 0.0
        add(f"frontdoor POST /api/events / bare ({backend})", ratio, "x", ">= 0.25", ratio >= 0.25)
        cpu = fd["single"]["api_cpu_ms_per_event"] or float("nan")
        add(f"frontdoor API cpu per event ({backend})", cpu, "ms", "<= 0.3", cpu <= 0.3)
        p99 = fd["single"]["latency"].get("p99_ms", float("nan"))
        add(f"frontdoor POST /api/events p99 ({backend})", p99, "ms", "<= 20", p99 <= 20)
        ratio = fd["batch"]["ratio_to_bare"] or 0.0
        add(f"frontdoor batch events / bare ({backend})", ratio, "x", ">= 2", ratio >= 2)
        opened = fd["single"].get("db_connections_per_1000_requests")
        if opened is not None:
            add(f"frontdoor new db connections / 1000 ({backend})", opened, "", "0", opened == 0)
        mix_targets(backend, fd["mix"], add)


def mix_targets(backend: str, mix: dict[str, Any], add: Any) -> None:
    """The issue's targets for the 200-client mix (the rate on PostgreSQL only)."""
    if backend == "postgres":
        rate = mix["rate"] or 0.0
        add(f"mix requests/s ({backend})", rate, "/s", ">= 2000", rate >= 2000)
    add(f"mix errors ({backend})", mix["errors"], "", "0", mix["errors"] == 0)
    for route in MIX_ROUTES:
        p99 = mix["routes"][route]["latency"].get("p99_ms", float("nan"))
        add(f"mix {route} p99 ({backend})", p99, "ms", "<= 100", p99 <= 100)
    opened = mix.get("db_connections_per_1000_requests")
    if opened is not None:
        add(f"mix new db connections / 1000 ({backend})", opened, "", "0", opened == 0)


def frontdoor_rows(results: dict[str, Any], verdict: Any) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    for backend, fd in results.items():
        if "error" in fd:
            rows.append((f"frontdoor {backend}", "error", "", fd["error"][:60]))
            continue
        for label, name in (("single", "POST /api/events"), ("single_keyed", "  with keys")):
            one = fd[label]
            lat = one["latency"]
            target, met = verdict(f"frontdoor POST /api/events / bare ({backend})")
            if label != "single":
                target, met = "", ""
            value = (
                f"{one['rate']:,.0f}/s = {one.get('ratio_to_bare') or 0:.2f} x bare, "
                f"p50 {lat.get('p50_ms', 0):.1f} / p99 {lat.get('p99_ms', 0):.1f} ms, "
                f"{one['api_cpu_ms_per_event'] or 0:.2f} ms cpu/event"
            )
            if "db_connections_per_1000_requests" in one:
                value += f", {one['db_connections_per_1000_requests']:g} new conns/1000"
            rows.append((f"{backend} front door: {name}", value, target, met))
        batch = fd["batch"]
        target, met = verdict(f"frontdoor batch events / bare ({backend})")
        value = (
            f"{batch['rate']:,.0f} events/s = {batch.get('ratio_to_bare') or 0:.2f} x bare, "
            f"{batch['api_cpu_ms_per_event'] or 0:.3f} ms cpu/event"
        )
        rows.append(
            (f"{backend} front door: batch of {batch['events_per_request']}", value, target, met)
        )
        rows += mix_rows(backend, fd["mix"], verdict)
    return rows


def mix_rows(backend: str, mix: dict[str, Any], verdict: Any) -> list[tuple[str, str, str, str]]:
    name = f"{backend} mix, {mix['clients']} clients"
    target, met = verdict(f"mix requests/s ({backend})")
    value = (
        f"{mix['rate'] or 0:,.0f} req/s, {mix['api_cpu_ms_per_request'] or 0:.2f} ms api cpu/req"
    )
    rows = [(f"{name}: requests", value, target, met)]
    errors = ", ".join(f"{n} x {s}" for s, n in mix["errors_by_status"].items())
    target, met = verdict(f"mix errors ({backend})")
    rows.append((f"{name}: errors", f"{mix['errors']} {errors}".strip(), target, met))
    for route in MIX_ROUTES:
        one = mix["routes"][route]
        lat = one["latency"]
        target, met = verdict(f"mix {route} p99 ({backend})")
        value = (
            f"{one['rate'] or 0:,.0f}/s, p50 {lat.get('p50_ms', 0):.1f} / "
            f"p99 {lat.get('p99_ms', 0):.1f} / max {lat.get('max_ms', 0):.1f} ms"
        )
        rows.append((f"{name}: {route} p99", value, target, met))
    if "db_connections_per_1000_requests" in mix:
        target, met = verdict(f"mix new db connections / 1000 ({backend})")
        value = f"{mix['db_connections_per_1000_requests']:g}"
        rows.append((f"{name}: new db conns / 1000 req", value, target, met))
    return rows
