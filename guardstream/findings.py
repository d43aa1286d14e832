"""Spans and findings: what a detector claims about the stream text."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Finding", "Scan", "Span"]


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """A half-open range ``[start, end)`` of absolute offsets into the stream text."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"invalid span [{self.start}, {self.end})")

    def __len__(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Finding:
    """A detector's claim that ``span`` of the stream text is a ``label``.

    Offsets are absolute in the text the detector was shown. The guard maps them back
    to the original characters before it acts, so a finding in an event always refers
    to the text as the source sent it.
    """

    span: Span
    label: str
    detector: str
    score: float = 1.0

    @property
    def start(self) -> int:
        return self.span.start

    @property
    def end(self) -> int:
        return self.span.end


@dataclass(frozen=True, slots=True)
class Scan:
    """A detector session's answer for the text it has seen so far.

    ``findings`` are the findings discovered by this call (each reported exactly once
    over a stream). ``settled`` is the offset before which every finding this detector
    will ever report is already known: text before it may be released as far as this
    detector is concerned.
    """

    findings: tuple[Finding, ...]
    settled: int
