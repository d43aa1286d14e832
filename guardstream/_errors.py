"""The exceptions guardstream raises.

::

    GuardstreamError
    ├── PolicyError        .path, .errors  ((key path, message) pairs)
    ├── DetectorError      .detector, __cause__
    │   └── DetectorUnavailable   says which extra to install
    ├── ExtraRequired      an integration needs an optional extra; .extra names it
    └── OutputBlocked      only when the caller asks for exceptions instead of events
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .events import Outcome

__all__ = [
    "DetectorError",
    "DetectorUnavailable",
    "ExtraRequired",
    "GuardstreamError",
    "OutputBlocked",
    "PolicyError",
]


class GuardstreamError(Exception):
    """Base class of every error guardstream raises on purpose."""


class PolicyError(GuardstreamError):
    """A policy could not be loaded. ``errors`` holds ``(key path, problem)`` pairs."""

    def __init__(self, path: str, errors: Sequence[tuple[str, str]]) -> None:
        self.path = path
        self.errors = tuple(errors)
        lines = [f"{path}: {key}: {problem}" if key else f"{path}: {problem}" for key, problem in self.errors]
        super().__init__("\n".join(lines))


class DetectorError(GuardstreamError):
    """A detector failed; the original exception is ``__cause__``."""

    def __init__(self, detector: str, message: str) -> None:
        self.detector = detector
        super().__init__(f"detector {detector!r}: {message}")


class DetectorUnavailable(DetectorError):
    """A detector needs an optional dependency that is not installed."""

    def __init__(self, detector: str, extra: str) -> None:
        self.extra = extra
        super().__init__(detector, f"needs the '{extra}' extra: pip install 'guardstream[{extra}]'")


class ExtraRequired(GuardstreamError, ImportError):
    """An integration (``what``) needs an optional extra that is not installed."""

    def __init__(self, what: str, extra: str) -> None:
        self.what = what
        self.extra = extra
        super().__init__(f"{what} needs the '{extra}' extra: pip install 'guardstream[{extra}]'")


class OutputBlocked(GuardstreamError):
    """Raised by ``Guard.check``/``Guard.run`` with ``raise_on_block=True``; ``.outcome`` says more."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        super().__init__(outcome.message or "output blocked")
