"""The async shell around the holdback window: source -> window -> events.

A :class:`Guard` is immutable and may serve any number of concurrent streams; each call
to :meth:`Guard.stream` creates the per-stream state (a window and one session per
detector) and owns exactly one background task: the reader that pulls chunks from the
source. That task is cancelled and awaited, and the source closed, whatever way the
stream ends (completion, block, upstream error, the consumer breaking out, ``aclose``,
or cancellation of the consuming task).

The reader exists so the latency budget is a promise about time: while the source stalls
mid-entity, the guard wakes at the oldest held character's deadline (not at the next
chunk) and lets the window's budget decide. Deadlines are computed exactly from the
window, so nothing wakes up while nothing is held.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from ._errors import DetectorError, OutputBlocked
from .detectors import Detector, build_detector
from .detectors.base import AnalysingDetector, AnalysisRequest
from .events import Event, Outcome, OutcomeKind, Released
from .findings import Finding
from .policy import ActionSpec, Policy, load_policy, policy_from_dict
from .window import ActionRule, Window, WindowConfig

__all__ = ["Guard", "GuardedStream", "StreamStats"]

_READ_AHEAD: Final = 32


class Guard:
    """An immutable guard built from a :class:`Policy`; share it across streams.

    >>> guard = Guard.load("patterns")
    >>> guard.check("mail me at ann@example.com").released
    'mail me at <EMAIL_ADDRESS>'
    """

    __slots__ = ("_config", "_detectors", "_policy")

    def __init__(self, policy: Policy, extra_detectors: Iterable[Detector] = ()) -> None:
        self._policy = policy
        self._detectors: tuple[Detector, ...] = (
            *(build_detector(cfg) for cfg in policy.detectors),
            *extra_detectors,
        )
        self._config = WindowConfig(
            action_for=_action_resolver(policy),
            max_hold_ms=policy.budget.max_hold_ms,
            max_hold_chars=policy.budget.max_hold_chars,
            on_budget=policy.budget.on_budget,
            granularity=policy.release,
            on_detector_error=policy.on_detector_error,
            block_message=policy.block_message,
            mask_char=policy.mask_char,
            context_chars=policy.context_chars,
        )

    # ------------------------------------------------------------------ building

    @classmethod
    def load(cls, name_or_path: str | Path) -> Guard:
        """A guard for a preset name (``patterns``) or a YAML policy file."""
        return cls(load_policy(name_or_path))

    @classmethod
    def from_yaml(cls, path: str | Path) -> Guard:
        """A guard for the YAML policy file at ``path``."""
        return cls(load_policy(Path(path)))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> Guard:
        """A guard for an already-parsed policy mapping."""
        return cls(policy_from_dict(data, source))

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def detectors(self) -> tuple[Detector, ...]:
        return self._detectors

    def window(self) -> Window:
        """Fresh per-stream state: the synchronous core, for callers with their own loop."""
        return Window([(d.name, d.open()) for d in self._detectors], self._config)

    def warmup(self) -> None:
        """Load every detector's model now, not on the first stream that needs it.

        Models load lazily, once per process (spaCy ~1-2 s, the encoder and its example
        embeddings a fraction of that); a server calls this before taking traffic.
        """
        for detector in self._detectors:
            warmup = getattr(detector, "warmup", None)
            if callable(warmup):
                warmup()

    # ------------------------------------------------------------------ using

    def stream(self, source: AsyncIterable[str] | Iterable[str]) -> GuardedStream:
        """Guard ``source``; iterate the result for events, ending with an :class:`Outcome`.

        Use ``async with guard.stream(src) as events:`` so the source is closed the moment
        you stop reading; ``events.outcome`` stays available afterwards.
        """
        return GuardedStream(self, source)

    async def text(self, source: AsyncIterable[str] | Iterable[str]) -> AsyncIterator[str]:
        """Yield only the released text; a block yields the block message last.

        An upstream exception is re-raised after the text released before it; a detector
        failure that blocks the stream raises :class:`DetectorError`.
        """
        async with self.stream(source) as events:
            async for event in events:
                if isinstance(event, Released):
                    if event.text:
                        yield event.text
                elif isinstance(event, Outcome):
                    if event.kind == "blocked" and event.message:
                        yield event.message
                    elif event.kind == "upstream_error" and events.upstream_exception is not None:
                        raise events.upstream_exception
                    elif event.kind == "detector_error":
                        if event.message:
                            yield event.message
                        raise DetectorError("guard", event.error or "detector failed")

    async def run(self, source: AsyncIterable[str] | Iterable[str], *, raise_on_block: bool = False) -> Outcome:
        """Consume ``source`` through the guard and return the outcome.

        With ``raise_on_block`` a blocked stream raises :class:`OutputBlocked` (carrying
        the outcome) instead of returning it.
        """
        async with self.stream(source) as events:
            async for _ in events:
                pass
        assert events.outcome is not None
        return _checked(events.outcome, raise_on_block)

    def check(self, text: str, *, raise_on_block: bool = False) -> Outcome:
        """Guard a whole text at once (no asyncio); the outcome says what would be shown."""
        window = self.window()
        events = window.feed(text, 0.0)
        events += self.settle(window, 0.0)
        events += window.finish(0.0)
        events += self.settle(window, 0.0)
        outcome = events[-1] if events else None
        if not isinstance(outcome, Outcome):
            outcome = window.outcome("detector_error", 0.0, error=_UNSETTLED)
        return _checked(outcome, raise_on_block)

    def settle(self, window: Window, now_ms: float) -> list[Event]:
        """Run the window's pending model analyses in this thread; the events they cause.

        For synchronous callers of :meth:`window` (benchmarks, sweeps, ``check``); the
        async stream batches the same analyses across streams instead.
        """
        events: list[Event] = []
        while requests := window.requests():
            for index, request in requests:
                detector = self._detectors[index]
                assert isinstance(detector, AnalysingDetector)
                try:
                    result: Any = detector.analyze([request.text])[0]
                except Exception as exc:  # reported as the detector's failure
                    result = exc
                events += window.deliver(index, request, result, now_ms)
        return events


_UNSETTLED = "a detector left text unsettled at the end of the stream"


def _checked(outcome: Outcome, raise_on_block: bool) -> Outcome:
    if raise_on_block and outcome.kind == "blocked":
        raise OutputBlocked(outcome)
    return outcome


def _action_resolver(policy: Policy) -> Callable[[Finding], ActionRule]:
    default_template = policy.default_action.template or "<{label}>"
    cache: dict[tuple[str, str], ActionRule] = {}
    by_detector = {det.name: det for det in policy.detectors}

    def to_rule(spec: ActionSpec) -> ActionRule:
        return ActionRule(spec.action, spec.template or default_template, spec.message)

    def action_for(finding: Finding) -> ActionRule:
        key = (finding.detector, finding.label)
        rule = cache.get(key)
        if rule is None:
            det = by_detector.get(finding.detector)
            spec = (
                (det.actions.get(finding.label) if det is not None else None)
                or policy.actions.get(finding.label)
                or (det.action if det is not None else None)
                or policy.default_action
            )
            rule = cache[key] = to_rule(spec)
        return rule

    return action_for


# --------------------------------------------------------------------------- streams


@dataclass(slots=True)
class StreamStats:
    """Timing of one guarded stream, in ms since it started."""

    t_first_source_ms: float | None = None
    t_first_release_ms: float | None = None
    holds: list[tuple[float, int]] = field(default_factory=list)


class _End:
    __slots__ = ()


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Delivery:
    """A model's answer for one session's analysis request, back on the loop."""

    __slots__ = ("future", "index", "request")

    def __init__(self, index: int, request: AnalysisRequest, future: asyncio.Future[Any]) -> None:
        self.index = index
        self.request = request
        self.future = future

    def result(self) -> Any:
        if self.future.cancelled():
            return DetectorError(str(self.index), "analysis was cancelled")
        exc = self.future.exception()
        return exc if exc is not None else self.future.result()


def _deliver_to(reader: _Reader, index: int, request: AnalysisRequest, future: asyncio.Future[Any]) -> None:
    reader.push(_Delivery(index, request, future))


_END: Final = _End()
_TIMEOUT: Final = object()


class _Reader:
    """Pulls chunks from the source ahead of the window; owns one task and the source."""

    def __init__(self, source: AsyncIterable[str] | Iterable[str]) -> None:
        if isinstance(source, AsyncIterable):
            self._iter: AsyncIterator[str] = aiter(source)
        else:
            self._iter = _from_sync(source)
        self._items: deque[tuple[str, float] | _End | _Failure | _Delivery] = deque()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._read(), name="guardstream-reader")

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for chunk in self._iter:
                if not isinstance(chunk, str):
                    raise TypeError(f"source yielded {type(chunk).__name__}, expected str")
                self._items.append((chunk, loop.time()))
                self._wake.set()
                if len(self._items) >= _READ_AHEAD:
                    self._room.clear()
                    await self._room.wait()
            self._items.append(_END)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the upstream's failure becomes the stream's outcome
            self._items.append(_Failure(exc))
        finally:
            self._wake.set()

    def push(self, item: _Delivery) -> None:
        """Hand the loop an item that did not come from the source (a model's answer)."""
        self._items.append(item)
        self._wake.set()

    async def get(self, wait_s: float | None) -> tuple[str, float] | _End | _Failure | _Delivery | object:
        while not self._items:
            self._wake.clear()
            if wait_s is None:
                await self._wake.wait()
            else:
                try:
                    async with asyncio.timeout(wait_s):
                        await self._wake.wait()
                except TimeoutError:
                    return _TIMEOUT
        item = self._items.popleft()
        if len(self._items) < _READ_AHEAD:
            self._room.set()
        return item

    async def close(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            # wait() neither raises the task's CancelledError nor swallows our own.
            await asyncio.wait({task})
        aclose = getattr(self._iter, "aclose", None)
        if aclose is not None:
            await aclose()


async def _from_sync(items: Iterable[str]) -> AsyncIterator[str]:
    for item in items:
        yield item


class GuardedStream:
    """The events of one guarded stream; an async iterator and an async context manager.

    ``outcome`` is set once the stream has ended, however it ended (``cancelled`` when the
    consumer stopped early). ``released`` is the text released so far.
    """

    def __init__(self, guard: Guard, source: AsyncIterable[str] | Iterable[str]) -> None:
        self._guard = guard
        self._source = source
        self._window: Window | None = None
        self._gen: AsyncIterator[Event] | None = None
        self.outcome: Outcome | None = None
        self.stats = StreamStats()
        self.upstream_exception: BaseException | None = None

    @property
    def released(self) -> str:
        return self._window.released_text if self._window is not None else ""

    def __aiter__(self) -> GuardedStream:
        return self

    async def __anext__(self) -> Event:
        if self._gen is None:
            self._gen = self._events()
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop: close the source, keep what was released, record a ``cancelled`` outcome."""
        if self._gen is None:
            self._gen = self._events()
        aclose = getattr(self._gen, "aclose", None)
        if aclose is not None:
            await aclose()
        if self.outcome is None:
            # Never started: nothing was read, nothing released.
            window = self._window or self._guard.window()
            self.outcome = window.outcome("cancelled", 0.0)

    async def __aenter__(self) -> GuardedStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _submit(self, window: Window, reader: _Reader) -> None:
        """Send the window's analysis requests to their detectors' batched model calls."""
        for index, request in window.requests():
            detector = self._guard.detectors[index]
            assert isinstance(detector, AnalysingDetector)
            future = detector.submit(request)
            future.add_done_callback(functools.partial(_deliver_to, reader, index, request))

    async def _events(self) -> AsyncIterator[Event]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        window = self._window = self._guard.window()
        stats = self.stats
        reader = _Reader(self._source)
        try:
            reader.start()
            while True:
                deadline = window.next_deadline()
                timeout = None if deadline is None else max(0.0, deadline / 1000 + t0 - loop.time())
                item = await reader.get(timeout)
                now = (loop.time() - t0) * 1000
                if item is _TIMEOUT:
                    events = window.tick(now)
                elif isinstance(item, tuple):
                    chunk, arrived = item
                    if stats.t_first_source_ms is None:
                        stats.t_first_source_ms = (arrived - t0) * 1000
                    events = window.feed(chunk, (arrived - t0) * 1000)
                elif isinstance(item, _Delivery):
                    events = window.deliver(item.index, item.request, item.result(), now)
                elif isinstance(item, _Failure):
                    self.upstream_exception = item.error
                    error = f"{type(item.error).__name__}: {item.error}"
                    events = [window.outcome("upstream_error", now, error=error)]
                else:
                    events = window.finish(now)
                self._submit(window, reader)
                if window.ending and window.is_open and not window.waiting_for_analysis:
                    # Defensive: a detector that never settles must not hang the stream.
                    events.append(window.outcome("detector_error", now, error=_UNSETTLED))
                if window.state in ("blocked", "failed") and not isinstance(events[-1] if events else None, Outcome):
                    kind: OutcomeKind = "blocked" if window.state == "blocked" else "detector_error"
                    events.append(window.outcome(kind, now))
                for event in events:
                    if isinstance(event, Released) and event.text and stats.t_first_release_ms is None:
                        stats.t_first_release_ms = event.t_ms
                    if isinstance(event, Outcome):
                        stats.holds = window.holds
                        self.outcome = event
                    yield event
                if self.outcome is not None:
                    return
        finally:
            await reader.close()
            if self.outcome is None:
                stats.holds = window.holds
                self.outcome = window.outcome("cancelled", (loop.time() - t0) * 1000)
