"""The ONNX classifier runtime, on a tiny model the tests build with ``onnx.helper``.

The model sums a per-token score vector over the attention mask: the word "bad" adds
+6 to the TOXIC logit, "scam" +6 to the FRAUD logit, every other token nothing. So a
sentence with "bad" has P(TOXIC) ≈ 0.99 (softmax over three logits), one without it 1/3:
exactly what the runtime must find, unit by unit, held until each unit is complete.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, pre_tokenizers

from guardstream import Blocked, Guard, Outcome, PolicyError, Released
from guardstream.detectors.onnx import OnnxClassifier, UnitSplitter
from tests.helpers import CHUNKINGS, chunked, split

WORDS = ["[PAD]", "[UNK]", "bad", "scam", "good", "this", "is", "fine", "a", "day", "all", "stuff", "."]
LABELS = ["SAFE", "TOXIC", "FRAUD"]


def _released(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, Released))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tok.normalizer = None
    tok.save(str(folder / "tokenizer.json"))

    table = np.zeros((len(WORDS), len(LABELS)), dtype=np.float32)
    table[vocab["bad"], 1] = 6.0
    table[vocab["scam"], 2] = 6.0
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "input_ids"], ["scores"], axis=0),  # [B, S, 3]
            helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["maskf", "axis2"], ["mask3"]),  # [B, S, 1]
            helper.make_node("Mul", ["scores", "mask3"], ["masked"]),
            helper.make_node("ReduceSum", ["masked", "axis1"], ["logits"], keepdims=0),  # [B, 3]
        ],
        "tiny_classifier",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(LABELS)])],
        initializer=[
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "model.onnx"))
    return folder


def _policy(folder: Path, **detector: Any) -> dict[str, Any]:
    det = {
        "type": "onnx",
        "name": "tox",
        "model": str(folder / "model.onnx"),
        "tokenizer": str(folder / "tokenizer.json"),
        "labels": LABELS,
        "thresholds": {"TOXIC": 0.9, "FRAUD": 0.9},
        "actions": {"FRAUD": {"action": "block", "message": "Blocked: fraud."}},
    }
    det.update(detector)
    return {"budget": {"max_hold_ms": None, "max_hold_chars": None}, "detectors": [det]}


TEXT = "This is fine. This is bad stuff. All good."
EXPECTED = "This is fine. <TOXIC> All good."


def test_whole_text_is_judged_sentence_by_sentence(tiny: Path) -> None:
    outcome = Guard.from_dict(_policy(tiny)).check(TEXT)
    assert outcome.kind == "completed"
    assert outcome.released == EXPECTED
    (finding,) = outcome.findings
    assert (finding.label, TEXT[finding.start : finding.end]) == ("TOXIC", "This is bad stuff.")
    assert finding.score == pytest.approx(np.exp(6) / (np.exp(6) + 2), rel=1e-4)


@pytest.mark.parametrize("chunking", sorted(CHUNKINGS))
async def test_streamed_chunkings_match_the_whole_text(tiny: Path, chunking: str) -> None:
    guard = Guard.from_dict(_policy(tiny))
    outcome = await guard.run(chunked(TEXT, CHUNKINGS[chunking]))
    assert outcome.released == EXPECTED


def test_a_sentence_is_held_until_it_is_complete_and_classified(tiny: Path) -> None:
    guard = Guard.from_dict(_policy(tiny))
    w = guard.window()
    assert _released(w.feed("This is fine", 0.0)) == ""
    assert w.requests() == []  # no unit is complete
    w.feed(".", 1.0)
    assert w.requests() == []  # "fine." could still be "fine.5": the space proves the end
    w.feed(" This is b", 2.0)
    ((index, request),) = w.requests()
    assert request.text == "This is fine."
    (detector,) = guard.detectors
    assert isinstance(detector, OnnxClassifier)
    assert _released(w.deliver(index, request, detector.analyze([request.text])[0], 3.0)) == "This is fine."
    w.feed("ad stuff. All", 4.0)
    assert _released(guard.settle(w, 5.0)) == " <TOXIC>"
    assert _released(w.finish(6.0) + guard.settle(w, 6.0)) == " All"


def test_block_keeps_what_was_released_and_the_message(tiny: Path) -> None:
    guard = Guard.from_dict(_policy(tiny))
    outcome = guard.check("All good. This is a scam. More text follows.")
    assert outcome.kind == "blocked"
    assert outcome.released == "All good. "
    assert outcome.message == "Blocked: fraud."
    assert outcome.withheld_chars == len("This is a scam. More text follows.")


async def test_streamed_block_reports_released_text_and_message(tiny: Path) -> None:
    guard = Guard.from_dict(_policy(tiny))
    events = []
    async with guard.stream(chunked("All good. This is a scam. More text follows.", [3])) as stream:
        async for event in stream:
            events.append(event)
    blocked = [e for e in events if isinstance(e, Blocked)]
    assert len(blocked) == 1
    outcome = events[-1]
    assert isinstance(outcome, Outcome)
    assert (outcome.kind, outcome.released, outcome.message) == ("blocked", "All good. ", "Blocked: fraud.")
    assert _released(events) == "All good. "


def test_sigmoid_activation_scores_labels_independently(tiny: Path) -> None:
    guard = Guard.from_dict(_policy(tiny, activation="sigmoid", thresholds={"TOXIC": 0.99, "FRAUD": 0.99}))
    outcome = guard.check("bad scam. fine.")
    # sigmoid(6) = 0.9975 for both labels; softmax would have split the mass between them.
    assert sorted(f.label for f in outcome.findings) == ["FRAUD", "TOXIC"]


def test_window_units_ignore_sentences(tiny: Path) -> None:
    text = "good day " * 6 + "bad stuff " + "good day " * 6
    guard = Guard.from_dict(_policy(tiny, unit="window", window_chars=20))
    outcome = guard.check(text)
    (finding,) = outcome.findings
    assert "bad" in text[finding.start : finding.end]
    assert finding.end - finding.start <= 20


def test_runaway_sentence_is_cut_at_max_unit_chars(tiny: Path) -> None:
    guard = Guard.from_dict(_policy(tiny, max_unit_chars=32))
    w = guard.window()
    w.feed("good day " * 10, 0.0)  # 90 characters, no sentence end
    ((index, request),) = w.requests()
    assert 0 < request.upto < 90  # the words after the last cut wait for more text
    units = UnitSplitter("sentence", max_unit_chars=32).units(request.text)
    assert len(units) >= 2 and all(b - a <= 32 for a, b in units)
    (detector,) = guard.detectors
    assert isinstance(detector, OnnxClassifier)
    assert _released(w.deliver(index, request, detector.analyze([request.text])[0], 1.0)) == request.text


def test_splitter_units_and_completeness() -> None:
    s = UnitSplitter("sentence")
    text = "One. Two? Three!\nFour 3.5 five. Six"
    assert [text[a:b] for a, b in s.units(text)] == ["One.", "Two?", "Three!", "Four 3.5 five.", "Six"]
    assert s.complete_end("One. Two", 0, final=False) == len("One.")
    assert s.complete_end("One.", 0, final=False) == 0
    assert s.complete_end("One.", 0, final=True) == 4
    assert s.complete_end("- item one\n- item tw", 0, final=False) == len("- item one\n")
    assert s.units("  \n - \n") == []  # no words, nothing to judge
    # A title, a common abbreviation or an initial does not end a sentence.
    text = "You can reach Dr. Sato, e.g. via J. Smith. Is it A? Yes."
    assert [text[a:b] for a, b in s.units(text)] == ["You can reach Dr. Sato, e.g. via J. Smith.", "Is it A?", "Yes."]


async def test_concurrent_streams_are_batched(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = OnnxClassifier.analyze

    def counting(self: OnnxClassifier, texts: list[str]) -> Any:
        calls.append(len(texts))
        return original(self, texts)

    monkeypatch.setattr(OnnxClassifier, "analyze", counting)
    guard = Guard.from_dict(_policy(tiny, max_wait_ms=5))
    texts = [f"This is fine. This is bad stuff {i}. All good." for i in range(30)]
    outcomes = await asyncio.gather(*(guard.run(chunked(t, [4], delay_s=0.001)) for t in texts))
    assert [o.released for o in outcomes] == ["This is fine. <TOXIC> All good."] * 30
    assert sum(calls) >= 60
    assert len(calls) < sum(calls), f"no batching: {calls}"


def test_threads_setting_reaches_the_session(tiny: Path) -> None:
    guard = Guard.from_dict(_policy(tiny, threads=2))
    (detector,) = guard.detectors
    assert isinstance(detector, OnnxClassifier)
    model = detector._model()
    assert model.session.get_session_options().intra_op_num_threads == 2
    assert os.environ.get("ORT_DISABLE_TELEMETRY") == "1"


def test_label_count_mismatch_is_a_detector_error_outcome(tiny: Path) -> None:
    policy = _policy(tiny, labels=["SAFE", "TOXIC"], thresholds={"TOXIC": 0.5}, actions={})
    outcome = Guard.from_dict(policy).check("This is fine. More.")
    assert outcome.kind == "detector_error"
    assert outcome.released == ""
    assert "3 scores per text but 2 labels" in (outcome.error or "")


def test_broken_onnx_policies_name_the_key(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        Guard.from_dict(_policy(tiny, model=str(tmp_path / "nope.onnx"), threads=0), "p.yaml")
    assert str(info.value).splitlines() == [
        "p.yaml: detectors[0].threads: Input should be greater than or equal to 1",
        f"p.yaml: detectors[0].model: model file {str(tmp_path / 'nope.onnx')!r} does not exist",
    ]
    with pytest.raises(PolicyError) as info:
        Guard.from_dict(_policy(tiny, thresholds={"TOXC": 0.5}), "p.yaml")
    assert str(info.value).startswith("p.yaml: detectors[0]: thresholds: 'TOXC' is not one of the labels")


def test_relative_model_paths_start_at_the_policy_file(tiny: Path, tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "m.onnx").write_bytes((tiny / "model.onnx").read_bytes())
    (folder / "t.json").write_text((tiny / "tokenizer.json").read_text())
    (folder / "p.yaml").write_text(
        "detectors:\n"
        "  - type: onnx\n    model: m.onnx\n    tokenizer: t.json\n"
        "    labels: [SAFE, TOXIC, FRAUD]\n    thresholds: {TOXIC: 0.9}\n"
    )
    outcome = Guard.from_yaml(folder / "p.yaml").check("bad. good.")
    assert outcome.released == "<TOXIC> good."


def test_chunk_split_never_changes_units() -> None:
    s = UnitSplitter("sentence")
    text = "A b c. D e f! G h i? J"
    for sizes in ([1], [2], [5, 1, 3]):
        done = 0
        seen = ""
        for piece in split(text, sizes):
            seen += piece
            done = s.complete_end(seen, 0, final=False)
            assert done == 0 or seen[done - 1] in ".!?"
        assert done == len("A b c. D e f! G h i?")


def test_warmup_loads_the_model_before_any_stream(tiny: Path) -> None:
    from guardstream.detectors import onnx as onnx_module

    onnx_module._MODELS.clear()
    guard = Guard.from_dict(_policy(tiny, threads=3))
    assert not any(key[2] == 3 for key in onnx_module._MODELS)
    guard.warmup()
    assert any(key[2] == 3 for key in onnx_module._MODELS)
