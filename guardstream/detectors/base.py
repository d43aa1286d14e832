"""What a detector is: a factory of per-stream sessions that scan and settle text."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..findings import Scan

__all__ = ["AnalysingDetector", "AnalysingSession", "AnalysisRequest", "Detector", "DetectorSession"]


@runtime_checkable
class DetectorSession(Protocol):
    """One detector's state for one stream. Never shared between streams."""

    def scan(self, text: str, base: int, final: bool) -> Scan:
        """Scan the window's text and say what is settled.

        ``text`` holds the stream text (normalised for matching) from absolute offset
        ``base`` to the end of what has arrived. It always reaches back to this session's
        previous settled offset, plus some left context, unless the window had to drop
        text past its retention limit. ``final`` is true once, when the source has ended.

        Returns findings not reported before (absolute offsets) and the settled offset:
        every finding this session will ever report that touches text before it is
        already reported. With ``final`` the settled offset must be the end of the text.
        """
        ...


@runtime_checkable
class Detector(Protocol):
    """A named, immutable detector; safe to share across concurrent streams."""

    name: str

    def open(self) -> DetectorSession:
        """A fresh session for one stream."""
        ...


@dataclass(frozen=True, slots=True)
class AnalysisRequest:
    """Text a session needs a model to analyse before it can settle more.

    ``text`` starts at absolute offset ``base`` (normalised text); ``upto`` is the
    absolute offset the answer will settle through; ``final`` marks the end of stream.
    """

    text: str
    base: int
    upto: int
    final: bool


@runtime_checkable
class AnalysingSession(DetectorSession, Protocol):
    """A session whose detector runs a model: it asks for analysis, then is told the answer.

    The guard batches requests from many streams into one model call (see
    :meth:`AnalysingDetector.submit`); the synchronous paths call
    :meth:`AnalysingDetector.analyze` directly. At most one request per session is in
    flight: ``request`` is not called again until ``deliver`` has been.
    """

    def request(self, text: str, base: int, final: bool) -> AnalysisRequest | None:
        """The analysis needed now, if any (called after ``scan``)."""
        ...

    def deliver(self, request: AnalysisRequest, result: Any) -> None:
        """The model's answer for ``request``; the next ``scan`` reports what it found."""
        ...


@runtime_checkable
class AnalysingDetector(Detector, Protocol):
    """A detector backed by a model: synchronous and batched asynchronous analysis."""

    def analyze(self, texts: list[str]) -> list[Any]:
        """Analyse ``texts`` in this thread (one result per text)."""
        ...

    def submit(self, request: AnalysisRequest) -> asyncio.Future[Any]:
        """Queue ``request`` for the next batched model call on the running loop."""
        ...
