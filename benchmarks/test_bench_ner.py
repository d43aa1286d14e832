"""NER under load: how many paced streams one core can guard, against the naive per-token call.

N streams run concurrently in one event loop, with the whole process pinned to one CPU.
Each stream is a paced source: its first chunk after ``FIRST_MS`` (plus a seeded phase
within one interval, so streams do not tick in lockstep), then one chunk every
``INTERVAL_MS`` (20 ms, i.e. 50 tokens/s); the chunks are BPE-like chunks of the NER corpus
(``benchmarks/ner_corpus.py``), the first ``CHUNKS`` of one answer per stream.

* **guardstream**: every stream goes through ``guard.stream`` with the ``pii`` preset
  (patterns + batched NER). Per character we measure the engine's hold
  (``GuardedStream.stats.holds``: release time minus arrival at the guard) and the delay
  against the schedule (release time at the consumer minus the chunk's due time). The
  second includes event-loop lag, which the first cannot see when the loop is overloaded.
* **naive**: what LLM Guard's streaming example does: after every token, run Presidio (the
  same analyzer, ``PresidioDetector.analyze``) on the last 200 characters, inline, and pass
  the token on. Same two measures.

A rung of the ladder ``N`` is **sustained** when the p99 per-character delay against the
schedule is at most ``MAX_P99_MS`` (250 ms); the ladder stops at the first rung that is not.
Besides the naive ladder, the naive capacity is also computed from the measured cost of one
200-character call: ``floor(1000 ms / (50 tokens/s x cost))``.

Results are printed in the "guardstream NER concurrency" block at the end of the run (and
in ``extra_info`` with ``--benchmark-json``). With ``--benchmark-disable`` a tiny ladder
runs on a 2 ms schedule as a smoke test. Nothing here is a timed assertion.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import pytest

from benchmarks.conftest import bench_enabled, weighted_quantile
from benchmarks.corpus import chunk_text
from benchmarks.ner_corpus import make_ner_corpus
from benchmarks.test_bench_ttft import per_char_holds
from guardstream import Guard, Redacted, Released
from guardstream.detectors.presidio import PresidioDetector
from guardstream.events import BudgetExceeded

SEED = 5150
MAX_P99_MS = 250.0
NAIVE_CONTEXT = 200


@dataclass(frozen=True)
class Plan:
    first_ms: float
    interval_ms: float
    chunks: int
    ladder: tuple[int, ...]
    naive_ladder: tuple[int, ...]
    cost_calls: int


FULL = Plan(200.0, 20.0, 100, (10, 25, 50, 75, 100, 125, 150, 200), (1, 2, 3, 4, 6, 8), 100)
SMOKE = Plan(10.0, 2.0, 40, (2,), (1,), 3)


# --------------------------------------------------------------------------- one core


@contextmanager
def one_core() -> Iterator[int | None]:
    """Pin every thread of this process (and threads started meanwhile) to one CPU."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    cpu = min(os.sched_getaffinity(0))
    before: dict[int, set[int]] = {}
    for tid in map(int, os.listdir("/proc/self/task")):
        try:
            before[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, {cpu})
        except OSError:  # the thread ended meanwhile
            pass
    try:
        yield cpu
    finally:
        for tid, cpus in before.items():
            with suppress(OSError):
                os.sched_setaffinity(tid, cpus)


# --------------------------------------------------------------------------- streams


@dataclass
class Stream:
    chunks: list[str]
    phase_ms: float

    @property
    def text(self) -> str:
        return "".join(self.chunks)


def make_streams(n: int, plan: Plan, seed: int = SEED) -> list[Stream]:
    answers = make_ner_corpus(seed, n)
    rng = random.Random(seed)
    streams = []
    for answer in answers:
        chunks = chunk_text(answer.text, rng)[: plan.chunks]
        streams.append(Stream(chunks, rng.uniform(0, plan.interval_ms)))
    return streams


async def paced(stream: Stream, t0: float, plan: Plan, handed: list[float]) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    for i, chunk in enumerate(stream.chunks):
        delay = t0 + due_s(stream, plan, i) - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        handed.append(loop.time())
        yield chunk


def due_s(stream: Stream, plan: Plan, i: int) -> float:
    return (plan.first_ms + stream.phase_ms + i * plan.interval_ms) / 1000


@dataclass
class Rung:
    system: str  # "guardstream" | "naive"
    n: int
    hold: list[tuple[float, int]]  # release minus arrival (engine / hand-over)
    delay: list[tuple[float, int]]  # release at the consumer minus due time
    wall_s: float
    model_calls: int = 0
    model_texts: int = 0
    model_s: float = 0.0
    redactions: int = 0
    budget_events: int = 0

    @property
    def hold_p99(self) -> float:
        return weighted_quantile(self.hold, 0.99)

    @property
    def delay_p99(self) -> float:
        return weighted_quantile(self.delay, 0.99)

    @property
    def sustained(self) -> bool:
        return self.delay_p99 <= MAX_P99_MS


class _CountingModel:
    """Counts the detector's model calls, texts and time (an instance attribute, restored after)."""

    def __init__(self, detector: PresidioDetector) -> None:
        self.detector = detector
        self.calls = self.texts = 0
        self.seconds = 0.0

    def __enter__(self) -> _CountingModel:
        plain = type(self.detector).analyze

        def analyze(texts: list[str]) -> Any:
            t = time.perf_counter()
            try:
                return plain(self.detector, texts)
            finally:
                self.seconds += time.perf_counter() - t
                self.calls += 1
                self.texts += len(texts)

        self.detector.analyze = analyze  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self.detector.analyze


async def guarded_rung(guard: Guard, streams: Sequence[Stream], plan: Plan) -> tuple[Rung, list[str]]:
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.01

    async def one(stream: Stream) -> tuple[list[tuple[float, int]], list[tuple[float, int]], str, int, int]:
        handed: list[float] = []
        receipts: list[tuple[int, int, float]] = []
        redacted = budget = 0
        async with guard.stream(paced(stream, t0, plan, handed)) as events:
            async for event in events:
                if isinstance(event, Released) and event.span.end > event.span.start:
                    receipts.append((event.span.start, event.span.end, loop.time()))
                elif isinstance(event, Redacted):
                    redacted += 1
                elif isinstance(event, BudgetExceeded):
                    budget += 1
        assert events.outcome is not None and events.outcome.kind == "completed", events.outcome
        due = [t0 + due_s(stream, plan, i) for i in range(len(stream.chunks))]
        delay = per_char_holds(stream.chunks, due, receipts)
        return list(events.stats.holds), delay, events.outcome.released, redacted, budget

    start = time.perf_counter()
    results = await asyncio.gather(*(one(s) for s in streams))
    wall = time.perf_counter() - start
    rung = Rung(
        "guardstream",
        len(streams),
        hold=[h for r in results for h in r[0]],
        delay=[h for r in results for h in r[1]],
        wall_s=wall,
        redactions=sum(r[3] for r in results),
        budget_events=sum(r[4] for r in results),
    )
    return rung, [r[2] for r in results]


async def naive_rung(detector: PresidioDetector, streams: Sequence[Stream], plan: Plan) -> Rung:
    """Presidio on the last 200 characters after every token, inline, as LLM Guard's example does."""
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.01

    model_s = 0.0

    async def one(stream: Stream) -> tuple[list[tuple[float, int]], list[tuple[float, int]], int]:
        nonlocal model_s
        handed: list[float] = []
        receipts: list[tuple[int, int, float]] = []
        buffer, pos, found = "", 0, 0
        async for chunk in paced(stream, t0, plan, handed):
            buffer = (buffer + chunk)[-NAIVE_CONTEXT:]
            t = time.perf_counter()
            found += len(detector.analyze([buffer])[0])  # blocks the loop, as inline scanning does
            model_s += time.perf_counter() - t
            receipts.append((pos, pos + len(chunk), loop.time()))
            pos += len(chunk)
        due = [t0 + due_s(stream, plan, i) for i in range(len(stream.chunks))]
        return per_char_holds(stream.chunks, handed, receipts), per_char_holds(stream.chunks, due, receipts), found

    start = time.perf_counter()
    results = await asyncio.gather(*(one(s) for s in streams))
    wall = time.perf_counter() - start
    return Rung(
        "naive",
        len(streams),
        hold=[h for r in results for h in r[0]],
        delay=[h for r in results for h in r[1]],
        wall_s=wall,
        model_calls=sum(len(s.chunks) for s in streams),
        model_texts=sum(len(s.chunks) for s in streams),
        model_s=model_s,
        redactions=sum(r[2] for r in results),
    )


def naive_call_cost_ms(detector: PresidioDetector, streams: Sequence[Stream], calls: int) -> float:
    """Median time of one inline call on a 200-character tail, measured on the corpus."""
    texts = [s.text[max(0, len(s.text) // 2 - NAIVE_CONTEXT) : len(s.text) // 2] for s in streams]
    times = []
    for i in range(calls):
        t = time.perf_counter()
        detector.analyze([texts[i % len(texts)]])
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2] * 1000


# --------------------------------------------------------------------------- summary


@dataclass
class NerResults:
    cpu: int | None = None
    plan: Plan | None = None
    rungs: list[Rung] = field(default_factory=list)
    naive_cost_ms: float = math.nan
    names_per_kchar: float = math.nan

    def largest(self, system: str) -> int | None:
        best = None
        for r in self.rungs:
            if r.system == system:
                if not r.sustained:
                    break
                best = r.n
        return best

    def lines(self) -> list[str]:
        plan = self.plan
        assert plan is not None
        out = [
            f"pinned to CPU {self.cpu}; paced: first chunk at {plan.first_ms:.0f} ms (+ phase < 1 interval), "
            f"then one every {plan.interval_ms:.0f} ms; {plan.chunks} BPE-like chunks per stream; "
            f"{self.names_per_kchar:.1f} planted names/places per 1,000 characters",
            f"{'system':<12} {'N':>4} {'delay p99 ms':>12} {'hold p99 ms':>11} {'hold p50 ms':>11} {'wall s':>7}"
            f" {'model calls':>11} {'texts/call':>10} {'model CPU %':>11} {'budget':>6}  sustained",
        ]
        for r in self.rungs:
            span = plan.first_ms / 1000 + plan.chunks * plan.interval_ms / 1000
            per_call = f"{r.model_texts / r.model_calls:.1f}" if r.model_calls else "-"
            cpu = f"{100 * r.model_s / r.wall_s:.0f}" if r.model_calls else "-"
            out.append(
                f"{r.system:<12} {r.n:>4} {r.delay_p99:>12.1f} {r.hold_p99:>11.1f}"
                f" {weighted_quantile(r.hold, 0.5):>11.1f} {r.wall_s:>7.2f} {r.model_calls or '-':>11}"
                f" {per_call:>10} {cpu:>11} {r.budget_events:>6}  {'yes' if r.sustained else 'NO'}"
                + (f" (ran {r.wall_s / span:.1f}x the schedule)" if r.wall_s > 1.2 * span else "")
            )
        g, nv = self.largest("guardstream"), self.largest("naive")
        computed = math.floor(1000 / (1000 / plan.interval_ms * self.naive_cost_ms)) if self.naive_cost_ms else 0
        out.append(
            f"largest N with p99 delay <= {MAX_P99_MS:.0f} ms: guardstream {g}, naive {nv} (ladder); "
            f"naive computed from {self.naive_cost_ms:.2f} ms per 200-char call: {computed}"
        )
        if g and (nv or computed):
            out.append(f"ratio guardstream / naive: {g / max(nv or 0, computed, 1):.0f}x")
        return out


_NER = pytest.StashKey[NerResults]()


class _Summary:
    def __init__(self, results: NerResults) -> None:
        self.results = results

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results.rungs:
            return
        terminalreporter.write_sep("=", "guardstream NER concurrency")
        for line in self.results.lines():
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def ner_results(pytestconfig: pytest.Config) -> NerResults:
    results = pytestconfig.stash.get(_NER, None)
    if results is None:
        results = pytestconfig.stash[_NER] = NerResults()
        pytestconfig.pluginmanager.register(_Summary(results), "guardstream-ner-summary")
    return results


# --------------------------------------------------------------------------- the benchmark


def run_ladders(plan: Plan) -> NerResults:
    guard = Guard.load("pii")
    detector = next(d for d in guard.detectors if isinstance(d, PresidioDetector))
    detector.warmup()
    results = NerResults(plan=plan)
    all_streams = make_streams(max(plan.ladder + plan.naive_ladder), plan)
    answers = make_ner_corpus(SEED, len(all_streams))
    results.names_per_kchar = 1000 * sum(len(a.planted) for a in answers) / sum(len(a.text) for a in answers)
    with one_core() as cpu:
        results.cpu = cpu
        results.naive_cost_ms = naive_call_cost_ms(detector, all_streams, plan.cost_calls)
        for n in plan.ladder:
            streams = all_streams[:n]
            with _CountingModel(detector) as model:
                rung, released = asyncio.run(guarded_rung(guard, streams, plan))
            rung.model_calls, rung.model_texts, rung.model_s = model.calls, model.texts, model.seconds
            # Not timing: every stream completed (asserted in the rung), every character was
            # accounted for, and the model was asked and names were redacted.
            assert len(released) == n
            assert sum(c for _, c in rung.hold) == sum(len(s.text) for s in streams)
            assert rung.redactions > 0 and model.texts > 0
            results.rungs.append(rung)
            if not rung.sustained:
                break
        for n in plan.naive_ladder:
            rung = asyncio.run(naive_rung(detector, all_streams[:n], plan))
            assert sum(c for _, c in rung.delay) == sum(len(s.text) for s in all_streams[:n])
            results.rungs.append(rung)
            if not rung.sustained:
                break
    return results


@pytest.mark.benchmark(group="NER concurrency (wall time of the ladders; see the summary)")
def test_ner_concurrency(benchmark: Any, pytestconfig: pytest.Config, ner_results: NerResults) -> None:
    plan = FULL if bench_enabled(pytestconfig) else SMOKE
    results = benchmark.pedantic(lambda: run_ladders(plan), rounds=1, iterations=1)
    assert {r.system for r in results.rungs} == {"guardstream", "naive"}
    assert results.naive_cost_ms > 0
    if benchmark.enabled:
        ner_results.cpu, ner_results.plan = results.cpu, results.plan
        ner_results.rungs, ner_results.naive_cost_ms = results.rungs, results.naive_cost_ms
        ner_results.names_per_kchar = results.names_per_kchar
        benchmark.extra_info.update(
            largest_n_guardstream=results.largest("guardstream"),
            largest_n_naive=results.largest("naive"),
            naive_call_ms=results.naive_cost_ms,
            rungs=[
                {"system": r.system, "n": r.n, "delay_p99_ms": r.delay_p99, "hold_p99_ms": r.hold_p99}
                for r in results.rungs
            ],
        )
