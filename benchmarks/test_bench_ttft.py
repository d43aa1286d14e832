"""Latency on a paced stream: added time to first token and per-character hold.

A paced source imitates a model: the first chunk after ``FIRST_MS`` (200 ms), then one
chunk every ``INTERVAL_MS`` (20 ms, i.e. 50 tokens/s). For each answer, two identical
sources run on the same schedule at the same time in the same event loop: one read raw,
one read through ``guard.stream``. Everything is measured where the consumer sees it:

* added TTFT: when the consumer first sees a non-whitespace character through the guard,
  minus the same for the raw consumer of the same schedule (a lone leading space released
  ahead of the word it belongs to does not count as a first token);
* per-character hold: when the consumer gets a character's ``Released`` event, minus when
  the source handed over the chunk holding it (the raw consumer's hold is the floor: the
  cost of reading an async generator at all).

The engine's own view (``GuardedStream.stats.holds``, stamped with the arrival time of the
chunk that caused the release) is reported next to it.

``test_bench_window.py`` explains the policies. Per case the run lasts about
``FIRST_MS + CHUNKS * INTERVAL_MS`` (2.2 s); with ``--benchmark-disable`` each case runs a
tiny, fast version as a smoke test. pytest-benchmark's own table shows only the wall time
of each paced run; the numbers that matter are in the summary printed at the end.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from benchmarks.conftest import Corpus, Paced, Results, bench_enabled, weighted_quantile
from benchmarks.corpus import Answer
from guardstream import Guard, Redacted, Released

FIRST_MS = 200.0
INTERVAL_MS = 20.0
STREAMS = 8
CHUNKS = 100


@dataclass(frozen=True)
class Schedule:
    first_ms: float
    interval_ms: float
    streams: int
    chunks: int


FULL = Schedule(FIRST_MS, INTERVAL_MS, STREAMS, CHUNKS)
SMOKE = Schedule(10.0, 2.0, 2, 15)


@dataclass
class PacedSource:
    """Yields ``chunks`` on a fixed schedule from ``t0``; records when each was handed over."""

    chunks: Sequence[str]
    t0: float
    schedule: Schedule
    handed: list[float] = field(default_factory=list)

    async def __call__(self) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        for i, chunk in enumerate(self.chunks):
            due = self.t0 + (self.schedule.first_ms + i * self.schedule.interval_ms) / 1000
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.handed.append(loop.time())
            yield chunk


def per_char_holds(
    chunks: Sequence[str], handed: Sequence[float], receipts: Sequence[tuple[int, int, float]]
) -> list[tuple[float, int]]:
    """``(hold_ms, characters)`` from chunk hand-over times and ``(start, end, t)`` receipts."""
    starts = [0]
    for chunk in chunks:
        starts.append(starts[-1] + len(chunk))
    holds: list[tuple[float, int]] = []
    for a, b, t in receipts:
        i = bisect.bisect_right(starts, a) - 1
        while i < len(chunks) and starts[i] < b:
            n = min(starts[i + 1], b) - max(starts[i], a)
            if n > 0:
                holds.append(((t - handed[i]) * 1000, n))
            i += 1
    return holds


@dataclass
class PairResult:
    added_ttft_ms: float
    holds: list[tuple[float, int]]
    raw_holds: list[tuple[float, int]]
    engine_holds: list[tuple[float, int]]
    released: str
    redacted: int


async def run_pair(guard: Guard, chunks: Sequence[str], schedule: Schedule) -> PairResult:
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.005  # both sources start from the same instant
    raw_src = PacedSource(chunks, t0, schedule)
    guarded_src = PacedSource(chunks, t0, schedule)

    async def raw() -> tuple[float, list[tuple[int, int, float]]]:
        receipts: list[tuple[int, int, float]] = []
        pos = 0
        first = float("nan")
        async for chunk in raw_src():
            now = loop.time()
            if first != first and not chunk.isspace():  # NaN: nothing visible yet
                first = now
            receipts.append((pos, pos + len(chunk), now))
            pos += len(chunk)
        return first, receipts

    async def guarded() -> tuple[float, list[tuple[int, int, float]], list[tuple[float, int]], str, int]:
        receipts: list[tuple[int, int, float]] = []
        first = float("nan")
        redacted = 0
        async with guard.stream(guarded_src()) as events:
            async for event in events:
                if isinstance(event, Released) and event.span.end > event.span.start:
                    now = loop.time()
                    if first != first and event.text and not event.text.isspace():
                        first = now
                    receipts.append((event.span.start, event.span.end, now))
                elif isinstance(event, Redacted):
                    redacted += 1
        assert events.outcome is not None and events.outcome.kind == "completed", events.outcome
        return first, receipts, list(events.stats.holds), events.outcome.released, redacted

    (raw_first, raw_receipts), (g_first, g_receipts, engine, released, redacted) = await asyncio.gather(
        raw(), guarded()
    )
    return PairResult(
        added_ttft_ms=(g_first - raw_first) * 1000,
        holds=per_char_holds(chunks, guarded_src.handed, g_receipts),
        raw_holds=per_char_holds(chunks, raw_src.handed, raw_receipts),
        engine_holds=engine,
        released=released,
        redacted=redacted,
    )


def window_of(answer: Answer, chunks: Sequence[str], n: int) -> tuple[list[str], str]:
    """``n`` chunks to stream: the answer's start, or for planted PII a stretch around it."""
    if not answer.planted or len(chunks) <= n:
        picked = list(chunks[:n])
        return picked, "".join(picked)
    at = answer.text.index(answer.planted[0].text)
    offsets = [0]
    for chunk in chunks:
        offsets.append(offsets[-1] + len(chunk))
    hit = bisect.bisect_right(offsets, at) - 1
    start = max(0, min(hit - n // 3, len(chunks) - n))
    # Begin at a sentence or line start so the first token looks like one.
    while start > 0 and not (chunks[start - 1].endswith((".", "!", "?", "\n")) and chunks[start].startswith(" ")):
        start -= 1
    picked = list(chunks[start : start + n])
    return picked, "".join(picked)


async def run_case(
    guard: Guard, corpus: Corpus, schedule: Schedule
) -> tuple[list[PairResult], list[Answer], list[str]]:
    answers = list(corpus.answers[: schedule.streams])
    picked = [window_of(a, s, schedule.chunks) for a, s in zip(answers, corpus.streams, strict=False)]
    results = await asyncio.gather(*(run_pair(guard, chunks, schedule) for chunks, _ in picked))
    return list(results), answers, [text for _, text in picked]


CASES = [(policy, corpus) for corpus in ("prose", "pii") for policy in ("patterns", "no_email", "no_detectors")]


@pytest.mark.benchmark(group="paced stream (wall time of the run; see the summary)")
@pytest.mark.parametrize(("policy", "corpus_name"), CASES)
def test_paced_latency(
    benchmark,
    pytestconfig: pytest.Config,
    guards: dict[str, Guard],
    corpora: dict[str, Corpus],
    bench_results: Results,
    policy: str,
    corpus_name: str,
) -> None:
    schedule = FULL if bench_enabled(pytestconfig) else SMOKE
    guard, corpus = guards[policy], corpora[corpus_name]
    pairs, answers, texts = benchmark.pedantic(
        lambda: asyncio.run(run_case(guard, corpus, schedule)), rounds=1, iterations=1
    )

    # Not timing assertions: the stream was guarded, and completely released.
    guarded = 0
    for pair, answer, text in zip(pairs, answers, texts, strict=True):
        assert sum(n for _, n in pair.holds) == len(text)
        if policy == "no_detectors":
            assert pair.released == text
            continue
        for planted in answer.planted:
            if planted.text in text and (policy == "patterns" or planted.label != "EMAIL_ADDRESS"):
                assert planted.text not in pair.released, planted
                guarded += 1
    assert sum(p.redacted for p in pairs) >= (1 if guarded else 0)

    row = Paced(
        policy=policy,
        corpus=corpus_name,
        streams=len(pairs),
        chunks_per_stream=schedule.chunks,
        interval_ms=schedule.interval_ms,
        first_ms=schedule.first_ms,
        added_ttft_ms=[p.added_ttft_ms for p in pairs],
        hold_ms=[h for p in pairs for h in p.holds],
        raw_hold_ms=[h for p in pairs for h in p.raw_holds],
        engine_hold_ms=[h for p in pairs for h in p.engine_holds],
        redacted=sum(p.redacted for p in pairs),
    )
    if benchmark.enabled:
        ttft = sorted(row.added_ttft_ms)
        benchmark.extra_info.update(
            added_ttft_median_ms=ttft[len(ttft) // 2],
            hold_median_ms=weighted_quantile(row.hold_ms, 0.5),
            hold_p99_ms=weighted_quantile(row.hold_ms, 0.99),
            interval_ms=schedule.interval_ms,
        )
        bench_results.paced.append(row)
