"""Release strategies, replayed on a virtual clock, all on the same detectors.

Every strategy takes a :class:`~guardstream.bench.corpus.LabelledStream` (chunks and the
time each arrives) and returns what it showed the user (:class:`~.accounting.Shown`
pieces). Nothing sleeps: a strategy shows text at the virtual time it would have shown
it, so hundreds of streams replay in seconds and every run is the same.

The baselines are what peers do, implemented simply and on guardstream's own detectors
(:class:`Checker`: a fresh window over the text, finished at once, exactly like
``Guard.check``), and with the policy's actions, so only the *release strategy* differs:

* :class:`ChunkAndCheck` with ``stream_first=True``: stream first, check after (NeMo
  Guardrails' default ``stream_first: true``; Bedrock's and Azure's asynchronous modes):
  every chunk is shown as it arrives; the checks run on NeMo's batches afterwards and
  only cost CPU.
* :class:`FixedWindow`: hold the last ``chars`` characters; on every chunk, check the
  held text (with ``context_chars`` of released text before it) and release what falls
  out of the window, never splitting a finding it has found.
* :class:`ChunkAndCheck`: NeMo Guardrails' ``RollingBuffer`` with its defaults
  (``chunk_size: 200``, ``context_size: 50`` tokens; a token is a chunk as the source
  sends it, as NeMo counts them): a batch is checked with its context and released after
  the check. Like NeMo, the first batch is 200 tokens and later ones 150 new tokens
  behind 50 of context.
* :class:`SentenceBuffer`: Guardrails AI's default validator chunking: text accumulates
  until a sentence is complete (``.``, ``!`` or ``?`` followed by whitespace), and each
  sentence is checked on its own and then released.
* :class:`Settled`: guardstream's window with a time budget, fed at the virtual arrival
  times and ticked at :meth:`~guardstream.Window.next_deadline` whenever that falls
  before the next chunk, exactly what the async guard does in real time.

The detectors' own CPU time is not added to the virtual clock (a pattern check is a few
hundred microseconds here, far below a token interval); CPU cost is reported separately
as throughput. Model calls are different: a model-backed detector (NER, the semantic
categories' encoder) takes milliseconds per call, so every strategy pays for its calls on the clock through a
:class:`~.latency.ModelClock`:

* a baseline's check runs the model once on the whole checked text (what a batch checker
  that calls Presidio on the text pays), and its result, so what it releases, comes that
  much later; a checker still busy with one check starts the next when it is done,
  covering every chunk that arrived meanwhile;
* guardstream's window asks for analyses only where its sessions need one (NER: a
  name-like word is open; semantic categories: a sentence is complete); each one is
  answered that much later while the stream goes on, as by the async guard's batcher
  (one call in flight per detector per stream; no waiting to fill a batch).

With no model-backed detector (the ``patterns`` preset) nothing is charged, and every
strategy behaves exactly as it does without a clock.
"""

from __future__ import annotations

import bisect
import heapq
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .._normalize import normalize_char
from ..detectors.base import AnalysisRequest
from ..detectors.presidio import PresidioDetector, RawEntity
from ..events import Blocked, BudgetExceeded, Event, Redacted, Released
from ..guard import Guard
from ..policy import Budget
from .accounting import Shown
from .corpus import LabelledStream
from .latency import ModelClock, analysing

__all__ = [
    "Check",
    "Checker",
    "ChunkAndCheck",
    "FixedWindow",
    "Run",
    "SentenceBuffer",
    "Settled",
    "Strategy",
    "with_budget",
]


@dataclass(frozen=True, slots=True)
class Run:
    """What a strategy showed for one stream, how many whole-text checks and model calls it ran.

    ``model_ms`` is the model time charged to the virtual clock for the calls.
    """

    shown: tuple[Shown, ...]
    checks: int = 0
    model_calls: int = 0
    model_ms: float = 0.0


class Strategy(Protocol):
    """A way of releasing a stream. ``name`` is unique in a sweep; ``family`` groups them."""

    @property
    def name(self) -> str: ...

    @property
    def family(self) -> str: ...

    @property
    def params(self) -> dict[str, Any]: ...

    def run(self, stream: LabelledStream) -> Run:
        """Replay ``stream`` on its virtual clock."""
        ...


def with_budget(guard: Guard, max_hold_ms: float | None, on_budget: Literal["release", "block"] = "release") -> Guard:
    """``guard``'s policy with only a time budget (``None``: unbounded) and ``on_budget``."""
    budget = Budget(max_hold_ms=max_hold_ms, max_hold_chars=None, on_budget=on_budget)
    extra = guard.detectors[len(guard.policy.detectors) :]  # detectors given beside the policy
    return Guard(guard.policy.model_copy(update={"budget": budget}), extra)


# --------------------------------------------------------------------------- checks


@dataclass(frozen=True, slots=True)
class Check:
    """The policy's verdict on one text: what to replace, and where a block would start.

    ``cost_ms`` is the model time the check takes on the virtual clock (0 without
    model-backed detectors); ``model_calls`` how many model calls that is.
    """

    redactions: tuple[tuple[int, int, str], ...]  # (start, end, replacement), in order
    block_at: int | None = None
    cost_ms: float = 0.0
    model_calls: int = 0


class Checker:
    """Checks whole texts with a guard's detectors and actions, as a batch guard would.

    Without model-backed detectors a check is exactly ``Guard.check``. With them, each
    check costs one model call per such detector on the whole checked text, and for the
    NER detector that one call's entities are its findings (its session's requests are
    answered from them), as when a batch checker runs Presidio on the text; a unit
    detector (semantic categories) judges the checked text's sentences.
    ``clock`` prices and caches the calls (by default one measured for this guard).
    """

    def __init__(self, guard: Guard, clock: ModelClock | None = None) -> None:
        self._guard = with_budget(guard, None)
        self._models = dict(analysing(self._guard.detectors))
        self.clock = clock if clock is not None else ModelClock.for_guard(self._guard.detectors)

    def __call__(self, text: str) -> Check:
        guard = self._guard
        window = guard.window()
        events = window.feed(text, 0.0)
        events += window.finish(0.0)
        if not self._models:
            return _verdict(events, window.released_offset)
        norm = "".join(c if c.isascii() else normalize_char(c) for c in text)
        while requests := window.requests():
            for index, request in requests:
                detector = self._models[index]
                if isinstance(detector, PresidioDetector):
                    result = _within(self.clock.analyze(detector, norm), request)
                else:
                    result = self.clock.analyze(detector, request.text)
                events += window.deliver(index, request, result, 0.0)
        cost = sum(self.clock.cost_ms(d.name, len(norm)) for d in self._models.values())
        verdict = _verdict(events, window.released_offset)
        return Check(verdict.redactions, verdict.block_at, cost, len(self._models))


def _verdict(events: list[Event], released: int) -> Check:
    redactions: list[tuple[int, int, str]] = []
    block_at: int | None = None
    for event in events:
        if isinstance(event, Redacted):
            redactions.append((event.span.start, event.span.end, event.replacement))
        elif isinstance(event, Blocked):
            block_at = min((f.start for f in event.findings), default=released)
    return Check(tuple(redactions), block_at)


def _within(result: Any, request: AnalysisRequest) -> Any:
    """The whole text's entities that fall in ``request``'s text, relative to it."""
    if isinstance(result, BaseException):
        return result
    lo, hi = request.base, request.base + len(request.text)
    out: list[RawEntity] = []
    for e in result:
        start, end = max(e.start, lo), min(e.end, hi)
        if start < end:
            out.append(RawEntity(start - lo, end - lo, e.label, e.score))
    return out


def _show(
    out: list[Shown],
    t_ms: float,
    text: str,
    start: int,
    end: int,
    redactions: Sequence[tuple[int, int, str]],
) -> None:
    """Show source ``[start, end)`` at ``t_ms``, replacing what ``redactions`` cover."""
    if end <= start:
        return
    pos = start
    for a, b, replacement in redactions:
        if b <= pos or a >= end:
            continue
        if a > pos:
            out.append(Shown(t_ms, pos, a, text[pos:a], True))
            pos = a
        stop = min(b, end)
        out.append(Shown(t_ms, pos, stop, replacement, False))
        pos = stop
    if pos < end:
        out.append(Shown(t_ms, pos, end, text[pos:end], True))


def _offsets(chunks: Sequence[str]) -> list[int]:
    """``offsets[i]`` is where chunk ``i`` starts; ``offsets[-1]`` is the text's length."""
    offsets = [0]
    for chunk in chunks:
        offsets.append(offsets[-1] + len(chunk))
    return offsets


def _shift(check: Check, by: int) -> Check:
    return Check(
        tuple((a + by, b + by, r) for a, b, r in check.redactions),
        None if check.block_at is None else check.block_at + by,
        check.cost_ms,
        check.model_calls,
    )


# --------------------------------------------------------------------------- baselines


class FixedWindow:
    """Hold the last ``chars`` characters; re-check the held text on every chunk.

    A check that costs model time releases when it is done; chunks that arrive while it
    runs are covered by the next check, which starts when this one ends.
    """

    family = "fixed window"

    def __init__(self, checker: Checker, chars: int, context_chars: int = 64) -> None:
        self._check = checker
        self.chars = chars
        self.context_chars = context_chars

    @property
    def name(self) -> str:
        return f"fixed window {self.chars} chars"

    @property
    def params(self) -> dict[str, Any]:
        return {"chars": self.chars, "context_chars": self.context_chars}

    def run(self, stream: LabelledStream) -> Run:
        text = stream.text
        offsets = _offsets(stream.chunks)
        arrivals = stream.arrivals_ms()
        out: list[Shown] = []
        released = 0
        tally = _Tally()
        free = -math.inf  # when the checker is done with its last check
        i = 0
        while i < len(arrivals):
            if free > arrivals[i]:
                # Busy when chunk i arrived: the next check starts when the last one is done
                # and covers every chunk that has arrived by then.
                start = free
                i = bisect.bisect_right(arrivals, free) - 1
            else:
                start = arrivals[i]
            end = offsets[i + 1]
            i += 1
            target = end - self.chars
            if target <= released:
                continue
            released, blocked, free = self._release(text, released, target, end, start, out, tally)
            if blocked:
                return tally.run(out)
        if released < len(text):
            start = max(free, arrivals[-1])
            self._release(text, released, len(text), len(text), start, out, tally)
        return tally.run(out)

    def _release(
        self, text: str, released: int, target: int, end: int, start: float, out: list[Shown], tally: _Tally
    ) -> tuple[int, bool, float]:
        ctx = max(0, released - self.context_chars)
        check = _shift(tally.add(self._check(text[ctx:end])), ctx)
        done = start + check.cost_ms
        boundary = target
        for a, b, _ in check.redactions:
            if a < boundary < b:  # never release part of a finding already found
                boundary = max(a, released)
                break
        blocked = check.block_at is not None and check.block_at < boundary
        if blocked:
            assert check.block_at is not None
            boundary = max(check.block_at, released)
        _show(out, done, text, released, boundary, check.redactions)
        return boundary, blocked, done


class _Tally:
    """Counts a baseline's checks and the model calls and time they were charged."""

    __slots__ = ("checks", "model_calls", "model_ms")

    def __init__(self) -> None:
        self.checks = 0
        self.model_calls = 0
        self.model_ms = 0.0

    def add(self, check: Check) -> Check:
        self.checks += 1
        self.model_calls += check.model_calls
        self.model_ms += check.cost_ms
        return check

    def run(self, out: list[Shown]) -> Run:
        return Run(tuple(out), self.checks, self.model_calls, self.model_ms)


class ChunkAndCheck:
    """NeMo Guardrails' ``RollingBuffer``: check ``chunk_size`` tokens with ``context_size`` before them.

    With ``stream_first`` every chunk is shown as it arrives and the checks only run
    (NeMo's default): stream first, check after. (``context_size: 0`` keeps no context;
    NeMo's own slicing would keep the whole buffer.) A batch is shown when its check is
    done; checks run one after another.
    """

    def __init__(self, checker: Checker, chunk_size: int = 200, context_size: int = 50, stream_first: bool = False):
        if chunk_size < 1 or context_size < 0:
            raise ValueError("chunk_size must be at least 1 and context_size at least 0")
        self._check = checker
        self.chunk_size = chunk_size
        self.context_size = context_size
        self.stream_first = stream_first

    @property
    def name(self) -> str:
        if self.stream_first:
            return "stream first, check after"
        return f"chunk-and-check {self.chunk_size}/{self.context_size} tokens"

    @property
    def family(self) -> str:
        return "stream first" if self.stream_first else "chunk-and-check"

    @property
    def params(self) -> dict[str, Any]:
        return {"chunk_size": self.chunk_size, "context_size": self.context_size, "stream_first": self.stream_first}

    def run(self, stream: LabelledStream) -> Run:
        text = stream.text
        offsets = _offsets(stream.chunks)
        arrivals = stream.arrivals_ms()
        out: list[Shown] = []
        tally = _Tally()
        first = 0  # the buffer is chunks [first, i]
        total = yielded = 0
        free = -math.inf

        def batch(ctx_from: int, user_from: int, upto: int, t: float) -> bool:
            nonlocal free
            start = offsets[ctx_from]
            check = _shift(tally.add(self._check(text[start : offsets[upto]])), start)
            if self.stream_first:
                return False
            done = free = max(t, free) + check.cost_ms
            a = offsets[user_from]
            b = offsets[upto]
            if check.block_at is not None and check.block_at < b:
                _show(out, done, text, a, max(a, check.block_at), check.redactions)
                return True
            _show(out, done, text, a, b, check.redactions)
            return False

        for i, t in enumerate(arrivals):
            if self.stream_first and offsets[i + 1] > offsets[i]:
                out.append(Shown(t, offsets[i], offsets[i + 1], stream.chunks[i], True))
            total += 1
            if i + 1 - first >= self.chunk_size:
                new = min(self.chunk_size, total - yielded)
                ctx_from = max(first, i + 1 - self.chunk_size - self.context_size)
                yielded += new
                if batch(ctx_from, i + 1 - new, i + 1, t):
                    return tally.run(out)
                first = max(first, i + 1 - self.context_size)
        if first < len(arrivals):
            remaining = total - yielded
            batch(first, len(arrivals) - max(remaining, 0), len(arrivals), arrivals[-1])
        return tally.run(out)


class SentenceBuffer:
    """Guardrails AI's sentence chunking: check and release each complete sentence on its own.

    Sentences are checked one after another; each is shown when its check is done.
    """

    family = "sentence"
    name = "sentence buffering"
    _END = re.compile(r"[.!?](?=\s)")

    def __init__(self, checker: Checker) -> None:
        self._check = checker

    @property
    def params(self) -> dict[str, Any]:
        return {"sentence_end": self._END.pattern}

    def run(self, stream: LabelledStream) -> Run:
        text = stream.text
        offsets = _offsets(stream.chunks)
        arrivals = stream.arrivals_ms()
        out: list[Shown] = []
        tally = _Tally()
        released = 0
        searched = 0
        free = -math.inf
        for i, t in enumerate(arrivals):
            end = offsets[i + 1]
            # A sentence end needs the whitespace after it, so look again from one back.
            for m in self._END.finditer(text, max(released, searched - 1), end):
                stop = m.end()
                blocked, free = self._release(text, released, stop, max(t, free), out, tally)
                if blocked:
                    return tally.run(out)
                released = stop
            searched = end
        if released < len(text):
            self._release(text, released, len(text), max(arrivals[-1], free), out, tally)
        return tally.run(out)

    def _release(
        self, text: str, start: int, stop: int, t: float, out: list[Shown], tally: _Tally
    ) -> tuple[bool, float]:
        check = _shift(tally.add(self._check(text[start:stop])), start)
        done = t + check.cost_ms
        if check.block_at is not None:
            _show(out, done, text, start, max(start, check.block_at), check.redactions)
            return True, done
        _show(out, done, text, start, stop, check.redactions)
        return False, done


# --------------------------------------------------------------------------- guardstream


class Settled:
    """guardstream's settled-frontier release with a time budget (``None``: unbounded).

    Model analyses the window asks for are answered ``clock``'s price later on the
    virtual clock; meanwhile chunks keep arriving and the budget keeps ticking. When the
    budget runs out on unsettled text, ``on_budget`` releases it (a measured risk: the
    ``guardstream`` family) or blocks the stream (the ``guardstream, block on budget``
    family: nothing unsettled is ever shown, and the rest of the answer is lost).
    """

    def __init__(
        self,
        guard: Guard,
        max_hold_ms: float | None,
        clock: ModelClock | None = None,
        on_budget: Literal["release", "block"] = "release",
    ) -> None:
        self.max_hold_ms = max_hold_ms
        self.on_budget = on_budget
        self._guard = with_budget(guard, max_hold_ms, on_budget)
        self._models = dict(analysing(self._guard.detectors))
        self.clock = clock if clock is not None else ModelClock.for_guard(self._guard.detectors)

    @property
    def family(self) -> str:
        return "guardstream" if self.on_budget == "release" else "guardstream, block on budget"

    @property
    def name(self) -> str:
        if self.max_hold_ms is None:
            return "guardstream, unbounded"
        suffix = "" if self.on_budget == "release" else ", block on budget"
        return f"guardstream, {_ms(self.max_hold_ms)} ms{suffix}"

    @property
    def params(self) -> dict[str, Any]:
        return {"max_hold_ms": self.max_hold_ms, "max_hold_chars": None, "on_budget": self.on_budget}

    def run(self, stream: LabelledStream) -> Run:
        window = self._guard.window()
        text = stream.text
        out: list[Shown] = []
        pending: list[tuple[int, int, str]] = []
        arrivals = stream.arrivals_ms()
        # Model calls in flight: (when the answer is in, order asked, session index, request, answer).
        flight: list[tuple[float, int, int, AnalysisRequest, Any]] = []
        calls = 0
        model_ms = 0.0

        def handle(events: list[Event], now: float) -> None:
            nonlocal calls, model_ms
            _collect(events, text, pending, out)
            if not self._models:
                return
            for index, request in window.requests():
                detector = self._models[index]
                result = self.clock.analyze(detector, request.text)
                cost = self.clock.cost_ms(detector.name, len(request.text))
                calls += 1
                model_ms += cost
                heapq.heappush(flight, (now + cost, calls, index, request, result))

        def catch_up(t: float) -> None:
            """Model answers due at or before ``t`` and budget deadlines before it, in time order."""
            while True:
                deadline = window.next_deadline()
                tick = math.inf if deadline is None or deadline >= t else deadline
                answer = flight[0][0] if flight and flight[0][0] <= t else math.inf
                if answer <= tick and answer < math.inf:  # an answer first when they tie
                    done, _, index, request, result = heapq.heappop(flight)
                    handle(window.deliver(index, request, result, done), done)
                elif tick < math.inf:
                    events = window.tick(tick)
                    if window.next_deadline() == tick:
                        # (arrival + budget) - budget can round below the arrival time.
                        events += window.tick(math.nextafter(tick, math.inf))
                        if window.next_deadline() == tick:
                            raise RuntimeError(f"{stream.id}: the window's deadline {tick} ms does not move on tick")
                    handle(events, tick)
                else:
                    return

        for chunk, t in zip(stream.chunks, arrivals, strict=True):
            catch_up(t)
            handle(window.feed(chunk, t), t)
        end = arrivals[-1] if arrivals else 0.0
        handle(window.finish(end), end)
        catch_up(math.inf)
        return Run(tuple(out), 0, calls, model_ms)


def _collect(events: list[Event], text: str, pending: list[tuple[int, int, str]], out: list[Shown]) -> None:
    """Turn a window's events into shown pieces: a ``Released`` span minus its ``Redacted`` ones."""
    for event in events:
        if isinstance(event, Redacted):
            pending.append((event.span.start, event.span.end, event.replacement))
        elif isinstance(event, BudgetExceeded) and event.action == "mask":
            raise ValueError("the sweep accounts for on_budget: release (or block), not mask")
        elif isinstance(event, Released):
            first = len(out)
            _show(out, event.t_ms, text, event.span.start, event.span.end, sorted(pending))
            pending.clear()
            shown = "".join(p.text for p in out[first:])
            if shown != event.text:
                raise ValueError(f"released {event.text!r} but the events account for {shown!r}")


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,g}"
