"""Group commit: single writes that arrive while one is being stored wait and are stored
together, in the next transaction. Under load, one transaction (and one commit) serves many
callers; alone, a caller waits for nothing but its own. Each caller's answer is its own, and
it gets it only once the transaction that holds its write has committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Runs ``store(items)`` (one transaction; a result per item, in order) for whatever
    ``submit`` gathered, at most ``max_running`` at a time and ``max_batch`` items each. When
    ``store`` raises, every caller of that batch gets the exception (nothing of it was
    stored, as a transaction goes)."""

    def __init__(
        self,
        store: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int,
        max_running: int,
    ) -> None:
        self._store = store
        self._max_batch = max_batch
        self._max_running = max_running
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()  # held, so none is collected mid-way

    async def submit(self, item: T) -> R:
        """Store ``item`` with whatever else is waiting; its result once committed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._running < self._max_running:
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                try:
                    results = await self._store([item for item, _ in batch])
                except Exception as exc:  # the callers' error, not this task's
                    self._fail(batch, exc)
                    continue
                except BaseException:  # cancelled (shutting down): nobody is left waiting
                    self._fail(batch + self._waiting, RuntimeError("the store is closing"))
                    self._waiting.clear()
                    raise
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._running -= 1

    @staticmethod
    def _fail(batch: list[tuple[T, asyncio.Future[R]]], exc: BaseException) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)
