"""Property tests: the output does not depend on chunking, and planted secrets never leak."""

from __future__ import annotations

import itertools
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardstream import Guard, Released
from guardstream.events import Event

from .helpers import chunked, split

GUARD = Guard.load("patterns")


def _luhn_complete(prefix: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(prefix + "0")):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return prefix + str((10 - total % 10) % 10)


def _iban(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in rearranged))
    return f"{country}{98 - number % 97:02d}{bban}"


digits = st.text(alphabet=string.digits, min_size=1, max_size=1)


@st.composite
def card(draw: st.DrawFn) -> str:
    length = draw(st.sampled_from([15, 16, 16, 16, 19]))
    first = draw(st.sampled_from(["4", "5", "3", "6", "2", "9"]))
    body = first + "".join(draw(st.lists(digits, min_size=length - 2, max_size=length - 2)))
    number = _luhn_complete(body)
    style = draw(st.sampled_from(["plain", "space", "dash"]))
    if style == "plain" or length != 16:
        return number
    sep = " " if style == "space" else "-"
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


@st.composite
def email(draw: st.DrawFn) -> str:
    local = draw(st.from_regex(r"[a-z]{1,8}(\.[a-z]{1,6})?[0-9]{0,2}", fullmatch=True))
    domain = draw(st.from_regex(r"[a-z]{2,10}", fullmatch=True))
    tld = draw(st.sampled_from(["com", "org", "io", "co.uk", "de"]))
    return f"{local}@{domain}.{tld}"


@st.composite
def phone(draw: st.DrawFn) -> str:
    a, b, c = (draw(st.from_regex(rf"[2-9][0-9]{{{n - 1}}}", fullmatch=True)) for n in (3, 3, 4))
    fmt = draw(st.sampled_from(["({a}) {b}-{c}", "{a}-{b}-{c}", "{a}.{b}.{c}", "+1 {a} {b} {c}", "1-{a}-{b}-{c}"]))
    return fmt.format(a=a, b=b, c=c)


@st.composite
def ssn(draw: st.DrawFn) -> str:
    area = draw(st.integers(1, 899).filter(lambda n: n != 666))
    group = draw(st.integers(1, 99))
    serial = draw(st.integers(1, 9999))
    return f"{area:03d}-{group:02d}-{serial:04d}"


@st.composite
def iban(draw: st.DrawFn) -> str:
    bban = draw(st.from_regex(r"[0-9]{18}", fullmatch=True))
    value = _iban("DE", bban)
    if draw(st.booleans()):
        value = " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    return value


@st.composite
def ipv4(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.integers(0, 255), min_size=4, max_size=4))
    return ".".join(map(str, parts))


@st.composite
def secret(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["aws", "github", "apikey"]))
    if kind == "aws":
        return "AKIA" + draw(st.from_regex(r"[A-Z0-9]{16}", fullmatch=True))
    if kind == "github":
        return "ghp_" + draw(st.from_regex(r"[A-Za-z0-9]{36}", fullmatch=True))
    # An assignment's value (8+ characters): letters then digits, never a bare number.
    return draw(st.from_regex(r"[A-Za-z]{4,12}[0-9]{2,6}[A-Za-z0-9]{2,8}", fullmatch=True))


ENTITIES = st.one_of(card(), email(), phone(), ssn(), iban(), ipv4(), secret())
FILLER = st.sampled_from(
    [
        "the",
        "quick",
        "answer",
        "is",
        "version 2.4.1",
        "$1,249.99",
        "on 2024-11-24",
        "at 12:30",
        "order #552-1039",
        "ZIP 90210",
        "C++",
        "e.g.",
        "x = 3",
        "see:",
        "(note)",
        "Über",
        "naïve café",
        "—",
        "42",
    ]
)
SEPARATORS = st.sampled_from([" ", " ", ", ", ". ", "\n", " (", ") "])


@st.composite
def planted_text(draw: st.DrawFn) -> tuple[str, list[str]]:
    parts: list[str] = []
    planted: list[str] = []
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.integers(0, 2)) == 0:
            value = draw(ENTITIES)
            if value.isalnum() and not value.startswith(("AKIA", "ghp_")) and not value.isdigit() and value.isascii():
                value = "api_key=" + value
                planted.append(value.split("=", 1)[1])
            else:
                planted.append(value)
            parts.append(value)
        else:
            parts.append(draw(FILLER))
        parts.append(draw(SEPARATORS))
    return "".join(parts), planted


def feed_all(guard: Guard, chunks: list[str]) -> tuple[str, list[Event]]:
    w = guard.window()
    events: list[Event] = []
    for i, chunk in enumerate(chunks):
        events += w.feed(chunk, float(i))
    events += w.finish(float(len(chunks)))
    return "".join(e.text for e in events if isinstance(e, Released)), events


chunk_sizes = st.lists(st.integers(1, 12), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(planted_text(), chunk_sizes)
def test_output_is_the_same_however_the_stream_is_chunked(sample: tuple[str, list[str]], sizes: list[int]) -> None:
    text, _ = sample
    whole, _ = feed_all(GUARD, [text])
    chunked_out, _ = feed_all(GUARD, split(text, sizes))
    per_char, _ = feed_all(GUARD, list(text))
    assert chunked_out == whole
    assert per_char == whole


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(planted_text(), chunk_sizes)
def test_no_planted_entity_reaches_the_output(sample: tuple[str, list[str]], sizes: list[int]) -> None:
    text, planted = sample
    out, events = feed_all(GUARD, split(text, sizes))
    for value in planted:
        assert value not in out, f"{value!r} leaked in {out!r}"
    spans = [e.span for e in events if isinstance(e, Released)]
    assert all(a.end == b.start for a, b in itertools.pairwise(spans)), "offsets must only grow"
    assert (spans[-1].end if spans else 0) == len(text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(planted_text(), chunk_sizes)
async def test_async_guard_matches_the_sync_window(sample: tuple[str, list[str]], sizes: list[int]) -> None:
    text, planted = sample
    expected, _ = feed_all(GUARD, [text])
    outcome = await GUARD.run(chunked(text, sizes))
    assert outcome.kind == "completed"
    assert outcome.released == expected
    for value in planted:
        assert value not in outcome.released
