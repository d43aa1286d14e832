"""Token regions (GitHub, Slack, JWT) against any chunking: the stream equals the whole text.

A token is a finding from its first character once its prefix is complete, reported piece by
piece as it arrives; the window joins the pieces, so each token is one redaction and one
finding whatever the chunking. Generated tokens are fake.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardstream import Guard, Released
from tests.helpers import split

GUARD = Guard.load("patterns")

_ALNUM = "[A-Za-z0-9]"
_B64 = "[A-Za-z0-9_-]"


@st.composite
def token(draw: st.DrawFn) -> tuple[str, str]:
    kind = draw(st.sampled_from(["classic", "pat", "slack", "jwt", "jwt-none"]))
    if kind == "classic":
        prefix = draw(st.sampled_from(["ghp_", "gho_", "ghs_", "ghu_", "ghr_"]))
        # A digit somewhere, as in every real token (lower-case words are placeholders).
        body = draw(st.from_regex(rf"{_ALNUM}{{0,20}}[0-9]{_ALNUM}{{8,30}}", fullmatch=True))
        return "GITHUB_TOKEN", prefix + body
    if kind == "pat":
        body = draw(st.from_regex(r"[0-9]{2}[A-Za-z0-9_]{8,80}", fullmatch=True))
        return "GITHUB_TOKEN", "github_pat_" + body.rstrip("_") + "Z"
    if kind == "slack":
        return "SLACK_TOKEN", draw(st.from_regex(r"xox[bpase]-[0-9]{10}-[A-Za-z0-9]{4,30}", fullmatch=True))
    header = draw(st.sampled_from(["eyJhbGciOiJIUzI1NiJ9", "eyJhbGciOiJub25lIn0"]))
    payload = draw(st.from_regex(rf"{_B64}{{0,60}}", fullmatch=True))
    signature = "" if kind == "jwt-none" else draw(st.from_regex(rf"{_B64}{{1,43}}", fullmatch=True))
    return "JWT", f"{header}.eyJ{payload}.{signature}"


FILLER = st.sampled_from(["the", "token", "is", "ghp", "xoxb", "eyJ", "version 2.4.1", "see:", "Über", "42", "gh"])
# What may follow a token: characters that cannot belong to it.
SEPARATORS = st.sampled_from([" ", ", ", ". ", "\n", " (", ") ", '"', "; "])


@st.composite
def text_with_tokens(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    parts: list[str] = []
    planted: list[tuple[str, str]] = []
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            label, value = draw(token())
            planted.append((label, value))
            parts.append(value)
        else:
            parts.append(draw(FILLER))
        parts.append(draw(SEPARATORS))
    if draw(st.booleans()):
        parts.pop()  # the stream ends right after the last part
    return "".join(parts), planted


def _feed(chunks: list[str]) -> tuple[str, tuple[tuple[str, int, int], ...]]:
    window = GUARD.window()
    events = []
    for i, chunk in enumerate(chunks):
        events += window.feed(chunk, float(i))
    events += window.finish(float(len(chunks)))
    out = "".join(e.text for e in events if isinstance(e, Released))
    return out, tuple((f.label, f.start, f.end) for f in window.outcome("completed", float(len(chunks))).findings)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_with_tokens(), st.lists(st.integers(1, 12), min_size=1, max_size=40))
def test_tokens_are_one_redaction_however_chunked(sample: tuple[str, list[tuple[str, str]]], sizes: list[int]) -> None:
    text, planted = sample
    whole = _feed([text])
    assert _feed(split(text, sizes)) == whole
    assert _feed(list(text)) == whole
    out, findings = whole
    for _label, value in planted:
        assert value not in out
    assert [(label, text[a:b]) for label, a, b in findings] == planted
    assert sum(out.count(f"<{label}>") for label in {"GITHUB_TOKEN", "SLACK_TOKEN", "JWT"}) == len(planted)
