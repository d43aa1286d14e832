"""``guardstream replay``: run recorded streams through a guard, one JSON line per stream.

Input lines: ``{"id": str, "chunks": [str, ...], "delays_ms": [float, ...]}`` (``delays_ms``
optional, the wait before each chunk, honoured only with ``realtime``; other keys
ignored). Output lines, in input order: ``{"id", "outcome", "released", "events",
"t_first_source_ms", "t_first_release_ms", "hold_ms_p50", "hold_ms_p99",
"hold_ms_max"}``.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from .events import event_to_dict
from .guard import Guard

__all__ = [
    "ReplayInputError",
    "ReplayRecord",
    "hold_percentiles",
    "parse_records",
    "replay",
    "replay_one",
    "weighted_quantile",
]


class ReplayInputError(ValueError):
    """An input line is not a valid replay record; the message names the line."""


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    id: str
    chunks: tuple[str, ...]
    delays_ms: tuple[float, ...] | None


def parse_records(lines: Iterable[str], source: str = "<input>") -> list[ReplayRecord]:
    """Parse and validate every line up front, so a bad line fails before any work."""
    records: list[ReplayRecord] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReplayInputError(f"{where}: not valid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(data, dict):
            raise ReplayInputError(f"{where}: expected a JSON object, got {type(data).__name__}")
        rid, chunks, delays = data.get("id"), data.get("chunks"), data.get("delays_ms")
        if not isinstance(rid, str):
            raise ReplayInputError(f"{where}: 'id' must be a string")
        if not isinstance(chunks, list) or not all(isinstance(c, str) for c in chunks):
            raise ReplayInputError(f"{where}: 'chunks' must be a list of strings")
        if delays is not None:
            if not isinstance(delays, list) or not all(
                isinstance(d, int | float) and not isinstance(d, bool) and math.isfinite(d) and d >= 0 for d in delays
            ):
                raise ReplayInputError(f"{where}: 'delays_ms' must be a list of non-negative numbers")
            if len(delays) != len(chunks):
                raise ReplayInputError(f"{where}: 'delays_ms' has {len(delays)} entries but 'chunks' has {len(chunks)}")
        records.append(
            ReplayRecord(rid, tuple(chunks), tuple(float(d) for d in delays) if delays is not None else None)
        )
    return records


def weighted_quantile(pairs: Iterable[tuple[float, int]], q: float) -> float | None:
    """The ``q`` quantile (nearest rank) of values weighted by counts; None when empty."""
    ordered = sorted((value, n) for value, n in pairs if n > 0)
    total = sum(n for _, n in ordered)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for value, n in ordered:
        seen += n
        if seen >= rank:
            return value
    return ordered[-1][0]


def hold_percentiles(holds: Sequence[tuple[float, int]]) -> tuple[float | None, float | None, float | None]:
    """p50, p99 and max of per-character hold from ``(hold_ms, characters)`` pairs."""
    return weighted_quantile(holds, 0.50), weighted_quantile(holds, 0.99), weighted_quantile(holds, 1.0)


async def _paced(record: ReplayRecord, realtime: bool) -> AsyncIterator[str]:
    delays = record.delays_ms
    for i, chunk in enumerate(record.chunks):
        if realtime and delays is not None and delays[i] > 0:
            await asyncio.sleep(delays[i] / 1000)
        yield chunk


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def replay_one(guard: Guard, record: ReplayRecord, realtime: bool = False) -> dict[str, Any]:
    """Run one record through ``guard``; the output line as a dict."""
    events = []
    async with guard.stream(_paced(record, realtime)) as stream:
        async for event in stream:
            events.append(event_to_dict(event))
    outcome = stream.outcome
    assert outcome is not None
    p50, p99, top = hold_percentiles(stream.stats.holds)
    return {
        "id": record.id,
        "outcome": outcome.kind,
        "released": outcome.released,
        "events": events,
        "t_first_source_ms": _r(stream.stats.t_first_source_ms),
        "t_first_release_ms": _r(stream.stats.t_first_release_ms),
        "hold_ms_p50": _r(p50),
        "hold_ms_p99": _r(p99),
        "hold_ms_max": _r(top),
    }


async def replay(
    guard: Guard,
    records: Sequence[ReplayRecord],
    out: IO[str],
    *,
    realtime: bool = False,
    concurrency: int = 64,
) -> dict[str, int]:
    """Replay ``records`` with ``concurrency`` streams at once; write lines in input order.

    Returns a count of outcomes by kind.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    results: dict[int, dict[str, Any]] = {}
    written = 0
    counts: dict[str, int] = {}
    indices = iter(range(len(records)))

    def flush() -> None:
        nonlocal written
        while written in results:
            line = results.pop(written)
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            written += 1

    async def worker() -> None:
        for i in indices:
            line = await replay_one(guard, records[i], realtime)
            counts[line["outcome"]] = counts.get(line["outcome"], 0) + 1
            results[i] = line
            flush()

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, max(len(records), 1))):
            group.create_task(worker())
    flush()
    out.flush()
    return counts
