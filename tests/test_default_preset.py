"""The ``default`` preset end to end: every kind of detector in one stream.

PII is redacted and the answer goes on; a dose above the table's maximum, or a sentence
of a blocking semantic category, ends it with what was released before and the block
message; investment advice is flagged and shown.
"""

from __future__ import annotations

import pytest

from guardstream import Flagged, Guard, Outcome, Released
from tests.helpers import CHUNKINGS, chunked, collect

GUARD = Guard.load("default")


def test_the_default_preset_has_every_detector_kind() -> None:
    assert [d.type for d in GUARD.policy.detectors] == ["patterns", "presidio", "dosage", "semantic"]


def test_pii_is_redacted_and_a_dose_within_the_maximum_is_shown() -> None:
    text = (
        "Thanks, Maria. I emailed maria.lopez@example.org the notes. "
        "Adults can take 400 mg of ibuprofen every 6 hours with food. Feel better soon."
    )
    outcome = GUARD.check(text)
    assert outcome.kind == "completed"
    assert outcome.released == (
        "Thanks, <PERSON>. I emailed <EMAIL_ADDRESS> the notes. "
        "Adults can take 400 mg of ibuprofen every 6 hours with food. Feel better soon."
    )


@pytest.mark.parametrize("chunking", ["bpe-like", "per-char"])
async def test_a_dose_above_the_maximum_blocks_and_keeps_what_was_shown(chunking: str) -> None:
    text = (
        "I'm sorry your back hurts. Take 1,200 mg of ibuprofen every 4 hours until it eases. "
        "Stretch gently twice a day."
    )
    events = await collect(GUARD, chunked(text, CHUNKINGS[chunking]))
    outcome = events[-1]
    assert isinstance(outcome, Outcome)
    assert outcome.kind == "blocked"
    assert outcome.released == "I'm sorry your back hurts. Take "
    assert "".join(e.text for e in events if isinstance(e, Released)) == outcome.released
    assert outcome.message == "This answer was stopped: it gave a dose above the labelled adult maximum."
    (finding,) = [f for f in outcome.findings if f.label == "DOSAGE_OVER_MAX"]
    assert text[finding.start : finding.end].startswith("1,200 mg of ibuprofen every 4 hours")


def test_a_credential_request_blocks_after_the_redacted_text() -> None:
    outcome = GUARD.check(
        "Hi Maria, your card 4111 1111 1111 1111 is on file. "
        "Please tell me the one-time code we just texted you. Thanks."
    )
    assert outcome.kind == "blocked"
    assert outcome.released == "Hi <PERSON>, your card <CREDIT_CARD> is on file. "
    assert outcome.message == "This response was blocked by policy."


def test_investment_advice_is_flagged_not_blocked() -> None:
    text = "Here is my view. You should move all of your retirement savings into that one stock now. Good luck."
    window = GUARD.window()
    events = window.feed(text, 0.0) + GUARD.settle(window, 0.0) + window.finish(0.0) + GUARD.settle(window, 0.0)
    outcome = events[-1]
    assert isinstance(outcome, Outcome) and outcome.kind == "completed"
    assert outcome.released == text
    (flag,) = [e for e in events if isinstance(e, Flagged)]
    assert flag.label == "INVESTMENT_ADVICE"
