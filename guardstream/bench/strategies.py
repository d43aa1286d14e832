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

Check latency is not added to the virtual clock (it is a few hundred microseconds per
check here, far below a token interval): the clock is the pacing schedule alone, for
every strategy, and CPU cost is reported separately as throughput.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..events import Blocked, BudgetExceeded, Event, Redacted, Released
from ..guard import Guard
from ..policy import Budget
from ..window import Window
from .accounting import Shown
from .corpus import LabelledStream

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
    """What a strategy showed for one stream, and how many whole-text checks it ran."""

    shown: tuple[Shown, ...]
    checks: int = 0


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


def with_budget(guard: Guard, max_hold_ms: float | None) -> Guard:
    """``guard``'s policy with only a time budget (``None``: unbounded) and ``on_budget: release``."""
    budget = Budget(max_hold_ms=max_hold_ms, max_hold_chars=None, on_budget="release")
    return Guard(guard.policy.model_copy(update={"budget": budget}))


def _drive(guard: Guard, window: Window, events: list[Event], now_ms: float) -> list[Event]:
    """Run the model analyses the window asks for (NER detectors) at once, on the same clock."""
    events += guard.settle(window, now_ms)
    return events


# --------------------------------------------------------------------------- checks


@dataclass(frozen=True, slots=True)
class Check:
    """The policy's verdict on one text: what to replace, and where a block would start."""

    redactions: tuple[tuple[int, int, str], ...]  # (start, end, replacement), in order
    block_at: int | None = None


class Checker:
    """Checks whole texts with a guard's detectors and actions, as a batch guard would."""

    def __init__(self, guard: Guard) -> None:
        self._guard = with_budget(guard, None)

    def __call__(self, text: str) -> Check:
        guard = self._guard
        window = guard.window()
        events = _drive(guard, window, window.feed(text, 0.0), 0.0)
        events = _drive(guard, window, events + window.finish(0.0), 0.0)
        redactions: list[tuple[int, int, str]] = []
        block_at: int | None = None
        for event in events:
            if isinstance(event, Redacted):
                redactions.append((event.span.start, event.span.end, event.replacement))
            elif isinstance(event, Blocked):
                block_at = min((f.start for f in event.findings), default=window.released_offset)
        return Check(tuple(redactions), block_at)


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
    )


# --------------------------------------------------------------------------- baselines


class FixedWindow:
    """Hold the last ``chars`` characters; re-check the held text on every chunk."""

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
        checks = 0
        for i, t in enumerate(arrivals):
            end = offsets[i + 1]
            target = end - self.chars
            if target <= released:
                continue
            checks += 1
            released, blocked = self._release(text, released, target, end, t, out)
            if blocked:
                return Run(tuple(out), checks)
        if released < len(text):
            checks += 1
            self._release(text, released, len(text), len(text), arrivals[-1], out)
        return Run(tuple(out), checks)

    def _release(self, text: str, released: int, target: int, end: int, t: float, out: list[Shown]) -> tuple[int, bool]:
        ctx = max(0, released - self.context_chars)
        check = _shift(self._check(text[ctx:end]), ctx)
        boundary = target
        for a, b, _ in check.redactions:
            if a < boundary < b:  # never release part of a finding already found
                boundary = max(a, released)
                break
        blocked = check.block_at is not None and check.block_at < boundary
        if blocked:
            assert check.block_at is not None
            boundary = max(check.block_at, released)
        _show(out, t, text, released, boundary, check.redactions)
        return boundary, blocked


class ChunkAndCheck:
    """NeMo Guardrails' ``RollingBuffer``: check ``chunk_size`` tokens with ``context_size`` before them.

    With ``stream_first`` every chunk is shown as it arrives and the checks only run
    (NeMo's default): stream first, check after. (``context_size: 0`` keeps no context;
    NeMo's own slicing would keep the whole buffer.)
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
        checks = 0
        first = 0  # the buffer is chunks [first, i]
        total = yielded = 0

        def batch(ctx_from: int, user_from: int, upto: int, t: float) -> bool:
            nonlocal checks
            start = offsets[ctx_from]
            check = _shift(self._check(text[start : offsets[upto]]), start)
            checks += 1
            if self.stream_first:
                return False
            a = offsets[user_from]
            b = offsets[upto]
            if check.block_at is not None and check.block_at < b:
                _show(out, t, text, a, max(a, check.block_at), check.redactions)
                return True
            _show(out, t, text, a, b, check.redactions)
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
                    return Run(tuple(out), checks)
                first = max(first, i + 1 - self.context_size)
        if first < len(arrivals):
            remaining = total - yielded
            batch(first, len(arrivals) - max(remaining, 0), len(arrivals), arrivals[-1])
        return Run(tuple(out), checks)


class SentenceBuffer:
    """Guardrails AI's sentence chunking: check and release each complete sentence on its own."""

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
        checks = 0
        released = 0
        searched = 0
        for i, t in enumerate(arrivals):
            end = offsets[i + 1]
            # A sentence end needs the whitespace after it, so look again from one back.
            for m in self._END.finditer(text, max(released, searched - 1), end):
                stop = m.end()
                checks += 1
                if self._release(text, released, stop, t, out):
                    return Run(tuple(out), checks)
                released = stop
            searched = end
        if released < len(text):
            checks += 1
            self._release(text, released, len(text), arrivals[-1], out)
        return Run(tuple(out), checks)

    def _release(self, text: str, start: int, stop: int, t: float, out: list[Shown]) -> bool:
        check = _shift(self._check(text[start:stop]), start)
        if check.block_at is not None:
            _show(out, t, text, start, max(start, check.block_at), check.redactions)
            return True
        _show(out, t, text, start, stop, check.redactions)
        return False


# --------------------------------------------------------------------------- guardstream


class Settled:
    """guardstream's settled-frontier release with a time budget (``None``: unbounded)."""

    family = "guardstream"

    def __init__(self, guard: Guard, max_hold_ms: float | None) -> None:
        self.max_hold_ms = max_hold_ms
        self._guard = with_budget(guard, max_hold_ms)

    @property
    def name(self) -> str:
        if self.max_hold_ms is None:
            return "guardstream, unbounded"
        return f"guardstream, {_ms(self.max_hold_ms)} ms"

    @property
    def params(self) -> dict[str, Any]:
        return {"max_hold_ms": self.max_hold_ms, "max_hold_chars": None, "on_budget": "release"}

    def run(self, stream: LabelledStream) -> Run:
        guard = self._guard
        window = guard.window()
        text = stream.text
        out: list[Shown] = []
        pending: list[tuple[int, int, str]] = []
        arrivals = stream.arrivals_ms()
        for chunk, t in zip(stream.chunks, arrivals, strict=True):
            while (deadline := window.next_deadline()) is not None and deadline < t:
                events = window.tick(deadline)
                if window.next_deadline() == deadline:
                    # (arrival + budget) - budget can round below the arrival time.
                    events += window.tick(math.nextafter(deadline, math.inf))
                    if window.next_deadline() == deadline:
                        raise RuntimeError(f"{stream.id}: the window's deadline {deadline} ms does not move on tick")
                _collect(_drive(guard, window, events, deadline), text, pending, out)
            _collect(_drive(guard, window, window.feed(chunk, t), t), text, pending, out)
        end = arrivals[-1] if arrivals else 0.0
        _collect(_drive(guard, window, window.finish(end), end), text, pending, out)
        return Run(tuple(out))


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
