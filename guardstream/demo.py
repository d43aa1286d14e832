"""``guardstream demo``: guard a built-in sample stream live, paced like a model."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from typing import TextIO

from ._errors import DetectorError
from .events import BudgetExceeded, Outcome, Redacted, Released
from .guard import Guard
from .replay import hold_percentiles

__all__ = ["SAMPLES", "default_policy", "run_demo", "tokenize"]

SAMPLES: tuple[tuple[str, str], ...] = (
    (
        "an answer with contact details, payment data and a secret",
        "Sure, Maria! I've updated your profile. Your account email is now maria.lopez@example.org and the "
        "support line is (415) 555-0134. Your advisor, James Whitfield from our Denver office, will call "
        "you on Monday. The card on file, 4111 1111 1111 1111, is charged $1,249.99 "
        "on 2024-11-24 for order #552-1039 (version 2.4.1 of the plan). For the API, set "
        "api_key=sk_live_7fA9cQ2xLmN4pR8t in your config and never share it. Questions? Reply any time.",
    ),
    (
        "an answer that gives a dose above the label's maximum",
        "For a tension headache, adults can take 500 to 1,000 mg of acetaminophen every 6 hours, "
        "up to 4 times a day. If the pain is still bad, you could take 2,000 mg of acetaminophen "
        "every 4 hours until it stops. Rest in a dark room and drink plenty of water.",
    ),
    (
        "an answer that starts to leak a private key",
        "Here is the deploy config you asked for:\n-----BEGIN RSA PRIVATE KEY-----\n"
        "MIIEowIBAAKCAQEA7yN3kQ9f2sLx8Vb1m0RZtKp4\nqW3eYc5uH2jN8aT0vB6xLrD9gF1sK7mP3oQ2wE5y\n"
        "-----END RSA PRIVATE KEY-----\nStore it somewhere safe.",
    ),
)

_TOKEN = re.compile(r" ?[A-Za-z]{1,6}| ?\d{1,3}|\s+|.", re.S)

_BLOCK_SECRETS = {
    "name": "demo-block-secrets",
    "block_message": "[blocked: the answer contained a private key]",
    "detectors": [{"type": "patterns", "actions": {"PRIVATE_KEY": "block"}}],
}


def tokenize(text: str) -> list[str]:
    """Split ``text`` into BPE-like pieces: a leading space and a few letters or digits."""
    return _TOKEN.findall(text)


async def _paced(tokens: list[str], first_ms: float, per_token_ms: float, seed: int) -> AsyncIterator[str]:
    rng = random.Random(seed)
    for i, token in enumerate(tokens):
        delay = first_ms if i == 0 else per_token_ms * rng.uniform(0.6, 1.4)
        await asyncio.sleep(delay / 1000)
        yield token


class _Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def wrap(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text


async def _one(guard: Guard, title: str, text: str, out: TextIO, style: _Style, per_token_ms: float) -> None:
    out.write(style.wrap(f"\n== {title} (policy: {guard.policy.name}) ==", "1") + "\n")
    tokens = tokenize(text)
    redactions: list[Redacted] = []
    forced = 0
    async with guard.stream(_paced(tokens, 300.0, per_token_ms, seed=7)) as events:
        async for event in events:
            if isinstance(event, Redacted):
                redactions.append(event)
            elif isinstance(event, BudgetExceeded):
                forced += 1
            elif isinstance(event, Released) and event.text:
                text_out = event.text
                for r in redactions:
                    if r.replacement and r.replacement in text_out:
                        text_out = text_out.replace(r.replacement, style.wrap(r.replacement, "7;31"), 1)
                out.write(text_out)
                out.flush()
            elif isinstance(event, Outcome) and event.kind == "blocked":
                out.write(style.wrap(event.message or "[blocked]", "1;41"))
    out.write("\n")
    outcome = events.outcome
    assert outcome is not None
    p50, p99, top = hold_percentiles(events.stats.holds)
    held = sum(n for hold, n in events.stats.holds if hold > 1.0)
    released_chars = sum(n for _, n in events.stats.holds)
    labels = ", ".join(f"{r.label}" for r in redactions if r.replacement) or "none"
    out.write(style.wrap("-- summary", "2") + "\n")
    out.write(f"   outcome: {outcome.kind}\n")
    out.write(f"   the model sent {outcome.source_chars} of {len(text)} chars")
    if outcome.source_chars < len(text):
        out.write(" (the source was closed at the block)")
    out.write(f"; released {released_chars}; withheld {outcome.withheld_chars}\n")
    out.write(f"   redacted: {labels}\n")
    out.write(
        f"   held for a verdict: {held} chars; hold per char p50 {p50 or 0:.0f} ms, "
        f"p99 {p99 or 0:.0f} ms, max {top or 0:.0f} ms (token interval ~{per_token_ms:.0f} ms)\n"
    )
    if forced:
        out.write(f"   budget-forced releases: {forced}\n")
    if outcome.kind == "blocked":
        out.write(f"   blocked with: {outcome.message!r}; nothing after it was shown\n")


def default_policy() -> str:
    """``default`` when the NER extra is installed, else ``patterns``."""
    try:
        Guard.load("default")
    except DetectorError:
        return "patterns"
    return "default"


async def run_demo(out: TextIO, *, policy: str | None = None, color: bool = False, per_token_ms: float = 25.0) -> None:
    """Guard the built-in samples, printing released text as it appears and a summary."""
    style = _Style(color)
    if policy is None:
        policy = default_policy()
        if policy == "patterns":
            out.write("(names and places need the 'ner' extra: pip install -e '.[ner]'; using 'patterns')\n")
    guard = Guard.load(policy)
    guard.warmup()  # load the models before the clock starts
    title, text = SAMPLES[0]
    await _one(guard, title, text, out, style, per_token_ms)
    if guard.policy.name == "default":
        title, text = SAMPLES[1]
        await _one(guard, title, text, out, style, per_token_ms)
    title, text = SAMPLES[2]
    await _one(Guard.from_dict(_BLOCK_SECRETS, "demo"), title, text, out, style, per_token_ms)
