"""Group commit: call outcomes that finish while a transaction runs share the next one.

Each store write is one DuckDB transaction (open the file, write, CHECKPOINT, close: ~15 ms of
CPU whatever it holds) behind the store's write lock. With dozens of calls in flight, one
transaction per call queues the engine's workers behind each other's commits and takes CPU from
the inference server on the same machine; grouping makes the cost per call shrink as load grows.
A caller is acknowledged only once its outcome is committed, so a killed run loses no finished
work it was told was stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupCommitWriter(Generic[T]):
    """Hands items to ``commit`` (blocking, run in a thread) in batches, in arrival order.

    ``write`` returns once the item's batch is committed. A failed batch is retried one item
    at a time, so an error reaches exactly the caller whose item caused it.
    """

    def __init__(
        self,
        commit: Callable[[Sequence[T]], None],
        max_batch: int = 256,
        retry_alone: bool = True,
    ) -> None:
        self._commit = commit
        self._max_batch = max_batch
        # Off when a failure cannot be an item's fault (a journal that cannot be written).
        self._retry_alone = retry_alone
        self._queue: list[tuple[T, asyncio.Future[None]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.transactions = 0  # committed batches, for the run's accounting
        self.items = 0
        self.merges = 0  # store transactions, when the commits go to a journal first

    async def write(self, item: T) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.ensure_future(self._drain())
        await future

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            try:
                await asyncio.to_thread(self._commit, [item for item, _ in batch])
            except Exception as exc:
                if len(batch) == 1 or not self._retry_alone:
                    self._fail(batch, exc)
                else:  # the batch was rolled back: find whose item it was
                    for entry in batch:
                        await self._commit_alone(entry)
                continue
            except BaseException as exc:  # cancelled with the loop: nobody may wait forever
                self._fail(batch + self._queue, exc)
                self._queue.clear()
                raise
            self._acknowledge(batch)

    async def drained(self) -> None:
        """Return once everything written so far is committed (or failed)."""
        while self._drainer is not None and not self._drainer.done():
            await asyncio.shield(self._drainer)

    async def _commit_alone(self, entry: tuple[T, asyncio.Future[None]]) -> None:
        try:
            await asyncio.to_thread(self._commit, [entry[0]])
        except Exception as exc:
            self._fail([entry], exc)
        else:
            self._acknowledge([entry])

    @staticmethod
    def _fail(batch: list[tuple[T, asyncio.Future[None]]], exc: BaseException) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)

    def _acknowledge(self, batch: list[tuple[T, asyncio.Future[None]]]) -> None:
        self.transactions += 1
        self.items += len(batch)
        for _, future in batch:
            if not future.done():
                future.set_result(None)
