"""A worker's LISTEN survives losing PostgreSQL: a terminated backend, a connection that
went silent, PostgreSQL down at start, and a real restart of the server. While it is not
listening the worker is woken to poll; once it listens again, new deliveries start at once."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import hookline
from hookline.store import Store
from hookline.store.listen import Listener
from hookline.store.queue import NOTIFY_CHANNEL
from tests.e2e.test_worker_process import worker_env
from tests.integration.test_publish import EXAMPLE_DATA
from tests.support import Receiver, make_settings, running_receiver, wait_until

EVENT = "resume.parsed"
LISTENERS = (
    "SELECT pid FROM pg_stat_activity"
    " WHERE datname = current_database() AND query ILIKE 'LISTEN%' ORDER BY pid"
)


class Wakes:
    """Counts the listener's calls; ``wait_for(n)`` until there have been n."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Event()

    def __call__(self) -> None:
        self.count += 1
        self._changed.set()

    async def wait_for(self, count: int, timeout_s: float = 5.0) -> None:
        async def reached() -> bool:
            return self.count >= count

        await wait_until(reached, timeout_s=timeout_s, every_s=0.005)


async def listen_pids(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return [row.pid for row in await conn.execute(text(LISTENERS))]


async def user_with_endpoint(url: str, receiver_url: str) -> str:
    store = Store(make_settings(url))
    try:
        user, _, _ = await store.create_user("user", False)
        await store.save_config(user.id, receiver_url, True, None, default_events=[EVENT])
        return user.id
    finally:
        await store.close()


def store_messages(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "hookline.store"]


async def test_a_terminated_listen_backend_is_replaced(
    postgres_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hookline.store")
    user_id = await user_with_endpoint(postgres_database_url, "http://127.0.0.1:9/hook")
    engine = create_async_engine(postgres_database_url, isolation_level="AUTOCOMMIT")
    store = Store(make_settings(postgres_database_url))
    wakes = Wakes()
    stop = await store.listen(wakes)
    assert stop is not None
    try:
        [before] = await listen_pids(engine)
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": before})

        async def replaced() -> bool:
            pids = await listen_pids(engine)
            return len(pids) == 1 and pids[0] != before

        await wait_until(replaced, timeout_s=5)
        await asyncio.sleep(0.3)  # past the wake-up on reconnecting
        woken = wakes.count
        await asyncio.sleep(0.6)
        assert wakes.count == woken  # listening again: no more polling wake-ups
        await hookline.publish(engine, user_id, EVENT, EXAMPLE_DATA[EVENT])
        await wakes.wait_for(woken + 1, timeout_s=1)
        levels = [level for level, _ in store_messages(caplog)]
        assert levels == [logging.WARNING, logging.INFO], store_messages(caplog)
    finally:
        await stop()
        await store.close()
        await engine.dispose()


async def test_postgresql_down_at_start_means_polling_until_it_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = Store(make_settings(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/nothing"))
    wakes = Wakes()
    stop = await store.listen(wakes)  # does not raise
    assert stop is not None
    try:
        started = wakes.count
        await asyncio.sleep(1.1)
        assert 3 <= wakes.count - started <= 6  # every 0.25 s, so the worker polls
        warnings = [m for level, m in store_messages(caplog) if level == logging.WARNING]
        assert len(warnings) == 1, warnings  # one warning, not one per attempt
    finally:
        await stop()
        await store.close()


class FreezingProxy:
    """A loopback TCP proxy to PostgreSQL that can silently stop forwarding on the
    connections it already has, as a dead network path would, while serving new ones."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.port = 0
        self._pipes: list[asyncio.Task[None]] = []
        self._writers: list[asyncio.StreamWriter] = []

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers += [writer, up_writer]
        self._pipes += [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]

    def freeze(self) -> None:
        """Stop forwarding on every connection so far; their sockets stay open."""
        for pipe in self._pipes:
            pipe.cancel()
        self._pipes = []

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FreezingProxy]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            self.freeze()
            server.close()
            for writer in self._writers:
                writer.close()
            await server.wait_closed()


async def test_a_silently_dead_connection_is_noticed_and_replaced(
    postgres_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hookline.store")
    url = make_url(postgres_database_url)
    user_id = await user_with_endpoint(postgres_database_url, "http://127.0.0.1:9/hook")
    engine = create_async_engine(postgres_database_url)
    async with FreezingProxy(url.host or "127.0.0.1", url.port or 5432).running() as proxy:
        dsn = url.set(drivername="postgresql", host="127.0.0.1", port=proxy.port)
        wakes = Wakes()
        listener = Listener(
            dsn.render_as_string(hide_password=False),
            NOTIFY_CHANNEL,
            wakes,
            check_every_s=0.2,
            check_timeout_s=0.3,
        )
        await listener.start()
        try:
            proxy.freeze()  # no FIN, no RST: only the liveness check can tell

            async def back() -> bool:
                return [level for level, _ in store_messages(caplog)] == [
                    logging.WARNING,
                    logging.INFO,
                ]

            await wait_until(back, timeout_s=5)
            await asyncio.sleep(0.1)
            woken = wakes.count
            await hookline.publish(engine, user_id, EVENT, EXAMPLE_DATA[EVENT])
            await wakes.wait_for(woken + 1, timeout_s=1)
            warning = store_messages(caplog)[0][1]
            assert "liveness check" in warning, warning
        finally:
            await listener.stop()
            await engine.dispose()


# --- a real restart of the server -----------------------------------------------------------


def local_cluster_version() -> str:
    """The local cluster's version, for pg_ctlcluster; skips (fails on CI) when this test
    cannot restart it."""
    clusters = Path("/etc/postgresql")
    reason = None
    if os.geteuid() != 0:
        reason = "restarting PostgreSQL needs root"
    elif shutil.which("pg_ctlcluster") is None or not clusters.is_dir():
        reason = "restarting PostgreSQL needs pg_ctlcluster and a local cluster"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return sorted(p.name for p in clusters.iterdir())[-1]


async def restart_postgres(version: str, host: str, port: int) -> float:
    """Restart the local cluster; returns time.monotonic() when it answers again."""
    restart = await asyncio.create_subprocess_exec(
        "pg_ctlcluster",
        "--skip-systemctl-redirect",
        version,
        "main",
        "restart",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await restart.communicate()
    assert restart.returncode == 0, output.decode()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready = await asyncio.create_subprocess_exec(
            "pg_isready", "-q", "-h", host, "-p", str(port), stdout=asyncio.subprocess.DEVNULL
        )
        if await ready.wait() == 0:
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise AssertionError("PostgreSQL did not answer within 30 s of its restart")


async def trickle(
    engine: AsyncEngine, user_id: str, receiver: Receiver, count: int = 20, gap_s: float = 0.05
) -> list[float]:
    """Publish ``count`` events ``gap_s`` apart; each one's publish-to-receive time, in ms."""
    published: dict[str, float] = {}
    for _ in range(count):
        started = time.monotonic()
        result = await hookline.publish(engine, user_id, EVENT, EXAMPLE_DATA[EVENT])
        published[result.delivery_ids[0]] = started
        await asyncio.sleep(gap_s)

    def arrivals() -> dict[str, float]:
        return {r.headers["X-Webhook-Delivery-Id"]: r.at for r in receiver.received}

    async def all_arrived() -> bool:
        return published.keys() <= arrivals().keys()

    await wait_until(all_arrived, timeout_s=15)
    got = arrivals()
    return sorted((got[key] - at) * 1000 for key, at in published.items())


def p50_p99(latencies_ms: list[float]) -> str:
    p99 = statistics.quantiles(latencies_ms, n=100, method="inclusive")[98]
    return f"p50 {statistics.median(latencies_ms):.1f} ms, p99 {p99:.1f} ms"


@pytest.mark.slow
@pytest.mark.alone
async def test_a_worker_listens_again_after_postgresql_restarts(
    postgres_database_url: str, tmp_path: Path
) -> None:
    """After a restart the worker's LISTEN comes back within 5 s of PostgreSQL answering, and
    a trickle of events is delivered at NOTIFY speed again, not at its 1 s poll."""
    version = local_cluster_version()
    url = make_url(postgres_database_url)
    async with running_receiver() as receiver:
        user_id = await user_with_endpoint(postgres_database_url, receiver.url)
        # Its own pool, pinging on checkout: it survives the restart, and it shares nothing
        # with the worker, so only a NOTIFY can wake the worker.
        engine = create_async_engine(postgres_database_url, pool_pre_ping=True)
        log_path = tmp_path / "worker.log"
        settings = make_settings(postgres_database_url)
        env = worker_env(settings, HOOKLINE_POLL_INTERVAL_S="1")
        with log_path.open("wb") as log_file:
            worker = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "from hookline.cli import main; main()",
                "worker",
                env=env,
                stdout=log_file,
                stderr=log_file,
            )
        try:

            async def listening() -> bool:
                return len(await listen_pids(engine)) == 1

            await wait_until(listening, timeout_s=30, every_s=0.05)
            before = await trickle(engine, user_id, receiver)
            assert statistics.median(before) < 50, p50_p99(before)

            ready_at = await restart_postgres(version, url.host or "127.0.0.1", url.port or 5432)
            back_after_s = None
            while time.monotonic() - ready_at < 5:
                if await listening():
                    back_after_s = time.monotonic() - ready_at
                    break
                await asyncio.sleep(0.05)
            after = await trickle(engine, user_id, receiver)
            report = (
                f"before the restart {p50_p99(before)}; after it {p50_p99(after)}; "
                f"LISTEN back {back_after_s} s after PostgreSQL answered"
            )
            print(report)
            assert statistics.median(after) < 50, report
            assert back_after_s is not None, report
            assert worker.returncode is None  # it did not crash either
        finally:
            if worker.returncode is None:
                worker.terminate()
            await asyncio.wait_for(worker.wait(), timeout=15)
            await engine.dispose()
        log = log_path.read_text()
        assert "WARNING hookline.store: not listening on PostgreSQL" in log, log
        assert "INFO hookline.store: listening on PostgreSQL for new deliveries again" in log, log
