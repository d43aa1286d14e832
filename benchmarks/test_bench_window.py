"""Throughput: chunks per second through the sync window and through the async guard.

Every case runs a whole corpus (40 answers, about 12-15k BPE-like chunks) per round, one
fresh window (or one ``guard.run``) per answer, as a server would. The same corpus goes
through the ``no_detectors`` policy in the same run, so detection overhead is a ratio
(see the summary table printed at the end of the run).

Nothing here asserts on time; the correctness checks (nothing planted gets out, the
no-detector policy releases the text unchanged) only make sure a fast number is not a
broken guard.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from benchmarks.conftest import Corpus, Results, Throughput, median_of
from guardstream import Guard

ROUNDS = 7
STEP_MS = 20.0  # the clock the window sees: one chunk every 20 ms (50 tokens/s)

CASES = [(policy, corpus) for policy in ("patterns", "no_email", "no_detectors") for corpus in ("prose", "pii")]


def feed_all(guard: Guard, streams: Sequence[Sequence[str]]) -> None:
    """The timed loop for the sync core: one window per answer, every chunk, then finish."""
    for chunks in streams:
        window = guard.window()
        now = 0.0
        for chunk in chunks:
            window.feed(chunk, now)
            now += STEP_MS
        window.finish(now)


async def unpaced(chunks: Sequence[str]) -> AsyncIterator[str]:
    for chunk in chunks:
        yield chunk


async def run_all(guard: Guard, streams: Sequence[Sequence[str]]) -> None:
    for chunks in streams:
        await guard.run(unpaced(chunks))


async def drain_all(streams: Sequence[Sequence[str]]) -> None:
    for chunks in streams:
        async for _ in unpaced(chunks):
            pass


def check_released(guard_name: str, guard: Guard, corpus: Corpus) -> None:
    """Not timed: the guard under test really guards."""
    for answer, chunks in zip(corpus.answers, corpus.streams, strict=True):
        window = guard.window()
        for i, chunk in enumerate(chunks):
            window.feed(chunk, i * STEP_MS)
        released = window.finish(len(chunks) * STEP_MS)[-1]
        if guard_name == "no_detectors":
            assert released.released == answer.text
            continue
        for planted in answer.planted:
            if guard_name == "patterns" or planted.label != "EMAIL_ADDRESS":
                assert planted.text not in released.released, planted


def _record(benchmark: object, results: Results, kind: str, policy: str, corpus: Corpus) -> None:
    median = median_of(benchmark)
    if median is None:
        return
    row = Throughput(kind, policy, corpus.name, corpus.n_chunks, corpus.n_chars, median, ROUNDS)
    benchmark.extra_info.update(  # type: ignore[attr-defined]
        chunks=row.chunks, chars=row.chars, chunks_per_s=round(row.chunks_per_s), us_per_chunk=row.us_per_chunk
    )
    results.throughput.append(row)


@pytest.mark.benchmark(group="window (sync core)")
@pytest.mark.parametrize(("policy", "corpus_name"), CASES)
def test_window_throughput(
    benchmark,
    guards: dict[str, Guard],
    corpora: dict[str, Corpus],
    bench_results: Results,
    policy: str,
    corpus_name: str,
) -> None:
    guard, corpus = guards[policy], corpora[corpus_name]
    check_released(policy, guard, corpus)
    benchmark.pedantic(feed_all, args=(guard, corpus.streams), rounds=ROUNDS, warmup_rounds=1)
    _record(benchmark, bench_results, "window", policy, corpus)


@pytest.mark.benchmark(group="guard.run (async shell)")
@pytest.mark.parametrize(("policy", "corpus_name"), [c for c in CASES if c[0] != "no_email"])
def test_guard_run_throughput(
    benchmark,
    guards: dict[str, Guard],
    corpora: dict[str, Corpus],
    bench_results: Results,
    policy: str,
    corpus_name: str,
) -> None:
    guard, corpus = guards[policy], corpora[corpus_name]
    with asyncio.Runner() as runner:
        outcome = runner.run(guard.run(unpaced(corpus.streams[0])))
        assert outcome.kind == "completed"
        benchmark.pedantic(lambda: runner.run(run_all(guard, corpus.streams)), rounds=ROUNDS, warmup_rounds=1)
    _record(benchmark, bench_results, "guard.run", policy, corpus)


@pytest.mark.benchmark(group="guard.run (async shell)")
def test_async_source_alone(benchmark, corpora: dict[str, Corpus], bench_results: Results) -> None:
    """The floor for the async shell: draining the same async generators with no guard."""
    corpus = corpora["prose"]
    with asyncio.Runner() as runner:
        benchmark.pedantic(lambda: runner.run(drain_all(corpus.streams)), rounds=ROUNDS, warmup_rounds=1)
    _record(benchmark, bench_results, "async source", "(no guard)", corpus)
