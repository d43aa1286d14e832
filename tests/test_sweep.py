"""The holdback sweep: leak accounting, the strategies on a hand-made corpus, calibrate, the CLI.

The hand-made corpus has streams whose fate under each strategy can be worked out by
hand (the reasoning is next to each expectation), so a wrong number in the sweep's
tables would fail here first.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import io
import json
import re
from collections.abc import Sequence
from itertools import accumulate
from pathlib import Path
from typing import Any

import pytest

from guardstream import Guard
from guardstream.bench.accounting import Shown, account
from guardstream.bench.calibrate import calibrate, format_calibration
from guardstream.bench.corpus import (
    CHUNKINGS,
    CorpusError,
    LabelledSpan,
    LabelledStream,
    NearMiss,
    make_corpus,
    make_streams,
    read_jsonl,
    write_jsonl,
)
from guardstream.bench.latency import LatencyModel, ModelClock
from guardstream.bench.strategies import Checker, ChunkAndCheck, FixedWindow, SentenceBuffer, Settled, Strategy
from guardstream.bench.sweep import (
    block_labels,
    corpus_summary,
    label_by_model,
    label_doses,
    leak_upper_bound,
    reported_labels,
    run_sweep,
    sweep_to_markdown,
)
from guardstream.cli import main
from guardstream.detectors import BUILTIN_LABELS
from guardstream.detectors.base import AnalysisRequest
from guardstream.detectors.dosage import DosageDetector
from guardstream.findings import Finding, Scan, Span


def stream(
    sid: str,
    chunks: Sequence[str],
    gap_ms: float,
    spans: Sequence[tuple[str, str]] = (),
    near: Sequence[tuple[str, str]] = (),
) -> LabelledStream:
    """A stream whose chunks arrive ``gap_ms`` apart from t=0; spans found by their text."""
    text = "".join(chunks)

    def at(value: str) -> tuple[int, int]:
        start = text.index(value)
        return start, start + len(value)

    return LabelledStream(
        id=sid,
        chunks=tuple(chunks),
        delays_ms=(0.0,) + (gap_ms,) * (len(chunks) - 1),
        spans=tuple(LabelledSpan(*at(value), label) for label, value in spans),
        near_misses=tuple(NearMiss(*at(value), kind) for kind, value in near),
    )


CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@example.com"

# A: a card whose four groups arrive 200 ms apart; it is proven complete by " ok." at 1000 ms.
CARD_SLOW = stream("card-slow", ["Card ", "4111 ", "1111 ", "1111 ", "1111", " ok."], 200, [("CREDIT_CARD", CARD)])
# B: an email in BPE-like chunks 20 ms apart.
EMAIL_BPE = stream(
    "email-bpe",
    ["Mail", " jane", ".", "doe", "@", "example", ".", "com", " now", "."],
    20,
    [("EMAIL_ADDRESS", EMAIL)],
)
# C: no violation; two near misses, one of which the patterns preset does redact (a bare
# four-part version is a valid IPv4 address: a pinned known limitation).
NEAR = stream(
    "near",
    list("Costs $12.99 today; version 2.10.4.1 ships."),
    10,
    near=[("price", "$12.99"), ("bare_version", "2.10.4.1")],
)
# D: the same card text as A, one character every 10 ms.
CARD_CHARS = stream("card-chars", list(f"Card {CARD} ok."), 10, [("CREDIT_CARD", CARD)])

HAND_MADE = (CARD_SLOW, EMAIL_BPE, NEAR, CARD_CHARS)


@pytest.fixture(scope="module")
def guard() -> Guard:
    return Guard.load("patterns")


def fates(strategy: Strategy) -> tuple[set[str], set[str], int]:
    """Which streams leaked their violation, which rendered it whole, how many near misses died."""
    leaked: set[str] = set()
    whole: set[str] = set()
    destroyed = 0
    for s in HAND_MADE:
        tally = account(s, strategy.run(s).shown)
        assert tally.withheld_chars == 0, strategy.name
        leaked |= {s.id for f in tally.spans if f.leaked}
        whole |= {s.id for f in tally.spans if f.whole}
        destroyed += len(tally.destroyed)
    return leaked, whole, destroyed


# --------------------------------------------------------------------------- accounting


TWO_CHUNKS = LabelledStream(
    "two",
    ("ab", "cd"),
    (0.0, 100.0),
    spans=(LabelledSpan(1, 3, "X"),),
    near_misses=(NearMiss(3, 4, "n"),),
)


def test_account_partial_raw_span_is_leaked_not_whole() -> None:
    t = account(TWO_CHUNKS, [Shown(0, 0, 2, "ab", True), Shown(100, 2, 4, "<X>", False)])
    assert [(f.leaked, f.whole, f.chars, f.raw_chars) for f in t.spans] == [(True, False, 2, 1)]
    assert t.destroyed == ("n",)  # 'd' was replaced
    assert t.spurious == 0  # the replacement touches the labelled span


def test_account_all_raw_is_whole_and_replaced_is_safe() -> None:
    raw = account(TWO_CHUNKS, [Shown(100, 0, 4, "abcd", True)])
    assert [(f.leaked, f.whole) for f in raw.spans] == [(True, True)]
    assert raw.destroyed == ()
    safe = account(TWO_CHUNKS, [Shown(0, 0, 1, "a", True), Shown(100, 1, 3, "<X>", False), Shown(100, 3, 4, "d", True)])
    assert [(f.leaked, f.whole) for f in safe.spans] == [(False, False)]
    assert safe.destroyed == ()


def test_account_holds_ttft_and_withheld() -> None:
    t = account(TWO_CHUNKS, [Shown(150, 0, 3, "abc", True)])
    # 'ab' arrived at 0 and 'c' at 100; all shown at 150; 'd' never.
    assert sorted(t.holds) == [(50.0, 1), (150.0, 2)]
    assert t.added_ttft_ms == 150.0
    assert t.withheld_chars == 1 and t.shown_chars == 3
    assert t.destroyed == ("n",)  # a near miss never shown was changed too


def test_account_ttft_skips_leading_whitespace_and_counts_replacements() -> None:
    s = LabelledStream("ws", (" ", "x"), (0.0, 40.0))
    assert account(s, [Shown(0, 0, 1, " ", True), Shown(70, 1, 2, "<X>", False)]).added_ttft_ms == 30.0


def test_account_spurious_replacement_outside_spans() -> None:
    t = account(TWO_CHUNKS, [Shown(0, 0, 1, "<Y>", False), Shown(100, 1, 4, "bcd", True)])
    assert t.spurious == 1
    assert [(f.leaked, f.whole) for f in t.spans] == [(True, True)]


@pytest.mark.parametrize(
    ("shown", "problem"),
    [
        ([Shown(100, 1, 4, "bcd", True)], "does not continue"),
        ([Shown(100, 0, 2, "ab", True), Shown(50, 2, 4, "cd", True)], "shown after"),
        ([Shown(50, 0, 4, "abcd", True)], "before it arrived"),
        ([Shown(100, 0, 4, "abXd", True)], "not the source"),
        ([Shown(100, 0, 2, "ab", True), Shown(100, 1, 4, "bcd", True)], "does not continue"),
    ],
)
def test_account_rejects_impossible_output(shown: list[Shown], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        account(TWO_CHUNKS, shown)


def test_leak_upper_bound() -> None:
    assert leak_upper_bound(0, 1000) == pytest.approx(0.003, rel=0.01)  # the rule of three
    assert leak_upper_bound(5, 10) is not None and 0.5 < leak_upper_bound(5, 10) < 1  # type: ignore[operator]
    assert leak_upper_bound(10, 10) == 1.0
    assert leak_upper_bound(0, 0) is None


# --------------------------------------------------------------------------- strategies


def test_stream_first_leaks_every_span_whole(guard: Guard) -> None:
    leaked, whole, destroyed = fates(ChunkAndCheck(Checker(guard), stream_first=True))
    assert leaked == whole == {"card-slow", "email-bpe", "card-chars"}
    assert destroyed == 0  # nothing is changed: the checks come after


def test_fixed_window_16_leaks_what_outgrows_it(guard: Guard) -> None:
    leaked, whole, destroyed = fates(FixedWindow(Checker(guard), 16))
    # card-slow: the chunk that pushes the card's first digit out of the window also
    # completes the card, so the check finds it and the window holds it whole.
    # email-bpe: at "Mail jane.doe@example." the 'j' falls out before ".com" arrives.
    # card-chars: at "...1111 11" (14 digits, failing Luhn) the '4' falls out.
    assert leaked == {"email-bpe", "card-chars"}
    assert whole == set()  # the rest was found and redacted once complete
    assert destroyed == 1  # 2.10.4.1


def test_fixed_window_256_leaks_none_of_short_spans(guard: Guard) -> None:
    leaked, whole, destroyed = fates(FixedWindow(Checker(guard), 256))
    assert leaked == whole == set()
    assert destroyed == 1


def test_chunk_and_check_leaks_a_card_split_across_batches(guard: Guard) -> None:
    checker = Checker(guard)
    # Batches of 4 chunks with 2 of context: "Card 4111 1111 1111 " has no card yet and is
    # shown; then "1111 1111 1111 ok." (context + new) has only 12 digits: never found.
    # The email never stands whole in one batch either.
    leaked, whole, _ = fates(ChunkAndCheck(checker, 4, 2))
    assert leaked == whole == {"card-slow", "email-bpe", "card-chars"}
    # NeMo's defaults: every hand-made stream is under 200 tokens, checked whole at its end.
    leaked, whole, destroyed = fates(ChunkAndCheck(checker))
    assert leaked == whole == set()
    assert destroyed == 1


def test_chunk_and_check_shows_a_batch_only_after_its_check(guard: Guard) -> None:
    shown = ChunkAndCheck(Checker(guard), 4, 2).run(CARD_SLOW).shown
    # Chunks 0-3 are shown when chunk 3 arrives (600 ms), 4-5 at the end (1000 ms).
    assert {(p.start, p.t_ms) for p in shown} == {(0, 600.0), (20, 1000.0)}


def test_sentence_buffering_leaks_none_here(guard: Guard) -> None:
    strategy = SentenceBuffer(Checker(guard))
    leaked, whole, destroyed = fates(strategy)
    assert leaked == whole == set()
    assert destroyed == 1
    # "today; version" has no sentence end: the whole near-miss line waits for its final '.'.
    assert {p.t_ms for p in strategy.run(NEAR).shown} == {float(len(NEAR.chunks) - 1) * 10}


def test_guardstream_unbounded_leaks_none(guard: Guard) -> None:
    leaked, whole, destroyed = fates(Settled(guard, None))
    assert leaked == whole == set()
    assert destroyed == 1


def test_guardstream_50ms_leaks_spans_slower_than_the_budget(guard: Guard) -> None:
    leaked, whole, destroyed = fates(Settled(guard, 50))
    assert leaked == {"card-slow", "email-bpe", "card-chars"}
    # card-slow: every group waits 200 ms for the next, so each is forced out raw 50 ms
    # after it arrives, before the card is known: the user saw all of it.
    # email-bpe and card-chars: the start went out raw, the end was redacted (Retracted).
    assert whole == {"card-slow"}
    assert destroyed == 1


def test_guardstream_budget_at_the_edge(guard: Guard) -> None:
    # card-slow's first group arrives at 200 ms and the card is known at 1000 ms.
    for budget, leaks in ((790, True), (800, False), (1000, False)):
        tally = account(CARD_SLOW, Settled(guard, budget).run(CARD_SLOW).shown)
        assert tally.spans[0].leaked is leaks, budget


def test_guardstream_output_matches_check_on_generated_streams(guard: Guard) -> None:
    unbounded = Settled(guard, None)
    for s in make_streams(seed=7, n=6):
        shown = unbounded.run(s).shown
        assert "".join(p.text for p in shown) == guard.check(s.text).released
        assert not any(f.leaked for f in account(s, shown).spans)


# --------------------------------------------------------------------------- corpus


def test_generated_corpus_is_labelled_and_deterministic(guard: Guard) -> None:
    streams = make_streams(seed=11, n=30)
    assert streams == make_streams(seed=11, n=30)
    planted = {s.label for st in streams for s in st.spans}
    assert planted == set(BUILTIN_LABELS), "plant every built-in label: extend _plant_extended in bench/corpus.py"
    assert [s.chunking for s in streams[:6]] == list(CHUNKINGS) * 2
    for s in streams:
        assert s.text and len(s.delays_ms) == len(s.chunks) and min(s.delays_ms) >= 0
        if s.chunking == "char":
            assert {len(c) for c in s.chunks} == {1}
        if s.chunking == "bpe":
            assert max(len(c) for c in s.chunks) <= 8
        assert s.arrivals_ms()[0] >= 250  # a slower first token
        # Every planted violation is exactly what the preset finds in the whole text.
        found = {(f.start, f.end, f.label) for f in guard.check(s.text).findings}
        assert {(x.start, x.end, x.label) for x in s.spans} <= found


def test_make_streams_single_chunking() -> None:
    assert {s.chunking for s in make_streams(seed=3, n=4, chunking="random")} == {"random"}


def test_benchmark_corpus_is_unchanged() -> None:
    # The throughput benchmarks' answers, as generated before the corpus moved into the package.
    digest = hashlib.sha256()
    for answer in make_corpus(1729, 3) + make_corpus(4242, 3, pii=True):
        digest.update(answer.text.encode())
    assert digest.hexdigest() == "2cd5ee7bb6b7b06979f447a50a044ff6006e25f915d463b5b5e90f1840c7f492"


def test_corpus_round_trip(tmp_path: Path) -> None:
    streams = make_streams(seed=5, n=3)
    path = tmp_path / "c.jsonl"
    with path.open("w", encoding="utf-8") as out:
        assert write_jsonl(streams, out) == 3
    assert read_jsonl(path) == streams


def test_corpus_without_delays_is_paced(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": "x", "chunks": ["Mail ", EMAIL], "spans": []}) + "\n")
    (s,) = read_jsonl(path)
    assert len(s.delays_ms) == 2 and s.delays_ms[0] > 0
    assert read_jsonl(path) == [s]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ({"id": "x", "chunks": ["ab"], "spans": [{"start": 0, "end": 5, "label": "X"}]}, "not a non-empty range"),
        ({"id": "x", "chunks": ["ab"], "near_misses": [{"start": 0, "end": 1}]}, "'kind' must be"),
        ({"id": "x", "chunks": "ab"}, "'chunks' must be"),
    ],
)
def test_corpus_errors_name_the_line(tmp_path: Path, line: dict[str, object], problem: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n" + json.dumps(line) + "\n")
    with pytest.raises(CorpusError, match=f"bad.jsonl:2: .*{problem}"):
        read_jsonl(path)


# --------------------------------------------------------------------------- calibrate


def write_corpus(path: Path, streams: Sequence[LabelledStream]) -> Path:
    with path.open("w", encoding="utf-8") as out:
        write_jsonl(streams, out)
    return path


def test_calibrate_finds_the_edge(guard: Guard) -> None:
    result = calibrate(guard, [CARD_SLOW, EMAIL_BPE], target=0.0, progress=False)
    assert result.met and result.recommended == 800
    by_budget = {p.max_hold_ms: p for p in result.points}
    assert by_budget[790].leaked == 1 and by_budget[800].leaked == 0 and by_budget[None].leaked == 0
    assert [p.max_hold_ms for p in result.points][-1] is None  # unbounded last
    lines = format_calibration(result, "patterns", "hand-made")
    assert lines[-1] == "recommended: budget: {max_hold_ms: 800, max_hold_chars: null, on_budget: release}"


def test_calibrate_allows_the_target_share(guard: Guard) -> None:
    # Half the violations may leak: the email (done 140 ms after it starts) must not,
    # the card may: 150 ms is the smallest grid budget above the email's edge.
    result = calibrate(guard, [CARD_SLOW, EMAIL_BPE], target=0.5, progress=False)
    assert result.met and result.recommended is not None and 120 < result.recommended <= 150


def test_calibrate_with_confidence_needs_enough_violations(guard: Guard) -> None:
    # Two violations, none leaking at 800 ms: the rate is 0 but its 95% upper bound is ~78%.
    strict = calibrate(guard, [CARD_SLOW, EMAIL_BPE], target=0.5, progress=False, confidence=0.95)
    assert not strict.met and strict.recommended is None
    assert not any(strict.passes(p) for p in strict.points)
    lines = format_calibration(strict, "patterns", "hand-made")
    assert lines[-1].startswith("recommended: none:") and "too few" in lines[-1]
    # Twenty copies of the email: no leak at 150 ms, upper bound ~14%, within a 20% target.
    many = [EMAIL_BPE] * 20
    loose = calibrate(guard, many, target=0.2, progress=False, confidence=0.95)
    assert loose.met and loose.recommended is not None and loose.recommended <= 150


def test_cli_calibrate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl", [CARD_SLOW])
    out_json = tmp_path / "curve.json"
    code = main(
        ["calibrate", "--policy", "patterns", "--corpus", str(corpus), "--target-leak", "0", "--json", str(out_json)]
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert out[-1] == "recommended: budget: {max_hold_ms: 800, max_hold_chars: null, on_budget: release}"
    assert json.loads(out_json.read_text())["recommended_max_hold_ms"] == 800


def test_cli_calibrate_unreachable_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A letters-only password after a colon is a pinned miss of the preset: nothing holds it.
    missed = stream("missed", ["password: ", "sunshine", " ok"], 20, [("API_KEY", "sunshine")])
    corpus = write_corpus(tmp_path / "c.jsonl", [missed])
    assert main(["calibrate", "--policy", "patterns", "--corpus", str(corpus)]) == 1
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("recommended: none:")


def test_cli_calibrate_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    assert main(["calibrate", "--policy", "patterns", "--corpus", str(bad)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err
    assert main(["calibrate", "--policy", "no-such-preset"]) == 2
    assert main(["calibrate", "--policy", "patterns", "--target-leak", "1.5"]) == 2
    assert main(["calibrate", "--policy", "patterns", "--confidence", "95"]) == 2


# --------------------------------------------------------------------------- sweep and CLI


def test_sweep_tables_from_the_hand_made_corpus(guard: Guard) -> None:
    sweep = run_sweep("patterns", guard, HAND_MADE, corpus_summary(HAND_MADE, "hand-made", None), progress=False)
    result = sweep.to_dict()
    rows = {s["name"]: s for s in result["strategies"]}
    assert len(rows) == 12
    assert rows["stream first, check after"]["leak_rate"] == 1.0
    assert rows["guardstream, 50 ms"]["leaked"] == 3 and rows["guardstream, 50 ms"]["whole"] == 1
    assert rows["guardstream, unbounded"]["leaked"] == 0
    assert rows["guardstream, unbounded"]["per_label"]["CREDIT_CARD"] == {
        "spans": 2,
        "leaked": 0,
        "whole": 0,
        "leak_rate": 0.0,
        "whole_rate": 0.0,
        "chars_shown_raw_rate": 0.0,
    }
    assert rows["guardstream, 1,000 ms"]["leaked"] == 0
    assert result["recommended"]["max_hold_ms"] == 1000  # the smallest swept budget with no leak
    table = sweep_to_markdown(result)
    assert "| guardstream, 50 ms | 100% (3) | 33% |" in table
    json.dumps(result)  # JSON-ready


def test_cli_bench_sweep_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "sweep", "--policy", "patterns", "--streams", "3", "--out-dir", str(tmp_path), "--no-plot"])
    assert code == 0
    out = capsys.readouterr().out
    assert out.count("\n| guardstream, ") >= 6
    result = json.loads((tmp_path / "sweep_patterns.json").read_text())
    assert result["corpus"]["streams"] == 3 and len(result["strategies"]) == 12
    assert (tmp_path / "sweep_patterns.md").read_text() == out
    assert not (tmp_path / "sweep_patterns.png").exists()


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs the bench extra (matplotlib)")
def test_cli_bench_sweep_plot(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl", HAND_MADE)
    assert main(["bench", "sweep", "--policy", "patterns", "--corpus", str(corpus), "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "sweep_patterns.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(importlib.util.find_spec("tqdm") is None, reason="needs the bench extra (tqdm)")
def test_cli_progress_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl", [CARD_SLOW])
    assert main(["bench", "sweep", "--policy", "patterns", "--corpus", str(corpus), "--progress"]) == 0
    captured = capsys.readouterr()
    assert "stream/s" in captured.err or "it/s" in captured.err
    assert "stream/s" not in captured.out


def test_cli_bench_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.jsonl"
    assert main(["bench", "corpus", "-o", str(path), "--streams", "4", "--seed", "9", "--chunking", "char"]) == 0
    assert "wrote 4 streams" in capsys.readouterr().err
    streams = read_jsonl(path)
    assert streams == make_streams(seed=9, n=4, chunking="char")
    buffer = io.StringIO()
    write_jsonl(streams, buffer)
    assert buffer.getvalue() == path.read_text()


def test_cli_bench_sweep_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "sweep", "--policy", "nope"]) == 2
    assert main(["bench", "sweep", "--policy", "patterns", "--corpus", str(tmp_path / "missing.jsonl")]) == 2
    assert main(["bench", "sweep", "--policy", "patterns", "--streams", "0"]) == 2
    assert "guardstream:" in capsys.readouterr().err


def test_arrivals_are_cumulative_delays() -> None:
    assert CARD_SLOW.arrivals_ms() == list(accumulate(CARD_SLOW.delays_ms)) == [0, 200, 400, 600, 800, 1000]


# --------------------------------------------------------------------------- model time on the clock

_CAPITALISED = re.compile(r"[A-Z][a-z]*")


class _NameSession:
    """Settled up to the first capitalised word not yet analysed; asks once that word is complete."""

    def __init__(self, detector: FakeNames) -> None:
        self._detector = detector
        self._settled = 0
        self._asked = -1
        self._found: list[Finding] = []

    def scan(self, text: str, base: int, final: bool) -> Scan:
        found = tuple(self._found)
        self._found.clear()
        m = _CAPITALISED.search(text, max(self._settled, base) - base)
        self._settled = base + len(text) if m is None else base + m.start()
        return Scan(found, self._settled)

    def request(self, text: str, base: int, final: bool) -> AnalysisRequest | None:
        m = _CAPITALISED.match(text, max(self._settled, base) - base)
        if m is None or (m.end() == len(text) and not final) or base + m.end() <= self._asked:
            return None
        self._asked = base + m.end()
        return AnalysisRequest(m.group(), base + m.start(), base + m.end(), final)

    def deliver(self, request: AnalysisRequest, result: Any) -> None:
        for start, end, label in result:
            self._found.append(Finding(Span(request.base + start, request.base + end), label, self._detector.name, 1.0))
        self._settled = request.upto


class FakeNames:
    """A model-backed detector whose "model" tags Maria and Tom as PERSON; the sweep prices its calls."""

    def __init__(self) -> None:
        self.name = "names"
        self.analysed: list[str] = []

    def open(self) -> _NameSession:
        return _NameSession(self)

    def analyze(self, texts: list[str]) -> list[Any]:
        self.analysed += texts
        return [[(m.start(), m.end(), "PERSON") for m in re.finditer(r"\b(?:Maria|Tom)\b", t)] for t in texts]

    def submit(self, request: AnalysisRequest) -> asyncio.Future[Any]:
        raise NotImplementedError("the sweep calls the model synchronously")


MODEL_MS = 30.0
# The name is complete when " and" arrives at 200 ms; the model answers 30 ms later.
NAME_BPE = stream("name-bpe", ["hi ", "Maria", " and", " more", " text."], 100, [("PERSON", "Maria")])
NAME_CHARS = stream(
    "name-chars", list("hi Maria and Tom wrote more text."), 10, [("PERSON", "Maria"), ("PERSON", "Tom")]
)


@pytest.fixture
def names_guard() -> Guard:
    return Guard(Guard.from_dict({"detectors": []}).policy, [FakeNames()])


@pytest.fixture
def clock() -> ModelClock:
    return ModelClock({"names": LatencyModel(MODEL_MS, 0.0)})


def test_guardstream_pays_the_model_time(names_guard: Guard, clock: ModelClock) -> None:
    run = Settled(names_guard, None, clock).run(NAME_BPE)
    tally = account(NAME_BPE, run.shown)
    assert not tally.spans[0].leaked
    # 'hi ' is released at once; the name when the model's answer is in: 200 + 30 ms.
    assert [(p.t_ms, p.text) for p in run.shown[:2]] == [(0.0, "hi "), (230.0, "<PERSON>")]
    assert (130.0, 5) in tally.holds  # arrived at 100, shown at 230: 100 ms of right context + the model
    assert tally.added_ttft_ms == 0.0
    assert (run.model_calls, run.model_ms) == (1, MODEL_MS)


def test_a_budget_shorter_than_the_model_leaks(names_guard: Guard, clock: ModelClock) -> None:
    # The name arrives at 100 ms and is known at 230 ms: a 110 ms budget forces it out
    # raw at 210 ms, while the model is still working; 130 ms gets the answer in time.
    for budget, leaks in ((110, True), (129, True), (130, False), (150, False)):
        tally = account(NAME_BPE, Settled(names_guard, budget, clock).run(NAME_BPE).shown)
        assert tally.spans[0].leaked is leaks, budget
    # With the model's time left off the clock, 110 ms would look safe.
    free = ModelClock({"names": LatencyModel(0.0, 0.0)})
    assert not account(NAME_BPE, Settled(names_guard, 110, free).run(NAME_BPE).shown).spans[0].leaked


def test_stream_first_leaks_the_name(names_guard: Guard, clock: ModelClock) -> None:
    run = ChunkAndCheck(Checker(names_guard, clock), stream_first=True).run(NAME_BPE)
    assert [(f.leaked, f.whole) for f in account(NAME_BPE, run.shown).spans] == [(True, True)]
    assert run.model_calls == 1  # the check after the fact costs the model, not the user


def test_a_baseline_check_pays_the_model_time(names_guard: Guard, clock: ModelClock) -> None:
    run = SentenceBuffer(Checker(names_guard, clock)).run(NAME_BPE)
    # One sentence, complete at the end of the stream (400 ms), shown when its check is done.
    assert {p.t_ms for p in run.shown} == {400.0 + MODEL_MS}
    assert not account(NAME_BPE, run.shown).spans[0].leaked
    assert (run.checks, run.model_calls, run.model_ms) == (1, 1, MODEL_MS)


def test_a_busy_checker_coalesces_chunks(names_guard: Guard, clock: ModelClock) -> None:
    # One character every 10 ms, one check 30 ms: a check covers what arrived while the
    # previous one ran, and every character waits for the check after its arrival.
    run = FixedWindow(Checker(names_guard, clock), 4, 8).run(NAME_CHARS)
    tally = account(NAME_CHARS, run.shown)
    assert run.checks <= len(NAME_CHARS.chunks) // 3 + 2
    assert run.model_calls == run.checks and run.model_ms == MODEL_MS * run.checks
    assert min(hold for hold, _ in tally.holds) >= MODEL_MS
    assert tally.withheld_chars == 0 and not any(f.leaked for f in tally.spans)
    # Without model time the same window checks on every chunk that releases something.
    free = FixedWindow(Checker(names_guard, ModelClock({"names": LatencyModel(0.0, 0.0)})), 4, 8).run(NAME_CHARS)
    assert free.checks == len(NAME_CHARS.chunks) - 4 + 1


def test_sweep_reports_the_model_accounting(names_guard: Guard, clock: ModelClock) -> None:
    streams = (NAME_BPE, NAME_CHARS)
    sweep = run_sweep("names", names_guard, streams, corpus_summary(streams, "hand-made", None), clock=clock)
    result = sweep.to_dict()
    rows = {s["name"]: s for s in result["strategies"]}
    assert rows["stream first, check after"]["leaked"] == 3
    assert rows["guardstream, unbounded"]["leaked"] == 0
    assert rows["guardstream, unbounded"]["model_ms"] == MODEL_MS * rows["guardstream, unbounded"]["model_calls"]
    assert result["model"]["latency_models"]["names"]["fixed_ms"] == MODEL_MS
    assert result["model"]["processes"] == 1  # a detector beside the policy stays in this process
    assert "charged to the clock" in result["clock"]
    table = sweep_to_markdown(result)
    assert "model calls / stream |" in table and "30.00 ms + 0.0 µs per character" in table
    # The labels are kept: only an NER detector's kinds are relabelled by its model.
    assert label_by_model(names_guard, streams, clock) == (list(streams), None)
    json.dumps(result)


def test_sweep_in_processes_matches_one_process(guard: Guard) -> None:
    def figures(workers: int) -> list[dict[str, Any]]:
        sweep = run_sweep("patterns", guard, HAND_MADE, corpus_summary(HAND_MADE, "h", None), workers=workers)
        return [
            {k: v for k, v in s.items() if k not in ("cpu_s", "chunks_per_s")} for s in sweep.to_dict()["strategies"]
        ]

    assert figures(2) == figures(1)


def test_patterns_sweep_has_no_model_columns(guard: Guard) -> None:
    result = run_sweep("patterns", guard, HAND_MADE[:1], corpus_summary(HAND_MADE[:1], "h", None)).to_dict()
    assert "model" not in result and "model calls" not in sweep_to_markdown(result)
    assert all(s["model_calls"] == 0 for s in result["strategies"])


def test_names_corpus_plants_people_and_places() -> None:
    plain = make_streams(seed=13, n=6)
    named = make_streams(seed=13, n=6, names=True)
    assert plain == make_streams(seed=13, n=6, names=False)
    kinds = {x.label for s in named for x in s.spans}
    assert {"PERSON", "LOCATION"} <= kinds and not {"PERSON", "LOCATION"} & {x.label for s in plain for x in s.spans}
    for s in named:
        for x in s.spans:
            if x.label in ("PERSON", "LOCATION"):
                assert s.text[x.start : x.end][:1].isupper()


@pytest.mark.skipif(importlib.util.find_spec("presidio_analyzer") is None, reason="needs the ner extra")
def test_ner_labels_are_what_the_model_tags_on_the_whole_text() -> None:
    guard = Guard.load("pii")
    clock = ModelClock.for_guard(guard.detectors, latency=LatencyModel(5.0, 0.02))
    s = stream(
        "ner",
        ["Maria Garcia", " flew to", " Berlin", " with", " the", " Docker", " team", "."],
        40,
        [("PERSON", "Maria Garcia"), ("LOCATION", "Berlin"), ("PERSON", "team")],
    )
    (labelled,), counts = label_by_model(guard, [s], clock)
    assert counts is not None and counts["planted"] == 3
    assert sum(counts["missed_by_model"].values()) == 1  # 'team' is no name to the model: not a violation
    assert {(s.text[x.start : x.end], x.label) for x in labelled.spans} == {
        ("Maria Garcia", "PERSON"),
        ("Berlin", "LOCATION"),
    }
    first = ChunkAndCheck(Checker(guard, clock), stream_first=True).run(labelled)
    assert all(f.leaked for f in account(labelled, first.shown).spans)
    settled = Settled(guard, None, clock).run(labelled)
    assert not any(f.leaked for f in account(labelled, settled.shown).spans)
    assert settled.model_calls >= 1 and settled.model_ms > 0


# --------------------------------------------------------------------------- a policy that blocks: dosage

DOSE = "400 mg of ibuprofen every 6 hours"
# The statement starts with " 400" at 80 ms and is known once "." has arrived at 220 ms
# (until then " as needed" could still follow): a budget of 140 ms holds it, 130 does not.
DOSE_BPE = stream(
    "dose-bpe",
    ["For", " pain", ",", " take", " 400", " mg", " of", " ibuprofen", " every", " 6", " hours", ".", " Rest", "."],
    20,
    [("DOSAGE", DOSE)],
)
# No dose: " 200" may still become "200 mg of ibuprofen" and waits 1.5 s for " g".
FLOUR_STALL = LabelledStream(
    "flour-stall",
    ("Mix", " 200", " g", " of", " flour", " and", " rest", "."),
    (0.0, 20.0, 1500.0, 20.0, 20.0, 20.0, 20.0, 20.0),
    near_misses=(NearMiss(4, 18, "flour_grams"),),
)
DOSE_LABELS = frozenset({"DOSAGE", "DOSAGE_OVER_MAX"})


@pytest.fixture(scope="module")
def dosage() -> Guard:
    return Guard.load("dosage")


def dose_fate(strategy: Strategy, s: LabelledStream = DOSE_BPE) -> tuple[bool, bool, int, int]:
    """(leaked, whole, characters shown, characters lost before the ideal end)."""
    tally = account(s, strategy.run(s).shown, DOSE_LABELS)
    leaked = any(f.leaked for f in tally.spans)
    whole = any(f.whole for f in tally.spans)
    return leaked, whole, tally.shown_chars, tally.lost_chars


def test_block_labels_and_reported_labels(dosage: Guard, guard: Guard) -> None:
    assert block_labels(dosage) == DOSE_LABELS
    assert reported_labels(dosage) == DOSE_LABELS
    assert block_labels(guard) == frozenset()
    assert reported_labels(guard) == frozenset(BUILTIN_LABELS)


def test_a_blocked_dose_is_cut_at_its_start(dosage: Guard) -> None:
    start = DOSE_BPE.text.index(DOSE)  # the ideal end: "For pain, take " is shown, then the block
    assert dosage.check(DOSE_BPE.text).released == DOSE_BPE.text[:start]
    # Stream first shows everything: the dose whole, nothing lost.
    assert dose_fate(ChunkAndCheck(Checker(dosage), stream_first=True)) == (True, True, len(DOSE_BPE.text), 0)
    # guardstream holds from "400" and blocks there once the statement is known.
    assert dose_fate(Settled(dosage, None)) == (False, False, start, 0)
    assert dose_fate(Settled(dosage, 140)) == (False, False, start, 0)
    # 130 ms forces "400" out at 210 ms, before "." settles the statement: a leak, then the block.
    assert dose_fate(Settled(dosage, 130)) == (True, False, start + 3, 0)
    # Blocking on budget instead stops at the same place, before anything of the dose.
    assert dose_fate(Settled(dosage, 50, on_budget="block")) == (False, False, start, 0)
    # The baselines block at the statement too; NeMo-style batches of 4 chunks show " 400 mg"
    # first (no drug in the batch yet), then block at "of ibuprofen...".
    for strategy in (FixedWindow(Checker(dosage), 16), SentenceBuffer(Checker(dosage))):
        assert dose_fate(strategy) == (False, False, start, 0), strategy.name
    assert dose_fate(ChunkAndCheck(Checker(dosage), 4, 2)) == (True, False, start + len(" 400 mg") - 1, 0)


def test_a_budget_that_blocks_cuts_an_answer_with_no_dose(dosage: Guard) -> None:
    # The 1.5 s stall after " 200": releasing on budget shows it (no violation, nothing lost);
    # blocking on budget stops the answer there: 24 characters lost, the near miss destroyed.
    stalled = account(FLOUR_STALL, Settled(dosage, 1000).run(FLOUR_STALL).shown, DOSE_LABELS)
    assert (stalled.lost_chars, stalled.cut_early, stalled.destroyed) == (0, False, ())
    blocked = account(FLOUR_STALL, Settled(dosage, 1000, on_budget="block").run(FLOUR_STALL).shown, DOSE_LABELS)
    assert (blocked.shown_chars, blocked.lost_chars, blocked.cut_early) == (4, 24, True)
    assert blocked.destroyed == ("flour_grams",)
    assert Settled(dosage, 1000, on_budget="block").name == "guardstream, 1,000 ms, block on budget"


def test_near_misses_after_the_ideal_end_are_not_counted() -> None:
    s = LabelledStream(
        "cut",
        ("ab", "cd", "ef"),
        (0.0, 10.0, 10.0),
        spans=(LabelledSpan(2, 4, "X"),),
        near_misses=(NearMiss(0, 1, "before"), NearMiss(4, 6, "after")),
    )
    blocked = [Shown(10, 0, 2, "ab", True)]
    t = account(s, blocked, {"X"})
    assert (t.ideal_end, t.lost_chars, t.near_misses, t.destroyed) == (2, 0, 1, ())
    # Without X blocking, the same output lost what a correct guard shows, and the near miss after it.
    t = account(s, blocked)
    assert (t.ideal_end, t.lost_chars, t.near_misses, t.destroyed, t.cut_early) == (6, 4, 2, ("after",), True)


def test_label_doses_uses_the_detectors_span_and_drops_what_the_policy_cannot_report(dosage: Guard) -> None:
    text = DOSE_BPE.text
    start = text.index("400")
    planted = LabelledStream(
        "p",
        DOSE_BPE.chunks,
        DOSE_BPE.delays_ms,
        # The planted span stops short of the frequency; "Rest" is no dose; the card label
        # is one the dosage preset does not report.
        spans=(
            LabelledSpan(start, start + len("400 mg of ibuprofen"), "DOSAGE_OVER_MAX"),
            LabelledSpan(text.index("Rest"), text.index("Rest") + 4, "DOSAGE"),
            LabelledSpan(0, 3, "CREDIT_CARD"),
        ),
    )
    (labelled,), counts = label_doses(dosage, [planted])
    assert counts is not None
    assert (counts["planted"], counts["labelled"], counts["missed_by_detector"]) == (2, 1, 1)
    assert counts["labelled_otherwise"] == 1 and counts["found_not_planted"] == 0
    assert {(x.start, x.end, x.label) for x in labelled.spans} == {
        (start, start + len(DOSE), "DOSAGE"),
        (0, 3, "CREDIT_CARD"),
    }
    sweep = run_sweep("dosage", dosage, [planted], corpus_summary([planted], "hand-made", None), progress=False)
    assert sweep.corpus["not_reported"] == {"CREDIT_CARD": 1}
    assert sweep.corpus["spans"] == 1 and sweep.corpus["dosage"]["labels"] == {"DOSAGE": 1}


def test_dosage_sweep_tables(dosage: Guard) -> None:
    streams = (DOSE_BPE, FLOUR_STALL)
    result = run_sweep("dosage", dosage, streams, corpus_summary(streams, "hand-made", None), progress=False).to_dict()
    rows = {s["name"]: s for s in result["strategies"]}
    assert len(rows) == 17  # the preset blocks on budget: five more guardstream rows
    assert result["block_labels"] == ["DOSAGE", "DOSAGE_OVER_MAX"]
    assert rows["stream first, check after"]["leaked"] == 1
    assert rows["guardstream, unbounded"]["leaked"] == 0 and rows["guardstream, unbounded"]["cut_early"] == 0
    assert rows["guardstream, 1,000 ms"]["cut_early"] == 0
    blocking = rows["guardstream, 1,000 ms, block on budget"]
    assert (blocking["family"], blocking["leaked"], blocking["cut_early"]) == ("guardstream, block on budget", 0, 1)
    assert blocking["lost_chars"] == 24 and blocking["near_misses_destroyed"] == 1
    assert result["recommended"]["strategy"] == "guardstream, 250 ms"  # the release family only
    table = sweep_to_markdown(result)
    assert "answers cut early | text lost |" in table
    assert "| guardstream, 1,000 ms, block on budget | 0% (0) |" in table
    # The patterns preset blocks on nothing: no such columns.
    assert "cut early" not in sweep_to_markdown(
        run_sweep("patterns", Guard.load("patterns"), HAND_MADE[:1], corpus_summary(HAND_MADE[:1], "h", None)).to_dict()
    )
    json.dumps(result)


def test_dose_corpus_is_labelled_as_the_detector_finds_it(dosage: Guard) -> None:
    plain = make_streams(seed=17, n=9)
    assert plain == make_streams(seed=17, n=9, doses=False)
    dosed = make_streams(seed=17, n=9, doses=True)
    assert dosed == make_streams(seed=17, n=9, doses=True)
    assert not {x.label for s in plain for x in s.spans} & DOSE_LABELS
    planted = [x for s in dosed for x in s.spans if x.label in DOSE_LABELS]
    assert 5 <= len(planted) <= 9  # at most one per answer, in most answers
    kinds = {n.kind for s in dosed for n in s.near_misses}
    assert {"flour_grams", "battery_mah", "tablets_without_drug"} & kinds
    detector = DosageDetector("dosage", "all")
    for s in dosed:
        found = {(f.start, f.end, f.label) for f in detector.open().scan(s.text, 0, True).findings}
        # The planted statements are exactly what the detector finds on the whole answer.
        assert {(x.start, x.end, x.label) for x in s.spans if x.label in DOSE_LABELS} == found, s.id
    relabelled, counts = label_doses(dosage, dosed)
    assert relabelled == dosed and counts is not None and counts["missed_by_detector"] == 0
