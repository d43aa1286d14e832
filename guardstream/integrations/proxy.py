"""An OpenAI-compatible proxy that guards ``/v1/chat/completions`` (``guardstream serve``).

::

    client --> guardstream serve --policy P --upstream http://model:8000/v1 --> model server

* ``POST /v1/chat/completions``: forwarded to ``{upstream}/chat/completions`` with the
  client's headers (``Authorization`` included; hop-by-hop headers dropped). Streaming
  responses are guarded chunk by chunk (see :mod:`guardstream.integrations.openai`) and sent
  as Server-Sent Events; JSON responses are guarded whole.
* ``GET /v1/models`` (and ``/v1/models/{id}``): passed through.
* ``GET /metrics``: Prometheus text format (:mod:`guardstream.integrations.metrics`).

The SSE wire format (offsets count Unicode code points):

* content: ``data: {chat.completion.chunk}`` as the upstream would send, re-chunked as released;
* completed: the upstream's ``finish_reason`` chunk, then ``data: [DONE]``;
* blocked: ``data: {... "delta": {"content": BLOCK MESSAGE}, "finish_reason": "content_filter"}``
  with ``"guardstream": {"type": "blocked", "reason", "labels", "dropped_tool_calls"}``, then
  ``data: [DONE]``;
* upstream failure (an error event, a dropped connection, no ``[DONE]``) or a detector failure:
  ``event: error`` / ``data: {"error": {"message", "type", "code"}}`` and no ``[DONE]`` (the
  ``openai`` client raises ``APIError``);
* retraction: ``event: guardstream.retraction`` / ``data: {chunk with "choices": [] and
  "guardstream": {"type": "retraction", "label", "detector", "finding": [s, e], "leaked": [s, e],
  "content_range": [s, e], "t_ms"}}``; ``content_range`` indexes the content this client got.

A client that disconnects cancels its stream at once, which closes the upstream request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from .._errors import ExtraRequired
from ..guard import Guard
from .metrics import ProxyMetrics, otel_tracer, span_attributes
from .openai import ChunkDict, GuardedChatStream, UpstreamError, guard_chunk_dicts

if TYPE_CHECKING:
    import httpx
    from opentelemetry.trace import Tracer
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import Receive, Scope, Send

__all__ = ["create_app", "serve"]

log = logging.getLogger("guardstream")

# Never forwarded: hop-by-hop, or describing a body this proxy re-encodes.
_DROP_HEADERS: Final = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "accept-encoding",
    }
)
_DONE: Final = b"data: [DONE]\n\n"


def _imports() -> None:
    try:
        import httpx  # noqa: F401
        import starlette  # noqa: F401
    except ImportError as exc:
        raise ExtraRequired("guardstream serve", "serve") from exc


def _dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _error_body(message: str, kind: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code or kind, "param": param}}


def sse_error(message: str, kind: str = "upstream_error") -> bytes:
    """An SSE error event the ``openai`` client turns into ``APIError``."""
    return b"event: error\ndata: " + _dumps(_error_body(message, kind)) + b"\n\n"


def sse_chunk(chunk: ChunkDict) -> bytes:
    """One chunk as an SSE event; retractions get their own event name."""
    extra = chunk.get("guardstream")
    if extra is not None and extra.get("type") == "retraction":
        return b"event: guardstream.retraction\ndata: " + _dumps(chunk) + b"\n\n"
    return b"data: " + _dumps(chunk) + b"\n\n"


async def upstream_chunks(response: httpx.Response) -> AsyncGenerator[ChunkDict, None]:
    """Parse an upstream's SSE body into chunk dicts; an error or a missing ``[DONE]`` raises."""
    data: list[str] = []
    event: str | None = None
    async for line in response.aiter_lines():
        if line:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                data.append(value)
            elif field == "event":
                event = value
            continue
        if not data:
            event = None
            continue
        text = "\n".join(data)
        data, name, event = [], event, None
        if text == "[DONE]":
            return
        try:
            parsed = json.loads(text)
        except ValueError:
            raise UpstreamError(f"the upstream sent an event that is not JSON: {text[:80]!r}") from None
        if isinstance(parsed, dict) and parsed.get("error"):
            error = parsed["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise UpstreamError(f"the upstream reported an error: {message or error}")
        if name == "error":
            raise UpstreamError(f"the upstream sent an error event: {text[:200]}")
        if not isinstance(parsed, dict):
            raise UpstreamError("the upstream sent an event that is not a JSON object")
        yield parsed
    raise UpstreamError("the upstream closed the stream before [DONE]")


class _EventStreamResponse:
    """Streams SSE bytes while watching for the client's disconnect, whatever the ASGI version.

    On disconnect the body is cancelled at once (even while the guard holds text and nothing
    is being sent), so its ``finally`` closes the upstream request.
    """

    def __init__(self, body: AsyncGenerator[bytes, None], on_close: Callable[[], Awaitable[None]]) -> None:
        self._body = body
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with asyncio.TaskGroup() as tasks:
            streaming = tasks.create_task(self._stream(send))
            watching = tasks.create_task(self._watch(receive))
            await asyncio.wait({streaming, watching}, return_when=asyncio.FIRST_COMPLETED)
            streaming.cancel()
            watching.cancel()

    async def _stream(self, send: Send) -> None:
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            async for data in self._body:
                await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # the client went away while we were sending
            pass
        finally:
            await self._body.aclose()
            # Also when the body never started (the client left at once): close the upstream.
            await self._on_close()

    @staticmethod
    async def _watch(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass


class _Proxy:
    """The request handlers; per-request state stays in the handlers' frames."""

    def __init__(
        self,
        guard: Guard,
        upstream: str,
        metrics: ProxyMetrics,
        tracer: Tracer | None,
        client: httpx.AsyncClient | None,
        max_connections: int | None,
    ) -> None:
        if not upstream.startswith(("http://", "https://")):
            raise ValueError(f"--upstream must be an http(s) URL such as http://127.0.0.1:8000/v1, not {upstream!r}")
        self.guard = guard
        self.upstream = upstream.rstrip("/")
        self.metrics = metrics
        self.tracer = tracer
        self._own_client = client is None
        self._client = client
        self._max_connections = max_connections

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(connect=10.0, read=600.0, write=60.0, pool=60.0),
                limits=httpx.Limits(max_connections=self._max_connections, max_keepalive_connections=100),
            )
        return self._client

    async def aclose(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    @staticmethod
    def _headers(headers: Mapping[str, str]) -> dict[str, str]:
        return {k: v for k, v in headers.items() if k.lower() not in _DROP_HEADERS}

    # ------------------------------------------------------------------ routes

    async def models(self, request: Request) -> Response:
        import httpx
        from starlette.responses import JSONResponse, Response

        url = self.upstream + request.url.path.removeprefix("/v1")
        try:
            upstream = await self.client.get(url, headers=self._headers(request.headers), params=request.query_params)
        except httpx.HTTPError as exc:
            return JSONResponse(_error_body(f"upstream unreachable: {exc!r}", "upstream_error"), status_code=502)
        return Response(
            upstream.content,
            status_code=upstream.status_code,
            media_type=upstream.headers.get("content-type", "application/json"),
        )

    async def metrics_endpoint(self, request: Request) -> Response:
        from starlette.responses import Response

        body, content_type = self.metrics.exposition()
        return Response(body, media_type=content_type)

    async def chat_completions(self, request: Request) -> Any:
        import httpx
        from starlette.responses import JSONResponse

        t_start = asyncio.get_running_loop().time()
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse(_error_body("the request body is not JSON", "invalid_request_error"), 400)
        if not isinstance(body, dict):
            return JSONResponse(_error_body("the request body must be a JSON object", "invalid_request_error"), 400)
        streaming = body.get("stream") is True
        if streaming and body.get("n") not in (None, 1):
            message = "guardstream guards one choice per stream: n must be 1 when stream is true"
            return JSONResponse(_error_body(message, "invalid_request_error", param="n"), 400)
        upstream_request = self.client.build_request(
            "POST", self.upstream + "/chat/completions", json=body, headers=self._headers(request.headers)
        )
        try:
            upstream = await self.client.send(upstream_request, stream=True)
        except httpx.HTTPError as exc:
            log.warning("upstream unreachable: %r", exc)
            return JSONResponse(_error_body(f"upstream unreachable: {exc!r}", "upstream_error"), 502)
        if upstream.status_code != 200:
            content = await upstream.aread()
            await upstream.aclose()
            return _passthrough(content, upstream)
        if not streaming:
            try:
                content = await upstream.aread()
            except httpx.HTTPError as exc:
                return JSONResponse(_error_body(f"upstream failed: {exc!r}", "upstream_error"), 502)
            finally:
                await upstream.aclose()
            return await self._guard_json(content, t_start)
        if not upstream.headers.get("content-type", "").startswith("text/event-stream"):
            await upstream.aclose()
            message = "the upstream answered a streaming request without text/event-stream"
            return JSONResponse(_error_body(message, "upstream_error"), 502)
        return _EventStreamResponse(self._events(upstream, t_start), upstream.aclose)

    async def _events(self, upstream: httpx.Response, t_start: float) -> AsyncGenerator[bytes, None]:
        loop = asyncio.get_running_loop()
        guarded: GuardedChatStream[ChunkDict] = guard_chunk_dicts(self.guard, upstream_chunks(upstream))
        span = self.tracer.start_span("guardstream.chat.completions") if self.tracer is not None else None
        self.metrics.active.inc()
        try:
            async with guarded:
                async for chunk in guarded:
                    yield sse_chunk(chunk)
        except Exception as exc:
            yield sse_error(*_failure(guarded, exc))
        else:
            yield _DONE
        finally:
            await upstream.aclose()
            self.metrics.active.dec()
            self.metrics.observe_stream(
                guarded.result,
                guarded.stats.holds,
                t_start=t_start,
                t_end=loop.time(),
                t_first_content=guarded.t_first_content,
                t_first_release=guarded.t_first_release,
            )
            if span is not None:
                span.set_attributes(span_attributes(guarded.result))
                span.end()

    async def _guard_json(self, content: bytes, t_start: float) -> Response:
        from starlette.responses import JSONResponse

        try:
            data = json.loads(content)
        except ValueError:
            return JSONResponse(_error_body("the upstream answered with invalid JSON", "upstream_error"), 502)
        worst, labels, dropped, per_choice = "completed", [], 0, []
        for choice in data.get("choices") or ():
            message = choice.get("message") or {}
            text = message.get("content")
            if not isinstance(text, str) or not text:
                per_choice.append({"index": choice.get("index", 0), "outcome": "completed", "labels": []})
                continue
            outcome = await self.guard.run([text])
            choice_labels = sorted({f.label for f in outcome.findings})
            labels += [f.label for f in outcome.findings]
            choice["logprobs"] = None
            if outcome.kind == "completed":
                message["content"] = outcome.released
            elif outcome.kind == "blocked":
                message["content"] = outcome.released + (outcome.message or "")
                for key in ("tool_calls", "function_call"):
                    if message.pop(key, None):
                        dropped += 1
                choice["finish_reason"] = "content_filter"
                worst = "blocked"
            else:
                self.metrics.observe_json(outcome.kind, labels, 0, _since(t_start))
                error = _error_body(f"guardstream: {outcome.error or outcome.kind}", f"guardstream_{outcome.kind}")
                return JSONResponse(error, 500)
            per_choice.append({"index": choice.get("index", 0), "outcome": outcome.kind, "labels": choice_labels})
        data["guardstream"] = {"choices": per_choice}
        self.metrics.observe_json(worst, labels, dropped, _since(t_start))
        return JSONResponse(data)


def _failure(guarded: GuardedChatStream[ChunkDict], exc: Exception) -> tuple[str, str]:
    """The message and error type of the SSE error event that ends a failed stream."""
    outcome = guarded.outcome
    shown = len(outcome.released) if outcome is not None else 0
    detail = f"{type(exc).__name__}: {exc}"
    log.warning("stream failed after %d released characters: %s", shown, detail)
    if outcome is not None and outcome.kind == "detector_error":
        return f"guardstream: a detector failed; stopped after {shown} released characters: {detail}", (
            "guardstream_detector_error"
        )
    return f"guardstream: the upstream failed mid-stream after {shown} released characters: {detail}", (
        "upstream_error"
    )


def _since(t_start: float) -> float:
    return asyncio.get_running_loop().time() - t_start


def _passthrough(content: bytes, upstream: httpx.Response) -> Response:
    from starlette.responses import Response

    return Response(
        content,
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type", "application/json"),
    )


def create_app(
    guard: Guard,
    upstream: str,
    *,
    client: httpx.AsyncClient | None = None,
    metrics: ProxyMetrics | None = None,
    otel: bool = False,
    tracer: Tracer | None = None,
    max_upstream_connections: int | None = 1000,
) -> Starlette:
    """The proxy as an ASGI app (Starlette); serve it with any ASGI server.

    Args:
        guard: the shared, immutable guard every stream goes through.
        upstream: the model server's OpenAI base URL, e.g. ``http://127.0.0.1:8000/v1``.
        client: an ``httpx.AsyncClient`` to reach it (default: one owned by the app).
        metrics: where to count (default: a fresh :class:`ProxyMetrics`).
        otel: emit an OpenTelemetry span per streamed response (needs ``guardstream[otel]``),
            from the global tracer provider's ``guardstream`` tracer.
        tracer: the OpenTelemetry tracer to use instead (implies spans).

    Raises:
        ExtraRequired: starlette/httpx/prometheus-client (``serve``) or OpenTelemetry (``otel``)
            are missing.
    """
    _imports()
    from starlette.applications import Starlette
    from starlette.routing import Route

    proxy = _Proxy(
        guard,
        upstream,
        metrics or ProxyMetrics(),
        tracer if tracer is not None else (otel_tracer() if otel else None),
        client,
        max_upstream_connections,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Models load before the first request, not during it (off the event loop).
        await asyncio.to_thread(guard.warmup)
        try:
            yield
        finally:
            await proxy.aclose()

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", proxy.chat_completions, methods=["POST"]),
            Route("/v1/models", proxy.models, methods=["GET"]),
            Route("/v1/models/{model:path}", proxy.models, methods=["GET"]),
            Route("/metrics", proxy.metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.metrics = proxy.metrics
    return app


def serve(guard: Guard, upstream: str, *, host: str = "127.0.0.1", port: int = 8000, otel: bool = False) -> None:
    """Run the proxy with uvicorn until interrupted."""
    try:
        import uvicorn
    except ImportError as exc:
        raise ExtraRequired("guardstream serve", "serve") from exc
    app = create_app(guard, upstream, otel=otel)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
