"""guardstream: release only the part of a model's token stream that is settled.

The public API::

    guard = Guard.load("patterns")            # a preset name or a YAML policy path
    async with guard.stream(tokens) as events:
        async for event in events:            # Released, Redacted, ..., then one Outcome
            ...
    async for text in guard.text(tokens):     # just the released text
        ...
"""

from __future__ import annotations

import os as _os

# Nothing phones home: set before any optional dependency is imported.
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from ._errors import DetectorError, DetectorUnavailable, ExtraRequired, GuardstreamError, OutputBlocked, PolicyError
from .detectors import Detector, DetectorSession, PatternDetector, PatternSpec
from .events import (
    Blocked,
    BudgetExceeded,
    DetectorFailed,
    Event,
    Flagged,
    Outcome,
    OutcomeKind,
    Redacted,
    Released,
    Retracted,
    event_to_dict,
)
from .findings import Finding, Scan, Span
from .guard import Guard, GuardedStream, StreamStats
from .policy import Policy, available_presets, load_policy
from .window import Window

__version__ = "0.1.0"

__all__ = [
    "Blocked",
    "BudgetExceeded",
    "Detector",
    "DetectorError",
    "DetectorFailed",
    "DetectorSession",
    "DetectorUnavailable",
    "Event",
    "ExtraRequired",
    "Finding",
    "Flagged",
    "Guard",
    "GuardedStream",
    "GuardstreamError",
    "Outcome",
    "OutcomeKind",
    "OutputBlocked",
    "PatternDetector",
    "PatternSpec",
    "Policy",
    "PolicyError",
    "Redacted",
    "Released",
    "Retracted",
    "Scan",
    "Span",
    "StreamStats",
    "Window",
    "__version__",
    "available_presets",
    "event_to_dict",
    "load_policy",
]
