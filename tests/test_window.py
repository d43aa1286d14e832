"""The synchronous holdback window: what is released, when, and what is held."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from guardstream import (
    Blocked,
    BudgetExceeded,
    Flagged,
    Guard,
    Outcome,
    Redacted,
    Released,
    Retracted,
    Span,
)
from guardstream.events import Event

PATTERNS = Guard.load("patterns")


def released(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, Released))


def of_type(events: list[Event], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def secret_policy(**budget: Any) -> Guard:
    """A custom open-ended pattern that keeps text unsettled until a terminator arrives."""
    return Guard.from_dict(
        {
            "budget": {"max_hold_ms": None, "max_hold_chars": None, **budget},
            "detectors": [
                {
                    "type": "patterns",
                    "labels": "none",
                    "custom": [{"label": "TICKET", "regex": r"(?<![\w-])TKT-[A-Z]{3,40}(?![A-Z])"}],
                }
            ],
        }
    )


def test_half_arrived_card_is_held_and_text_before_it_released() -> None:
    w = PATTERNS.window()
    events = w.feed("Card 4111 11", 0.0)
    assert released(events) == "Card "
    assert w.pending_chars == len("4111 11")


def test_text_that_cannot_be_forming_is_released_at_once() -> None:
    w = PATTERNS.window()
    out = []
    for i, chunk in enumerate(["Hello, ", "world! ", "How are ", "you? "]):
        out.append(released(w.feed(chunk, float(i))))
    assert out == ["Hello, ", "world! ", "How are ", "you? "]
    assert all(hold == 0.0 for hold, _ in w.holds)


def test_complete_match_touching_the_end_is_held_until_proven_over() -> None:
    w = PATTERNS.window()
    assert released(w.feed("Card 4111 1111 1111 11", 0.0)) == "Card "
    # 16 digits now pass Luhn, but a 17th digit could still follow.
    assert released(w.feed("11", 1.0)) == ""
    # "1111." could still be the local part of an email address; the space settles it.
    events = w.feed(". ", 2.0)
    assert released(events) == "<CREDIT_CARD>. "
    (red,) = of_type(events, Redacted)
    assert red.span == Span(5, 24) and red.label == "CREDIT_CARD"


def test_a_luhn_failing_number_is_released_unchanged_once_settled() -> None:
    w = PATTERNS.window()
    w.feed("Ref 4111 1111 1111 1112", 0.0)
    assert released(w.feed(" ok", 1.0)) == "4111 1111 1111 1112 "


def test_released_spans_are_contiguous_and_only_grow() -> None:
    w = PATTERNS.window()
    text = "Mail ann@example.com or call 555-123-4567, card 4111-1111-1111-1111 now."
    events: list[Event] = []
    for i, ch in enumerate(text):
        events += w.feed(ch, float(i))
    events += w.finish(float(len(text)))
    spans = [e.span for e in events if isinstance(e, Released)]
    assert spans[0].start == 0
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))
    assert spans[-1].end == len(text)
    assert released(events) == "Mail <EMAIL_ADDRESS> or call <PHONE_NUMBER>, card <CREDIT_CARD> now."


def test_findings_in_events_use_source_offsets_through_invisible_characters() -> None:
    text = "zw 4111\u200b1111\u200b1111\u200b1111 and ｍａｉｌ ann@example.com."
    outcome = PATTERNS.check(text)
    assert outcome.released == "zw <CREDIT_CARD> and ｍａｉｌ <EMAIL_ADDRESS>."
    labels = {(f.label, text[f.start : f.end]) for f in outcome.findings}
    assert labels == {("CREDIT_CARD", "4111\u200b1111\u200b1111\u200b1111"), ("EMAIL_ADDRESS", "ann@example.com")}


def test_full_width_digits_are_detected_and_kept_outside_the_redaction() -> None:
    text = "カード：４１１１ １１１１ １１１１ １１１１。"
    outcome = PATTERNS.check(text)
    assert outcome.released == "カード：<CREDIT_CARD>。"


@pytest.mark.parametrize(
    ("granularity", "expected"),
    [
        ("settled", ["Yes ", "", "except ", "in ", "us-east. ", "Next "]),
        ("word", ["Yes ", "", "except ", "in ", "us-east. ", "Next "]),
        ("sentence", ["", "", "", "", "Yes — except in us-east. ", ""]),
    ],
)
def test_release_granularity(granularity: str, expected: list[str]) -> None:
    guard = Guard.from_dict({"release": granularity, "detectors": [{"type": "patterns", "labels": ["CREDIT_CARD"]}]})
    w = guard.window()
    got = [released(w.feed(c, float(i))) for i, c in enumerate(["Yes ", "— ", "except ", "in ", "us-east. ", "Next "])]
    if granularity == "settled":
        # "— " is released as soon as settled; word granularity holds nothing extra here either.
        assert got == ["Yes ", "— ", "except ", "in ", "us-east. ", "Next "]
    elif granularity == "word":
        assert got == ["Yes ", "— ", "except ", "in ", "us-east. ", "Next "]
    else:
        assert got == expected
    assert released(w.finish(10.0)) == ("" if granularity != "sentence" else "Next ")


def test_word_granularity_holds_a_word_split_across_chunks() -> None:
    guard = Guard.from_dict({"release": "word", "detectors": []})
    w = guard.window()
    assert released(w.feed("Hel", 0.0)) == ""
    assert released(w.feed("lo wor", 1.0)) == "Hello "
    assert released(w.feed("ld", 2.0)) == ""
    assert released(w.finish(3.0)) == "world"


def test_char_budget_release_reports_the_unsettled_span_then_retracts() -> None:
    guard = secret_policy(max_hold_chars=8, on_budget="release")
    w = guard.window()
    events = w.feed("See TKT-ABCDEFGHIJ", 0.0)
    (budget,) = of_type(events, BudgetExceeded)
    assert budget.reason == "chars" and budget.action == "release"
    assert budget.unsettled == Span(4, 10)
    assert budget.detectors == ("patterns",)
    assert released(events) == "See TKT-AB"
    events = w.feed("KLM done", 1.0)
    (retraction,) = of_type(events, Retracted)
    assert retraction.finding.label == "TICKET"
    assert retraction.leaked == Span(4, 10)
    assert released(events).startswith("<TICKET> ")


def test_char_budget_mask_masks_the_unsettled_text_and_never_leaks() -> None:
    guard = secret_policy(max_hold_chars=8, on_budget="mask")
    w = guard.window()
    events = w.feed("See TKT-ABCDEFGHIJ", 0.0)
    assert released(events) == "See ******"
    events += w.feed("KLM done", 1.0) + w.finish(2.0)
    assert not of_type(events, Retracted)
    outcome = events[-1]
    assert isinstance(outcome, Outcome)
    assert "TKT-AB" not in outcome.released
    assert outcome.released.startswith("See ******<TICKET> ")


def test_char_budget_block_blocks_and_releases_only_settled_text() -> None:
    guard = secret_policy(max_hold_chars=8, on_budget="block")
    w = guard.window()
    events = w.feed("See TKT-ABCDEFGHIJ", 0.0)
    (blocked,) = of_type(events, Blocked)
    assert blocked.reason == "budget"
    assert released(events) == "See "
    assert w.feed("KLM done", 1.0) == []
    outcome = w.finish(2.0)[-1]
    assert isinstance(outcome, Outcome)
    assert outcome.kind == "blocked" and outcome.released == "See "
    # After a block nothing more is taken in: the guard closes the source.
    assert outcome.withheld_chars == len("TKT-ABCDEFGHIJ")


def test_time_budget_is_enforced_by_tick_without_new_chunks() -> None:
    guard = secret_policy(max_hold_ms=100)
    w = guard.window()
    assert released(w.feed("See TKT-ABC", 0.0)) == "See "
    assert w.next_deadline() == 100.0
    assert w.tick(99.0) == []
    events = w.tick(100.0)
    (budget,) = of_type(events, BudgetExceeded)
    assert budget.reason == "time" and budget.unsettled == Span(4, 11)
    assert released(events) == "TKT-ABC"
    assert w.next_deadline() is None


def test_flag_releases_unchanged_and_annotates() -> None:
    guard = Guard.from_dict({"detectors": [{"type": "patterns", "labels": ["EMAIL_ADDRESS"], "action": "flag"}]})
    w = guard.window()
    events = w.feed("mail ann@example.com now", 0.0) + w.finish(1.0)
    assert released(events) == "mail ann@example.com now"
    (flag,) = of_type(events, Flagged)
    assert flag.label == "EMAIL_ADDRESS" and flag.span == Span(5, 20)


def test_mask_keeps_length_and_whitespace() -> None:
    guard = Guard.from_dict({"detectors": [{"type": "patterns", "labels": ["CREDIT_CARD"], "action": "mask"}]})
    outcome = guard.check("pay 4111 1111 1111 1111 now")
    assert outcome.released == "pay **** **** **** **** now"


def test_block_releases_settled_text_before_the_finding_then_the_message() -> None:
    guard = Guard.from_dict(
        {
            "block_message": "blocked!",
            "detectors": [{"type": "patterns", "actions": {"US_SSN": {"action": "block", "message": "no SSNs"}}}],
        }
    )
    w = guard.window()
    events = w.feed("Your SSN is 123-45-6789 and more", 0.0)
    assert released(events) == "Your SSN is "
    (blocked,) = of_type(events, Blocked)
    assert blocked.message == "no SSNs" and blocked.findings[0].label == "US_SSN"
    assert w.feed(" text", 1.0) == []
    outcome = w.finish(2.0)[-1]
    assert isinstance(outcome, Outcome) and outcome.kind == "blocked" and outcome.message == "no SSNs"


def test_overlapping_findings_become_one_redaction_with_the_longest_label() -> None:
    guard = Guard.from_dict(
        {
            "detectors": [
                {
                    "type": "patterns",
                    "labels": ["PHONE_NUMBER"],
                    "custom": [{"label": "AREA_CODE", "regex": r"\(\d{3}\)"}],
                }
            ]
        }
    )
    outcome = guard.check("call (415) 555-0134 now")
    assert outcome.released == "call <PHONE_NUMBER> now"
    assert {f.label for f in outcome.findings} == {"PHONE_NUMBER", "AREA_CODE"}


def test_unterminated_private_key_is_never_released() -> None:
    text = "cfg:\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nAAAA"
    w = PATTERNS.window()
    events: list[Event] = []
    for i, ch in enumerate(text):
        events += w.feed(ch, float(i))
    events += w.finish(float(len(text)))
    assert released(events) == "cfg:\n<PRIVATE_KEY>"
    assert "b3Bl" not in released(events)


def test_a_key_block_streamed_per_character_is_one_redaction() -> None:
    text = "a\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----\nb"
    w = PATTERNS.window()
    events: list[Event] = []
    for i, ch in enumerate(text):
        events += w.feed(ch, float(i))
    events += w.finish(float(len(text)))
    assert released(events) == "a\n<PRIVATE_KEY>\nb"


def test_window_memory_stays_bounded_on_a_long_stream() -> None:
    w = PATTERNS.window()
    sentence = "The quick brown fox jumps over the lazy dog 42 times, costing $3.50 each. "
    for i in range(3000):
        w.feed(sentence, float(i))
    assert w.source_chars == 3000 * len(sentence)
    assert len(w._norm) < 3 * 1024 + len(sentence)
    assert len(w._raw) < 3 * 1024 + len(sentence)


def test_a_retraction_covers_every_budget_forced_piece_the_user_saw() -> None:
    guard = Guard.from_dict(
        {
            "budget": {"max_hold_ms": None, "max_hold_chars": 8, "on_budget": "release"},
            "detectors": [{"type": "patterns", "labels": ["CREDIT_CARD"]}],
        }
    )
    w = guard.window()
    events: list[Event] = []
    for chunk in ["Card ", "4111 ", "1111 ", "1111 ", "1111", " thanks"]:
        events += w.feed(chunk, 0.0)
    forced = [e.unsettled for e in of_type(events, BudgetExceeded)]
    assert len(forced) >= 2
    (retraction,) = of_type(events, Retracted)
    assert retraction.leaked == Span(5, max(span.end for span in forced))


def test_a_tick_exactly_at_the_deadline_acts() -> None:
    # 0.3 + 50 - 50 rounds below 0.3: the comparison must be the deadline's own.
    guard = Guard.from_dict(
        {"budget": {"max_hold_ms": 50, "max_hold_chars": None}, "detectors": [{"type": "patterns"}]}
    )
    w = guard.window()
    w.feed("Card 4111", 0.3)
    deadline = w.next_deadline()
    assert deadline is not None
    assert released(w.tick(deadline)) == "4111"


def test_a_card_followed_by_a_number_is_still_a_card() -> None:
    # The greedy 19-digit form takes " 100" and fails Luhn; the 16 digits before it pass.
    assert PATTERNS.check("4000 0000 0000 0002 100.0.0.0").released == "<CREDIT_CARD> <IP_ADDRESS>"
    assert PATTERNS.check("pay 4000 0000 0000 0002 100 times").released == "pay <CREDIT_CARD> 100 times"
    # A 19-digit Luhn failure with no valid card inside stays as written.
    assert PATTERNS.check("ref 4000 0000 0000 0003 100 ok").released == "ref 4000 0000 0000 0003 100 ok"


class _ChangesItsMind:
    """Settles everything it sees; on the third scan reports a finding in settled text,
    as NER does when more left context makes the model tag a name it had not."""

    name = "mind"

    def open(self) -> Any:
        return _ChangesItsMindSession()


class _ChangesItsMindSession:
    def __init__(self) -> None:
        self.calls = 0

    def scan(self, text: str, base: int, final: bool) -> Any:
        from guardstream import Finding, Scan

        self.calls += 1
        findings = (Finding(Span(9, 14), "PERSON", "mind", 0.8),) if self.calls == 3 else ()
        return Scan(findings, base + len(text))


@pytest.mark.parametrize("on_budget", ["release", "mask"])
def test_a_late_finding_in_text_released_as_settled_is_retracted(on_budget: str) -> None:
    from guardstream.policy import policy_from_dict

    policy = policy_from_dict({"budget": {"on_budget": on_budget}, "detectors": []})
    w = Guard(policy, extra_detectors=[_ChangesItsMind()]).window()
    assert released(w.feed("Call her Maria ", 0.0)) == "Call her Maria "
    assert released(w.feed("after ", 1.0)) == "after "
    events = w.feed("that.", 2.0)
    (retraction,) = of_type(events, Retracted)
    assert retraction.finding.label == "PERSON"
    assert retraction.leaked == Span(9, 14)  # the user saw "Maria": it went out as settled
    assert released(events) == "that."
