"""``guardstream calibrate``: the smallest time budget that meets a leak target on a corpus.

The leak rate of guardstream's settled-frontier release falls as the budget grows (a
violation leaks when it takes longer to arrive than the budget allows its first
characters to wait). :func:`calibrate` measures the rate on a grid of budgets, then
bisects between the largest failing and the smallest passing grid budget to
``resolution_ms``. The answer is the smallest budget such that it, and every larger
budget measured, meets the target; every point measured is kept as the curve behind it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..guard import Guard
from .corpus import LabelledStream
from .latency import ModelClock
from .strategies import Settled
from .sweep import evaluate, label_by_model, leak_upper_bound, progress_bar

__all__ = ["DEFAULT_GRID_MS", "Calibration", "Point", "calibrate", "format_calibration"]

DEFAULT_GRID_MS: tuple[float, ...] = (
    25,
    50,
    100,
    150,
    200,
    250,
    300,
    400,
    500,
    750,
    1000,
    1500,
    2000,
    3000,
    5000,
    10000,
)


@dataclass(frozen=True, slots=True)
class Point:
    """One budget measured: ``max_hold_ms`` (``None``: unbounded) and what it bought."""

    max_hold_ms: float | None
    spans: int
    leaked: int
    hold_p99_ms: float | None
    ttft_p50_ms: float | None

    @property
    def leak_rate(self) -> float:
        return self.leaked / self.spans if self.spans else 0.0

    @property
    def upper95(self) -> float | None:
        return leak_upper_bound(self.leaked, self.spans)


@dataclass(frozen=True, slots=True)
class Calibration:
    """The curve and the answer: ``recommended`` is ``None`` for "no time limit"."""

    target: float
    points: tuple[Point, ...]  # by budget, unbounded last
    met: bool
    recommended: float | None
    confidence: float | None = None  # judge by the upper bound at this confidence, not the rate

    def passes(self, point: Point) -> bool:
        return _passes(point, self.target, self.confidence)

    @property
    def spans(self) -> int:
        return self.points[-1].spans if self.points else 0


def _passes(point: Point, target: float, confidence: float | None) -> bool:
    if confidence is None:
        return point.leak_rate <= target
    bound = leak_upper_bound(point.leaked, point.spans, confidence)
    return bound is not None and bound <= target


def _key(point: Point) -> float:
    return math.inf if point.max_hold_ms is None else point.max_hold_ms


def calibrate(
    guard: Guard,
    streams: Sequence[LabelledStream],
    target: float,
    grid_ms: Sequence[float] = DEFAULT_GRID_MS,
    resolution_ms: float = 10.0,
    progress: bool | None = None,
    confidence: float | None = None,
    clock: ModelClock | None = None,
) -> Calibration:
    """The smallest ``max_hold_ms`` whose leak rate on ``streams`` is at most ``target``.

    With ``confidence`` (e.g. 0.95) a budget passes only when the one-sided upper bound of
    its leak rate at that confidence is at most ``target``: the corpus must show it.
    Model-backed detectors are accounted as in the sweep: ``clock`` (by default fitted
    here) prices their calls, and :func:`~.sweep.label_by_model` sets the NER labels.
    """
    if not 0 <= target < 1:
        raise ValueError("the target leak rate must be in [0, 1)")
    if confidence is not None and not 0 < confidence < 1:
        raise ValueError("the confidence must be in (0, 1)")
    if resolution_ms <= 0:
        raise ValueError("the resolution must be positive")
    if clock is None:
        clock = ModelClock.for_guard(guard.detectors, [s.text for s in streams[:8]])
    streams, _ = label_by_model(guard, streams, clock)
    grid = sorted({float(b) for b in grid_ms if b > 0})
    # Grid plus the unbounded point, then at most ~log2(gap / resolution) bisection steps.
    steps = len(grid) + 1 + max(1, math.ceil(math.log2(max(grid, default=1.0) / resolution_ms)))
    bar = progress_bar(steps * len(streams), progress, "calibrate")
    points: dict[float | None, Point] = {}

    def measure(budget: float | None) -> Point:
        if budget not in points:
            strategy = Settled(guard, budget, clock)
            bar.set_description_str(strategy.name)
            totals = evaluate(strategy, streams, bar, clock)
            summary = totals.summary()
            points[budget] = Point(
                budget,
                totals.total_spans,
                totals.leaked,
                summary["hold_ms"]["p99"],
                summary["added_ttft_ms"]["p50"],
            )
        return points[budget]

    def passes(budget: float | None) -> bool:
        return _passes(measure(budget), target, confidence)

    try:
        recommended, met = _search(grid, resolution_ms, passes)
    finally:
        bar.close()
    ordered = tuple(sorted(points.values(), key=_key))
    return Calibration(target, ordered, met, recommended, confidence)


def _search(
    grid: list[float], resolution_ms: float, passes: Callable[[float | None], bool]
) -> tuple[float | None, bool]:
    if not passes(None):
        for budget in grid:  # the curve, for the report
            passes(budget)
        return None, False
    failing = 0.0
    for budget in grid:
        if not passes(budget):
            failing = budget
    above = [b for b in grid if b > failing]
    if not above:
        return None, True  # only "no time limit" meets the target
    # Bisect on whole multiples of the resolution in (failing, above[0]].
    lo = math.floor(failing / resolution_ms)
    hi = math.ceil(above[0] / resolution_ms)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(mid * resolution_ms):
            hi = mid
        else:
            lo = mid
    best = min(hi * resolution_ms, above[0])
    return best, True


def _pct(rate: float | None) -> str:
    if rate is None:
        return "–"
    return f"{rate * 100:.2f}%"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def format_calibration(result: Calibration, policy: str, corpus: str) -> list[str]:
    """The report: the curve as a markdown table, then notes; the last line is the setting."""
    lines = [
        f"guardstream calibrate: policy {policy}, target: at most {_pct(result.target)} of labelled violations leaked"
        + ("" if result.confidence is None else f" (the {result.confidence:.0%} upper bound)"),
        f"corpus: {corpus}",
        "",
        "| max_hold_ms | leaked | leak rate | 95% upper bound | hold p99 (ms) | added TTFT p50 (ms) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in result.points:
        budget = "unbounded" if p.max_hold_ms is None else f"{p.max_hold_ms:,g}"
        mark = " ✓" if result.passes(p) else ""
        lines.append(
            f"| {budget}{mark} | {p.leaked}/{p.spans} | {_pct(p.leak_rate)} | {_pct(p.upper95)} "
            f"| {_ms(p.hold_p99_ms)} | {_ms(p.ttft_p50_ms)} |"
        )
    lines.append("")
    n = result.spans
    if n and result.target == 0:
        lines.append(f"note: a target of 0 means none of the {n:,} violations may leak")
    elif n and 3 / n > result.target and result.confidence is None:
        lines.append(
            f"note: {n:,} violations cannot show a rate as low as {_pct(result.target)}: even no leak at all "
            f"only bounds it below {_pct(3 / n)} (95%); that takes at least {math.ceil(3 / result.target):,}"
        )
    if not result.met:
        unbounded = result.points[-1]
        why = (
            "(the detectors miss them)"
            if unbounded.leaked
            else f"and {n:,} violations are too few to show the target at {result.confidence:.0%}"
        )
        lines.append(f"recommended: none: even with no time limit {_pct(unbounded.leak_rate)} of violations leak {why}")
    elif result.recommended is None:
        lines.append("recommended: budget: {max_hold_ms: null, max_hold_chars: null, on_budget: release}")
    else:
        lines.append(
            f"recommended: budget: {{max_hold_ms: {result.recommended:g}, max_hold_chars: null, on_budget: release}}"
        )
    return lines
