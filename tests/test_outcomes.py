"""Every stream ends with exactly one honest outcome, and cleans up after itself."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest

from guardstream import (
    Blocked,
    BudgetExceeded,
    DetectorError,
    DetectorFailed,
    Finding,
    Guard,
    Outcome,
    OutputBlocked,
    Released,
    Retracted,
    Scan,
    Span,
)
from guardstream.events import Event
from guardstream.policy import policy_from_dict

from .helpers import TrackedSource, chunked, collect

PATTERNS = Guard.load("patterns")


def other_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()}


def outcomes(events: list[Event]) -> list[Outcome]:
    return [e for e in events if isinstance(e, Outcome)]


async def test_completed_stream_ends_with_exactly_one_outcome() -> None:
    events = await collect(PATTERNS, chunked("Reach me at ann@example.com, thanks.", [3]))
    (outcome,) = outcomes(events)
    assert events[-1] is outcome
    assert outcome.kind == "completed" and outcome.ok
    assert outcome.released == "Reach me at <EMAIL_ADDRESS>, thanks."
    assert outcome.withheld_chars == 0
    assert [f.label for f in outcome.findings] == ["EMAIL_ADDRESS"]


async def test_upstream_error_never_releases_unsettled_text() -> None:
    source = TrackedSource(["Pay with 4111 ", "1111 1111 ", "1111", " today"], fail_after=3)
    events = await collect(PATTERNS, source)
    (outcome,) = outcomes(events)
    assert outcome.kind == "upstream_error"
    assert outcome.error == "ConnectionResetError: upstream went away"
    assert outcome.released == "Pay with "
    assert outcome.withheld_chars == len("4111 1111 1111 1111")
    assert source.closed
    assert not other_tasks()


async def test_text_api_reraises_the_upstream_error_after_released_text() -> None:
    source = TrackedSource(["Hello ", "there ", "friend"], fail_after=2)
    seen: list[str] = []
    with pytest.raises(ConnectionResetError):
        async for text in PATTERNS.text(source):
            seen.append(text)
    assert "".join(seen) == "Hello there "


@pytest.mark.parametrize("how", ["break-in-context", "aclose", "break-and-drop"])
async def test_consumer_stop_closes_the_source_and_keeps_what_was_released(how: str) -> None:
    source = TrackedSource(["One ", "two ", "three ", "four "], stall_after=3)
    if how == "break-in-context":
        async with PATTERNS.stream(source) as events:
            async for event in events:
                if isinstance(event, Released) and "two" in event.text:
                    break
        outcome = events.outcome
    elif how == "aclose":
        events = PATTERNS.stream(source)
        async for event in events:
            if isinstance(event, Released) and "two" in event.text:
                break
        await events.aclose()
        outcome = events.outcome
    else:
        async for event in PATTERNS.stream(source):
            if isinstance(event, Released) and "two" in event.text:
                break
        gc.collect()
        for _ in range(5):  # the loop's async-generator finaliser closes it
            await asyncio.sleep(0)
        outcome = None
    assert source.closed
    assert not other_tasks()
    if outcome is not None:
        assert outcome.kind == "cancelled"
        assert outcome.released == "One two "


async def test_cancelling_the_consumer_task_closes_the_source() -> None:
    source = TrackedSource(["Hello ", "ann@", "example.com"], stall_after=2)
    stream = PATTERNS.stream(source)
    seen: list[Event] = []

    async def consume() -> None:
        async for event in stream:
            seen.append(event)

    task = asyncio.create_task(consume())
    while source.sent < 2:  # noqa: ASYNC110 - polling a plain counter is the point
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert source.closed
    assert not other_tasks()
    assert stream.outcome is not None and stream.outcome.kind == "cancelled"
    assert stream.outcome.released == "Hello "
    assert stream.outcome.withheld_chars == len("ann@")


class Exploding:
    """A detector whose session raises on its second scan."""

    name = "exploding"

    def open(self) -> Exploding._Session:
        return Exploding._Session()

    class _Session:
        def __init__(self) -> None:
            self.calls = 0

        def scan(self, text: str, base: int, final: bool) -> Scan:
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("model crashed")
            return Scan((), base + len(text))


async def test_detector_exception_fails_closed_by_default() -> None:
    guard = Guard(policy_from_dict({"detectors": [{"type": "patterns"}]}), extra_detectors=[Exploding()])
    source = TrackedSource(["First part. ", "Second part. ", "Third part."])
    events = await collect(guard, source)
    failed = [e for e in events if isinstance(e, DetectorFailed)]
    assert [(f.detector, f.error) for f in failed] == [("exploding", "RuntimeError: model crashed")]
    assert any(isinstance(e, Blocked) and e.reason == "detector_error" for e in events)
    (outcome,) = outcomes(events)
    assert outcome.kind == "detector_error"
    assert outcome.released == "First part. "
    assert "model crashed" in (outcome.error or "")
    assert source.closed


async def test_detector_exception_can_be_configured_to_release() -> None:
    policy = policy_from_dict({"on_detector_error": "release", "detectors": [{"type": "patterns"}]})
    guard = Guard(policy, extra_detectors=[Exploding()])
    events = await collect(guard, chunked("First part. Second part with ann@example.com. Done.", [12]))
    assert [e.detector for e in events if isinstance(e, DetectorFailed)] == ["exploding"]
    (outcome,) = outcomes(events)
    assert outcome.kind == "completed"
    # The remaining detectors keep working.
    assert outcome.released == "First part. Second part with <EMAIL_ADDRESS>. Done."


async def test_text_api_raises_detector_error_when_failing_closed() -> None:
    guard = Guard(policy_from_dict({"detectors": []}), extra_detectors=[Exploding()])
    with pytest.raises(DetectorError):
        async for _ in guard.text(chunked("one two three", [4])):
            pass


async def stalling(chunks: list[str], stall_s: float, at: int) -> AsyncIterator[str]:
    for i, chunk in enumerate(chunks):
        if i == at:
            await asyncio.sleep(stall_s)
        yield chunk


def budget_guard(on_budget: str) -> Guard:
    return Guard.from_dict(
        {
            "budget": {"max_hold_ms": 50, "max_hold_chars": None, "on_budget": on_budget},
            "detectors": [{"type": "patterns", "labels": ["CREDIT_CARD"]}],
        }
    )


@pytest.mark.parametrize("on_budget", ["release", "mask", "block"])
async def test_time_budget_holds_when_the_source_stalls_mid_entity(on_budget: str) -> None:
    # The source stalls for 1 s right after "4111 1111 "; the 50 ms budget must act while
    # it stalls: the budget event comes before any text of the next chunk.
    chunks = ["Card ", "4111 1111 ", "1111 1111", " thanks"]
    events = await collect(budget_guard(on_budget), stalling(chunks, 1.0, at=2))
    kinds = [type(e).__name__ for e in events]
    budget = next(e for e in events if isinstance(e, BudgetExceeded))
    assert budget.reason == "time" and budget.action == on_budget
    assert budget.unsettled == Span(5, 15)
    # Had the guard waited for the next chunk, the card would have completed and no
    # budget event could exist: its presence proves the timer acted during the stall.
    assert kinds.index("BudgetExceeded") < len(kinds) - 1
    outcome = events[-1]
    assert isinstance(outcome, Outcome)
    if on_budget == "release":
        assert outcome.kind == "completed"
        assert outcome.released.startswith("Card 4111 1111 ")
        retraction = next(e for e in events if isinstance(e, Retracted))
        assert retraction.leaked == Span(5, 15) and retraction.finding.label == "CREDIT_CARD"
        assert outcome.released == "Card 4111 1111 <CREDIT_CARD> thanks"
    elif on_budget == "mask":
        assert outcome.kind == "completed"
        assert outcome.released == "Card **** **** <CREDIT_CARD> thanks"
        assert "Retracted" not in kinds
    else:
        assert outcome.kind == "blocked"
        assert outcome.released == "Card "


async def test_block_closes_the_source_and_reports_what_was_released() -> None:
    guard = Guard.from_dict(
        {
            "block_message": "Blocked: card numbers are not allowed.",
            "detectors": [{"type": "patterns", "action": "block"}],
        }
    )
    source = TrackedSource(["Your total is $12.", " Card: 4111 1111 1111 1111", " more", " text"], stall_after=3)
    events = await collect(guard, source)
    outcome = events[-1]
    assert isinstance(outcome, Outcome)
    assert outcome.kind == "blocked"
    assert outcome.released == "Your total is $12. Card: "
    assert outcome.message == "Blocked: card numbers are not allowed."
    assert source.closed
    assert not other_tasks()


async def test_callers_may_ask_for_an_exception_on_block() -> None:
    guard = Guard.from_dict({"block_message": "[blocked]", "detectors": [{"type": "patterns", "action": "block"}]})
    with pytest.raises(OutputBlocked) as info:
        await guard.run(chunked("ok then 123-45-6789 rest", [5]), raise_on_block=True)
    assert info.value.outcome.released == "ok then " and str(info.value) == "[blocked]"
    with pytest.raises(OutputBlocked):
        guard.check("ssn 123-45-6789", raise_on_block=True)
    assert guard.check("nothing here", raise_on_block=True).kind == "completed"


async def test_text_api_yields_the_block_message_last() -> None:
    guard = Guard.from_dict({"block_message": "[blocked]", "detectors": [{"type": "patterns", "action": "block"}]})
    pieces = [t async for t in guard.text(chunked("ok then 123-45-6789 rest", [5]))]
    assert "".join(pieces) == "ok then [blocked]"


async def test_concurrent_streams_share_one_guard_without_mixing() -> None:
    texts = [f"Stream {i} mail user{i}@example.com and card 4111 1111 1111 1111 end {i}." for i in range(50)]
    results = await asyncio.gather(*(PATTERNS.run(chunked(t, [1 + i % 7])) for i, t in enumerate(texts)))
    for i, outcome in enumerate(results):
        assert outcome.released == f"Stream {i} mail <EMAIL_ADDRESS> and card <CREDIT_CARD> end {i}."


async def test_sync_iterables_are_accepted_as_sources() -> None:
    outcome = await PATTERNS.run(["call ", "555-123-", "4567 ", "now"])
    assert outcome.released == "call <PHONE_NUMBER> now"


async def test_a_source_yielding_non_text_is_an_upstream_error() -> None:
    async def bad() -> AsyncIterator[Any]:
        yield "fine "
        yield b"bytes"

    outcome = await PATTERNS.run(bad())
    assert outcome.kind == "upstream_error"
    assert "expected str" in (outcome.error or "")
    assert outcome.released == "fine "


def test_finding_is_frozen() -> None:
    finding = Finding(Span(0, 1), "X", "d")
    with pytest.raises(AttributeError):
        finding.label = "Y"  # type: ignore[misc]
