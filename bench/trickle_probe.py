"""Where a trickle's CPU goes, thread by thread.

``python -m bench.trickle_probe sqlite|postgres [--seconds S] [--claim-gap S] [--py-spy DIR]``
starts a receiver, ``hookline serve --no-worker`` and one ``hookline worker`` on a fresh
database, publishes 200 events/s over HTTP for S seconds (after 2 s of warm-up), and prints
publish-to-receipt latency and, for each thread of ``serve`` and the worker, CPU and
scheduler wake-ups per event (``/proc/PID/task/*``). ``--claim-gap`` runs the worker with
another ``CLAIM_GAP_S`` (how long a caught-up worker waits before its next claim), to
measure what holding events would buy; ``--py-spy`` records raw profiles of both processes
(``python -m bench.profile_report``). Used for docs/performance.md, "The trickle ratios".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench import db, load
from bench.procs import PROFILER, Proc, Procs, free_port, wait_http

HOOKLINE = [sys.executable, "-m", "hookline"]
RATE = 200.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def threads(pid: int) -> dict[str, tuple[float, int]]:
    """CPU seconds and run slices (wake-ups) of each thread of ``pid``, by name#tid."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            schedstat = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
        except FileNotFoundError:
            continue  # the thread ended
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu_s = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        out[f"{name}#{tid}"] = (cpu_s, int(schedstat[2]))
    return out


def worker_argv(claim_gap_s: float | None) -> list[str]:
    if claim_gap_s is None:
        return [*HOOKLINE, "worker"]
    code = (
        "import sys\nimport hookline.delivery.worker as w\n"
        f"w.CLAIM_GAP_S = {claim_gap_s!r}\n"
        "from hookline.cli import main\nsys.argv = ['hookline', 'worker']\nmain()"
    )
    return [sys.executable, "-c", code]


async def probe(args: argparse.Namespace, procs: Procs) -> None:
    key = (await asyncio.to_thread(procs.run, "keygen", [*HOOKLINE, "keygen"])).strip()
    workdir = Path(tempfile.mkdtemp(prefix="hookline-trickle-"))
    if args.backend == "sqlite":
        url = db.sqlite_url(workdir / "hookline.db")
    else:
        server = (
            os.environ.get("HOOKLINE_BENCH_POSTGRES_URL")
            or os.environ.get("HOOKLINE_TEST_POSTGRES_URL")
            or db.DEFAULT_POSTGRES_URL
        )
        url = await db.recreate_postgres(server, "hookline_bench_trickle")
    env = {"HOOKLINE_ENV": "development", "HOOKLINE_SECRET_KEYS": key}
    procs.env = env
    try:
        migrate = [*HOOKLINE, "migrate"]
        await asyncio.to_thread(procs.run, "migrate", migrate, {"HOOKLINE_DATABASE_URL": url})
        receiver_port = free_port()
        receiver = f"http://127.0.0.1:{receiver_port}"
        argv = [sys.executable, "-m", "bench.receiver", "--port", str(receiver_port)]
        receiving = procs.start("receiver", argv)
        store = db.open_store(url, key)
        try:
            admin = await db.make_user_with_endpoints(store, "admin", [], [], admin=True)
            user = await db.make_user_with_endpoints(
                store, "user", [receiver + "/hook"], ["resume.parsed"]
            )
        finally:
            await store.close()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        hl_env = {"HOOKLINE_DATABASE_URL": url}
        serve = procs.start(
            "serve", [*HOOKLINE, "serve", "--no-worker", "--port", str(port)], hl_env
        )
        worker = procs.start("worker", worker_argv(args.claim_gap), hl_env)
        await asyncio.to_thread(wait_http, base + "/healthz", serve, 60.0)
        await asyncio.to_thread(wait_http, receiver + "/_bench/count", receiving, 30.0)
        await load.offered_load_http(base, admin.token, user.id, RATE, 2.0)  # warm-up
        await asyncio.sleep(2.0)
        watched: dict[str, Proc] = {"serve": serve, "worker": worker}
        if args.py_spy:
            spy = os.environ.get("PY_SPY") or shutil.which("py-spy") or "py-spy"
            for name, proc in watched.items():
                out = str(Path(args.py_spy) / f"{args.backend}-{name}.txt")
                record = [spy, "record", "--pid", str(proc.pid), "--format", "raw"]
                procs.start(f"{PROFILER}{name}", [*record, "--rate", "200", "-o", out])
            await asyncio.sleep(1.0)
        before = {name: threads(proc.pid) for name, proc in watched.items()}
        await load.receiver_reset(receiver)
        published = await load.offered_load_http(base, admin.token, user.id, RATE, args.seconds)
        await asyncio.sleep(0.5)
        after = {name: threads(proc.pid) for name, proc in watched.items()}
        arrivals = await load.receiver_arrivals(receiver)
        report(args, published, arrivals, before, after)
    finally:
        procs.stop_all()
        if args.backend != "sqlite":
            await db.drop_postgres(url)
        shutil.rmtree(workdir, ignore_errors=True)


def report(
    args: argparse.Namespace,
    published: load.Published,
    arrivals: dict[str, float],
    before: dict[str, dict[str, tuple[float, int]]],
    after: dict[str, dict[str, tuple[float, int]]],
) -> None:
    n = published.accepted
    lags = sorted(1000 * (arrivals[d] - t) for d, t in published.sent_at.items() if d in arrivals)
    gap = "default" if args.claim_gap is None else f"{args.claim_gap:g} s"
    print(f"{args.backend}: {n} accepted, {published.errors} errors, claim gap {gap}")
    if lags:
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        print(f"  latency p50 {lags[len(lags) // 2]:.1f} / p99 {p99:.1f} / max {lags[-1]:.1f} ms")
    for process, now in after.items():
        total_cpu = total_slices = 0.0
        for thread, (cpu_s, slices) in sorted(now.items()):
            cpu0, slices0 = before[process].get(thread, (0.0, 0))
            cpu, woke = (cpu_s - cpu0) / n, (slices - slices0) / n
            total_cpu, total_slices = total_cpu + cpu, total_slices + woke
            if cpu > 0 or woke > 0.01:
                print(f"  {process:6} {thread:28} {1000 * cpu:.3f} ms/event, {woke:.2f} wake-ups")
        whole = f"{1000 * total_cpu:.3f} ms/event, {total_slices:.2f} wake-ups"
        print(f"  {process:6} {'all threads':28} {whole}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backend", choices=["sqlite", "postgres"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--claim-gap", type=float, help="the worker's CLAIM_GAP_S, seconds")
    parser.add_argument("--py-spy", help="record py-spy profiles here")
    args = parser.parse_args()
    if args.py_spy:
        Path(args.py_spy).mkdir(parents=True, exist_ok=True)
    procs = Procs(Path(tempfile.mkdtemp(prefix="hookline-trickle-logs-")))
    asyncio.run(probe(args, procs))


if __name__ == "__main__":
    main()
