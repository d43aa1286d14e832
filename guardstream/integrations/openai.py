"""Guard an OpenAI chat-completions stream: content through the guard, tool calls gated.

::

    stream = await client.chat.completions.create(model=..., messages=..., stream=True)
    async with guard_chat_stream(guard, stream) as chunks:
        async for chunk in chunks:          # ChatCompletionChunk, as the SDK gives them
            ...
    chunks.result.dropped_tool_calls        # held tool calls a block or a stop dropped

Contract, per stream:

* Content deltas go through :meth:`Guard.stream`; what comes back are chunks of the same type
  carrying only released text (replacements applied), re-chunked as the guard releases it.
* Tool-call deltas (``tool_calls``, the legacy ``function_call``) and ``refusal`` deltas are
  *held*: each is recorded with the source offset (content characters received so far) at
  which it arrived, and emitted only once a ``Released`` event's ``span.end`` has reached that
  offset while the stream is still open, or when the stream completes. A blocked, cancelled
  or failed stream never emits the ones still held; :class:`ChatStreamResult` lists them as
  dropped.
* A completed stream ends with the upstream's ``finish_reason``; a blocked one with a chunk
  carrying the block message as content and ``finish_reason: "content_filter"``. An upstream
  failure is re-raised after the text released before it (as :meth:`Guard.text` does); a
  detector failure that blocks raises :class:`DetectorError`. A source that ends with no
  ``finish_reason`` at all is an upstream failure, never a success.
* A :class:`Retracted` event becomes a chunk with no choices and a ``guardstream`` field
  (``{"type": "retraction", ...}``, see :func:`retraction_payload`); the SDK keeps unknown
  fields, so ``chunk.guardstream`` (or ``chunk.model_extra``) reads it.
* ``logprobs`` are never passed on: they carry the unguarded tokens.
* One choice per stream (``n=1``): a chunk for another choice fails the stream.

The :class:`Guard` stays immutable and shared; every bit of per-stream state lives in the
:class:`GuardedChatStream`.
"""

from __future__ import annotations

import asyncio
import bisect
import inspect
import time
import uuid
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from .._errors import DetectorError, ExtraRequired, GuardstreamError
from ..events import Blocked, BudgetExceeded, Event, Outcome, Released, Retracted
from ..findings import Span
from ..guard import Guard, GuardedStream, StreamStats

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionChunk

__all__ = [
    "ChatStreamResult",
    "ChunkDict",
    "GuardedChatStream",
    "ToolCall",
    "UpstreamError",
    "guard_chat_stream",
    "guard_chunk_dicts",
    "retraction_payload",
]

ChunkDict = dict[str, Any]
T = TypeVar("T")

# Delta keys that are commits rather than text: held until the text before them is released.
_GATED: Final = ("tool_calls", "function_call", "refusal")
_META: Final = ("id", "object", "created", "model", "system_fingerprint", "service_tier")


class UpstreamError(GuardstreamError):
    """The upstream stream failed or broke the protocol (an error event, no finish, n > 1)."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call assembled from its deltas (``arguments`` joined in order)."""

    index: int
    id: str | None
    type: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class ChatStreamResult:
    """How one guarded chat stream ended.

    ``finish_reason`` is what was sent downstream (``None`` when the stream was cancelled or
    failed: nothing was). ``tool_calls`` were emitted; ``dropped_tool_calls`` were held and
    never emitted (a call cut off part-way appears in both, each with its own fragments).
    """

    outcome: Outcome
    finish_reason: str | None
    upstream_finish_reason: str | None
    tool_calls: tuple[ToolCall, ...]
    dropped_tool_calls: tuple[ToolCall, ...]
    retractions: tuple[Retracted, ...]
    budget_exceeded: tuple[BudgetExceeded, ...]


class _ToolCalls:
    """Accumulates tool-call deltas into :class:`ToolCall` values, by index."""

    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, gated: ChunkDict) -> None:
        for delta in gated.get("tool_calls") or ():
            self._merge(int(delta.get("index", 0)), delta.get("id"), delta.get("type"), delta.get("function") or {})
        if gated.get("function_call"):
            self._merge(-1, None, "function", gated["function_call"])

    def _merge(self, index: int, call_id: Any, kind: Any, function: dict[str, Any]) -> None:
        call = self._calls.setdefault(index, {"id": None, "type": None, "name": None, "arguments": []})
        call["id"] = call["id"] or call_id
        call["type"] = call["type"] or kind
        call["name"] = call["name"] or function.get("name")
        if function.get("arguments"):
            call["arguments"].append(function["arguments"])

    def result(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(i, c["id"], c["type"], c["name"], "".join(c["arguments"])) for i, c in sorted(self._calls.items())
        )


def retraction_payload(event: Retracted, content_range: tuple[int, int]) -> dict[str, Any]:
    """The ``guardstream`` object of a retraction chunk (the proxy's ``guardstream.retraction``).

    ``finding`` and ``leaked`` are source offsets; ``content_range`` is where the leaked text
    sits in the content this client received (all ``delta.content`` strings joined). Offsets
    count Unicode code points.
    """
    f = event.finding
    return {
        "type": "retraction",
        "label": f.label,
        "detector": f.detector,
        "finding": [f.span.start, f.span.end],
        "leaked": [event.leaked.start, event.leaked.end],
        "content_range": list(content_range),
        "t_ms": round(event.t_ms, 3),
    }


class GuardedChatStream(Generic[T]):
    """One guarded chat-completions stream: an async iterator of chunks and a context manager.

    Build it with :func:`guard_chat_stream` (``openai`` SDK chunks) or
    :func:`guard_chunk_dicts` (JSON-shaped dicts, as the proxy uses). ``result`` is set
    once the stream has ended, however it ended. ``on_event`` sees every guard event.
    """

    def __init__(
        self,
        guard: Guard,
        source: AsyncIterable[T],
        *,
        to_dict: Callable[[T], ChunkDict],
        from_dict: Callable[[ChunkDict], T],
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self._guard = guard
        self._source = source
        self._to_dict = to_dict
        self._from_dict = from_dict
        self._on_event = on_event
        self._gen: AsyncGenerator[T, None] | None = None
        self._stream: GuardedStream | None = None
        self.result: ChatStreamResult | None = None
        #: loop time of the first non-empty content from upstream, and of the first released.
        self.t_first_content: float | None = None
        self.t_first_release: float | None = None
        self._meta: ChunkDict | None = None
        self._role: str | None = None
        self._role_sent = False
        self._offset = 0
        self._pending: deque[tuple[int, ChunkDict]] = deque()
        self._emitted = _ToolCalls()
        self._dropped = _ToolCalls()
        self._upstream_finish: str | None = None
        self._finish_sent: str | None = None
        self._usage: ChunkDict | None = None
        self._blocked: Blocked | None = None
        self._retractions: list[Retracted] = []
        self._budget: list[BudgetExceeded] = []
        # Released events as (source start, source end, content start, content length).
        self._starts: list[int] = []
        self._spans: list[tuple[int, int, int, int]] = []
        self._content_len = 0

    # ------------------------------------------------------------------ public

    @property
    def outcome(self) -> Outcome | None:
        return self.result.outcome if self.result is not None else None

    @property
    def stats(self) -> StreamStats:
        """Timing of the guarded text stream (hold per character, first release)."""
        return self._stream.stats if self._stream is not None else StreamStats()

    @property
    def dropped_tool_calls(self) -> tuple[ToolCall, ...]:
        return self.result.dropped_tool_calls if self.result is not None else ()

    def __aiter__(self) -> GuardedChatStream[T]:
        return self

    async def __anext__(self) -> T:
        if self._gen is None:
            self._gen = self._run()
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop: close the upstream, drop what is held, record a ``cancelled`` outcome."""
        if self._gen is not None:
            await self._gen.aclose()
        if self.result is None:  # never started: nothing was read or released
            await _close(self._source)
            self._conclude(self._guard.window().outcome("cancelled", 0.0))

    async def __aenter__(self) -> GuardedChatStream[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ the stream

    async def _content(self) -> AsyncGenerator[str, None]:
        """The content deltas, for the guard; records everything else as it passes."""
        loop = asyncio.get_running_loop()
        try:
            async for item in self._source:
                chunk = self._to_dict(item)
                if self._meta is None and chunk.get("id") is not None:
                    self._meta = {k: chunk[k] for k in _META if chunk.get(k) is not None}
                choices = chunk.get("choices") or ()
                if not choices:
                    if chunk.get("usage") is not None:
                        self._usage = chunk
                    continue
                for choice in choices:
                    if choice.get("index", 0) != 0:
                        raise UpstreamError(
                            f"guardstream guards one choice per stream (n=1); got index {choice['index']}"
                        )
                    delta = choice.get("delta") or {}
                    if self._role is None and delta.get("role"):
                        self._role = delta["role"]
                    content = delta.get("content")
                    if content:
                        if self.t_first_content is None:
                            self.t_first_content = loop.time()
                        self._offset += len(content)
                        yield content
                    gated = {key: delta[key] for key in _GATED if delta.get(key)}
                    if gated:
                        self._pending.append((self._offset, gated))
                    if choice.get("finish_reason"):
                        self._upstream_finish = choice["finish_reason"]
            if self._upstream_finish is None:
                raise UpstreamError("the upstream stream ended without a finish_reason")
        finally:
            await _close(self._source)

    async def _run(self) -> AsyncGenerator[T, None]:
        loop = asyncio.get_running_loop()
        stream = self._stream = self._guard.stream(self._content())
        try:
            async with stream:
                async for event in stream:
                    if self._on_event is not None:
                        self._on_event(event)
                    if isinstance(event, Released):
                        if event.text:
                            self._record(event)
                            if self.t_first_release is None:
                                self.t_first_release = loop.time()
                            yield self._from_dict(self._chunk({"content": event.text}))
                        while self._pending and self._pending[0][0] <= event.span.end:
                            yield self._from_dict(self._emit_next())
                    elif isinstance(event, Retracted):
                        self._retractions.append(event)
                        yield self._from_dict(self._retraction_chunk(event))
                    elif isinstance(event, BudgetExceeded):
                        self._budget.append(event)
                    elif isinstance(event, Blocked):
                        self._blocked = event
            outcome = stream.outcome
            assert outcome is not None
            if outcome.kind == "completed":
                while self._pending:
                    yield self._from_dict(self._emit_next())
                self._finish_sent = self._upstream_finish or "stop"
                yield self._from_dict(self._chunk({}, self._finish_sent))
                if self._usage is not None:
                    yield self._from_dict(self._usage)
            elif outcome.kind == "blocked":
                self._drop_pending()
                self._finish_sent = "content_filter"
                delta = {"content": outcome.message} if outcome.message else {}
                final = self._chunk(delta, "content_filter")
                final["guardstream"] = {
                    "type": "blocked",
                    "reason": self._blocked.reason if self._blocked is not None else "finding",
                    "labels": sorted({f.label for f in outcome.findings}),
                    "dropped_tool_calls": [
                        {"index": c.index, "id": c.id, "name": c.name} for c in self._dropped.result()
                    ],
                }
                yield self._from_dict(final)
            elif outcome.kind == "upstream_error":
                error = stream.upstream_exception
                raise error if error is not None else UpstreamError(outcome.error or "upstream failed")
            elif outcome.kind == "detector_error":
                raise DetectorError("guard", outcome.error or "a detector failed")
        finally:
            outcome = stream.outcome
            if outcome is not None:
                self._conclude(outcome)

    # ------------------------------------------------------------------ helpers

    def _conclude(self, outcome: Outcome) -> None:
        if self.result is not None:
            return
        self._drop_pending()
        self.result = ChatStreamResult(
            outcome=outcome,
            finish_reason=self._finish_sent,
            upstream_finish_reason=self._upstream_finish,
            tool_calls=self._emitted.result(),
            dropped_tool_calls=self._dropped.result(),
            retractions=tuple(self._retractions),
            budget_exceeded=tuple(self._budget),
        )

    def _drop_pending(self) -> None:
        while self._pending:
            self._dropped.add(self._pending.popleft()[1])

    def _emit_next(self) -> ChunkDict:
        gated = self._pending.popleft()[1]
        self._emitted.add(gated)
        return self._chunk(dict(gated))

    def _base(self) -> ChunkDict:
        if self._meta is None:
            self._meta = {
                "id": f"chatcmpl-guardstream-{uuid.uuid4().hex}",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": "",
            }
        return dict(self._meta)

    def _chunk(self, delta: ChunkDict, finish_reason: str | None = None) -> ChunkDict:
        if not self._role_sent:
            delta = {"role": self._role or "assistant", **delta}
            self._role_sent = True
        out = self._base()
        out["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        return out

    def _retraction_chunk(self, event: Retracted) -> ChunkDict:
        out = self._base()
        out["choices"] = []
        out["guardstream"] = retraction_payload(event, self._content_range(event.leaked))
        return out

    def _record(self, event: Released) -> None:
        self._starts.append(event.span.start)
        self._spans.append((event.span.start, event.span.end, self._content_len, len(event.text)))
        self._content_len += len(event.text)

    def _content_range(self, span: Span) -> tuple[int, int]:
        return self._to_content(span.start), self._to_content(span.end)

    def _to_content(self, pos: int) -> int:
        """Where source offset ``pos`` of released text sits in the content sent downstream."""
        i = bisect.bisect_right(self._starts, pos) - 1
        if i < 0:
            return 0
        start, end, out, length = self._spans[i]
        if end - start == length:
            return out + min(pos - start, length)
        # A replacement changed the length: budget-forced text is the plain tail of a release.
        return max(out, out + length - max(0, end - pos))


async def _close(source: object) -> None:
    """Close an async source however it spells it (``aclose`` or the SDK's ``close``)."""
    for name in ("aclose", "close"):
        method = getattr(source, name, None)
        if method is not None:
            result = method()
            if inspect.isawaitable(result):
                await result
            return


def guard_chunk_dicts(
    guard: Guard,
    source: AsyncIterable[ChunkDict] | Iterable[ChunkDict],
    *,
    on_event: Callable[[Event], None] | None = None,
) -> GuardedChatStream[ChunkDict]:
    """Guard a stream of JSON-shaped ``chat.completion.chunk`` dicts; yields dicts."""
    return GuardedChatStream(guard, _as_async(source), to_dict=_identity, from_dict=_identity, on_event=on_event)


def guard_chat_stream(
    guard: Guard,
    stream: AsyncIterable[ChatCompletionChunk],
    *,
    on_event: Callable[[Event], None] | None = None,
) -> GuardedChatStream[ChatCompletionChunk]:
    """Guard an ``openai`` SDK stream (``AsyncStream[ChatCompletionChunk]``); yields the same type.

    Raises:
        ExtraRequired: the ``openai`` package is not installed (``guardstream[openai]``).
    """
    try:
        from openai.types.chat import ChatCompletionChunk
    except ImportError as exc:
        raise ExtraRequired("guard_chat_stream", "openai") from exc

    def to_dict(chunk: ChatCompletionChunk) -> ChunkDict:
        if isinstance(chunk, dict):
            return chunk
        return chunk.model_dump(exclude_unset=True)

    return GuardedChatStream(
        guard, stream, to_dict=to_dict, from_dict=ChatCompletionChunk.model_validate, on_event=on_event
    )


def _identity(chunk: ChunkDict) -> ChunkDict:
    return chunk


async def _aiter_sync(items: Iterable[ChunkDict]) -> AsyncGenerator[ChunkDict, None]:
    for item in items:
        yield item


def _as_async(source: AsyncIterable[ChunkDict] | Iterable[ChunkDict]) -> AsyncIterable[ChunkDict]:
    return source if isinstance(source, AsyncIterable) else _aiter_sync(source)
