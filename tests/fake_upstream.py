"""A scripted OpenAI-compatible model server and a loopback runner, for the proxy tests.

The fake is a plain ASGI app, so every request it sees is recorded: the headers, the body,
whether the client went away (``disconnected``) and whether its stream ran to the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn

API_KEY = "sk-test-upstream"

Item = dict[str, Any] | str


def content(text: str) -> dict[str, Any]:
    return {"content": text}


def tool_call(index: int, call_id: str | None = None, name: str | None = None, arguments: str = "") -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        call.update(id=call_id, type="function")
        call["function"]["name"] = name
    return {"tool_calls": [call]}


def finish(reason: str = "stop") -> dict[str, Any]:
    return {"finish_reason": reason}


DIE = "die"  # raise mid-body: the connection drops without the end of the chunked body
FOREVER = "forever"  # keep sending content until the client goes away
NO_DONE = "no-done"  # end the body cleanly without the [DONE] line


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    completed: bool = False


class FakeUpstream:
    """Answers ``/v1/models`` and ``/v1/chat/completions`` from scripts keyed by model name.

    Model ``echo`` streams the last user message back in 3-character chunks.
    """

    def __init__(self) -> None:
        self.scripts: dict[str, list[Item]] = {}
        self.seen: list[Seen] = []

    def chat_requests(self) -> list[Seen]:
        return [s for s in self.seen if s.path.endswith("/chat/completions")]

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen = Seen(scope["path"], headers, json.loads(raw) if raw else {})
        self.seen.append(seen)
        if headers.get("authorization") != f"Bearer {API_KEY}":
            error = {"error": {"message": "bad key", "type": "invalid_request_error", "code": "invalid_api_key"}}
            await _json(send, error, 401)
        elif scope["path"] == "/v1/models":
            await _json(
                send, {"object": "list", "data": [{"id": "echo", "object": "model", "created": 0, "owned_by": "fake"}]}
            )
        elif scope["path"] == "/v1/chat/completions":
            items = self._items(seen.body)
            if seen.body.get("stream"):
                await self._stream(seen, items, receive, send)
            else:
                await _json(send, _completion(seen.body.get("model", ""), items))
        else:
            await _json(send, {"error": {"message": "not found"}}, 404)

    def _items(self, body: dict[str, Any]) -> list[Item]:
        model = body.get("model", "")
        if model in self.scripts:
            return self.scripts[model]
        text = body["messages"][-1]["content"]
        return [content(text[i : i + 3]) for i in range(0, len(text), 3)] + [finish("stop")]

    async def _stream(
        self, seen: Seen, items: list[Item], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        model = seen.body.get("model", "")

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            seen.disconnected.set()

        watcher = asyncio.ensure_future(watch())
        try:
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
            )
            await _event(send, _chunk(model, {"role": "assistant", "content": ""}))
            done = True
            for item in items:
                await asyncio.sleep(0)  # let concurrent streams interleave
                if item == DIE:
                    raise RuntimeError("the fake upstream died mid-stream")
                if item == NO_DONE:
                    done = False
                elif item == FOREVER:
                    while not seen.disconnected.is_set():
                        await _event(send, _chunk(model, content("tick ")))
                        await asyncio.sleep(0.005)
                    return
                elif isinstance(item, dict) and "finish_reason" in item:
                    await _event(send, _chunk(model, {}, item["finish_reason"]))
                elif isinstance(item, dict):
                    await _event(send, _chunk(model, item))
            if done:
                await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            seen.completed = True
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


def _chunk(model: str, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def _completion(model: str, items: list[Item]) -> dict[str, Any]:
    text = "".join(i.get("content", "") for i in items if isinstance(i, dict))
    calls = [c for i in items if isinstance(i, dict) for c in i.get("tool_calls", [])]
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": c["function"]} for c in calls if c.get("id")
        ]
    reason = next((i["finish_reason"] for i in items if isinstance(i, dict) and "finish_reason" in i), "stop")
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reason}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


async def _event(send: Callable[..., Any], data: dict[str, Any]) -> None:
    await send({"type": "http.response.body", "body": f"data: {json.dumps(data)}\n\n".encode(), "more_body": True})


async def _json(send: Callable[..., Any], data: dict[str, Any], status: int = 200) -> None:
    body = json.dumps(data).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def serving(app: Any, port: int = 0) -> AsyncIterator[str]:
    """Serve ``app`` on a loopback port (default: a free one) in this event loop; yields its base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="critical", access_log=False, timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the server stopped before it started")
            await asyncio.sleep(0.005)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
