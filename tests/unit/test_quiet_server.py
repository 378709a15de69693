"""The API's uvicorn server: idle, its main loop wakes once a second instead of ten times, a
signal still ends it at once, and what it made while starting is out of the collector's way."""

from __future__ import annotations

import asyncio
import gc
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from hookline.api.server import QuietServer


async def app(scope: Any, receive: Any, send: Any) -> None:  # never called: nothing connects
    raise AssertionError(scope)


class Counting(QuietServer):
    ticks = 0

    async def on_tick(self, counter: int) -> bool:
        self.ticks += 1
        return await super().on_tick(counter)


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """main_loop freezes what exists when it starts; give the test process its memory back."""
    yield
    gc.unfreeze()


def server() -> Counting:
    config = uvicorn.Config(app, lifespan="off", log_config=None)
    config.load()
    return Counting(config)


async def test_idle_it_ticks_once_a_second_and_keeps_the_date_header() -> None:
    quiet = server()
    loop = asyncio.create_task(quiet.main_loop())
    await asyncio.sleep(2.5)
    quiet.should_exit = True
    await asyncio.wait_for(loop, timeout=2.0)
    # uvicorn's own loop ticks every 0.1 s: 25 times in 2.5 s.
    assert 2 <= quiet.ticks <= 5, quiet.ticks
    assert [name for name, _ in quiet.server_state.default_headers] == [b"date", b"server"]


async def test_a_signal_ends_the_main_loop_at_once() -> None:
    quiet = server()
    loop = asyncio.create_task(quiet.main_loop())
    await asyncio.sleep(0.3)
    started = time.monotonic()
    quiet.handle_exit(signal.SIGTERM, None)
    await asyncio.wait_for(loop, timeout=2.0)
    assert time.monotonic() - started < 0.5  # not at the next tick, up to a second away


async def test_once_serving_the_startup_objects_are_frozen() -> None:
    gc.unfreeze()  # whatever froze before this test
    assert gc.get_freeze_count() == 0
    quiet = server()
    loop = asyncio.create_task(quiet.main_loop())
    try:
        await asyncio.sleep(0.1)
        # The app, this test's objects and every module: far more than a few.
        assert gc.get_freeze_count() > 10_000
    finally:
        quiet.should_exit = True
        await asyncio.wait_for(loop, timeout=2.0)
