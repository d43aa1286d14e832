"""The NER detector with the real spaCy model: what it redacts, when it settles, what it costs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from guardstream import DetectorError, Guard, PolicyError, Released
from guardstream.detectors.presidio import PresidioDetector
from guardstream.events import Event

from .helpers import CHUNKINGS, chunked

PII = Guard.load("pii")

CASES = [
    # (id, text, released)
    (
        "name-at-start",
        "David Martin lives in Paris and works from home.",
        "<PERSON> lives in <LOCATION> and works from home.",
    ),
    ("name-before-end", "The report was written by Maria Garcia", "The report was written by <PERSON>"),
    (
        "place-mid",
        "Yesterday I flew from New York City to San Francisco with Jennifer. ",
        "Yesterday I flew from <LOCATION> to <LOCATION> with <PERSON>. ",
    ),
    (
        "title-kept",
        "Ask Dr. Lisa Wong in Boston, Massachusetts about it.",
        "Ask Dr. <PERSON> in <LOCATION>, <LOCATION> about it.",
    ),
    (
        "with-patterns",
        "Call Robert Johnson at 415-555-0134 before Friday.",
        "Call <PERSON> at <PHONE_NUMBER> before Friday.",
    ),
    ("pattern-wins-overlap", "Email david.martin@example.com now.", "Email <EMAIL_ADDRESS> now."),
    # Near misses: nothing name-like, drug names, capitalised function words, code.
    (
        "plain-prose",
        "the weather is nice and nothing here is a name.",
        "the weather is nice and nothing here is a name.",
    ),
    ("sentence-starters", "The answer is yes. It works. This is fine.", "The answer is yes. It works. This is fine."),
    ("drug-names", "Take ibuprofen with water. Tylenol works too.", "Take ibuprofen with water. Tylenol works too."),
    ("numbers", "Revenue grew 12% to $4.5 million in 2024.", "Revenue grew 12% to $4.5 million in 2024."),
]


def released(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, Released))


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_whole_text_cases(text: str, expected: str) -> None:
    assert PII.check(text).released == expected


@pytest.mark.parametrize("chunking", ["per-char", "bpe-like", "random-1"])
@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES[:6]], ids=[c[0] for c in CASES[:6]])
async def test_streamed_cases_match_the_whole_text(text: str, expected: str, chunking: str) -> None:
    outcome = await PII.run(chunked(text, CHUNKINGS[chunking]))
    assert outcome.kind == "completed"
    assert outcome.released == expected


def test_ordinary_text_is_released_without_a_model_call() -> None:
    w = PII.window()
    assert released(w.feed("the weather is nice ", 0.0)) == "the weather is nice "
    assert w.requests() == []


def test_a_name_is_held_until_right_context_arrives() -> None:
    w = PII.window()
    assert released(w.feed("I met David", 0.0)) == "I met "
    assert w.requests() == []  # "David" could still become "David Martin"
    w.feed(" Martin", 1.0)
    assert w.requests() == []
    w.feed(" in", 2.0)
    assert w.requests() == []  # one word of right context; two are needed
    w.feed(" town ", 3.0)
    (request,) = [r for _, r in w.requests()]
    # The sentence before the name travels as left context.
    assert request.text == "I met David Martin in town "
    assert request.upto == len("I met David Martin in town ")


@pytest.mark.parametrize(
    "text",
    [
        "line MIIEowIBAAKCAQEA7yN3kQ9f2sLx8Vb1m0RZtKp4 next ",  # base64 of a key body
        "digest sha256=Xq3kQ9fLx8Vb1m0RZtKp4 then ",  # after '=' and with digits
        "token AbcdefghijklmnopqrstuvwxyzAbcdefgh here ",  # longer than any name's word
        "see Route66 and B2B sales ",  # words with digits
    ],
)
def test_words_no_name_has_are_not_held_for_the_model(text: str) -> None:
    w = PII.window()
    assert released(w.feed(text, 0.0)) == text
    assert w.requests() == []


def test_settle_releases_after_the_analysis() -> None:
    w = PII.window()
    w.feed("I met David Martin in town today", 0.0)
    events = PII.settle(w, 1.0)
    assert released(events) == "<PERSON> in town "


async def test_concurrent_streams_share_batched_model_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    detector = next(d for d in PII.detectors if isinstance(d, PresidioDetector))
    calls: list[int] = []
    original = PresidioDetector.analyze

    def counting(self: PresidioDetector, texts: list[str]) -> Any:
        calls.append(len(texts))
        return original(self, texts)

    monkeypatch.setattr(PresidioDetector, "analyze", counting)
    texts = [f"Stream {i}: I met David Martin in Paris and we talked for hours." for i in range(30)]
    outcomes = await asyncio.gather(*(PII.run(chunked(t, [4], delay_s=0.001)) for t in texts))
    for outcome in outcomes:
        assert outcome.released.endswith("I met <PERSON> in <LOCATION> and we talked for hours.")
    assert detector is not None
    assert sum(calls) >= 30
    assert len(calls) < sum(calls), f"no batching: {calls}"


def test_missing_model_names_the_install_command() -> None:
    with pytest.raises(DetectorError) as info:
        PresidioDetector("ner", ["PERSON"], model="no_such_spacy_model")
    assert "pip install 'guardstream[ner]'" in str(info.value)
    assert "no_such_spacy_model" in str(info.value)


def test_presidio_policy_is_validated() -> None:
    with pytest.raises(PolicyError) as info:
        Guard.from_dict(
            {"detectors": [{"type": "presidio", "entities": ["PERSON", "PET"], "max_wait_ms": -1}]}, "p.yaml"
        )
    lines = str(info.value).splitlines()
    assert lines[0].startswith("p.yaml: detectors[0].entities[1]: Input should be 'PERSON', 'LOCATION'")
    assert lines[1] == "p.yaml: detectors[0].max_wait_ms: Input should be greater than or equal to 0"


def test_actions_apply_per_entity() -> None:
    guard = Guard.from_dict(
        {"detectors": [{"type": "presidio", "entities": ["PERSON", "LOCATION"], "actions": {"LOCATION": "flag"}}]}
    )
    outcome = guard.check("David Martin lives in Paris now.")
    assert outcome.released == "<PERSON> lives in Paris now."
