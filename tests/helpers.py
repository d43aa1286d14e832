"""Sources and chunkings shared by the tests."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

from guardstream import Event, Guard, Outcome


def split(text: str, sizes: Sequence[int]) -> list[str]:
    """Cut ``text`` into chunks of ``sizes`` (cycled), the last one taking the rest."""
    chunks, i, k = [], 0, 0
    while i < len(text):
        n = max(1, sizes[k % len(sizes)])
        chunks.append(text[i : i + n])
        i += n
        k += 1
    return chunks


def random_sizes(seed: int, count: int = 64, top: int = 9) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(1, top) for _ in range(count)]


async def chunked(text: str, sizes: Sequence[int] = (1,), delay_s: float = 0.0) -> AsyncIterator[str]:
    """An async source yielding ``text`` in chunks of ``sizes``."""
    for chunk in split(text, sizes):
        if delay_s:
            await asyncio.sleep(delay_s)
        yield chunk


class TrackedSource:
    """An async iterator that records whether it was closed and how far it was read."""

    def __init__(self, chunks: Sequence[str], stall_after: int | None = None, fail_after: int | None = None) -> None:
        self.chunks = list(chunks)
        self.stall_after = stall_after
        self.fail_after = fail_after
        self.sent = 0
        self.closed = False
        self._gen = self._run()

    async def _run(self) -> AsyncIterator[str]:
        try:
            for i, chunk in enumerate(self.chunks):
                if self.fail_after is not None and i == self.fail_after:
                    raise ConnectionResetError("upstream went away")
                if self.stall_after is not None and i == self.stall_after:
                    await asyncio.sleep(3600)
                self.sent += 1
                yield chunk
        finally:
            self.closed = True

    def __aiter__(self) -> TrackedSource:
        return self

    async def __anext__(self) -> str:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        await self._gen.aclose()


async def collect(guard: Guard, source: Any) -> list[Event]:
    """Every event of a guarded stream, the outcome last."""
    async with guard.stream(source) as events:
        return [e async for e in events]


async def released_for(guard: Guard, text: str, sizes: Sequence[int]) -> Outcome:
    return await guard.run(chunked(text, sizes))


CHUNKINGS: dict[str, list[int]] = {
    "whole": [1 << 30],
    "per-char": [1],
    "pairs": [2],
    "bpe-like": [1, 4, 3, 5, 2, 6, 1, 3],
    "random-1": random_sizes(1),
    "random-2": random_sizes(2, top=17),
}
