"""`hookline serve --workers N`: N API processes on one port, as an operator runs it. Events
published to any of them are delivered once, by the one delivery worker; /metrics on any of
them counts all; a crashed process is started again; SIGTERM stops them all."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict

from hookline.config import Settings
from hookline.store import Store
from tests.e2e.test_metrics_process import samples
from tests.e2e.test_worker_process import worker_env
from tests.integration.test_publish import EXAMPLE_DATA
from tests.support import Receiver, free_port, make_settings, wait_until

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-c", "from hookline.cli import main; main()"]
EVENT = "resume.parsed"


def children_of(pid: int) -> list[int]:
    """The pids of ``pid``'s children (Linux)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return sorted(found)


def metrics_dir_of(pid: int) -> Path:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    for item in environ:
        if item.startswith(b"PROMETHEUS_MULTIPROC_DIR="):
            return Path(item.split(b"=", 1)[1].decode())
    raise AssertionError(f"process {pid} has no PROMETHEUS_MULTIPROC_DIR")


def published_in(shared: Path, pid: int) -> float:
    """The events that process ``pid`` counted as published, from its file in the shared
    metrics directory (one per process)."""
    path = shared / f"counter_{pid}.db"
    if not path.exists():
        return 0.0
    return sum(
        value
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path))
        if json.loads(key)[1] == "hookline_events_published_total"
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as gone.
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"


@contextmanager
def serving(env: dict[str, str], log: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`hookline serve ARGS` as a real process; stopped with SIGTERM, killed after 30 s."""
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [*CLI, "serve", *args], env=env, stdout=subprocess.DEVNULL, stderr=err
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(await asyncio.to_thread(log.read_text))
            await asyncio.sleep(0.1)


async def publish_once(base: str, token: str, user_id: str, n: int) -> httpx.Response:
    """One publish on a connection of its own (the kernel picks the process that accepts)."""
    async with httpx.AsyncClient(base_url=base) as client:
        body = {"userId": user_id, "event": EVENT, "data": {**EXAMPLE_DATA[EVENT], "n": n}}
        return await client.post(
            "/api/events", json=body, headers={"Authorization": f"Bearer {token}"}
        )


async def published_by_metrics(base: str) -> float:
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    labels = frozenset({("event", EVENT), ("outcome", "enqueued")})
    return samples(response.text).get(("hookline_events_published_total", labels), 0.0)


async def admin_and_user(settings: Settings, hook_url: str) -> tuple[str, str]:
    """An admin's token, and a user whose webhook at ``hook_url`` takes every event."""
    store = Store(settings)
    try:
        _, _, token = await store.create_user("admin", True)
        user, _, _ = await store.create_user("user", False)
        await store.save_config(user.id, hook_url, True, None, list(EXAMPLE_DATA))
    finally:
        await store.close()
    return token, user.id


async def test_two_api_processes_share_the_port_the_worker_and_the_metrics(
    database_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    settings = make_settings(database_url)
    token, user_id = await admin_and_user(settings, receiver.url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = worker_env(settings, HOOKLINE_LOG_FORMAT="json")
    with serving(env, log, "--workers", "2", "--port", str(port)) as proc:
        await wait_healthy(base, proc, log)
        children = children_of(proc.pid)
        assert len(children) == 2
        shared = metrics_dir_of(children[0])

        # Publish on fresh connections until each process has accepted some.
        published = 0
        deadline = time.monotonic() + 30
        while min(published_in(shared, pid) for pid in children) == 0 or published < 20:
            assert time.monotonic() < deadline, f"one process took every connection: {children}"
            response = await publish_once(base, token, user_id, published)
            assert response.status_code == 202, response.text
            published += 1

        # Whichever process answers /metrics counts the events of both.
        for _ in range(4):
            assert await published_by_metrics(base) == published

        # The one delivery worker delivers every event once.
        received = await receiver.wait_for(published, timeout_s=60)
        await asyncio.sleep(0.5)
        ids = [r.headers["X-Webhook-Delivery-Id"] for r in receiver.received]
        assert len(ids) == len(set(ids)) == published
        numbers = sorted(json.loads(r.body)["data"]["n"] for r in received)
        assert numbers == list(range(published))

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
    assert not any(alive(pid) for pid in children)
    assert not shared.exists()  # the parent removes the metrics directory
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    started = [line for line in lines if line["logger"] == "hookline.worker"]
    assert len([line for line in started if line["message"].endswith(" started")]) == 1


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "hookline.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


async def test_a_crashed_api_process_is_started_again_and_its_counts_kept(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = make_settings(sqlite_url)
    # Deliveries are stored (--no-worker: nothing sends them).
    token, user_id = await admin_and_user(settings, "http://127.0.0.1:9/hook")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = worker_env(settings)
    with serving(env, log, "--workers", "2", "--no-worker", "--port", str(port)) as proc:
        await wait_healthy(base, proc, log)
        before = children_of(proc.pid)
        for n in range(10):
            assert (await publish_once(base, token, user_id, n)).status_code == 202
        victim = before[1]
        os.kill(victim, signal.SIGKILL)

        async def replaced() -> bool:
            now = children_of(proc.pid)
            return len(now) == 2 and victim not in now

        await wait_until(replaced, timeout_s=30, every_s=0.1)
        for n in range(10, 15):  # the port keeps answering meanwhile, and after
            assert (await publish_once(base, token, user_id, n)).status_code == 202
        await wait_healthy(base, proc, log)
        # The killed process's counts stay in the sum: counters never go back.
        assert await published_by_metrics(base) == 15
        assert proc.poll() is None
    assert "exited with code -9" in log.read_text()


def test_a_taken_port_is_one_line_and_no_process(sqlite_url: str) -> None:
    env = worker_env(make_settings(sqlite_url))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*CLI, "serve", "--workers", "2", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("hookline:")]
    assert errors == [f"hookline: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert "API processes" not in result.stdout + result.stderr


# The supervisor itself, with stand-in children (real processes) whose behaviour is scripted.
# Each supervisor runs in a process of its own: it takes over SIGTERM, SIGINT and SIGALRM and
# reaps any child, which must not happen inside pytest.
SUPERVISOR = """
import sys
from hookline.api import processes
sock = processes.bind("127.0.0.1", 0)
sys.exit(processes.supervise(sock, [sys.executable, "-c", sys.argv[1]], int(sys.argv[2]), 5))
"""

STAND_IN = """
import os, sys, time
from hookline.api import processes
if "--no-worker" in sys.argv:  # every child but the first: starts, then serves until told
    processes.tell_parent_ready()
    time.sleep(600)
time.sleep(0.5)
sys.exit(4)  # the first: fails before it ever serves
"""


def supervise(child: str, workers: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SUPERVISOR, child, str(workers)],
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_a_process_that_cannot_start_stops_the_others() -> None:
    started = time.monotonic()
    result = supervise(STAND_IN, 3)
    assert result.returncode == 4, result.stderr  # the failing child's own code
    # The two that served were stopped by SIGTERM, not waited out to the SIGKILL (25 s); the
    # four interpreters take a few seconds to start on a busy machine.
    assert time.monotonic() - started < 20


def test_a_process_that_crashes_after_starting_is_started_again(tmp_path: Path) -> None:
    marks = tmp_path / "starts"
    script = f"""
import os, signal, sys, time
from hookline.api import processes
processes.tell_parent_ready()
with open({str(marks)!r}, "a") as f:
    f.write(f"{{os.getpid()}}\\n")
starts = len(open({str(marks)!r}).read().split())
if starts == 1:
    sys.exit(7)  # crashes once, after it served
if starts == 2:
    os.kill(os.getppid(), signal.SIGTERM)  # the second start stops the supervisor
time.sleep(600)
"""
    result = supervise(script, 1)
    assert result.returncode == 0, result.stderr
    assert len(marks.read_text().split()) == 2


def test_a_restart_that_cannot_start_is_tried_again_later(tmp_path: Path) -> None:
    marks = tmp_path / "starts"
    script = f"""
import os, signal, sys, time
from hookline.api import processes
with open({str(marks)!r}, "a") as f:
    f.write(f"{{time.monotonic()}}\\n")
starts = len(open({str(marks)!r}).read().split())
if starts == 1:
    processes.tell_parent_ready()
    sys.exit(7)  # crashes after it served
if starts in (2, 3):
    sys.exit(5)  # then fails twice before serving: the parent keeps trying, later each time
os.kill(os.getppid(), signal.SIGTERM)
time.sleep(600)
"""
    result = supervise(script, 1)
    assert result.returncode == 0, result.stderr
    times = [float(t) for t in marks.read_text().split()]
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.9 and gaps[2] >= 3.9, gaps  # 1, 2, 4 s
    assert "before it served; starting it again in 4 s" in result.stderr
