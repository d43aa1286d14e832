"""Prometheus metrics for the proxy, and optional OpenTelemetry spans.

Every metric lives in the :class:`ProxyMetrics` instance's own registry (never the global
one), so several apps in one process do not collide. Times are in seconds:

=============================================  ===================================================
``guardstream_upstream_ttft_seconds``          request received -> first content from the upstream
``guardstream_released_ttft_seconds``          request received -> first content sent to the client
``guardstream_hold_seconds``                   per released character: release minus arrival
``guardstream_stream_duration_seconds``        request received -> stream ended (buckets to 600 s)
``guardstream_streams_total{outcome,mode}``    streams by outcome kind, ``mode`` stream|json
``guardstream_findings_total{label}``          findings acted on
``guardstream_budget_forced_releases_total``   ``{reason,action}``: text the budget forced out
``guardstream_retractions_total{label}``       budget-forced text that turned out to be a finding
``guardstream_dropped_tool_calls_total``       held tool calls never emitted
``guardstream_active_streams``                 streams in flight
=============================================  ===================================================

OpenTelemetry is imported only when asked for (:func:`otel_tracer`) and never required.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from .._errors import ExtraRequired

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer
    from prometheus_client.metrics_core import Metric

    from .openai import ChatStreamResult

__all__ = ["DURATION_BUCKETS", "HOLD_BUCKETS", "TTFT_BUCKETS", "ProxyMetrics", "otel_tracer"]

TTFT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
HOLD_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DURATION_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class _WeightedHistogram:
    """A histogram that takes ``(value, count)`` pairs: one observation per character held.

    prometheus_client's ``Histogram.observe`` takes one value at a time; a stream's holds
    come as (hold, characters) runs, so this collector counts a run in one step.
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds = tuple(buckets)
        self._counts = [0] * (len(self._bounds) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, pairs: Iterable[tuple[float, int]]) -> None:
        with self._lock:
            for value, count in pairs:
                self._counts[bisect.bisect_left(self._bounds, value)] += count
                self._sum += value * count

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import HistogramMetricFamily

        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, count in zip((*map(str, self._bounds), "+Inf"), counts, strict=True):
            cumulative += count
            buckets.append((bound, float(cumulative)))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=total)

    def describe(self) -> Iterator[Metric]:
        return self.collect()


class ProxyMetrics:
    """The proxy's metrics, in a registry of their own.

    Raises:
        ExtraRequired: ``prometheus-client`` is not installed (``guardstream[serve]``).
    """

    def __init__(self) -> None:
        try:
            import prometheus_client as prom
        except ImportError as exc:
            raise ExtraRequired("guardstream's Prometheus metrics", "serve") from exc
        self._prom = prom
        self.registry = registry = prom.CollectorRegistry()
        self.upstream_ttft = prom.Histogram(
            "guardstream_upstream_ttft_seconds",
            "Time from receiving a request to the first content from the upstream.",
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.released_ttft = prom.Histogram(
            "guardstream_released_ttft_seconds",
            "Time from receiving a request to the first content released to the client.",
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.hold = _WeightedHistogram(
            "guardstream_hold_seconds",
            "How long each released character was held (release minus arrival), one observation per character.",
            HOLD_BUCKETS,
        )
        registry.register(self.hold)
        self.duration = prom.Histogram(
            "guardstream_stream_duration_seconds",
            "Time from receiving a request to the end of its response.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.streams = prom.Counter(
            "guardstream_streams", "Responses by outcome kind and mode.", ["outcome", "mode"], registry=registry
        )
        self.findings = prom.Counter(
            "guardstream_findings", "Findings acted on, by label.", ["label"], registry=registry
        )
        self.budget_releases = prom.Counter(
            "guardstream_budget_forced_releases",
            "Times the latency budget forced unsettled text out, by reason and action.",
            ["reason", "action"],
            registry=registry,
        )
        self.retractions = prom.Counter(
            "guardstream_retractions",
            "Budget-forced text that later turned out to be part of a finding, by label.",
            ["label"],
            registry=registry,
        )
        self.dropped_tool_calls = prom.Counter(
            "guardstream_dropped_tool_calls", "Held tool calls never emitted.", registry=registry
        )
        self.active = prom.Gauge("guardstream_active_streams", "Responses in flight.", registry=registry)

    def observe_stream(
        self,
        result: ChatStreamResult | None,
        holds: Sequence[tuple[float, int]],
        *,
        t_start: float,
        t_end: float,
        t_first_content: float | None,
        t_first_release: float | None,
    ) -> None:
        """Record one finished stream (times are ``loop.time()`` values)."""
        self.duration.observe(t_end - t_start)
        if t_first_content is not None:
            self.upstream_ttft.observe(t_first_content - t_start)
        if t_first_release is not None:
            self.released_ttft.observe(t_first_release - t_start)
        self.hold.observe_many((ms / 1000, n) for ms, n in holds)
        if result is None:
            self.streams.labels(outcome="upstream_error", mode="stream").inc()
            return
        self.streams.labels(outcome=result.outcome.kind, mode="stream").inc()
        for finding in result.outcome.findings:
            self.findings.labels(label=finding.label).inc()
        for budget in result.budget_exceeded:
            self.budget_releases.labels(reason=budget.reason, action=budget.action).inc()
        for retraction in result.retractions:
            self.retractions.labels(label=retraction.finding.label).inc()
        if result.dropped_tool_calls:
            self.dropped_tool_calls.inc(len(result.dropped_tool_calls))

    def observe_json(self, kind: str, labels: Iterable[str], dropped_tool_calls: int, duration_s: float) -> None:
        """Record one non-streaming response."""
        self.duration.observe(duration_s)
        self.streams.labels(outcome=kind, mode="json").inc()
        for label in labels:
            self.findings.labels(label=label).inc()
        if dropped_tool_calls:
            self.dropped_tool_calls.inc(dropped_tool_calls)

    def exposition(self) -> tuple[bytes, str]:
        """The text format body and its content type, for ``GET /metrics``."""
        body: bytes = self._prom.generate_latest(self.registry)
        content_type: str = self._prom.CONTENT_TYPE_LATEST
        return body, content_type


def otel_tracer() -> Tracer:
    """The ``guardstream`` OpenTelemetry tracer (configure the SDK and exporter yourself).

    Raises:
        ExtraRequired: ``opentelemetry-api`` is not installed (``guardstream[otel]``).
    """
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise ExtraRequired("OpenTelemetry spans", "otel") from exc
    return trace.get_tracer("guardstream")


def span_attributes(result: ChatStreamResult | None) -> dict[str, Any]:
    """The attributes a stream's span ends with."""
    if result is None:
        return {"guardstream.outcome": "upstream_error"}
    outcome = result.outcome
    return {
        "guardstream.outcome": outcome.kind,
        "guardstream.released_chars": len(outcome.released),
        "guardstream.source_chars": outcome.source_chars,
        "guardstream.withheld_chars": outcome.withheld_chars,
        "guardstream.findings": len(outcome.findings),
        "guardstream.labels": sorted({f.label for f in outcome.findings}),
        "guardstream.budget_forced_releases": len(result.budget_exceeded),
        "guardstream.retractions": len(result.retractions),
        "guardstream.dropped_tool_calls": len(result.dropped_tool_calls),
        "guardstream.finish_reason": result.finish_reason or "",
    }
