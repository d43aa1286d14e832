"""Model calls on the sweep's virtual clock: what each one costs, and each distinct one run once.

A model-backed detector (Presidio's spaCy NER, the semantic categories' sentence encoder,
an ONNX classifier: any :class:`~guardstream.detectors.base.AnalysingDetector`) answers at
once when a sweep replays it, but in a real stream its answer comes some milliseconds
later, and the user waits for whatever is held behind it. :class:`ModelClock` is how the sweep accounts for that:

* **cost**: every model call a strategy makes is charged to the virtual clock by a
  :class:`LatencyModel` of the detector, a fixed part plus a part per character analysed,
  fitted before the sweep by timing the detector on this machine
  (:func:`measure_latency`), or given. The strategy sees the answer only that much later,
  and a checker that is still busy starts its next call when the previous one ends.
* **answers**: every analysis is run for real, once per ``(detector, text)``; the same
  texts recur across strategies (guardstream's budgets ask the same ones), and a cache
  serves the repeats.

Charging a fitted model rather than each call's stopwatch reading keeps a cached answer
as expensive as a fresh one, every strategy on the same footing, and reruns on one
machine comparable. The calls that were actually run are timed too, and reported next to
the model (:meth:`ModelClock.describe`), so the fit can be checked against them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..detectors.base import AnalysingDetector, Detector

__all__ = ["SAMPLE_CHARS", "LatencyModel", "ModelClock", "analysing", "measure_latency"]

# Text sizes the latency model is fitted on: the NER requests (40-300 characters), the
# sentences a unit detector judges, and the baselines' checks (up to a few hundred
# characters plus context) fall in this range. A unit detector runs its model once per
# sentence of the text, so its price per character stands for its price per sentence.
SAMPLE_CHARS: tuple[int, ...] = (40, 100, 200, 400, 800)


def analysing(detectors: Iterable[Detector]) -> list[tuple[int, AnalysingDetector]]:
    """The model-backed detectors among ``detectors``, with their index in the guard."""
    return [(i, d) for i, d in enumerate(detectors) if isinstance(d, AnalysingDetector)]


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """One model call on ``chars`` characters takes ``fixed_ms + per_char_ms * chars``."""

    fixed_ms: float
    per_char_ms: float
    # (characters, median ms) the model was fitted on; empty when it was given.
    points: tuple[tuple[int, float], ...] = ()

    def __post_init__(self) -> None:
        if self.fixed_ms < 0 or self.per_char_ms < 0:
            raise ValueError("a latency model cannot have negative costs")

    def __call__(self, chars: int) -> float:
        return self.fixed_ms + self.per_char_ms * chars

    def to_dict(self) -> dict[str, Any]:
        return {
            "fixed_ms": round(self.fixed_ms, 4),
            "per_char_ms": round(self.per_char_ms, 6),
            "measured": [{"chars": c, "median_ms": round(ms, 3)} for c, ms in self.points],
        }


def _sample(texts: Sequence[str], chars: int, k: int) -> str:
    """The ``k``-th sample of ``chars`` characters cut from ``texts`` (repeated when short)."""
    joined = "\n\n".join(t for t in texts if t) or "Maria Garcia met Tom Weber in Leipzig on Monday."
    while len(joined) < chars * 2:
        joined += "\n\n" + joined
    start = (k * 997) % (len(joined) - chars)
    return joined[start : start + chars]


def measure_latency(
    detector: AnalysingDetector,
    texts: Sequence[str] = (),
    sizes: Sequence[int] = SAMPLE_CHARS,
    repeats: int = 5,
) -> LatencyModel:
    """Fit ``detector``'s per-call latency on this machine: one text per call, wall clock.

    For each size, ``repeats`` different slices of ``texts`` are analysed one at a time
    (after a warm-up call) and the median is taken; a least-squares line through the
    medians is the model.
    """
    detector.analyze(["Warm up."])
    points: list[tuple[int, float]] = []
    for chars in sizes:
        times: list[float] = []
        for k in range(repeats):
            text = _sample(texts, chars, k)
            started = time.perf_counter()
            detector.analyze([text])
            times.append((time.perf_counter() - started) * 1000)
        points.append((chars, statistics.median(times)))
    xs = [float(c) for c, _ in points]
    ys = [ms for _, ms in points]
    if len(points) < 2:
        return LatencyModel(max(ys[0] if ys else 0.0, 0.0), 0.0, tuple(points))
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    slope = max(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var, 0.0) if var else 0.0
    return LatencyModel(max(my - slope * mx, 0.0), slope, tuple(points))


class ModelClock:
    """Runs model-backed detectors for a sweep, once per distinct text, and prices each call.

    One clock is shared by every strategy of a sweep, so they share its cache and its
    latency models. ``latency`` maps a detector's name to its :class:`LatencyModel`.
    """

    def __init__(self, latency: Mapping[str, LatencyModel] | None = None) -> None:
        self.latency: dict[str, LatencyModel] = dict(latency or {})
        self._cache: dict[tuple[str, str], Any] = {}
        self.lookups = 0  # analyses asked for
        self.calls = 0  # analyses actually run (cache misses)
        self.cpu_s = 0.0  # process time spent in them
        self._wall_ms: list[tuple[int, float]] = []  # (characters, ms) of every call run

    @classmethod
    def for_guard(
        cls,
        detectors: Iterable[Detector],
        texts: Sequence[str] = (),
        latency: LatencyModel | None = None,
    ) -> ModelClock:
        """A clock for ``detectors``: ``latency`` for every model-backed one, or measured here."""
        models = {
            d.name: latency if latency is not None else measure_latency(d, texts) for _, d in analysing(detectors)
        }
        return cls(models)

    def cost_ms(self, detector: str, chars: int) -> float:
        """What one call of ``detector`` on ``chars`` characters costs on the virtual clock.

        Raises:
            KeyError: no latency model was given or measured for ``detector``.
        """
        try:
            model = self.latency[detector]
        except KeyError:
            raise KeyError(f"no latency model for the model-backed detector {detector!r}") from None
        return model(chars)

    def analyze(self, detector: AnalysingDetector, text: str) -> Any:
        """``detector``'s answer for ``text`` (an exception is the answer when it raised)."""
        self.lookups += 1
        key = (detector.name, text)
        if key in self._cache:
            return self._cache[key]
        cpu = time.process_time()
        wall = time.perf_counter()
        try:
            result: Any = detector.analyze([text])[0]
        except Exception as exc:  # reported as the detector's failure, as guard.settle does
            result = exc
        self._wall_ms.append((len(text), (time.perf_counter() - wall) * 1000))
        self.cpu_s += time.process_time() - cpu
        self.calls += 1
        self._cache[key] = result
        return result

    def counts(self) -> dict[str, Any]:
        """What this clock ran, for :meth:`absorb` (a worker process's clock to the sweep's)."""
        return {"lookups": self.lookups, "calls": self.calls, "cpu_s": self.cpu_s, "wall_ms": list(self._wall_ms)}

    def absorb(self, counts: Mapping[str, Any]) -> None:
        """Add another clock's :meth:`counts` to this one's (not its cache)."""
        self.lookups += counts["lookups"]
        self.calls += counts["calls"]
        self.cpu_s += counts["cpu_s"]
        self._wall_ms += counts["wall_ms"]

    def describe(self) -> dict[str, Any]:
        """The latency models, and what the calls actually run took (to check the fit)."""
        measured: dict[str, Any] = {}
        buckets = ((0, 100), (100, 200), (200, 400), (400, 800), (800, 10**9))
        for lo, hi in buckets:
            times = [ms for chars, ms in self._wall_ms if lo <= chars < hi]
            if times:
                label = f"{lo}-{hi}" if hi < 10**9 else f"{lo}+"
                measured[label] = {"calls": len(times), "median_ms": round(statistics.median(times), 3)}
        return {
            "latency_models": {name: model.to_dict() for name, model in sorted(self.latency.items())},
            "analyses_asked": self.lookups,
            "analyses_run": self.calls,
            "model_cpu_s": round(self.cpu_s, 2),
            "run_calls_by_chars": measured,
        }
