"""Calibrate and measure the semantic category pack on the project's labelled sentences.

Run::

    python -m benchmarks.semantic_eval [--pack default] [--write-thresholds]

1. Every sentence of ``benchmarks/semantic_set/calibration.jsonl`` and ``heldout.jsonl``
   is scored against every category of the pack (best similarity to an example, and to
   a counter-example) with the shipped encoder, the same code the detector runs.
2. Per category, the threshold is chosen on the calibration half only: the one (on a
   0.005 grid) with the best F1 there, the higher one on a tie, among those that flag at
   most ``--max-ordinary`` (1) of its benign sentences and the benchmark prose corpus's
   sentences, which join the calibration half as negatives. A sentence counts for a
   category only if that category is its nearest (see the detector's rule), so the
   thresholds can be chosen one category at a time.
3. Precision and recall at those thresholds are reported on the held-out half, which
   played no part in choosing them. Near misses (sentences close to a category that it
   must leave alone) and benign sentences count as negatives.

``--write-thresholds`` writes the chosen thresholds into the pack file (the shipped pack
when ``--pack default``), keeping everything else in it as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import regex

from guardstream.detectors.onnx import UnitSplitter
from guardstream.detectors.semantic import Category, SemanticDetector, find_encoder
from guardstream.policy import load_pack

SET_DIR = Path(__file__).parent / "semantic_set"
GRID = np.round(np.arange(0.20, 0.951, 0.005), 3)


@dataclass(frozen=True)
class Labelled:
    text: str
    labels: frozenset[str]
    kind: str


def read_set(path: Path) -> list[Labelled]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            rows.append(Labelled(item["text"], frozenset(item["labels"]), item["kind"]))
    return rows


def detector_for(pack: str) -> SemanticDetector:
    categories = [Category(c.label, c.threshold, tuple(c.examples), tuple(c.counter_examples)) for c in load_pack(pack)]
    return SemanticDetector("semantic", categories, find_encoder("all-minilm-l6-v2-int8"))


Scores = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]


def predictions(scores: Scores, threshold: float, i: int) -> Any:
    """The detector's rule (see ``SemanticDetector.verdicts``) for category ``i``."""
    score, nearest, counter = scores
    return (score.argmax(axis=1) == i) & (score[:, i] >= threshold) & (nearest[:, i] > counter)


def pr(pred: Any, truth: Any) -> tuple[float, float, int, int, int]:
    tp = int((pred & truth).sum())
    fp = int((pred & ~truth).sum())
    fn = int((~pred & truth).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, tp, fp, fn


def choose(scores: Scores, truth: Any, ordinary: Any, i: int, max_ordinary: int) -> float:
    """The threshold with the best F1 among those flagging at most ``max_ordinary`` of the
    ordinary (benign) calibration sentences: most traffic is ordinary, and F1 on a set with
    as many positives as benign sentences would not weigh that."""
    chosen, chosen_f1 = float(GRID[-1]), -1.0
    for t in GRID:
        pred = predictions(scores, float(t), i)
        if int((pred & ordinary).sum()) > max_ordinary:
            continue
        p, r, *_ = pr(pred, truth)
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        if f1 >= chosen_f1:
            chosen, chosen_f1 = float(t), f1
    return chosen


def evaluate(pack: str, max_ordinary: int = 1) -> dict[str, Any]:
    detector = detector_for(pack)
    labels = [c.label for c in detector.categories]
    # Ordinary answers of the benchmark corpora are negatives too: the prose corpus's
    # sentences join the calibration half, the NER corpus's are held out.
    prose, answers = ordinary_sentences()
    calibration = read_set(SET_DIR / "calibration.jsonl") + [
        Labelled(text, frozenset(), "ordinary") for text in prose if detector.judges(text)
    ]
    heldout = read_set(SET_DIR / "heldout.jsonl")
    cs = detector.similarities([r.text for r in calibration])
    hs = detector.similarities([r.text for r in heldout])
    results: dict[str, Any] = {"categories": {}, "max_ordinary": max_ordinary}
    ordinary = np.array([r.kind in ("benign", "ordinary") for r in calibration])
    all_pred, all_truth = [], []
    for i, label in enumerate(labels):
        ctruth = np.array([label in r.labels for r in calibration])
        htruth = np.array([label in r.labels for r in heldout])
        t = choose(cs, ctruth, ordinary, i, max_ordinary)
        cp, cr, *_ = pr(predictions(cs, t, i), ctruth)
        hpred = predictions(hs, t, i)
        hp, hr, tp, fp, fn = pr(hpred, htruth)
        near = np.array([r.kind == "near_miss" for r in heldout])
        near_fp = int((hpred & near & ~htruth).sum())
        results["categories"][label] = {
            "threshold": t,
            "calibration": {"precision": cp, "recall": cr, "positives": int(ctruth.sum())},
            "heldout": {
                "precision": hp,
                "recall": hr,
                "tp": tp,
                "fp": fp,
                "fn": fn,
                "near_miss_fp": near_fp,
                "positives": int(htruth.sum()),
            },
        }
        all_pred.append(hpred)
        all_truth.append(htruth)
    p, r, tp, fp, fn = pr(np.concatenate(all_pred), np.concatenate(all_truth))
    any_flag = np.any(np.stack(all_pred), axis=0)
    benign = np.array([r.kind == "benign" for r in heldout])
    results["heldout_micro"] = {"precision": p, "recall": r, "tp": tp, "fp": fp, "fn": fn}
    results["heldout_benign_flagged"] = {"flagged": int((any_flag & benign).sum()), "benign": int(benign.sum())}
    results["sizes"] = {
        "calibration": len(calibration) - len(prose),
        "calibration_ordinary": sum(r.kind == "ordinary" for r in calibration),
        "heldout": len(heldout),
    }
    thresholds = {label: r["threshold"] for label, r in results["categories"].items()}
    results["ordinary_answers"] = ordinary_answers(detector, thresholds, answers)
    return results


def ordinary_sentences() -> tuple[list[str], list[str]]:
    """Distinct sentences of ordinary answers: the prose corpus's, and the NER corpus's."""
    from benchmarks.corpus import make_corpus
    from benchmarks.ner_corpus import make_ner_corpus

    splitter = UnitSplitter()

    def sentences(texts: list[str]) -> list[str]:
        return sorted({text[a:b] for text in texts for a, b in splitter.units(text)})

    return (
        sentences([a.text for a in make_corpus(1729, 200)]),
        sentences([a.text for a in make_ner_corpus(7, 300)]),
    )


def ordinary_answers(detector: SemanticDetector, thresholds: dict[str, float], sentences: list[str]) -> dict[str, Any]:
    """How many ordinary sentences the detector (at ``thresholds``) would flag."""
    calibrated = SemanticDetector(
        "semantic",
        [replace(c, threshold=thresholds[c.label]) for c in detector.categories],
        detector.encoder_dir,
    )
    flagged = [(s, v) for s, v in zip(sentences, calibrated.verdicts(sentences), strict=True) if v is not None]
    return {"sentences": len(sentences), "flagged": [[s, v[0], round(v[1], 3)] for s, v in flagged]}


def table(results: dict[str, Any]) -> str:
    lines = [
        "| category | threshold | calibration P / R | held-out P / R | held-out tp / fp / fn | near misses flagged |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in results["categories"].items():
        c, h = r["calibration"], r["heldout"]
        lines.append(
            f"| {label} | {r['threshold']:.3f} | {c['precision']:.2f} / {c['recall']:.2f} | "
            f"{h['precision']:.2f} / {h['recall']:.2f} | {h['tp']} / {h['fp']} / {h['fn']} | {h['near_miss_fp']} |"
        )
    m = results["heldout_micro"]
    b = results["heldout_benign_flagged"]
    lines.append(
        f"| **all (micro)** | | | **{m['precision']:.2f} / {m['recall']:.2f}** | {m['tp']} / {m['fp']} / {m['fn']} | |"
    )
    lines.append("")
    lines.append(f"Benign held-out sentences flagged by any category: {b['flagged']} of {b['benign']}.")
    o = results["ordinary_answers"]
    lines.append(
        f"Held-out ordinary sentences (the NER corpus's answers) flagged: {len(o['flagged'])} of {o['sentences']}"
        + (": " + "; ".join(f"{s!r} as {label} ({score})" for s, label, score in o["flagged"]) if o["flagged"] else ".")
    )
    return "\n".join(lines)


def write_thresholds(pack: str, thresholds: dict[str, float]) -> Path:
    """Rewrite the ``threshold:`` line of each category in the pack file, in place."""
    if pack == "default":
        path = Path(str(resources.files("guardstream.detectors.data").joinpath("semantic_default.yaml")))
    else:
        path = Path(pack)
    text = path.read_text(encoding="utf-8")
    for label, value in thresholds.items():
        pattern = regex.compile(
            rf"(- label: {label}\n(?:(?!\s*- label:).*\n)*?\s*threshold: )[0-9.]+(?:[ \t]*#[^\n]*)?"
        )
        text, count = pattern.subn(lambda m, v=value: f"{m.group(1)}{v:.3f}", text)
        if count != 1:
            raise SystemExit(f"could not find the threshold of {label} in {path}")
    path.write_text(text, encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pack", default="default")
    parser.add_argument("--write-thresholds", action="store_true")
    parser.add_argument(
        "--max-ordinary",
        type=int,
        default=1,
        help="benign calibration sentences a category's threshold may flag (default 1)",
    )
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    results = evaluate(args.pack, args.max_ordinary)
    print(table(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if args.write_thresholds:
        path = write_thresholds(args.pack, {k: v["threshold"] for k, v in results["categories"].items()})
        print(f"thresholds written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
