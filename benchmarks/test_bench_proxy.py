"""The proxy's cost: added latency per chunk, and throughput with many concurrent streams.

Three parties on loopback: a fake model server (this process, uvicorn), ``guardstream serve``
(a subprocess started exactly as a user would, so it has a core of its own), and a client
(this process, raw ``httpx`` SSE reading — lighter than the SDK, so the client is not what
is measured). Each case runs twice in the same run: the client talking to the model server
directly, and through the proxy.

* **paced**: ``STREAMS`` streams of ``CHUNKS`` BPE-like prose chunks, one every
  ``INTERVAL_MS``. Latency per character = when the client receives it minus when the model
  server sent the chunk holding it (one clock: ``time.monotonic`` is system-wide). Added
  latency = through the proxy minus direct, per character.
* **throughput**: ``CONCURRENCY`` unpaced streams of ``TP_CHUNKS`` chunks each at once;
  chunks/s the model server sent, measured end to end at the client.

With ``--benchmark-disable`` (the default) each case runs small, as a smoke test.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.conftest import Corpus, bench_enabled, weighted_quantile
from tests.fake_upstream import serving

KEY = "sk-bench"


@dataclass(frozen=True)
class Sizes:
    streams: int
    chunks: int
    interval_ms: float
    concurrency: tuple[int, ...]
    tp_chunks: int


FULL = Sizes(streams=16, chunks=100, interval_ms=20.0, concurrency=(64, 200), tp_chunks=200)
SMOKE = Sizes(streams=2, chunks=15, interval_ms=2.0, concurrency=(8,), tp_chunks=20)


# --------------------------------------------------------------------------- the model server


@dataclass
class BenchUpstream:
    """Streams ``streams[model]`` (model = stream id), paced or not; records send times."""

    streams: dict[str, Sequence[str]] = field(default_factory=dict)
    interval_s: float = 0.0
    sent: dict[str, list[float]] = field(default_factory=dict)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = "startup" if message["type"] == "lifespan.startup" else "shutdown"
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        model = json.loads(body)["model"]
        chunks, times = self.streams[model], self.sent.setdefault(model, [])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        start = time.monotonic()
        for i, text in enumerate(chunks):
            if self.interval_s:
                await asyncio.sleep(max(0.0, start + i * self.interval_s - time.monotonic()))
            data = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": model}
            data["choices"] = [{"index": 0, "delta": {"content": text}, "finish_reason": None}]
            times.append(time.monotonic())
            await send(
                {
                    "type": "http.response.body",
                    "body": b"data: " + json.dumps(data).encode() + b"\n\n",
                    "more_body": True,
                }
            )
        data["choices"] = [{"index": 0, "delta": {}, "finish_reason": "stop"}]
        tail = b"data: " + json.dumps(data).encode() + b"\n\ndata: [DONE]\n\n"
        await send({"type": "http.response.body", "body": tail, "more_body": False})


async def read_stream(client: httpx.AsyncClient, base: str, model: str) -> tuple[str, list[tuple[int, float]]]:
    """Content and ``(content end offset, receive time)`` per content delta, via raw SSE."""
    body = {"model": model, "messages": [{"role": "user", "content": "go"}], "stream": True}
    received, receipts = [], []
    n = 0
    async with client.stream(
        "POST", base + "/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
    ) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            assert "error" not in chunk, chunk
            for choice in chunk.get("choices", ()):
                text = choice["delta"].get("content")
                if text:
                    n += len(text)
                    received.append(text)
                    receipts.append((n, time.monotonic()))
    return "".join(received), receipts


def char_latencies(chunks: Sequence[str], sent: Sequence[float], receipts: Sequence[tuple[int, float]]) -> list[float]:
    """Receive minus send time (ms) for every character (unchanged text only)."""
    sent_at = [t for chunk, t in zip(chunks, sent, strict=True) for _ in chunk]
    out, start = [], 0
    for end, t in receipts:
        out.extend((t - sent_at[i]) * 1000 for i in range(start, end))
        start = end
    return out


# --------------------------------------------------------------------------- the proxy process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proxy:
    url: str
    process: subprocess.Popen[bytes]


def _policy_arg(name: str, folder: Path) -> str:
    from guardstream.detectors import BUILTIN_LABELS

    if name == "patterns":
        return "patterns"
    data: dict[str, Any] = {"version": 1, "detectors": []}
    if name == "no_email":
        labels = [label for label in BUILTIN_LABELS if label != "EMAIL_ADDRESS"]
        data["detectors"] = [{"type": "patterns", "labels": labels}]
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    return str(path)


@pytest.fixture(scope="module")
def upstream_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def proxies(upstream_port: int) -> Iterator[dict[str, Proxy]]:
    started: dict[str, Proxy] = {}
    with tempfile.TemporaryDirectory() as folder:
        try:
            for name in ("patterns", "no_detectors"):
                port = free_port()
                cmd = [sys.executable, "-m", "guardstream.cli", "serve", "--policy", _policy_arg(name, Path(folder))]
                cmd += ["--upstream", f"http://127.0.0.1:{upstream_port}/v1", "--port", str(port)]
                process = subprocess.Popen(
                    cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy()
                )
                started[name] = Proxy(f"http://127.0.0.1:{port}/v1", process)
            for proxy in started.values():
                _wait_ready(proxy)
            yield started
        finally:
            for proxy in started.values():
                proxy.process.terminate()
            for proxy in started.values():
                try:
                    proxy.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proxy.process.kill()
                    proxy.process.wait()
                if proxy.process.stderr is not None:
                    proxy.process.stderr.close()


def _wait_ready(proxy: Proxy) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proxy.process.poll() is not None:
            err = proxy.process.stderr.read().decode() if proxy.process.stderr else ""
            raise RuntimeError(f"guardstream serve exited: {err}")
        try:
            if httpx.get(proxy.url.removesuffix("/v1") + "/metrics", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("guardstream serve did not start within 30 s")


# --------------------------------------------------------------------------- cases


@dataclass
class PacedResult:
    direct_ms: list[float]
    proxied_ms: list[float]
    texts_ok: int
    streams: int


async def paced_case(port: int, proxy: Proxy, corpus: Corpus, sizes: Sizes) -> PacedResult:
    streams = {f"s{i}": list(corpus.streams[i % len(corpus.streams)][: sizes.chunks]) for i in range(sizes.streams)}
    result = PacedResult([], [], 0, sizes.streams)
    for via in ("direct", "proxy"):
        upstream = BenchUpstream(dict(streams), sizes.interval_ms / 1000)
        async with serving(upstream, port) as _, httpx.AsyncClient(timeout=60) as client:
            base = f"http://127.0.0.1:{port}/v1" if via == "direct" else proxy.url
            outs = await asyncio.gather(*(read_stream(client, base, model) for model in streams))
        for model, (text, receipts) in zip(streams, outs, strict=True):
            chunks = streams[model]
            if text != "".join(chunks):
                continue  # a redaction changed the text: offsets no longer line up
            lat = char_latencies(chunks, upstream.sent[model], receipts)
            (result.direct_ms if via == "direct" else result.proxied_ms).extend(lat)
            result.texts_ok += via == "proxy"
    return result


async def throughput_case(port: int, proxy: Proxy | None, corpus: Corpus, concurrency: int, n: int) -> float:
    """Chunks/s for ``concurrency`` unpaced streams of ``n`` chunks each, at the client."""
    flat = [c for s in corpus.streams for c in s]
    streams = {f"t{i}": [flat[(i * 37 + k) % len(flat)] for k in range(n)] for i in range(concurrency)}
    upstream = BenchUpstream(streams, 0.0)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=concurrency)
    async with serving(upstream, port) as _, httpx.AsyncClient(timeout=120, limits=limits) as client:
        base = f"http://127.0.0.1:{port}/v1" if proxy is None else proxy.url
        t0 = time.monotonic()
        outs = await asyncio.gather(*(read_stream(client, base, model) for model in streams))
        elapsed = time.monotonic() - t0
    for model, (text, _) in zip(streams, outs, strict=True):
        assert text, model  # every stream delivered
    return concurrency * n / elapsed


# --------------------------------------------------------------------------- tests

RESULTS: dict[str, Any] = {}


def _q(values: list[float], q: float) -> float:
    return weighted_quantile(((v, 1) for v in values), q)


@pytest.mark.benchmark(group="proxy: paced added latency (wall time; see the printed lines)")
@pytest.mark.parametrize("policy", ["patterns", "no_detectors"])
def test_proxy_added_latency(
    benchmark: Any,
    pytestconfig: pytest.Config,
    proxies: dict[str, Proxy],
    upstream_port: int,
    corpora: dict[str, Corpus],
    policy: str,
) -> None:
    sizes = FULL if bench_enabled(pytestconfig) else SMOKE
    result: PacedResult = benchmark.pedantic(
        lambda: asyncio.run(paced_case(upstream_port, proxies[policy], corpora["prose"], sizes)), rounds=1, iterations=1
    )
    # Not timing assertions: both paths delivered every character.
    assert result.texts_ok >= 1 and result.direct_ms and result.proxied_ms
    line = (
        f"proxy paced {policy}: {result.texts_ok}/{result.streams} streams x {sizes.chunks} chunks"
        f" @ {sizes.interval_ms:.0f} ms; "
        f"per-char latency direct med {_q(result.direct_ms, 0.5):.2f} / p99 {_q(result.direct_ms, 0.99):.2f} ms; "
        f"via proxy med {_q(result.proxied_ms, 0.5):.2f} / p99 {_q(result.proxied_ms, 0.99):.2f} ms"
    )
    benchmark.extra_info.update(
        direct_median_ms=_q(result.direct_ms, 0.5),
        proxied_median_ms=_q(result.proxied_ms, 0.5),
        proxied_p99_ms=_q(result.proxied_ms, 0.99),
    )
    RESULTS[f"paced {policy}"] = line
    print("\n" + line)


@pytest.mark.benchmark(group="proxy: throughput, many concurrent streams")
@pytest.mark.parametrize("via", ["direct", "patterns", "no_detectors"])
def test_proxy_throughput(
    benchmark: Any,
    pytestconfig: pytest.Config,
    proxies: dict[str, Proxy],
    upstream_port: int,
    corpora: dict[str, Corpus],
    via: str,
) -> None:
    sizes = FULL if bench_enabled(pytestconfig) else SMOKE
    proxy = None if via == "direct" else proxies[via]
    rates = benchmark.pedantic(
        lambda: [
            asyncio.run(throughput_case(upstream_port, proxy, corpora["prose"], c, sizes.tp_chunks))
            for c in sizes.concurrency
        ],
        rounds=1,
        iterations=1,
    )
    assert all(r > 0 for r in rates)
    line = f"proxy throughput via {via}: " + ", ".join(
        f"{c} streams x {sizes.tp_chunks} chunks: {r:,.0f} chunks/s"
        for c, r in zip(sizes.concurrency, rates, strict=True)
    )
    benchmark.extra_info.update({f"chunks_per_s_{c}": r for c, r in zip(sizes.concurrency, rates, strict=True)})
    RESULTS[f"throughput {via}"] = line
    print("\n" + line)
