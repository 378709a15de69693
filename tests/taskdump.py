"""When a test's setup, call or teardown runs past ``DUMP_AFTER_S`` (before pytest-timeout
ends it at 120 s), write the stack of every asyncio task of every event loop, and of every
thread, to the real stderr: a hang then leaves in the CI log what it was waiting on, which
pytest-timeout's thread stacks alone do not say (the loop's thread is just in ``select``).

Loaded by ``tests/conftest.py``; ``HOOKLINE_TEST_DUMP_AFTER_S`` changes the delay (0: off).
"""

from __future__ import annotations

import asyncio
import faulthandler
import os
import sys
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

DUMP_AFTER_S = float(os.environ.get("HOOKLINE_TEST_DUMP_AFTER_S", "100"))

_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_init = asyncio.BaseEventLoop.__init__


def _remembering_init(self: asyncio.BaseEventLoop, *args: Any, **kwargs: Any) -> None:
    _init(self, *args, **kwargs)
    _loops.add(self)


asyncio.BaseEventLoop.__init__ = _remembering_init  # type: ignore[method-assign]


def _dump(nodeid: str, phase: str) -> None:
    out = sys.__stderr__
    if out is None:
        return
    out.write(f"\n===== {nodeid}: {phase} still running after {DUMP_AFTER_S:g} s\n")
    for loop in list(_loops):
        try:
            tasks = asyncio.all_tasks(loop)
        except RuntimeError as exc:  # the set changed under us: the loop is still busy
            out.write(f"--- {loop!r}: tasks unreadable ({exc})\n")
            continue
        out.write(f"--- {loop!r}, running={loop.is_running()}, {len(tasks)} tasks\n")
        for task in tasks:
            out.write(f"{task!r}\n")
            task.print_stack(file=out)
    out.write("--- threads\n")
    out.flush()
    faulthandler.dump_traceback(file=out, all_threads=True)


def _watched(item: pytest.Item, phase: str) -> Iterator[None]:
    if DUMP_AFTER_S <= 0:
        yield
        return
    timer = threading.Timer(DUMP_AFTER_S, _dump, (item.nodeid, phase))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    yield from _watched(item, "setup")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    yield from _watched(item, "call")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    yield from _watched(item, "teardown")
