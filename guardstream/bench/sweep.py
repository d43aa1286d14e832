"""The holdback sweep: every release strategy on the same labelled streams, one process, one run.

:func:`run_sweep` replays each stream through each strategy on the virtual clock of its
pacing schedule, accounts for what the user saw with :func:`~.accounting.account`, and
sums it per strategy (:class:`Totals`). :func:`sweep_to_markdown` renders the tables;
the JSON form is :meth:`Sweep.to_dict`.

With a model-backed detector (the ``pii`` preset's NER, the ``default`` preset's semantic
categories) two more things happen. Every model call is charged to the virtual clock
(:mod:`.latency`), and the labels of the NER model's kinds (``PERSON``, ``LOCATION``) are
set by the model itself: :func:`label_by_model` keeps, of the planted names and places,
those the model tags when it reads the whole answer at once, with the model's offsets. A
name the model misses even then is not a leak of any release strategy, so it is not
counted as one. Dosing statements are labelled the same way by the dosage detector
(:func:`label_doses`), and planted items of labels the policy does not report (the
corpus's pattern PII under the ``dosage`` preset) are not counted.

A policy that *blocks* (the ``dosage`` preset) is accounted with the labels it blocks on
(:func:`block_labels`): a correct guard stops where the first such violation starts, and
an answer a strategy stops before that point was **cut early**. Its budget blocks too
(``on_budget: block``), so its guardstream rows come twice: with the budget releasing,
as for every policy, and blocking, as the preset does.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import importlib
import math
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .._errors import ExtraRequired
from ..detectors.dosage import DOSAGE_LABELS, DosageDetector
from ..detectors.onnx import UnitDetector
from ..detectors.presidio import PresidioDetector
from ..guard import Guard
from ..policy import Policy
from ..replay import weighted_quantile
from .accounting import Tally, account
from .corpus import LabelledSpan, LabelledStream, Pacing
from .latency import LatencyModel, ModelClock, analysing
from .strategies import Checker, ChunkAndCheck, FixedWindow, Run, SentenceBuffer, Settled, Strategy

__all__ = [
    "BUDGETS_MS",
    "Progress",
    "Sweep",
    "Totals",
    "block_labels",
    "corpus_summary",
    "default_strategies",
    "evaluate",
    "label_by_model",
    "label_doses",
    "leak_upper_bound",
    "machine",
    "progress_bar",
    "reported_labels",
    "run_sweep",
    "sweep_to_markdown",
]

BUDGETS_MS: tuple[float | None, ...] = (50, 100, 250, 500, 1000, None)


def default_strategies(
    guard: Guard, budgets_ms: Iterable[float | None] = BUDGETS_MS, clock: ModelClock | None = None
) -> list[Strategy]:
    """The strategies the issue compares, on ``guard``'s detectors and actions.

    ``clock`` prices and caches model calls for all of them (by default one measured
    here, when ``guard`` has model-backed detectors).
    """
    if clock is None:
        clock = ModelClock.for_guard(guard.detectors)
    checker = Checker(guard, clock)
    context = guard.policy.context_chars
    strategies: list[Strategy] = [
        ChunkAndCheck(checker, stream_first=True),
        FixedWindow(checker, 16, context),
        FixedWindow(checker, 64, context),
        FixedWindow(checker, 256, context),
        ChunkAndCheck(checker, 200, 50),
        SentenceBuffer(checker),
    ]
    strategies.extend(Settled(guard, budget, clock) for budget in budgets_ms)
    if guard.policy.budget.on_budget == "block":
        # The preset's own budget: nothing unsettled is shown; unbounded is the same either way.
        strategies.extend(Settled(guard, budget, clock, "block") for budget in budgets_ms if budget is not None)
    return strategies


def reported_labels(guard: Guard) -> frozenset[str] | None:
    """Every label ``guard``'s policy can report (``None``: unknown, detectors beside the policy)."""
    if len(guard.detectors) != len(guard.policy.detectors):
        return None
    return frozenset(label for det in guard.policy.detectors for label in det.label_names())


def block_labels(guard: Guard) -> frozenset[str]:
    """The labels ``guard``'s policy blocks on (its action for a finding of that label)."""
    policy = guard.policy
    out: set[str] = set()
    for det in policy.detectors:
        for label in det.label_names():
            spec = det.actions.get(label) or policy.actions.get(label) or det.action or policy.default_action
            if spec.action == "block":
                out.add(label)
    return frozenset(out)


def _relabel(
    stream: LabelledStream, found: list[tuple[int, int, str]], kinds: set[str]
) -> tuple[LabelledStream, list[tuple[LabelledSpan, list[tuple[int, int, str]]]], int]:
    """``stream`` with its planted spans of ``kinds`` replaced by the ``found`` ones overlapping
    them; also each planted span with its hits, and how many found overlap nothing planted."""
    planted = [x for x in stream.spans if x.label in kinds]
    hits = [(x, [e for e in found if e[0] < x.end and x.start < e[1]]) for x in planted]
    truth = {e for _, per in hits for e in per}
    stray = sum(1 for e in found if not any(e[0] < x.end and x.start < e[1] for x in planted))
    spans = [x for x in stream.spans if x.label not in kinds] + [LabelledSpan(*e) for e in truth]
    spans.sort(key=lambda x: (x.start, x.end, x.label))
    return dataclasses.replace(stream, spans=tuple(spans)), hits, stray


def label_doses(guard: Guard, streams: Sequence[LabelledStream]) -> tuple[list[LabelledStream], dict[str, Any] | None]:
    """``streams`` with their dosing statements labelled as ``guard``'s dosage detector finds them.

    The rule is :func:`label_by_model`'s: the detector (both labels, the policy's table)
    reads each whole answer, and a planted ``DOSAGE`` or ``DOSAGE_OVER_MAX`` statement is
    replaced by the findings that overlap it (their offsets and label), or dropped when
    there are none. Statements it finds where none was planted are not violations (a
    block there cuts the answer early). Without a dosage detector the streams are
    returned as they are, with ``None``.
    """
    policy_detector = next((d for d in guard.detectors if isinstance(d, DosageDetector)), None)
    if policy_detector is None:
        return list(streams), None
    detector = DosageDetector(policy_detector.name, "all", policy_detector.table)
    kinds = set(DOSAGE_LABELS)
    counts: Counter[str] = Counter()
    near: Counter[str] = Counter()
    out: list[LabelledStream] = []
    for stream in streams:
        found = [(f.start, f.end, f.label) for f in detector.open().scan(stream.text, 0, True).findings]
        relabelled, planted, stray = _relabel(stream, found, kinds)
        for x, hits in planted:
            counts["planted"] += 1
            if not hits:
                counts["missed"] += 1
            elif hits != [(x.start, x.end, x.label)]:
                counts["labelled_otherwise"] += 1
        counts["found_not_planted"] += stray
        near.update(n.kind for n in stream.near_misses if any(e[0] < n.end and n.start < e[1] for e in found))
        out.append(relabelled)
    labels = Counter(x.label for s in out for x in s.spans if x.label in kinds)
    summary = {
        "rule": (
            "a planted dosing statement is labelled with the statements the dosage detector (both labels, "
            "the policy's table) finds overlapping it on the whole answer (their offsets and label); planted "
            "ones it does not find are not counted"
        ),
        "planted": counts["planted"],
        "labelled": sum(labels.values()),
        "labels": dict(sorted(labels.items())),
        "missed_by_detector": counts["missed"],
        "labelled_otherwise": counts["labelled_otherwise"],
        "found_not_planted": counts["found_not_planted"],
        "near_misses_found": dict(sorted(near.items())),
    }
    return out, summary


def _reported_only(
    guard: Guard, streams: Sequence[LabelledStream]
) -> tuple[list[LabelledStream], dict[str, int] | None]:
    """``streams`` without the spans of labels the policy cannot report, and how many were dropped."""
    reported = reported_labels(guard)
    if reported is None:
        return list(streams), None
    dropped: Counter[str] = Counter(x.label for s in streams for x in s.spans if x.label not in reported)
    if not dropped:
        return list(streams), None
    out = [dataclasses.replace(s, spans=tuple(x for x in s.spans if x.label in reported)) for s in streams]
    return out, dict(sorted(dropped.items()))


def unplanted_model_findings(
    guard: Guard, streams: Sequence[LabelledStream], clock: ModelClock
) -> dict[str, Any] | None:
    """What ``guard``'s unit detectors (semantic categories, ONNX classifiers) find on the whole answers.

    Nothing of theirs is planted, so every unit they find in this corpus is ordinary
    text they would act on. ``None`` when there is no such detector.
    """
    models = [d for d in guard.detectors if isinstance(d, UnitDetector)]
    if not models:
        return None
    out: dict[str, Any] = {}
    for detector in models:
        labels: Counter[str] = Counter()
        answers = 0
        for stream in streams:
            result = clock.analyze(detector, stream.text)
            if isinstance(result, BaseException):
                raise RuntimeError(f"{stream.id}: the {detector.name!r} model failed: {result}") from result
            labels.update(unit.label for unit in result)
            answers += bool(result)
        out[detector.name] = {
            "answers": len(streams),
            "answers_with_findings": answers,
            "findings": sum(labels.values()),
            "by_label": dict(sorted(labels.items())),
        }
    return out


def label_by_model(
    guard: Guard, streams: Sequence[LabelledStream], clock: ModelClock
) -> tuple[list[LabelledStream], dict[str, Any] | None]:
    """``streams`` with their NER labels set to what ``guard``'s NER model finds on the whole text.

    For each NER detector of ``guard`` (none: the streams are returned as they are, and
    ``None``), a planted span of one of its entity labels is replaced by the model's
    entities on the whole answer that overlap it (their offsets and label), or dropped
    when there are none; other labels are kept. Entities the model finds where nothing
    was planted (``Docker`` as a person) are not violations: redacting them shows up as
    a spurious replacement. Returns the streams and the counts behind the choice.

    Raises:
        RuntimeError: the model failed on an answer.
    """
    ner = [d for _, d in analysing(guard.detectors) if isinstance(d, PresidioDetector)]
    if not ner:
        return list(streams), None
    kinds = {label for d in ner for label in d.entities}
    counts: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    out: list[LabelledStream] = []
    for stream in streams:
        found: list[tuple[int, int, str]] = []
        for detector in ner:
            entities = clock.analyze(detector, stream.text)
            if isinstance(entities, BaseException):
                raise RuntimeError(f"{stream.id}: the {detector.name!r} model failed: {entities}") from entities
            found += [(e.start, e.end, e.label) for e in entities]
        relabelled, planted, stray = _relabel(stream, found, kinds)
        for x, hits in planted:
            counts["planted"] += 1
            if not hits:
                missed[x.label] += 1
            elif all(label != x.label for _, _, label in hits):
                counts["tagged_as_another_kind"] += 1
        counts["model_entities"] += len(found)
        counts["model_entities_not_planted"] += stray
        out.append(relabelled)
    tagged = sum(1 for s in out for x in s.spans if x.label in kinds)
    summary = {
        "rule": (
            "a planted name or place is labelled with the entities the policy's NER model finds "
            "overlapping it when it analyses the whole answer in one call (their offsets and label); "
            "planted ones it does not tag are not counted"
        ),
        "kinds": sorted(kinds),
        "planted": counts["planted"],
        "labelled": tagged,
        "missed_by_model": dict(sorted(missed.items())),
        "tagged_as_another_kind": counts["tagged_as_another_kind"],
        "model_entities": counts["model_entities"],
        "model_entities_not_planted": counts["model_entities_not_planted"],
    }
    return out, summary


# --------------------------------------------------------------------------- totals


@dataclass
class Totals:
    """Everything one strategy did on a corpus, summed over streams."""

    name: str
    family: str
    params: dict[str, Any]
    spans: dict[str, list[int]] = field(default_factory=dict)  # label -> [total, leaked, whole, chars, raw]
    near_misses: int = 0
    destroyed: Counter[str] = field(default_factory=Counter)
    ttft_ms: list[float] = field(default_factory=list)
    holds: list[tuple[float, int]] = field(default_factory=list)
    cpu_s: float = 0.0
    streams: int = 0
    chunks: int = 0
    chars: int = 0
    checks: int = 0
    withheld_chars: int = 0
    spurious: int = 0
    model_calls: int = 0
    model_ms: float = 0.0
    cut_early: int = 0  # streams stopped before their ideal end
    lost_chars: int = 0  # characters before the ideal end never shown
    ideal_chars: int = 0  # characters a correct guard shows

    def add(self, tally: Tally, run: Run, cpu_s: float, stream: LabelledStream) -> None:
        for fate in tally.spans:
            row = self.spans.setdefault(fate.label, [0, 0, 0, 0, 0])
            row[0] += 1
            row[1] += fate.leaked
            row[2] += fate.whole
            row[3] += fate.chars
            row[4] += fate.raw_chars
        self.near_misses += tally.near_misses
        self.destroyed.update(tally.destroyed)
        if tally.added_ttft_ms is not None:
            self.ttft_ms.append(tally.added_ttft_ms)
        self.holds.extend(tally.holds)
        self.cpu_s += cpu_s
        self.streams += 1
        self.chunks += len(stream.chunks)
        self.chars += len(stream.text)
        self.checks += run.checks
        self.withheld_chars += tally.withheld_chars
        self.spurious += tally.spurious
        self.model_calls += run.model_calls
        self.model_ms += run.model_ms
        self.cut_early += tally.cut_early
        self.lost_chars += tally.lost_chars
        self.ideal_chars += tally.ideal_end

    def merge(self, other: Totals) -> None:
        """Add ``other``, the same strategy on other streams."""
        for label, row in other.spans.items():
            mine = self.spans.setdefault(label, [0, 0, 0, 0, 0])
            for k, value in enumerate(row):
                mine[k] += value
        self.near_misses += other.near_misses
        self.destroyed.update(other.destroyed)
        self.ttft_ms += other.ttft_ms
        self.holds += other.holds
        self.cpu_s += other.cpu_s
        self.streams += other.streams
        self.chunks += other.chunks
        self.chars += other.chars
        self.checks += other.checks
        self.withheld_chars += other.withheld_chars
        self.spurious += other.spurious
        self.model_calls += other.model_calls
        self.model_ms += other.model_ms
        self.cut_early += other.cut_early
        self.lost_chars += other.lost_chars
        self.ideal_chars += other.ideal_chars

    @property
    def total_spans(self) -> int:
        return sum(row[0] for row in self.spans.values())

    @property
    def leaked(self) -> int:
        return sum(row[1] for row in self.spans.values())

    @property
    def leak_rate(self) -> float | None:
        n = self.total_spans
        return self.leaked / n if n else None

    def summary(self) -> dict[str, Any]:
        """The JSON-ready figures for this strategy."""
        n, leaked = self.total_spans, self.leaked
        whole = sum(row[2] for row in self.spans.values())
        chars = sum(row[3] for row in self.spans.values())
        raw_chars = sum(row[4] for row in self.spans.values())
        destroyed = sum(self.destroyed.values())
        return {
            "name": self.name,
            "family": self.family,
            "params": self.params,
            "spans": n,
            "leaked": leaked,
            "leak_rate": _ratio(leaked, n),
            "leak_rate_upper95": leak_upper_bound(leaked, n),
            "whole": whole,
            "whole_rate": _ratio(whole, n),
            "span_chars": chars,
            "span_chars_shown_raw": raw_chars,
            "span_chars_shown_raw_rate": _ratio(raw_chars, chars),
            "per_label": {
                label: {
                    "spans": row[0],
                    "leaked": row[1],
                    "whole": row[2],
                    "leak_rate": _ratio(row[1], row[0]),
                    "whole_rate": _ratio(row[2], row[0]),
                    "chars_shown_raw_rate": _ratio(row[4], row[3]),
                }
                for label, row in sorted(self.spans.items())
            },
            "near_misses": self.near_misses,
            "near_misses_destroyed": destroyed,
            "near_miss_destroyed_rate": _ratio(destroyed, self.near_misses),
            "destroyed_by_kind": dict(sorted(self.destroyed.items())),
            "added_ttft_ms": {"p50": _q(self.ttft_ms, 0.5), "p99": _q(self.ttft_ms, 0.99)},
            "hold_ms": {"p50": _wq(self.holds, 0.5), "p99": _wq(self.holds, 0.99), "max": _wq(self.holds, 1.0)},
            "cpu_s": round(self.cpu_s, 4),
            "chunks_per_s": round(self.chunks / self.cpu_s) if self.cpu_s > 0 else None,
            "streams": self.streams,
            "chunks": self.chunks,
            "chars": self.chars,
            "checks": self.checks,
            "withheld_chars": self.withheld_chars,
            "spurious_replacements": self.spurious,
            "model_calls": self.model_calls,
            "model_ms": round(self.model_ms, 1),
            "cut_early": self.cut_early,
            "cut_early_rate": _ratio(self.cut_early, self.streams),
            "lost_chars": self.lost_chars,
            "lost_chars_rate": _ratio(self.lost_chars, self.ideal_chars),
        }


def _ratio(k: int, n: int) -> float | None:
    return k / n if n else None


def _q(values: Sequence[float], q: float) -> float | None:
    found = weighted_quantile(((v, 1) for v in values), q)
    return None if found is None else round(found, 3)


def _wq(pairs: Sequence[tuple[float, int]], q: float) -> float | None:
    found = weighted_quantile(pairs, q)
    return None if found is None else round(found, 3)


def leak_upper_bound(k: int, n: int, confidence: float = 0.95) -> float | None:
    """One-sided Clopper-Pearson upper bound on a leak rate seen as ``k`` of ``n``.

    With no leak it is about ``3 / n`` at 95%: a corpus of ``n`` violations cannot show a
    rate much below that, whatever the strategy.
    """
    if n <= 0:
        return None
    if k >= n:
        return 1.0
    alpha = 1.0 - confidence
    lo, hi = k / n, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if _binom_cdf(k, n, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return round(hi, 6)


def _binom_cdf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0 if k < n else 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    base = math.lgamma(n + 1)
    return sum(
        math.exp(base - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q) for i in range(k + 1)
    )


# --------------------------------------------------------------------------- running


class Progress(Protocol):
    def update(self, n: int = 1) -> Any: ...

    def set_description_str(self, desc: str) -> Any: ...

    def close(self) -> Any: ...


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def set_description_str(self, desc: str) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, enabled: bool | None, desc: str = "") -> Progress:
    """A tqdm bar on stderr: forced on (``True``), off (``False``), or only on a TTY (``None``).

    Raises:
        ExtraRequired: the bar was asked for and tqdm (the ``bench`` extra) is missing.
    """
    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        return _NoProgress()
    try:
        tqdm = importlib.import_module("tqdm").tqdm  # no type stubs needed
    except ImportError:
        if enabled is None:
            return _NoProgress()
        raise ExtraRequired("the progress bar", "bench") from None
    bar: Progress = tqdm(total=total, desc=desc, file=sys.stderr, unit="stream", dynamic_ncols=True, leave=False)
    return bar


def evaluate(
    strategy: Strategy,
    streams: Sequence[LabelledStream],
    progress: Progress | None = None,
    clock: ModelClock | None = None,
    blocking: Collection[str] = (),
) -> Totals:
    """Replay every stream through ``strategy`` and account for it (``blocking``: the labels blocked on).

    Throughput counts the CPU time (``time.process_time``) of ``strategy.run`` only:
    detection, the strategy's bookkeeping and, for guardstream, the window itself; not
    the model calls run through ``clock`` (cached across strategies, so whichever ran
    first would pay; their cost is the model time charged on the virtual clock).
    """
    totals = Totals(strategy.name, strategy.family, strategy.params)
    for stream in streams:
        model_cpu = clock.cpu_s if clock is not None else 0.0
        started = time.process_time()
        run = strategy.run(stream)
        cpu = time.process_time() - started
        if clock is not None:
            cpu = max(cpu - (clock.cpu_s - model_cpu), 0.0)
        totals.add(account(stream, run.shown, blocking), run, cpu, stream)
        if progress is not None:
            progress.update(1)
    return totals


@dataclass
class Sweep:
    """A finished sweep: the policy, the corpus, and the totals of every strategy."""

    policy: str
    corpus: dict[str, Any]
    totals: list[Totals]
    target_leak: float
    elapsed_s: float
    command: str = ""
    started: str = ""
    model: dict[str, Any] | None = None  # the model clock's account (model-backed detectors only)
    blocking: tuple[str, ...] = ()  # the labels the policy blocks on

    def recommended(self) -> dict[str, Any]:
        """The smallest swept guardstream budget whose leak rate meets the target."""
        budgets = [t for t in self.totals if t.family == "guardstream"]
        ordered = sorted(
            budgets, key=lambda t: math.inf if t.params["max_hold_ms"] is None else t.params["max_hold_ms"]
        )
        choice: Totals | None = None
        for t in reversed(ordered):  # smallest budget such that it and every larger one pass
            rate = t.leak_rate
            if rate is None or rate > self.target_leak:
                break
            choice = t
        return {
            "target_leak": self.target_leak,
            "met": choice is not None,
            "max_hold_ms": None if choice is None else choice.params["max_hold_ms"],
            "strategy": None if choice is None else choice.name,
            "note": "among the swept budgets; `guardstream calibrate` refines it",
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "started": self.started,
            "command": self.command,
            "machine": machine(),
            "guardstream": code_state(),
            "corpus": self.corpus,
            "block_labels": list(self.blocking),
            "clock": (
                "virtual: every chunk arrives at its pacing schedule's time; check latency is not "
                "added to the clock; throughput is the CPU time of each strategy's run"
            )
            if self.model is None
            else MODEL_CLOCK,
            **({} if self.model is None else {"model": self.model}),
            "strategies": [t.summary() for t in self.totals],
            "recommended": self.recommended(),
            "elapsed_s": round(self.elapsed_s, 2),
        }


MODEL_CLOCK = (
    "virtual: every chunk arrives at its pacing schedule's time. Model calls are charged to the clock at "
    "the latency model's price (model.latency_models, fitted on this machine before the sweep): a "
    "baseline's check costs one call on the whole checked text per model-backed detector and releases "
    "when it is done, and a busy checker starts its next check when the last one ends; guardstream's "
    "window gets each analysis it asks for that much later while chunks keep arriving (one call in "
    "flight per detector per stream). Each stream has the model to itself. Pattern checks are not "
    "added to the clock. Throughput is the CPU time of each strategy's run without the model calls "
    "(run once per distinct text and shared by all strategies); model_ms is the model time charged"
)


def run_sweep(
    policy: str,
    guard: Guard,
    streams: Sequence[LabelledStream],
    corpus: dict[str, Any],
    strategies: Sequence[Strategy] | None = None,
    target_leak: float = 0.001,
    progress: bool | None = None,
    command: str = "",
    clock: ModelClock | None = None,
    workers: int | None = None,
) -> Sweep:
    """Replay ``streams`` through every strategy (the defaults: :func:`default_strategies`).

    With model-backed detectors in ``guard``, ``clock`` prices and caches their calls (by
    default one fitted here on the streams' text) and the NER labels are set by
    :func:`label_by_model` first.

    ``workers`` processes share the streams (each runs every default strategy on its
    share, with the same latency models, so the results do not depend on it). By default
    that is one per CPU (at most 4) when ``guard`` has model-backed detectors, whose
    calls dominate the run, and otherwise 1; it is always 1 for given ``strategies``.
    """
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    wall = time.perf_counter()
    if clock is None:
        clock = ModelClock.for_guard(guard.detectors, [s.text for s in streams[:8]])
    streams, truth = label_by_model(guard, streams, clock)
    streams, doses = label_doses(guard, streams)
    streams, dropped = _reported_only(guard, streams)
    others = unplanted_model_findings(guard, streams, clock)
    extra = {"ner": truth, "dosage": doses, "not_reported": dropped, "model_findings_unplanted": others}
    if any(value is not None for value in extra.values()):
        labels = Counter(x.label for s in streams for x in s.spans)
        corpus = {**corpus, "spans": sum(labels.values()), "labels": dict(sorted(labels.items()))}
        corpus.update({key: value for key, value in extra.items() if value is not None})
    blocking = block_labels(guard)
    chosen = list(strategies) if strategies is not None else default_strategies(guard, clock=clock)
    processes = _workers(guard, strategies, workers, len(streams))
    bar = progress_bar(len(chosen) * len(streams), progress, "sweep")
    totals: list[Totals] = []
    try:
        if processes > 1:
            totals = _evaluate_in_processes(guard, streams, clock, processes, bar)
        else:
            for strategy in chosen:
                bar.set_description_str(strategy.name)
                totals.append(evaluate(strategy, streams, bar, clock, blocking))
    finally:
        bar.close()
    model = clock.describe() if clock.latency else None
    if model is not None:
        model["processes"] = processes
    elapsed = time.perf_counter() - wall
    return Sweep(policy, corpus, totals, target_leak, elapsed, command, started, model, tuple(sorted(blocking)))


def _workers(guard: Guard, strategies: Sequence[Strategy] | None, workers: int | None, streams: int) -> int:
    if strategies is not None or streams < 2:
        return 1
    if workers is not None:
        return max(1, min(workers, streams))
    if not analysing(guard.detectors) or len(guard.detectors) != len(guard.policy.detectors):
        return 1  # nothing slow to share out, or detectors a worker could not rebuild from the policy
    return max(1, min(os.cpu_count() or 1, 4, streams))


def _evaluate_part(
    policy: Policy, latency: dict[str, LatencyModel], streams: list[LabelledStream]
) -> tuple[list[Totals], dict[str, Any]]:
    """In a worker process: every default strategy on ``streams``."""
    guard = Guard(policy)
    clock = ModelClock(latency)
    blocking = block_labels(guard)
    strategies = default_strategies(guard, clock=clock)
    totals = [evaluate(strategy, streams, None, clock, blocking) for strategy in strategies]
    return totals, clock.counts()


def _evaluate_in_processes(
    guard: Guard, streams: Sequence[LabelledStream], clock: ModelClock, processes: int, bar: Progress
) -> list[Totals]:
    # Interleaved parts, several per process: every part mixes the chunkings, and a slow
    # part does not leave the other processes idle at the end.
    count = min(len(streams), processes * 4)
    parts = [list(streams[k::count]) for k in range(count)]
    totals: list[Totals] | None = None
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=context) as pool:
        bar.set_description_str(f"all strategies, {processes} processes")
        futures = {pool.submit(_evaluate_part, guard.policy, clock.latency, part): part for part in parts}
        for future in concurrent.futures.as_completed(futures):
            part_totals, counts = future.result()
            clock.absorb(counts)
            if totals is None:
                totals = part_totals
            else:
                for mine, theirs in zip(totals, part_totals, strict=True):
                    mine.merge(theirs)
            bar.update(len(futures[future]) * len(part_totals))
    assert totals is not None
    return totals


def corpus_summary(streams: Sequence[LabelledStream], source: str, pacing: Pacing | None) -> dict[str, Any]:
    """What was replayed: where it came from, its size, its labels and chunkings."""
    labels = Counter(s.label for stream in streams for s in stream.spans)
    return {
        "source": source,
        "streams": len(streams),
        "chunkings": dict(sorted(Counter(s.chunking for s in streams).items())),
        "chunks": sum(len(s.chunks) for s in streams),
        "chars": sum(len(s.text) for s in streams),
        "spans": sum(labels.values()),
        "labels": dict(sorted(labels.items())),
        "near_misses": sum(len(s.near_misses) for s in streams),
        "pacing": None
        if pacing is None
        else {
            "first_token_ms": list(pacing.first_token_ms),
            "tokens_per_s": list(pacing.tokens_per_s),
            "jitter": pacing.jitter,
            "stall_p": pacing.stall_p,
            "stall_ms": list(pacing.stall_ms),
        },
    }


def machine() -> str:
    """The CPU, core count and Python this ran on."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({model}), {platform.system()} {platform.release()}, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )


def code_state() -> str:
    """The guardstream version measured, with its commit and whether the package had local edits."""
    from .. import __version__

    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True)
        return done.stdout.strip()

    try:
        sha = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return f"guardstream {__version__}"
    return f"guardstream {__version__} at {sha}{' + uncommitted edits' if dirty else ''}"


# --------------------------------------------------------------------------- markdown


def _pct(rate: float | None) -> str:
    if rate is None:
        return "–"
    value = rate * 100
    if value == 0:
        return "0%"
    if value < 0.1:
        return f"{value:.2f}%"
    if value < 10:
        return f"{value:.1f}%".replace(".0%", "%")
    return f"{value:.0f}%"


def _ms_cell(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) < 10:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def _rate_cell(value: int | None) -> str:
    if value is None:
        return "–"
    if value >= 1_000_000:
        return f"{value / 1e6:.1f}M"
    if value >= 10_000:
        return f"{value / 1e3:.0f}k"
    return f"{value:,}"


def sweep_to_markdown(result: dict[str, Any]) -> str:
    """The sweep's tables (from :meth:`Sweep.to_dict`) as markdown."""
    c = result["corpus"]
    chunkings = ", ".join(f"{n} {k}" for k, n in c["chunkings"].items())
    model = result.get("model")
    lines = [
        f"Policy `{result['policy']}`; corpus: {c['source']}: {c['streams']} streams ({chunkings}), "
        f"{c['chunks']:,} chunks, {c['chars']:,} characters, {c['spans']:,} labelled violations, "
        f"{c['near_misses']:,} near misses.",
    ]
    ner = c.get("ner")
    if ner is not None:
        missed = sum(ner["missed_by_model"].values())
        lines.append(
            f"Names and places ({', '.join(ner['kinds'])}): {ner['planted']:,} planted, {ner['labelled']:,} "
            f"labelled as the model tags them on the whole answer ({missed:,} planted ones it does not tag are "
            f"not counted; {ner['model_entities_not_planted']:,} entities it finds where nothing was planted "
            "are not violations)."
        )
    doses = c.get("dosage")
    if doses is not None:
        lines.append(
            f"Dosing statements: {doses['planted']:,} planted, {doses['labelled']:,} labelled as the dosage detector "
            f"finds them on the whole answer ({', '.join(f'{k} {v:,}' for k, v in doses['labels'].items())}; "
            f"{doses['missed_by_detector']:,} planted ones it does not find are not counted; "
            f"{doses['found_not_planted']:,} statements it finds where none was planted are not violations)."
        )
    dropped = c.get("not_reported")
    if dropped:
        lines.append(
            f"Planted items of labels the policy does not report are not counted: "
            f"{sum(dropped.values()):,} ({', '.join(sorted(dropped))})."
        )
    for name, found in (c.get("model_findings_unplanted") or {}).items():
        by_label = ", ".join(f"{k} {v:,}" for k, v in found["by_label"].items()) or "none"
        lines.append(
            f"Nothing of `{name}` is planted: on the whole answers it finds {found['findings']:,} units "
            f"({by_label}) in {found['answers_with_findings']:,} of {found['answers']:,} answers."
        )
    blocking = result.get("block_labels") or []
    cuts = bool(blocking) or any(s.get("cut_early") for s in result["strategies"])
    if blocking:
        lines.append(
            f"The policy blocks on {', '.join(blocking)}: an answer is *cut early* when a strategy stops it "
            "before its first such violation (or at all, without one); *text lost* is the share of the text a "
            "correct guard shows that it never showed."
        )
    if model is not None:
        for name, fit in model["latency_models"].items():
            points = ", ".join(f"{p['chars']} chars {p['median_ms']:.1f} ms" for p in fit["measured"])
            lines.append(
                f"Model time on the virtual clock (`{name}`): {fit['fixed_ms']:.2f} ms + "
                f"{fit['per_char_ms'] * 1000:.1f} µs per character per call"
                + (f", fitted on this machine ({points})" if points else "")
                + "; a baseline pays one call on the whole checked text per check."
            )
    head = (
        "| strategy | leaked | rendered whole | violating chars shown | near misses destroyed "
        "| added TTFT p50 / p99 (ms) | hold p50 / p99 (ms) | chunks/s |"
    )
    rule = "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    if cuts:
        head += " answers cut early | text lost |"
        rule += " ---: | ---: |"
    if model is not None:
        head += " model calls / stream | model time / stream (ms) |"
        rule += " ---: | ---: |"
    lines += ["", head, rule]
    for s in result["strategies"]:
        row = (
            f"| {s['name']} | {_pct(s['leak_rate'])} ({s['leaked']}) | {_pct(s['whole_rate'])} "
            f"| {_pct(s['span_chars_shown_raw_rate'])} "
            f"| {_pct(s['near_miss_destroyed_rate'])} ({s['near_misses_destroyed']}) "
            f"| {_ms_cell(s['added_ttft_ms']['p50'])} / {_ms_cell(s['added_ttft_ms']['p99'])} "
            f"| {_ms_cell(s['hold_ms']['p50'])} / {_ms_cell(s['hold_ms']['p99'])} "
            f"| {_rate_cell(s['chunks_per_s'])} |"
        )
        if cuts:
            row += f" {_pct(s['cut_early_rate'])} ({s['cut_early']}) | {_pct(s['lost_chars_rate'])} |"
        if model is not None:
            n = max(s["streams"], 1)
            row += f" {s['model_calls'] / n:,.1f} | {_ms_cell(s['model_ms'] / n)} |"
        lines.append(row)
    labels = sorted({label for s in result["strategies"] for label in s["per_label"]})
    if labels:
        lines += [
            "",
            "Per label: leaked / rendered whole (share of that label's violations).",
            "",
            "| strategy | " + " | ".join(f"{label} ({c['labels'].get(label, 0)})" for label in labels) + " |",
            "| --- |" + " ---: |" * len(labels),
        ]
        for s in result["strategies"]:
            cells = []
            for label in labels:
                row = s["per_label"].get(label)
                cells.append("–" if row is None else f"{_pct(row['leak_rate'])} / {_pct(row['whole_rate'])}")
            lines.append(f"| {s['name']} | " + " | ".join(cells) + " |")
    rec = result["recommended"]
    target = _pct(rec["target_leak"])
    if rec["met"]:
        budget = "unbounded" if rec["max_hold_ms"] is None else f"{rec['max_hold_ms']:,g} ms"
        lines += ["", f"Smallest swept guardstream budget with at most {target} leaked: **{budget}**."]
    else:
        lines += ["", f"No swept guardstream budget keeps leaks at or below {target}."]
    return "\n".join(lines) + "\n"
