"""One batcher per detector and event loop: many streams' requests, few model calls."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["Batcher", "LoopBatchers"]


class Batcher:
    """Gathers analysis requests from all streams on one loop into batched model calls.

    A request waits at most ``max_wait_s`` for others to join it (none when the batch is
    already full); the model runs in a worker thread, off the event loop, one call at a
    time. A failed call fails every request in its batch, and only those.
    """

    def __init__(self, name: str, analyze: Callable[[list[str]], list[Any]], max_batch: int, max_wait_s: float) -> None:
        self._name = name
        self._analyze = analyze
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._queue: list[tuple[str, asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def submit(self, text: str) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((text, future))
        self._wake.set()
        if self._task is None or self._task.done():
            # Owned here, for the loop's life: one worker serialises the model calls.
            self._task = loop.create_task(self._work(), name=f"guardstream-{self._name}-batcher")
        return future

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if len(self._queue) < self._max_batch and self._max_wait_s > 0:
                await asyncio.sleep(self._max_wait_s)
            while self._queue:
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                live = [(text, fut) for text, fut in batch if not fut.done()]
                if not live:
                    continue
                try:
                    results = await asyncio.to_thread(self._analyze, [text for text, _ in live])
                except Exception as exc:
                    for _, fut in live:
                        if not fut.done():
                            fut.set_exception(exc)
                else:
                    for (_, fut), result in zip(live, results, strict=True):
                        if not fut.done():
                            fut.set_result(result)


class LoopBatchers:
    """A detector's batchers, one per running event loop, dropped with their loop."""

    def __init__(
        self, name: str, analyze: Callable[[list[str]], list[Any]], max_batch: int, max_wait_ms: float
    ) -> None:
        self._name = name
        self._analyze = analyze
        self._max_batch = max_batch
        self._max_wait_s = max_wait_ms / 1000
        self._batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Batcher] = weakref.WeakKeyDictionary()

    def submit(self, text: str) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        batcher = self._batchers.get(loop)
        if batcher is None:
            batcher = self._batchers[loop] = Batcher(self._name, self._analyze, self._max_batch, self._max_wait_s)
        return batcher.submit(text)
