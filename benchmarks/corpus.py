"""The benchmarks' corpus: re-exported from :mod:`guardstream.bench.corpus`, where it lives.

The generator moved into the package so that ``guardstream bench sweep`` has a default
corpus when installed; this module keeps ``from benchmarks.corpus import ...`` working.
"""

from __future__ import annotations

from guardstream.bench.corpus import (
    Answer,
    LabelledSpan,
    LabelledStream,
    NearMiss,
    Planted,
    chunk_text,
    iban,
    luhn_card,
    make_answer,
    make_corpus,
    make_streams,
)

__all__ = [
    "Answer",
    "LabelledSpan",
    "LabelledStream",
    "NearMiss",
    "Planted",
    "chunk_text",
    "iban",
    "luhn_card",
    "make_answer",
    "make_corpus",
    "make_streams",
]
