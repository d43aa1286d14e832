"""Integrations: the OpenAI chat-completions stream adapter and the OpenAI-compatible proxy.

Each integration imports its optional dependencies where it is used and raises
:class:`~guardstream.ExtraRequired` naming the extra to install when one is missing:

* :mod:`guardstream.integrations.openai` — wrap an ``openai`` SDK stream (dicts need no extra;
  typed chunks need ``guardstream[openai]``);
* :mod:`guardstream.integrations.proxy` — ``guardstream serve`` (``guardstream[serve]``);
* :mod:`guardstream.integrations.metrics` — Prometheus metrics (``guardstream[serve]``) and
  optional OpenTelemetry spans (``guardstream[otel]``).
"""

from __future__ import annotations

from .openai import (
    ChatStreamResult,
    GuardedChatStream,
    ToolCall,
    guard_chat_stream,
    guard_chunk_dicts,
)

__all__ = [
    "ChatStreamResult",
    "GuardedChatStream",
    "ToolCall",
    "guard_chat_stream",
    "guard_chunk_dicts",
]
