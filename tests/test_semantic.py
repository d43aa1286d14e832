"""Semantic policy categories with the shipped encoder (models/all-minilm-l6-v2-int8).

The pack's measured precision and recall live in benchmarks/README.md (from
``python -m benchmarks.semantic_eval``); here the held-out half is replayed to pin them
(deterministic: the same int8 model on the same sentences), and streams show the
detector's behaviour end to end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import semantic_eval
from guardstream import Guard, Outcome, PolicyError, Released
from guardstream.detectors.semantic import SemanticDetector, find_encoder
from guardstream.policy import load_pack
from tests.helpers import CHUNKINGS, chunked, collect

GUARD = Guard.from_dict(
    {
        "name": "semantic-test",
        "budget": {"max_hold_ms": None, "max_hold_chars": None},
        "detectors": [
            {
                "type": "semantic",
                "action": {"action": "block", "message": "Blocked by the semantic policy."},
                "actions": {"INVESTMENT_ADVICE": "flag"},
            }
        ],
    },
    "semantic-test",
)


def _detector(guard: Guard = GUARD) -> SemanticDetector:
    (detector,) = guard.detectors
    assert isinstance(detector, SemanticDetector)
    return detector


def test_the_encoder_ranks_meaning_not_words() -> None:
    a, b, c = _detector().embed(
        ["How do I reset my password?", "I forgot my login password.", "The weather is nice today."]
    )
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-3)
    assert float(a @ b) > float(a @ c) + 0.3


def test_the_shipped_pack_has_six_calibrated_categories() -> None:
    pack = load_pack("default")
    assert [c.label for c in pack] == [
        "VIOLENT_THREAT",
        "WEAPON_INSTRUCTIONS",
        "SELF_HARM_ENCOURAGEMENT",
        "HARASSMENT",
        "CREDENTIAL_REQUEST",
        "INVESTMENT_ADVICE",
    ]
    for category in pack:
        assert len(category.examples) >= 12 and len(category.counter_examples) >= 8
        assert category.threshold != 0.5, f"{category.label} still has the placeholder threshold"


def test_heldout_precision_and_recall_stay_where_they_were_measured() -> None:
    results = semantic_eval.evaluate("default")
    micro = results["heldout_micro"]
    # benchmarks/README.md reports the exact numbers; a change to the model, the pack or
    # the scoring that costs more than a few points fails here.
    assert micro["precision"] >= 0.82, semantic_eval.table(results)
    assert micro["recall"] >= 0.70, semantic_eval.table(results)
    benign = results["heldout_benign_flagged"]
    assert benign["flagged"] <= 6, semantic_eval.table(results)


CASES = [
    # (text, labels the stream must report)
    ("Please reply with the verification code we just texted to your phone.", {"CREDENTIAL_REQUEST"}),
    ("You can reset your password yourself from the sign-in page.", set()),
    ("Put all of your savings into that one stock today, it cannot lose.", {"INVESTMENT_ADVICE"}),
    ("Index funds spread risk across many companies at a low cost.", set()),
    ("Preheat the oven to 200 degrees and bake the bread for forty minutes.", set()),
]


@pytest.mark.parametrize(("text", "labels"), CASES)
def test_cases(text: str, labels: set[str]) -> None:
    outcome = GUARD.check("Here is my answer. " + text + " Thanks for asking.")
    assert {f.label for f in outcome.findings} == labels


@pytest.mark.parametrize("chunking", ["per-char", "bpe-like", "random-1"])
async def test_block_mid_stream_keeps_what_was_released(chunking: str) -> None:
    text = (
        "Happy to help with your account today. "
        "To finish the check, tell me the one-time code from the text message we sent you. "
        "After that everything will work again."
    )
    events = await collect(GUARD, chunked(text, CHUNKINGS[chunking]))
    outcome = events[-1]
    assert isinstance(outcome, Outcome)
    assert outcome.kind == "blocked"
    assert outcome.message == "Blocked by the semantic policy."
    assert outcome.released == "Happy to help with your account today. "
    assert "".join(e.text for e in events if isinstance(e, Released)) == outcome.released
    (finding,) = outcome.findings
    assert finding.label == "CREDENTIAL_REQUEST"


def test_inline_categories_extend_the_pack(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "detectors:\n"
        "  - type: semantic\n"
        "    pack: null\n"
        "    categories:\n"
        "      - label: REFUND_PROMISE\n"
        "        threshold: 0.6\n"
        "        examples: ['We will refund you in full, guaranteed.', 'You will get all your money back.']\n"
        "        counter_examples: ['Refunds follow the published returns policy.']\n"
    )
    guard = Guard.from_yaml(policy)
    outcome = guard.check("Hello. I promise you'll get every cent of your money back. Bye.")
    assert [f.label for f in outcome.findings] == ["REFUND_PROMISE"]
    assert "<REFUND_PROMISE>" in outcome.released
    assert guard.check("Refunds are handled under the published returns policy.").findings == ()


def test_thresholds_and_labels_select_categories() -> None:
    guard = Guard.from_dict(
        {"detectors": [{"type": "semantic", "labels": ["CREDENTIAL_REQUEST"], "thresholds": {"CREDENTIAL_REQUEST": 1}}]}
    )
    assert _detector(guard).labels == ("CREDENTIAL_REQUEST",)
    assert guard.check("Send me your password now.").findings == ()  # a threshold of 1 never fires


def test_broken_semantic_policies_name_the_file_and_key(tmp_path: Path) -> None:
    pack = tmp_path / "pack.yaml"
    pack.write_text("categories:\n  - label: X_Y\n    threshold: 2\n    examples: [a]\n")
    with pytest.raises(PolicyError) as info:
        Guard.from_dict({"detectors": [{"type": "semantic", "pack": str(pack)}]}, "p.yaml")
    assert str(info.value) == (
        f"p.yaml: detectors[0]: category pack {str(pack)!r}: categories[0].threshold: "
        "Input should be less than or equal to 1"
    )
    with pytest.raises(PolicyError) as info:
        Guard.from_dict({"detectors": [{"type": "semantic", "thresholds": {"THREATS": 0.5}}]}, "p.yaml")
    assert "thresholds: 'THREATS' is not a category; categories: VIOLENT_THREAT," in str(info.value)
    with pytest.raises(PolicyError) as info:
        Guard.from_dict({"detectors": [{"type": "semantic", "encoder": "./no-such-encoder"}]}, "p.yaml")
    assert "encoder: no encoder './no-such-encoder' (model.onnx + tokenizer.json) in:" in str(info.value)


def test_encoder_is_found_by_name_and_by_path() -> None:
    folder = find_encoder("all-minilm-l6-v2-int8")
    assert (folder / "model.onnx").is_file()
    assert find_encoder(str(folder)) == folder
