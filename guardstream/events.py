"""Typed, frozen events a guarded stream yields, ending with exactly one :class:`Outcome`.

Every event carries ``t_ms``: milliseconds since the guarded stream started. Offsets
(``span``) are absolute offsets into the text as the source sent it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from .findings import Finding, Span

__all__ = [
    "Blocked",
    "BudgetExceeded",
    "DetectorFailed",
    "Event",
    "Flagged",
    "Outcome",
    "OutcomeKind",
    "Redacted",
    "Released",
    "Retracted",
    "event_to_dict",
]

OutcomeKind: TypeAlias = Literal["completed", "blocked", "cancelled", "upstream_error", "detector_error"]


@dataclass(frozen=True, slots=True)
class Released:
    """``text`` was sent downstream; it covers ``span`` of the source text (after actions)."""

    text: str
    span: Span
    t_ms: float


@dataclass(frozen=True, slots=True)
class Redacted:
    """``span`` was replaced by ``replacement`` (``action`` is ``redact`` or ``mask``).

    Emitted just before the :class:`Released` event that carries the replacement.
    """

    span: Span
    label: str
    action: Literal["redact", "mask"]
    replacement: str
    findings: tuple[Finding, ...]
    t_ms: float


@dataclass(frozen=True, slots=True)
class Flagged:
    """``span`` was released unchanged but matched a finding whose action is ``flag``."""

    span: Span
    label: str
    findings: tuple[Finding, ...]
    t_ms: float


@dataclass(frozen=True, slots=True)
class BudgetExceeded:
    """The latency budget forced ``span`` out before every detector had settled it.

    ``unsettled`` is the part no detector had yet cleared; ``action`` says what happened
    to it (``release``: sent as is, a measured risk; ``mask``: masked; ``block``: the
    stream was blocked). ``detectors`` names the detectors that had not settled it.
    """

    span: Span
    unsettled: Span
    reason: Literal["time", "chars"]
    action: Literal["release", "mask", "block"]
    detectors: tuple[str, ...]
    t_ms: float


@dataclass(frozen=True, slots=True)
class Retracted:
    """Text already shown turned out to be part of ``finding``.

    Usually text released unsettled under the budget; rarely a model that changed its mind
    (NER that tags a name in text it had settled once it sees more left context).
    ``leaked`` is the part of the finding the user already saw; the unreleased rest of the
    finding got the finding's action.
    """

    finding: Finding
    leaked: Span
    t_ms: float


@dataclass(frozen=True, slots=True)
class DetectorFailed:
    """A detector raised; with ``on_detector_error: release`` the stream goes on without it."""

    detector: str
    error: str
    t_ms: float


@dataclass(frozen=True, slots=True)
class Blocked:
    """The stream was blocked: nothing more will be released. ``message`` is the policy's."""

    message: str
    reason: Literal["finding", "budget", "detector_error"]
    findings: tuple[Finding, ...]
    t_ms: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """The terminal event: how the stream ended and what the user saw.

    ``released`` is exactly the text sent downstream (replacements included, the block
    message not). ``source_chars`` were received, ``withheld_chars`` of them never
    released. ``findings`` are all findings acted on. ``error`` describes an upstream or
    detector failure; ``message`` is the block message when blocked.
    """

    kind: OutcomeKind
    released: str
    source_chars: int
    withheld_chars: int
    findings: tuple[Finding, ...]
    t_ms: float
    error: str | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "completed"


Event: TypeAlias = Released | Redacted | Flagged | BudgetExceeded | Retracted | DetectorFailed | Blocked | Outcome

_TYPE_NAMES: dict[type, str] = {
    Released: "released",
    Redacted: "redacted",
    Flagged: "flagged",
    BudgetExceeded: "budget_exceeded",
    Retracted: "retracted",
    DetectorFailed: "detector_failed",
    Blocked: "blocked",
    Outcome: "outcome",
}


def _plain(value: Any) -> Any:
    if isinstance(value, Span):
        return [value.start, value.end]
    if isinstance(value, Finding):
        return {
            "span": [value.span.start, value.span.end],
            "label": value.label,
            "detector": value.detector,
            "score": value.score,
        }
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return round(value, 3)
    return value


def event_to_dict(event: Event) -> dict[str, Any]:
    """A JSON-ready dict of ``event`` with a ``type`` key (spans become ``[start, end]``)."""
    out: dict[str, Any] = {"type": _TYPE_NAMES[type(event)]}
    for field in dataclasses.fields(event):
        out[field.name] = _plain(getattr(event, field.name))
    return out
