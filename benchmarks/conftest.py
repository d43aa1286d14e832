"""Fixtures shared by the benchmarks, and the summary table printed at the end of a run.

Run (see README.md)::

    python -m pytest benchmarks --benchmark-enable --benchmark-only -q

``pyproject.toml`` sets ``--benchmark-disable`` in ``addopts``; without
``--benchmark-enable`` every benchmark runs once on a small corpus as a smoke test and no
numbers are reported. The plain ``pytest`` run never collects this directory
(``testpaths = ["tests"]``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from benchmarks.corpus import Answer, chunk_text, make_corpus
from guardstream import Guard
from guardstream.bench.sweep import code_state, machine
from guardstream.detectors import BUILTIN_LABELS
from guardstream.replay import weighted_quantile as _weighted_quantile

PROSE_SEED = 1729
PII_SEED = 4242

# Answers per corpus for the throughput benchmarks (about 300 chunks each).
THROUGHPUT_ANSWERS = 40
SMOKE_ANSWERS = 3


def bench_enabled(config: pytest.Config) -> bool:
    """Whether pytest-benchmark will time anything in this run."""
    session = getattr(config, "_benchmarksession", None)
    if session is not None:
        return not session.disabled
    return not config.getoption("benchmark_disable", False) or bool(config.getoption("benchmark_enable", False))


# --------------------------------------------------------------------------- corpora


@dataclass(frozen=True)
class Corpus:
    """Answers and the chunks a BPE-like tokenizer would stream for each of them."""

    name: str
    answers: tuple[Answer, ...]
    streams: tuple[tuple[str, ...], ...]

    @property
    def n_chunks(self) -> int:
        return sum(len(s) for s in self.streams)

    @property
    def n_chars(self) -> int:
        return sum(len(a.text) for a in self.answers)


def build_corpus(name: str, n: int) -> Corpus:
    pii = name == "pii"
    seed = PII_SEED if pii else PROSE_SEED
    answers = tuple(make_corpus(seed, n, pii=pii))
    rng = random.Random(seed * 31 + 7)
    streams = tuple(tuple(chunk_text(a.text, rng)) for a in answers)
    for answer, chunks in zip(answers, streams, strict=True):
        assert "".join(chunks) == answer.text
    return Corpus(name, answers, streams)


@pytest.fixture(scope="session")
def corpora(pytestconfig: pytest.Config) -> dict[str, Corpus]:
    n = THROUGHPUT_ANSWERS if bench_enabled(pytestconfig) else SMOKE_ANSWERS
    return {name: build_corpus(name, n) for name in ("prose", "pii")}


# --------------------------------------------------------------------------- policies

NO_EMAIL_LABELS = [label for label in BUILTIN_LABELS if label != "EMAIL_ADDRESS"]

POLICIES: dict[str, Callable[[], Guard]] = {
    # The shipped preset: every built-in label, budget 1000 ms / 512 chars, release "settled".
    "patterns": lambda: Guard.load("patterns"),
    # The same minus EMAIL_ADDRESS: shows what that one pattern costs in hold time.
    "no_email": lambda: Guard.from_dict({"detectors": [{"type": "patterns", "labels": NO_EMAIL_LABELS}]}),
    # Baseline: the same window and async shell with nothing to detect.
    "no_detectors": lambda: Guard.from_dict({"detectors": []}),
}


@pytest.fixture(scope="session")
def guards() -> dict[str, Guard]:
    built = {name: make() for name, make in POLICIES.items()}
    preset = built["patterns"].policy
    for name, guard in built.items():
        # Only the detectors differ between the policies compared side by side.
        assert guard.policy.budget == preset.budget, name
        assert guard.policy.release == preset.release, name
    return built


# --------------------------------------------------------------------------- results


@dataclass
class Throughput:
    kind: str  # "window" (sync core), "guard.run" (async shell), "async source" (no guard)
    policy: str
    corpus: str
    chunks: int
    chars: int
    median_s: float
    rounds: int

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.median_s

    @property
    def us_per_chunk(self) -> float:
        return self.median_s / self.chunks * 1e6


@dataclass
class Paced:
    policy: str
    corpus: str
    streams: int
    chunks_per_stream: int
    interval_ms: float
    first_ms: float
    added_ttft_ms: list[float]
    hold_ms: list[tuple[float, int]]  # guarded: (consumer-side hold, characters)
    raw_hold_ms: list[tuple[float, int]]  # raw source, same schedule, same run
    engine_hold_ms: list[tuple[float, int]]  # GuardedStream.stats.holds
    redacted: int = 0


@dataclass
class Results:
    throughput: list[Throughput] = field(default_factory=list)
    paced: list[Paced] = field(default_factory=list)


_RESULTS = pytest.StashKey[Results]()


@pytest.fixture(scope="session")
def bench_results(pytestconfig: pytest.Config) -> Results:
    results = pytestconfig.stash.get(_RESULTS, None)
    if results is None:
        results = pytestconfig.stash[_RESULTS] = Results()
    return results


def median_of(benchmark: Any) -> float | None:
    """The median round time of a finished pytest-benchmark fixture (None when disabled)."""
    stats = getattr(benchmark, "stats", None)
    if stats is None or not benchmark.enabled:
        return None
    return float(stats.stats.median)


def weighted_quantile(pairs: Iterable[tuple[float, int]], q: float) -> float:
    """The ``q`` quantile of values weighted by counts (nearest rank); NaN when empty."""
    value = _weighted_quantile(pairs, q)
    return math.nan if value is None else value


# --------------------------------------------------------------------------- summary


TARGET_CHUNKS_PER_S = 50_000


def _targets(results: Results) -> list[str]:
    lines = []
    for r in results.throughput:
        if r.policy == "patterns":
            verdict = "met" if r.chunks_per_s >= TARGET_CHUNKS_PER_S else "NOT met"
            lines.append(
                f"target >= {TARGET_CHUNKS_PER_S:,} chunks/s, {r.kind} patterns {r.corpus}: "
                f"{r.chunks_per_s:,.0f} -> {verdict}"
            )
    for p in results.paced:
        if p.corpus == "prose" and p.policy != "no_detectors":
            med = weighted_quantile(p.hold_ms, 0.5) / p.interval_ms
            verdict = "met" if med < 0.5 else ("NOT met (one full interval)" if med >= 0.9 else "met, narrowly")
            lines.append(f"target median hold < 1 token interval, prose, {p.policy}: {med:.2f} intervals -> {verdict}")
    return lines


def _throughput_lines(rows: list[Throughput]) -> list[str]:
    base = {(r.kind, r.corpus): r for r in rows if r.policy == "no_detectors"}
    sync = {(r.policy, r.corpus): r for r in rows if r.kind == "window"}
    lines = [
        f"{'what':<13} {'policy':<13} {'corpus':<6} {'chunks':>7} {'chunks/s':>10} {'us/chunk':>9}"
        f" {'x no_detectors':>15} {'x window':>9}",
    ]
    for r in rows:
        b = base.get((r.kind, r.corpus))
        ratio = f"{b.chunks_per_s / r.chunks_per_s:.2f}" if b is not None and r.policy != "no_detectors" else "-"
        s = sync.get((r.policy, r.corpus))
        vs_sync = f"{s.chunks_per_s / r.chunks_per_s:.2f}" if s is not None and r.kind != "window" else "-"
        lines.append(
            f"{r.kind:<13} {r.policy:<13} {r.corpus:<6} {r.chunks:>7} {r.chunks_per_s:>10,.0f} "
            f"{r.us_per_chunk:>9.1f} {ratio:>15} {vs_sync:>9}"
        )
    return lines


def _paced_lines(rows: list[Paced]) -> list[str]:
    lines = []
    if rows:
        r0 = rows[0]
        lines.append(
            f"paced source: first chunk at {r0.first_ms:.0f} ms, then one every {r0.interval_ms:.0f} ms; "
            f"{r0.streams} streams x {r0.chunks_per_stream} chunks per case, each next to a raw consumer "
            "of the same schedule"
        )
    lines.append(
        f"{'policy':<13} {'corpus':<6} {'+TTFT med ms':>12} {'hold med ms':>11} {'(tok)':>6} {'hold p99 ms':>11}"
        f" {'(tok)':>6} {'raw p99 ms':>10} {'engine med/p99 ms':>18}"
    )
    for r in rows:
        ttft = sorted(r.added_ttft_ms)
        med_ttft = ttft[len(ttft) // 2] if ttft else math.nan
        med = weighted_quantile(r.hold_ms, 0.5)
        p99 = weighted_quantile(r.hold_ms, 0.99)
        raw99 = weighted_quantile(r.raw_hold_ms, 0.99)
        emed = weighted_quantile(r.engine_hold_ms, 0.5)
        e99 = weighted_quantile(r.engine_hold_ms, 0.99)
        lines.append(
            f"{r.policy:<13} {r.corpus:<6} {med_ttft:>12.1f} {med:>11.1f} {med / r.interval_ms:>6.2f} "
            f"{p99:>11.1f} {p99 / r.interval_ms:>6.2f} {raw99:>10.2f} {f'{emed:.1f}/{e99:.1f}':>18}"
        )
    return lines


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    results = config.stash.get(_RESULTS, None)
    if results is None or not (results.throughput or results.paced):
        return
    tr = terminalreporter
    tr.write_sep("=", "guardstream benchmark summary")
    tr.write_line(machine())
    tr.write_line(code_state())
    if results.throughput:
        tr.write_line("")
        tr.write_line("throughput: median round time; 'x no_detectors' = how many times slower than the")
        tr.write_line("no-detector policy on the same corpus in this run; 'x window' = times slower than the sync core")
        for line in _throughput_lines(results.throughput):
            tr.write_line(line)
    if results.paced:
        tr.write_line("")
        for line in _paced_lines(results.paced):
            tr.write_line(line)
    targets = _targets(results)
    if targets:
        tr.write_line("")
        for line in targets:
            tr.write_line(line)
