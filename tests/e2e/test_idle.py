"""Cheap when quiet: an idle `hookline serve` and an idle `hookline worker`, real processes on
each database, use almost no CPU, and still pick up a new delivery within milliseconds (woken
by the database, LISTEN/NOTIFY or the SQLite file's writes, not by fast polling)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from pathlib import Path

import pytest

from hookline.store import Store
from tests.integration.test_publish import EXAMPLE_DATA
from tests.support import Receiver, free_port, hookline_env, hookline_process, make_settings

pytestmark = pytest.mark.slow

CLK_TCK = os.sysconf("SC_CLK_TCK")
MEASURE_S = 10.0
# What an idle process costs is mostly what its wake-ups cost, and on a shared VM one wake-up
# costs 0.1-4 ms of CPU from run to run (a process that only sleeps 1 s at a time used up to
# 0.2 % of a core, and an idle `serve` 0.07 % one hour and 3 % the next). So the test bounds
# the wake-ups, which are the code's doing, and the CPU only loosely. The target is 0.5 % of
# a core (the benchmark measures it). Before, an idle SQLite process polled every 3 ms (over
# 300 wake-ups a second, 2-7 % of a core), and later still woke 12-19 times a second, as
# each of its reads hopped between the event loop and aiosqlite's thread a dozen times. Now
# its looks for work read on the loop's thread: 0.3-1.5 wake-ups a second on SQLite, 1-3 on
# PostgreSQL.
WAKEUPS_PER_S_BOUND = 10.0
IDLE_BOUND = 0.05


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wakeups(pid: int) -> int:
    """Times the scheduler put any thread of ``pid`` on a CPU: an idle process's wake-ups."""
    return sum(
        int(stat.read_text().split()[2]) for stat in Path(f"/proc/{pid}/task").glob("*/schedstat")
    )


def hookline(
    database_url: str, *args: str
) -> contextlib.AbstractAsyncContextManager[asyncio.subprocess.Process]:
    return hookline_process(hookline_env(database_url), *args)


async def settled(proc: asyncio.subprocess.Process, timeout_s: float = 60.0) -> None:
    """Wait until ``proc`` has started up: a whole second in which it used under 2 % of a
    core (starting takes seconds of CPU, and longer on a busy machine)."""
    deadline = time.monotonic() + timeout_s
    used = cpu_s(proc.pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        assert proc.returncode is None, "the process exited"
        now = cpu_s(proc.pid)
        if now - used < 0.02:
            return
        used = now
    raise AssertionError("the process did not settle")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads CPU time from /proc")
async def test_idle_processes_cost_almost_nothing_and_wake_at_once(
    database_url: str, receiver: Receiver
) -> None:
    settings = make_settings(database_url)
    store = Store(settings)
    try:
        user, _, _ = await store.create_user("user", False)
        await store.save_config(user.id, receiver.url, True, None, ["resume.parsed"])
        async with (
            hookline(database_url, "serve", "--port", str(free_port())) as serve,
            hookline(database_url, "worker") as worker,
        ):
            for proc in (serve, worker):
                await settled(proc)
            before = {proc.pid: cpu_s(proc.pid) for proc in (serve, worker)}
            woke = {proc.pid: wakeups(proc.pid) for proc in (serve, worker)}
            started = time.monotonic()
            await asyncio.sleep(MEASURE_S)
            elapsed = time.monotonic() - started
            share = {pid: (cpu_s(pid) - used) / elapsed for pid, used in before.items()}
            rate = {pid: (wakeups(pid) - n) / elapsed for pid, n in woke.items()}
            print(
                f"\nidle: serve {share[serve.pid]:.2%} ({rate[serve.pid]:.1f} wake-ups/s),"
                f" worker {share[worker.pid]:.2%} ({rate[worker.pid]:.1f}/s)"
            )
            assert rate[serve.pid] <= WAKEUPS_PER_S_BOUND, rate
            assert rate[worker.pid] <= WAKEUPS_PER_S_BOUND, rate
            assert share[serve.pid] <= IDLE_BOUND, share
            assert share[worker.pid] <= IDLE_BOUND, share

            # Published by this process: the workers learn of it from the database alone.
            lags = []
            for _ in range(10):
                count = len(receiver.received)
                published_at = time.monotonic()
                await store.publish(user.id, "resume.parsed", EXAMPLE_DATA["resume.parsed"])
                received = await receiver.wait_for(count + 1, timeout_s=5)
                lags.append(received[count].at - published_at)
                await asyncio.sleep(0.3)  # idle again between events
            print(f"pick-up: median {statistics.median(lags) * 1000:.1f} ms, lags {lags}")
            # The target is 10 ms; a poll every second would show about 500 ms.
            assert statistics.median(lags) < 0.1, lags
    finally:
        await store.close()
