"""Cost per settled sentence of the semantic categories (and the dosage detector's scan).

Run::

    python -m pytest benchmarks/test_bench_semantic.py --benchmark-enable --benchmark-only -q

* ``encoder-batch-1``: one settled sentence, one model call (a stream alone on a server).
* ``encoder-batch-16``: sixteen sentences in one call (sixteen streams settling a
  sentence within ``max_wait_ms`` of each other); divide by 16 for the cost per sentence.
* ``stream-semantic`` vs ``stream-patterns``: a whole answer of about 12 sentences
  through the synchronous window and ``Guard.settle`` (every sentence judged as it
  completes), against the same answer under the pattern preset: the difference is what
  the semantic categories add to a stream.
* ``dosage-scan``: the same answer, chunk by chunk, with the dosage detector alone.

The encoder runs with one intra-op thread (the default), so the numbers are per core.
"""

from __future__ import annotations

from typing import Any

import pytest

from guardstream import Guard
from guardstream.demo import tokenize
from guardstream.detectors.semantic import SemanticDetector

SENTENCES = [
    "Sure, here is a summary of the meeting notes you shared this morning.",
    "The first step is to open the settings page and choose the billing tab.",
    "Python's list comprehensions are usually faster than an explicit loop.",
    "If the error persists, clear the cache and restart the application.",
    "Paris is lovely in the spring, and the museums are less crowded then.",
    "You can reset your password from the login page at any time.",
    "Diversification spreads risk across many kinds of assets.",
    "Most adults need between seven and nine hours of sleep a night.",
    "The function returns None when the key is missing from the mapping.",
    "Let me know if you would like the recipe scaled for eight people.",
    "The train from Lyon to Geneva takes a little under two hours.",
    "Happy to help with anything else you need today.",
]
ANSWER = " ".join(SENTENCES)
STEP_MS = 20.0


@pytest.fixture(scope="module")
def semantic_guard() -> Guard:
    guard = Guard.from_dict({"name": "semantic", "detectors": [{"type": "semantic"}]}, "bench")
    guard.warmup()
    return guard


def _encoder(guard: Guard) -> SemanticDetector:
    (detector,) = guard.detectors
    assert isinstance(detector, SemanticDetector)
    return detector


def _stream(guard: Guard, chunks: list[str]) -> str:
    window = guard.window()
    now = 0.0
    out: list[Any] = []
    for chunk in chunks:
        out += window.feed(chunk, now)
        out += guard.settle(window, now)
        now += STEP_MS
    out += window.finish(now)
    out += guard.settle(window, now)
    outcome = out[-1]
    return str(outcome.released)


def test_encoder_batch_1(benchmark: Any, semantic_guard: Guard) -> None:
    detector = _encoder(semantic_guard)
    result = benchmark(detector.analyze, [SENTENCES[0]])
    assert result == [[]]


def test_encoder_batch_16(benchmark: Any, semantic_guard: Guard) -> None:
    detector = _encoder(semantic_guard)
    batch = (SENTENCES * 2)[:16]
    result = benchmark(detector.analyze, batch)
    assert result == [[]] * 16


def test_stream_semantic(benchmark: Any, semantic_guard: Guard) -> None:
    chunks = tokenize(ANSWER)
    released = benchmark(_stream, semantic_guard, chunks)
    assert released == ANSWER  # benign: judged and released unchanged


def test_stream_patterns(benchmark: Any) -> None:
    guard = Guard.load("patterns")
    chunks = tokenize(ANSWER)
    released = benchmark(_stream, guard, chunks)
    assert released == ANSWER


def test_dosage_scan(benchmark: Any) -> None:
    guard = Guard.load("dosage")
    text = ANSWER + " For pain, adults may take 400 mg of ibuprofen every 6 hours."
    released = benchmark(_stream, guard, tokenize(text))
    assert released == ANSWER + " For pain, adults may take "
