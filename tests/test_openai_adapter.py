"""The OpenAI stream adapter: content guarded, tool calls gated, honest endings (no network)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from openai.types.chat import ChatCompletionChunk

from guardstream import ExtraRequired, Guard
from guardstream.integrations.openai import UpstreamError, guard_chat_stream, guard_chunk_dicts

pytestmark = pytest.mark.timeout(30)

PATTERNS = Guard.load("patterns")
BLOCKING = Guard.from_dict(
    {"block_message": "[blocked]", "actions": {"US_SSN": "block"}, "detectors": [{"type": "patterns"}]}
)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 7,
        "model": "m",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish, **extra}],
    }


def text(t: str) -> dict[str, Any]:
    return chunk({"content": t})


def call(index: int, call_id: str | None, name: str | None, arguments: str) -> dict[str, Any]:
    tc: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id:
        tc.update(id=call_id, type="function")
        tc["function"]["name"] = name
    return chunk({"tool_calls": [tc]})


class Source:
    """Typed chunks from dicts; records closing; may fail or stall after ``stop_after`` items."""

    def __init__(self, items: Sequence[dict[str, Any]], *, fail_after: int | None = None, stall: bool = False) -> None:
        self.items = items
        self.fail_after = fail_after
        self.stall = stall
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        for i, item in enumerate(self.items):
            if i == self.fail_after:
                raise ConnectionResetError("upstream went away")
            yield ChatCompletionChunk.model_validate(item)
        if self.stall:
            await asyncio.sleep(3600)

    async def close(self) -> None:  # the SDK's AsyncStream spells it close()
        self.closed = True


async def collect(guard: Guard, source: Any) -> tuple[list[Any], Any]:
    async with guard_chat_stream(guard, source) as stream:
        out = [c async for c in stream]
    return out, stream


def content_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def tool_chunk_indexes(chunks: list[Any]) -> list[int]:
    return [i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.tool_calls]


async def test_content_is_guarded_and_chunks_keep_their_type() -> None:
    logprobs = {"content": [{"token": "ann", "logprob": -0.1, "bytes": None, "top_logprobs": []}]}
    source = Source(
        [
            chunk({"role": "assistant", "content": ""}),
            text("Mail ann"),
            chunk({"content": "@x.org"}, logprobs=logprobs),
            text(" now."),
            chunk(finish="stop"),
        ]
    )
    out, stream = await collect(PATTERNS, source)
    assert all(isinstance(c, ChatCompletionChunk) for c in out)
    assert content_of(out) == "Mail <EMAIL_ADDRESS> now."
    assert out[0].choices[0].delta.role == "assistant"
    assert {c.id for c in out} == {"chatcmpl-1"} and {c.model for c in out} == {"m"}
    assert all(c.choices[0].logprobs is None for c in out if c.choices)  # raw tokens never pass
    assert out[-1].choices[0].finish_reason == "stop"
    assert stream.result.outcome.kind == "completed" and source.closed


async def test_a_tool_call_waits_until_the_text_before_it_is_released() -> None:
    # Upstream order: text, tool call, the rest of an email address. The tool call arrived
    # while "ann" was held (it could become an address), so it must come after its release.
    source = Source(
        [
            text("Writing to ann"),
            call(0, "call_1", "lookup", '{"q": '),
            text("@example.com."),
            call(0, None, None, '"x"}'),
            chunk(finish="tool_calls"),
        ]
    )
    out, stream = await collect(PATTERNS, source)
    first_tool = tool_chunk_indexes(out)[0]
    assert content_of(out[:first_tool]) == "Writing to <EMAIL_ADDRESS>."
    assert out[-1].choices[0].finish_reason == "tool_calls"
    (emitted,) = stream.result.tool_calls
    assert (emitted.id, emitted.name, emitted.arguments) == ("call_1", "lookup", '{"q": "x"}')
    assert stream.result.dropped_tool_calls == ()


async def test_a_blocked_stream_never_emits_held_tool_calls_and_reports_them() -> None:
    source = Source(
        [
            text("Sure. Your SSN is 123-45-67"),
            call(0, "call_1", "delete_account", "{}"),
            text("89 and more."),
            chunk(finish="tool_calls"),
        ]
    )
    out, stream = await collect(BLOCKING, source)
    assert tool_chunk_indexes(out) == []
    assert content_of(out) == "Sure. Your SSN is [blocked]"
    assert out[-1].choices[0].finish_reason == "content_filter"
    assert out[-1].guardstream["type"] == "blocked"
    assert [c.name for c in stream.dropped_tool_calls] == ["delete_account"]
    assert stream.result.finish_reason == "content_filter" and stream.result.outcome.kind == "blocked"
    assert source.closed


async def test_stopping_early_drops_held_tool_calls_and_closes_the_source() -> None:
    source = Source([text("Hello ann"), call(0, "call_1", "send", "{}")], stall=True)
    async with guard_chat_stream(PATTERNS, source) as stream:
        async for c in stream:
            assert c.choices[0].delta.content == "Hello "
            break
    assert stream.outcome is not None and stream.outcome.kind == "cancelled"
    assert stream.outcome.released == "Hello "
    assert [c.name for c in stream.dropped_tool_calls] == ["send"]
    assert source.closed


async def test_upstream_failure_is_reraised_after_the_released_text() -> None:
    source = Source([text("Fine so far. "), text("card 4111 "), call(0, "c", "f", "{}"), text("x")], fail_after=3)
    got: list[Any] = []
    with pytest.raises(ConnectionResetError):
        async with guard_chat_stream(PATTERNS, source) as stream:
            async for c in stream:
                got.append(c)
    assert content_of(got) == "Fine so far. card "  # the unsettled "4111 " is never released
    assert tool_chunk_indexes(got) == [] and [c.name for c in stream.dropped_tool_calls] == ["f"]
    assert stream.outcome is not None and stream.outcome.kind == "upstream_error"
    assert not any(c.choices and c.choices[0].finish_reason for c in got)


async def test_a_stream_that_ends_without_a_finish_reason_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="without a finish_reason"):
        await collect(PATTERNS, Source([text("All good.")]))


async def test_more_than_one_choice_is_refused() -> None:
    second = chunk({"content": "b"})
    second["choices"][0]["index"] = 1
    with pytest.raises(UpstreamError, match="one choice"):
        await collect(PATTERNS, Source([text("a"), second, chunk(finish="stop")]))


async def test_retraction_becomes_a_chunk_whose_offsets_point_into_the_received_content() -> None:
    guard = Guard.from_dict(
        {
            "budget": {"max_hold_ms": None, "max_hold_chars": 8, "on_budget": "release"},
            "detectors": [{"type": "patterns", "labels": ["CREDIT_CARD"]}],
        }
    )
    source_text = ["Card ", "4111 ", "1111 ", "1111 ", "1111", " thanks"]
    items = [text(t) for t in source_text] + [chunk(finish="stop")]
    out = [c async for c in guard_chunk_dicts(guard, items)]
    received = "".join(c["choices"][0]["delta"].get("content", "") for c in out if c["choices"])
    (retraction,) = [c["guardstream"] for c in out if not c["choices"]]
    a, b = retraction["content_range"]
    s, e = retraction["leaked"]
    assert received[a:b] == "".join(source_text)[s:e] and b > a
    assert retraction["finding"][0] == s and retraction["label"] == "CREDIT_CARD"
    assert received.endswith("<CREDIT_CARD> thanks")


async def test_usage_chunk_follows_the_finish() -> None:
    usage = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "m", "choices": []}
    usage["usage"] = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    out, _ = await collect(PATTERNS, Source([text("Hi."), chunk(finish="stop"), usage]))
    assert out[-2].choices[0].finish_reason == "stop"
    assert out[-1].usage is not None and out[-1].usage.total_tokens == 3


def test_a_missing_openai_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai.types.chat", None)
    with pytest.raises(ExtraRequired, match=r"pip install 'guardstream\[openai\]'"):
        guard_chat_stream(PATTERNS, Source([]))
