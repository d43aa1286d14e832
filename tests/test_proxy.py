"""End to end: the official ``openai`` client -> ``guardstream`` proxy -> a fake model server.

Both servers run on loopback ports chosen by the OS, in the test's own event loop, and are
shut down when each test ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionChunk
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from guardstream import Guard
from guardstream.integrations.openai import guard_chat_stream
from guardstream.integrations.proxy import create_app

from .fake_upstream import API_KEY, DIE, FOREVER, NO_DONE, FakeUpstream, content, finish, serving, tool_call

pytestmark = pytest.mark.timeout(30)

PATTERNS = Guard.load("patterns")
BLOCKING = Guard.from_dict(
    {
        "block_message": "[blocked by policy]",
        "actions": {"US_SSN": "block"},
        "detectors": [{"type": "patterns"}],
    }
)
RETRACTING = Guard.from_dict(
    {
        "budget": {"max_hold_ms": None, "max_hold_chars": 8, "on_budget": "release"},
        "detectors": [{"type": "patterns", "labels": ["CREDIT_CARD"]}],
    }
)


@dataclass
class Stack:
    upstream: FakeUpstream
    upstream_url: str
    proxy_url: str
    client: openai.AsyncOpenAI
    app: Any


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with _stack(PATTERNS) as s:
        yield s


class _stack:
    def __init__(self, guard: Guard, **app_kwargs: Any) -> None:
        self.guard = guard
        self.app_kwargs = app_kwargs

    async def __aenter__(self) -> Stack:
        self.upstream = FakeUpstream()
        self._up = serving(self.upstream)
        upstream_url = await self._up.__aenter__()
        app = create_app(self.guard, upstream_url + "/v1", **self.app_kwargs)
        self._proxy = serving(app)
        proxy_url = await self._proxy.__aenter__()
        self.client = openai.AsyncOpenAI(base_url=proxy_url + "/v1", api_key=API_KEY, max_retries=0)
        return Stack(self.upstream, upstream_url, proxy_url, self.client, app)

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()
        await self._proxy.__aexit__(None, None, None)
        await self._up.__aexit__(None, None, None)


async def chat(client: openai.AsyncOpenAI, model: str, text: str = "hi") -> list[Any]:
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], stream=True
    )
    return [chunk async for chunk in stream]


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def finish_reasons(chunks: list[Any]) -> list[str]:
    return [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]


def tool_calls_of(chunks: list[Any]) -> list[Any]:
    return [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]


async def raw_sse(proxy_url: str, model: str) -> str:
    """The proxy's response body, as bytes on the wire."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with httpx.AsyncClient() as client:
        response = await client.post(
            proxy_url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {API_KEY}"}
        )
    return response.text


def metric_samples(app: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = app.state.metrics.exposition()
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


# --------------------------------------------------------------------------- redaction


async def test_redacts_a_streamed_email_and_forwards_the_clients_authorization(stack: Stack) -> None:
    stack.upstream.scripts["m"] = [
        content("Mail ann"),
        content("@exam"),
        content("ple.com"),
        content(" today."),
        finish("stop"),
    ]
    chunks = await chat(stack.client, "m")
    assert text_of(chunks) == "Mail <EMAIL_ADDRESS> today."
    assert "ann" not in text_of(chunks)
    assert finish_reasons(chunks) == ["stop"]
    (seen,) = stack.upstream.chat_requests()
    assert seen.headers["authorization"] == f"Bearer {API_KEY}"
    assert seen.body["messages"] == [{"role": "user", "content": "hi"}]
    samples = metric_samples(stack.app)
    assert samples[("guardstream_findings_total", (("label", "EMAIL_ADDRESS"),))] == 1
    assert samples[("guardstream_streams_total", (("mode", "stream"), ("outcome", "completed")))] == 1
    assert samples[("guardstream_upstream_ttft_seconds_count", ())] == 1
    assert samples[("guardstream_released_ttft_seconds_count", ())] == 1
    assert samples[("guardstream_hold_seconds_count", ())] == len("Mail ann@example.com today.")


async def test_non_streaming_completion_is_guarded_and_models_pass_through(stack: Stack) -> None:
    stack.upstream.scripts["m"] = [content("Call 415-555-0134 now"), finish("stop")]
    completion = await stack.client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert completion.choices[0].message.content == "Call <PHONE_NUMBER> now"
    models = await stack.client.models.list()
    assert [m.id for m in models.data] == ["echo"]
    assert all(s.headers["authorization"] == f"Bearer {API_KEY}" for s in stack.upstream.seen)


async def test_upstream_rejection_reaches_the_client_unchanged(stack: Stack) -> None:
    client = openai.AsyncOpenAI(base_url=stack.proxy_url + "/v1", api_key="wrong", max_retries=0)
    try:
        with pytest.raises(openai.AuthenticationError):
            await chat(client, "echo")
    finally:
        await client.close()


# --------------------------------------------------------------------------- blocks and tool calls


async def test_block_ends_with_content_filter_never_stop() -> None:
    async with _stack(BLOCKING) as s:
        s.upstream.scripts["m"] = [content("Sure. Your SSN is 123-"), content("45-6789, keep it."), finish("stop")]
        chunks = await chat(s.client, "m")
        assert text_of(chunks) == "Sure. Your SSN is [blocked by policy]"
        assert finish_reasons(chunks) == ["content_filter"]
        assert chunks[-1].guardstream["type"] == "blocked"
        assert chunks[-1].guardstream["labels"] == ["US_SSN"]
        wire = await raw_sse(s.proxy_url, "m")
        assert '"finish_reason":"content_filter"' in wire
        assert '"finish_reason":"stop"' not in wire
        assert wire.endswith("data: [DONE]\n\n")


async def test_tool_call_after_a_blocked_sentence_never_reaches_the_client() -> None:
    async with _stack(BLOCKING) as s:
        s.upstream.scripts["m"] = [
            content("Done. Your SSN is 123-45-6789. "),
            tool_call(0, "call_1", "delete_account", '{"user": '),
            tool_call(0, arguments='"ann"}'),
            finish("tool_calls"),
        ]
        chunks = await chat(s.client, "m")
        assert tool_calls_of(chunks) == []
        assert finish_reasons(chunks) == ["content_filter"]
        # Here the tool call arrives while the sentence is still held (the SSN is not yet
        # complete): it is read, held, then dropped and reported, never emitted.
        s.upstream.scripts["m2"] = [
            content("Done. Your SSN is 123-45-67"),
            tool_call(0, "call_1", "delete_account", '{"user": "ann"}'),
            content("89. "),
            finish("tool_calls"),
        ]
        chunks = await chat(s.client, "m2")
        assert tool_calls_of(chunks) == []
        assert finish_reasons(chunks) == ["content_filter"]
        assert text_of(chunks) == "Done. Your SSN is [blocked by policy]"
        assert chunks[-1].guardstream["dropped_tool_calls"] == [{"index": 0, "id": "call_1", "name": "delete_account"}]
        samples = metric_samples(s.app)
        assert samples[("guardstream_dropped_tool_calls_total", ())] == 1


async def test_tool_call_waits_for_the_text_before_it_then_arrives_whole(stack: Stack) -> None:
    stack.upstream.scripts["m"] = [
        content("Writing to ann"),  # "ann" is held: it could become an email address
        tool_call(0, "call_1", "lookup", '{"q": '),
        content("@example.com now."),
        tool_call(0, arguments='"x"}'),
        finish("tool_calls"),
    ]
    chunks = await chat(stack.client, "m")
    assert text_of(chunks) == "Writing to <EMAIL_ADDRESS> now."
    kinds = ["tool" if c.choices and c.choices[0].delta.tool_calls else "text" for c in chunks if c.choices]
    first_tool = kinds.index("tool")
    texts_before = "".join(c.choices[0].delta.content or "" for c in chunks[:first_tool] if c.choices)
    assert "<EMAIL_ADDRESS>" in texts_before  # held until the text before it was released
    calls = tool_calls_of(chunks)
    assert calls[0].function.name == "lookup"
    assert "".join(c.function.arguments or "" for c in calls) == '{"q": "x"}'
    assert finish_reasons(chunks) == ["tool_calls"]


# --------------------------------------------------------------------------- failures


async def test_upstream_death_mid_stream_is_an_error_the_client_sees(stack: Stack) -> None:
    stack.upstream.scripts["m"] = [content("Hello "), content("world, "), DIE]
    received: list[Any] = []
    stream = await stack.client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            received.append(chunk)
    assert "upstream" in str(info.value.message)
    assert text_of(received) == "Hello world, "
    assert finish_reasons(received) == []
    samples = metric_samples(stack.app)
    assert samples[("guardstream_streams_total", (("mode", "stream"), ("outcome", "upstream_error")))] == 1


async def test_an_upstream_that_ends_without_done_is_not_a_success(stack: Stack) -> None:
    stack.upstream.scripts["m"] = [content("Hello."), finish("stop"), NO_DONE]
    wire = await raw_sse(stack.proxy_url, "m")
    assert "event: error" in wire and "data: [DONE]" not in wire and '"finish_reason":"stop"' not in wire
    with pytest.raises(openai.APIError):
        await chat(stack.client, "m")


async def test_client_disconnect_closes_the_upstream_request(stack: Stack) -> None:
    stack.upstream.scripts["m"] = [content("Counting: "), FOREVER]
    stream = await stack.client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], stream=True
    )
    got = 0
    async for chunk in stream:
        got += bool(chunk.choices and chunk.choices[0].delta.content)
        if got == 3:
            break
    await stream.close()
    (seen,) = stack.upstream.chat_requests()
    # Not a timing assertion: the fake streams forever, so only a closed request ends this.
    await asyncio.wait_for(seen.disconnected.wait(), timeout=10)
    assert not seen.completed
    for _ in range(200):
        samples = metric_samples(stack.app)
        if samples.get(("guardstream_streams_total", (("mode", "stream"), ("outcome", "cancelled")))):
            break
        await asyncio.sleep(0.01)
    assert samples[("guardstream_streams_total", (("mode", "stream"), ("outcome", "cancelled")))] == 1
    assert samples[("guardstream_active_streams", ())] == 0


# --------------------------------------------------------------------------- retraction


async def test_retraction_reaches_the_client_with_offsets_into_its_content() -> None:
    async with _stack(RETRACTING) as s:
        s.upstream.scripts["m"] = [
            *(content(c) for c in ["Card ", "4111 ", "1111 ", "1111 ", "1111", " thanks"]),
            finish("stop"),
        ]
        chunks = await chat(s.client, "m")
        retractions = [c.guardstream for c in chunks if not c.choices and getattr(c, "guardstream", None)]
        assert len(retractions) == 1
        (r,) = retractions
        assert r["type"] == "retraction" and r["label"] == "CREDIT_CARD"
        received = text_of(chunks)
        a, b = r["content_range"]
        assert b > a and received[a:b] == "Card 4111 1111 1111 1111 thanks"[r["leaked"][0] : r["leaked"][1]]
        assert received.endswith("<CREDIT_CARD> thanks")
        wire = await raw_sse(s.proxy_url, "m")
        assert "event: guardstream.retraction\ndata: " in wire
        samples = metric_samples(s.app)
        assert samples[("guardstream_retractions_total", (("label", "CREDIT_CARD"),))] == 2
        assert samples[("guardstream_budget_forced_releases_total", (("action", "release"), ("reason", "chars")))] >= 2


# --------------------------------------------------------------------------- concurrency


async def test_200_concurrent_streams_each_get_exactly_their_own_text(stack: Stack) -> None:
    def prompt(i: int) -> str:
        return f"Stream {i:03d}: write to user{i}@example.com about order {i * 7} and item {i}."

    async def one(i: int) -> str:
        return text_of(await chat(stack.client, "echo", prompt(i)))

    results = await asyncio.gather(*(one(i) for i in range(200)))
    for i, got in enumerate(results):
        assert got == f"Stream {i:03d}: write to <EMAIL_ADDRESS> about order {i * 7} and item {i}."
    samples = metric_samples(stack.app)
    assert samples[("guardstream_streams_total", (("mode", "stream"), ("outcome", "completed")))] == 200
    assert samples[("guardstream_active_streams", ())] == 0


# --------------------------------------------------------------------------- metrics, tracing, adapter


async def test_metrics_endpoint_speaks_prometheus_with_long_duration_buckets(stack: Stack) -> None:
    await chat(stack.client, "echo", "hello there")
    async with httpx.AsyncClient() as client:
        response = await client.get(stack.proxy_url + "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    for name in (
        "guardstream_upstream_ttft_seconds",
        "guardstream_released_ttft_seconds",
        "guardstream_hold_seconds",
        "guardstream_stream_duration_seconds",
        "guardstream_streams",
        "guardstream_findings",
        "guardstream_budget_forced_releases",
    ):
        assert name in families, name
    bounds = {
        float(s.labels["le"]) for s in families["guardstream_stream_duration_seconds"].samples if "le" in s.labels
    }
    assert max(b for b in bounds if b != float("inf")) >= 300


async def test_otel_spans_record_each_streams_outcome() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with _stack(BLOCKING, tracer=provider.get_tracer("test")) as s:
        s.upstream.scripts["m"] = [content("SSN 123-45-6789 here"), finish("stop")]
        await chat(s.client, "m")
        await chat(s.client, "echo", "fine")
    spans = exporter.get_finished_spans()
    assert [span.attributes["guardstream.outcome"] for span in spans] == ["blocked", "completed"]
    assert spans[0].attributes["guardstream.labels"] == ("US_SSN",)


async def test_adapter_wraps_the_official_clients_stream(stack: Stack) -> None:
    # The adapter in application code: the official client talks to the model server
    # directly (no proxy) and guard_chat_stream guards its stream.
    stack.upstream.scripts["m"] = [content("Key AKIA"), content("IOSFODNN7EXAMPLE ok"), finish("stop")]
    direct = openai.AsyncOpenAI(base_url=stack.upstream_url + "/v1", api_key=API_KEY, max_retries=0)
    try:
        raw = await direct.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True)
        async with guard_chat_stream(PATTERNS, raw) as chunks:
            out = [c async for c in chunks]
    finally:
        await direct.close()
    assert all(isinstance(c, ChatCompletionChunk) for c in out)
    assert text_of(out) == "Key <AWS_ACCESS_KEY> ok"
    assert chunks.result is not None and chunks.result.finish_reason == "stop"
