"""Parity of the streamed NER detector with batch Presidio on the whole text.

Run::

    python -m benchmarks.ner_parity [--streams 300] [--k 0 1 2 3 4] [--seed 2024]

For every answer of the NER corpus (``benchmarks/ner_corpus.py``):

* the **reference** is the PERSON and LOCATION entities the same detector's model finds
  on the whole text in one call (``PresidioDetector.analyze([text])``);
* the answer is streamed through the ``pii`` preset with ``right_context_words = k``
  (same detectors, same budget), one chunking at a time, on the synchronous path: a
  window fed chunk by chunk, ``guard.settle(window, t)`` after every chunk, then
  ``finish`` and ``settle``. The clock is the chunk index in ms (so holds come out in
  chunks and the 1 s time budget never fires).

An entity is **matched** when the stream's acted findings (``Outcome.findings`` from the
``ner`` detector) hold a finding with the same label overlapping it; more strictly it is
**hidden** when its raw text does not occur in ``Outcome.released``; **covered** is the
position-aware version (every non-space character of the entity lies in a redacted span).
Each unmatched entity is put down to one cause, from what the model saw when the stream
settled the entity's first character (see :func:`classify`).
"""

from __future__ import annotations

import argparse
import importlib.resources
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from benchmarks.ner_corpus import NerAnswer, chunkings, make_ner_corpus
from guardstream import Guard
from guardstream.detectors.base import AnalysisRequest
from guardstream.detectors.presidio import _STOP, PresidioDetector, RawEntity
from guardstream.events import BudgetExceeded, Event, Outcome
from guardstream.findings import Finding, Scan

__all__ = [
    "LABELS",
    "Miss",
    "StreamRun",
    "classify",
    "ner_detector",
    "pii_guard",
    "reference",
    "run_stream",
]

LABELS = ("PERSON", "LOCATION")
SEED = 2024
CHUNKINGS = ("per-char", "bpe-like")

# --------------------------------------------------------------------------- policies


def pii_guard(k: int) -> Guard:
    """``Guard.load("pii")`` with the NER detector's ``right_context_words`` set to ``k``."""
    data = yaml.safe_load((importlib.resources.files("guardstream") / "presets" / "pii.yaml").read_text())
    for det in data["detectors"]:
        if det["type"] == "presidio":
            det["right_context_words"] = k
    return Guard.from_dict(data, f"pii.yaml (right_context_words={k})")


def ner_detector(guard: Guard) -> PresidioDetector:
    return next(d for d in guard.detectors if isinstance(d, PresidioDetector))


def reference(detector: PresidioDetector, text: str) -> list[RawEntity]:
    """PERSON and LOCATION entities the model finds on the whole text in one call."""
    return [e for e in detector.analyze([text])[0] if e.label in LABELS]


# --------------------------------------------------------------------------- streaming


@dataclass
class _Step:
    """One thing the NER session did: a scan, or taking a model answer; where it settled after."""

    kind: str  # "scan" | "deliver"
    settled: int
    request: AnalysisRequest | None = None
    result: list[RawEntity] | None = None


class _RecordingSession:
    """Wraps the NER session to record what the model was asked and where it settled.

    Diagnostic only: it reads the session's private ``_settled`` after a delivery (a scan
    reports it publicly in :class:`Scan`). Behaviour is unchanged.
    """

    def __init__(self, inner: Any, steps: list[_Step]) -> None:
        self._inner = inner
        self._steps = steps

    def scan(self, text: str, base: int, final: bool) -> Scan:
        scan: Scan = self._inner.scan(text, base, final)
        self._steps.append(_Step("scan", scan.settled))
        return scan

    def request(self, text: str, base: int, final: bool) -> AnalysisRequest | None:
        request: AnalysisRequest | None = self._inner.request(text, base, final)
        return request

    def deliver(self, request: AnalysisRequest, result: Any) -> None:
        self._inner.deliver(request, result)
        self._steps.append(_Step("deliver", int(self._inner._settled), request, list(result)))


@dataclass
class StreamRun:
    outcome: Outcome
    events: list[Event]
    steps: list[_Step]
    holds: list[tuple[float, int]]  # (hold in chunks, characters), from the window

    @property
    def calls(self) -> int:
        return sum(1 for s in self.steps if s.kind == "deliver")

    @property
    def analysed_chars(self) -> int:
        return sum(len(s.request.text) for s in self.steps if s.request is not None)


class Livelock(RuntimeError):
    """The session asked for the same analysis again and again (see the report: k = 0)."""


LIVELOCK_REPEATS = 20


def run_stream(guard: Guard, chunks: Sequence[str]) -> StreamRun:
    """Stream ``chunks`` through ``guard`` on the sync path; the clock is the chunk index (ms).

    A session that asks for the very same analysis ``LIVELOCK_REPEATS`` times in a row
    would make ``guard.settle`` loop forever; the repeat raises :class:`Livelock` instead,
    which the window reports as the detector's failure (the stream ends ``detector_error``).
    """
    detector = ner_detector(guard)
    steps: list[_Step] = []
    plain_open = type(detector).open
    plain_analyze = type(detector).analyze
    last: list[Any] = [None, 0]

    def analyze(texts: list[str]) -> list[list[RawEntity]]:
        last[1] = last[1] + 1 if texts == last[0] else 1
        last[0] = texts
        if last[1] > LIVELOCK_REPEATS:
            raise Livelock(f"the same {len(texts[0])}-character analysis requested {last[1]} times in a row")
        return plain_analyze(detector, texts)

    detector.open = lambda: _RecordingSession(plain_open(detector), steps)  # type: ignore[method-assign]
    detector.analyze = analyze  # type: ignore[method-assign]
    try:
        window = guard.window()
        events: list[Event] = []
        t = 0.0
        for t_i, chunk in enumerate(chunks):
            t = float(t_i)
            events += window.feed(chunk, t)
            events += guard.settle(window, t)
            if not window.is_open:
                break
        events += window.finish(t)
        events += guard.settle(window, t)
    finally:
        del detector.open
        del detector.analyze
    outcome = next(e for e in reversed(events) if isinstance(e, Outcome))
    assert isinstance(outcome, Outcome), outcome
    return StreamRun(outcome, events, steps, list(window.holds))


# --------------------------------------------------------------------------- judging


def _overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start < b_end and b_start < a_end


def matched(entity: RawEntity, findings: Sequence[Finding]) -> bool:
    return any(
        f.detector == "ner" and f.label == entity.label and _overlaps(f.start, f.end, entity.start, entity.end)
        for f in findings
    )


def covered(entity: RawEntity, text: str, findings: Sequence[Finding]) -> bool:
    """Every non-space character of the entity lies inside a finding acted on (redacted)."""
    return all(
        text[i].isspace() or any(f.start <= i < f.end for f in findings) for i in range(entity.start, entity.end)
    )


class _Model:
    """The detector's model with a cache, for the counterfactual analyses of misses."""

    def __init__(self, detector: PresidioDetector) -> None:
        self._detector = detector
        self._cache: dict[str, list[RawEntity]] = {}
        self.calls = 0

    def finds(self, text: str, offset: int, entity: RawEntity) -> bool:
        """Does the model, on ``text`` (starting at ``offset``), find ``entity`` with its label?"""
        result = self._cache.get(text)
        if result is None:
            result = self._cache[text] = self._detector.analyze([text])[0]
            self.calls += 1
        return any(
            e.label == entity.label and _overlaps(e.start + offset, e.end + offset, entity.start, entity.end)
            for e in result
        )


def classify(entity: RawEntity, text: str, run: StreamRun, model: _Model) -> str:
    """Why the stream did not act on ``entity`` (which the whole-text analysis found).

    * ``pattern overlap``: a pattern finding overlaps it (and took precedence);
    * ``budget release``: the latency budget released it before it settled;
    * ``lower-case start`` / ``stop-word start`` / ``settled without a model call``: the
      stream settled its first character without asking the model (no name-like word);
    * ``label changed``: the analysis that settled it found it, under another label;
    * ``found, then dropped``: that analysis found it with the label, but the session
      did not act (part of it was settled before, or it ran past the analysed text);
    * ``right context too short``: that analysis missed it, and the same text with the rest
      of the answer after it finds it;
    * ``left context truncated``: that analysis missed it, and the answer up to the same
      point (all left context) finds it;
    * ``context (both sides)``: only the whole answer finds it.
    """
    findings = run.outcome.findings
    outcome = run.outcome
    if outcome.kind != "completed" and entity.end > outcome.source_chars - outcome.withheld_chars:
        return f"stream ended {outcome.kind} (livelock)"
    if any(f.detector != "ner" and _overlaps(f.start, f.end, entity.start, entity.end) for f in findings):
        return "pattern overlap"
    for ev in run.events:
        if isinstance(ev, BudgetExceeded) and _overlaps(ev.span.start, ev.span.end, entity.start, entity.end):
            return "budget release"
    decider = next((s for s in run.steps if s.settled > entity.start), None)
    if decider is None or decider.request is None:
        return _no_call_cause(text[entity.start : entity.end])
    request, result = decider.request, decider.result or []
    rel = [
        e
        for e in result
        if _overlaps(e.start + request.base, e.end + request.base, entity.start, entity.end) and e.label in LABELS
    ]
    if any(e.label == entity.label for e in rel):
        return "found, then dropped"
    if rel:
        return "label changed"
    if model.finds(text[request.base :], request.base, entity):
        return "right context too short"
    if model.finds(text[: request.upto], 0, entity):
        return "left context truncated"
    return "context (both sides)"


def _no_call_cause(entity_text: str) -> str:
    first = entity_text.split()[0]
    if first[:1].islower():
        return "lower-case start"
    if first.rstrip(".-'’") in _STOP:
        return "stop-word start"
    if any(first[:i] in _STOP for i in range(1, len(first))):
        # The word arrived in pieces and its first piece ("A", "Is", "To") is a stop word.
        return "partial word taken for a stop word (bug)"
    return "settled without a model call"


def classify_exposure(entity: RawEntity, text: str, run: StreamRun) -> str:
    """Why the raw text of a matched entity still reached the output."""
    decider = next((s for s in run.steps if s.settled > entity.start), None)
    if decider is not None and decider.request is None:
        return _no_call_cause(text[entity.start : entity.end])
    return "stream span narrower than the whole-text span"


@dataclass
class Miss:
    cause: str
    label: str
    entity: str
    context: str
    stream: int


@dataclass
class Cell:
    """Results for one k and one chunking."""

    k: int
    chunking: str
    entities: int = 0
    matched: int = 0
    hidden: int = 0
    covered: int = 0
    extras: int = 0
    budget_events: int = 0
    failed: int = 0  # streams that did not complete (Livelock)
    calls: list[int] = field(default_factory=list)
    chars: list[int] = field(default_factory=list)
    text_chars: int = 0
    holds: list[tuple[float, int]] = field(default_factory=list)  # (hold in chunks, chars), every char
    misses: list[Miss] = field(default_factory=list)
    exposed: list[Miss] = field(default_factory=list)  # matched, but raw text released

    @property
    def held_pct(self) -> float:
        total = sum(n for _, n in self.holds)
        return 100.0 * sum(n for h, n in self.holds if h > 0) / total if total else math.nan

    def pct(self, n: int) -> float:
        return 100.0 * n / self.entities if self.entities else math.nan


def _context(text: str, e: RawEntity, width: int = 40) -> str:
    a, b = max(0, e.start - width), min(len(text), e.end + width)
    return (text[a : e.start] + "[[" + text[e.start : e.end] + "]]" + text[e.end : b]).replace("\n", "⏎")


def evaluate(
    cell: Cell, index: int, text: str, ref: list[RawEntity], run: StreamRun, model: _Model | None
) -> list[tuple[RawEntity, bool, bool]]:
    """Add one stream to ``cell``; returns ``(entity, matched, hidden)`` per reference entity."""
    outcome = run.outcome
    if outcome.kind != "completed":
        cell.failed += 1
    findings = outcome.findings
    out = []
    cell.text_chars += len(text)
    cell.calls.append(run.calls)
    cell.chars.append(run.analysed_chars)
    cell.budget_events += sum(isinstance(e, BudgetExceeded) for e in run.events)
    cell.holds += run.holds
    for e in ref:
        cell.entities += 1
        is_matched = matched(e, findings)
        is_hidden = text[e.start : e.end] not in outcome.released
        is_covered = covered(e, text, findings)
        cell.matched += is_matched
        cell.hidden += is_hidden
        cell.covered += is_covered
        if not is_matched:
            cause = classify(e, text, run, model) if model is not None else "unclassified"
            cell.misses.append(Miss(cause, e.label, text[e.start : e.end], _context(text, e), index))
        elif not is_hidden:
            cause = classify_exposure(e, text, run)
            cell.exposed.append(Miss(cause, e.label, text[e.start : e.end], _context(text, e), index))
        out.append((e, is_matched, is_hidden))
    for f in findings:
        if f.detector == "ner" and not any(
            r.label == f.label and _overlaps(r.start, r.end, f.start, f.end) for r in ref
        ):
            cell.extras += 1
    return out


# --------------------------------------------------------------------------- report


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def _p99(xs: Sequence[float]) -> float:
    if not xs:
        return math.nan
    s = sorted(xs)
    return float(s[min(len(s) - 1, math.ceil(0.99 * len(s)) - 1)])


def _wq(pairs: Sequence[tuple[float, int]], q: float) -> float:
    total = sum(n for _, n in pairs)
    if not total:
        return math.nan
    need, acc = q * total, 0
    for v, n in sorted(pairs):
        acc += n
        if acc >= need:
            return v
    return sorted(pairs)[-1][0]


def table(cells: Sequence[Cell], ref_chars: int, n_streams: int) -> list[str]:
    lines = [
        f"{'k':>2} {'chunking':<9} {'entities':>8} {'matched':>8} {'hidden':>7} {'covered':>8} {'extra':>5}"
        f" {'calls mean/p99':>14} {'chars mean/p99':>15} {'x text':>6} {'held %':>6} {'hold p99 / held p50':>19}"
        "  misses by cause",
    ]
    for c in cells:
        causes = Counter(m.cause for m in c.misses)
        cause_text = ", ".join(f"{cause} {n}" for cause, n in causes.most_common()) or "-"
        lines.append(
            f"{c.k:>2} {c.chunking:<9} {c.entities:>8} {c.pct(c.matched):>7.2f}% {c.pct(c.hidden):>6.2f}%"
            f" {c.pct(c.covered):>7.2f}% {c.extras:>5} {_mean(c.calls):>7.2f}/{_p99(c.calls):<6.0f}"
            f" {_mean(c.chars):>7.0f}/{_p99(c.chars):<7.0f} {sum(c.chars) / c.text_chars:>6.2f}"
            f" {c.held_pct:>6.1f} {_wq(c.holds, 0.99):>9.0f} / {_wq([h for h in c.holds if h[0] > 0], 0.5):<7.0f}"
            f"  {cause_text}"
        )
    lines.append(
        f"reference: 1 call per stream on the whole text, {ref_chars / n_streams:.0f} chars mean "
        "('x text' = analysed characters / streamed characters; holds in chunks: 'held %' of characters"
        " waited at all, 'hold p99' over all characters, 'held p50' over those that waited)"
    )
    return lines


def run(
    n_streams: int, ks: Sequence[int], seed: int = SEED, chunking_names: Sequence[str] = CHUNKINGS, log: Any = None
) -> tuple[list[Cell], list[NerAnswer], int]:
    answers = make_ner_corpus(seed, n_streams)
    guards = {k: pii_guard(k) for k in ks}
    base = ner_detector(next(iter(guards.values())))
    base.warmup()
    model = _Model(base)
    refs = [reference(base, a.text) for a in answers]
    cells = {(k, c): Cell(k, c) for k in ks for c in chunking_names}
    for i, answer in enumerate(answers):
        chunked = chunkings(answer.text, seed * 7919 + i)
        for k in ks:
            for name in chunking_names:
                stream = run_stream(guards[k], chunked[name])
                evaluate(cells[(k, name)], i, answer.text, refs[i], stream, model)
        if log is not None and (i + 1) % 50 == 0:
            print(f"  {i + 1}/{len(answers)} streams", file=log, flush=True)
    ref_chars = sum(len(a.text) for a in answers)
    return list(cells.values()), answers, ref_chars


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--k", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--chunkings", nargs="+", default=list(CHUNKINGS), choices=CHUNKINGS)
    parser.add_argument("--examples", type=int, default=3, help="examples printed per cause")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    cells, answers, ref_chars = run(args.streams, args.k, args.seed, args.chunkings, log=sys.stderr)
    elapsed = time.perf_counter() - t0
    n_planted = sum(len(a.planted) for a in answers)
    print(
        f"NER parity: {len(answers)} streams (seed {args.seed}), {ref_chars:,} characters, "
        f"{n_planted} planted names/places; reference entities per stream "
        f"{cells[0].entities / len(answers):.2f}; {elapsed:.0f} s"
    )
    print()
    for line in table(cells, ref_chars, len(answers)):
        print(line)
    print()
    print("misses by cause, with examples ([[entity]] as the whole-text analysis found it):")
    for c in cells:
        by_cause: dict[str, list[Miss]] = {}
        for m in c.misses:
            by_cause.setdefault(m.cause, []).append(m)
        for m in c.exposed:
            by_cause.setdefault(f"matched, but raw text released: {m.cause}", []).append(m)
        for cause, ms in sorted(by_cause.items(), key=lambda kv: -len(kv[1])):
            print(f"  k={c.k} {c.chunking} {cause} ({len(ms)}):")
            for m in ms[: args.examples]:
                print(f"    #{m.stream} {m.label} {m.entity!r}: …{m.context}…")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
