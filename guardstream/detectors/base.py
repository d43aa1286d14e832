"""What a detector is: a factory of per-stream sessions that scan and settle text."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..findings import Scan

__all__ = ["Detector", "DetectorSession"]


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
