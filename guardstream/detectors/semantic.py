"""Semantic policy categories: example sentences, a sentence encoder, cosine similarity.

A category is defined by example sentences (what it looks like) and counter-examples
(near misses it must leave alone). Each complete unit of the answer (a sentence, by
default) is embedded by all-MiniLM-L6-v2, an int8 ONNX export shipped in ``models/``. Its
score for a category is the mean cosine similarity to the category's ``top_k`` (3)
closest examples. A unit gets at most one category, the one it scores highest on, and
only when that score reaches the category's threshold and the unit's closest example of
that category is closer than every counter-example (of any category: counter-examples are
all acceptable text).

Why this rule: on the project's labelled sentences (``benchmarks/semantic_set``), with
thresholds chosen on the calibration half and measured on the held-out half, the single
closest example alone gave 0.71 precision / 0.68 recall; the mean of the top three with
a counter-example gate 0.83 / 0.73; adding the nearest-category rule 0.87 / 0.78 but one
benign sentence in 110 flagged; comparing the closest example with the closest
counter-example of every category 0.87 / 0.79 (thresholds then re-chosen to flag at most
one benign calibration sentence: 0.85 / 0.73). One close example is often a coincidence of
wording, three rarely are, and a sentence near two categories belongs to the nearer one.

Units of fewer than ``min_words`` (3) words are not judged: "Great question." scored 0.31
for HARASSMENT, above its threshold; two words carry too little meaning for a sentence
encoder to place.

Settling is the classifier's (see :mod:`guardstream.detectors.onnx`): a unit is held until
it is complete and scored. Example embeddings are computed once, on first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import regex

from .onnx import UnitDetector, UnitSplitter

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["DEFAULT_ENCODER", "Category", "SemanticDetector", "encoder_dirs", "find_encoder"]

DEFAULT_ENCODER = "all-minilm-l6-v2-int8"
_WORDS = regex.compile(r"[\p{L}\p{N}]+(?:['’][\p{L}]+)?")


@dataclass(frozen=True, slots=True)
class Category:
    """A policy category: examples, counter-examples and the similarity that triggers it."""

    label: str
    threshold: float
    examples: tuple[str, ...]
    counter_examples: tuple[str, ...] = ()
    description: str = ""


def encoder_dirs() -> list[Path]:
    """Where named encoders are looked for: ``$GUARDSTREAM_MODELS``, then the shipped models.

    The shipped ones are the repository's ``models/``, which the package reaches as
    ``guardstream/_models`` (a link in a checkout, a folder in an installed wheel).
    """
    dirs = []
    env = os.environ.get("GUARDSTREAM_MODELS")
    if env:
        dirs.append(Path(env))
    dirs.append(Path(__file__).parent.parent / "_models")
    return dirs


def find_encoder(name_or_path: str, base_dir: Path | None = None) -> Path:
    """The folder holding ``model.onnx`` and ``tokenizer.json`` for an encoder name or path."""
    candidates = []
    path = Path(name_or_path).expanduser()
    if path.is_absolute() or "/" in name_or_path or name_or_path.startswith("."):
        candidates.append(path if path.is_absolute() or base_dir is None else base_dir / path)
    else:
        candidates.extend(d / name_or_path for d in encoder_dirs())
    for folder in candidates:
        if (folder / "model.onnx").is_file() and (folder / "tokenizer.json").is_file():
            return folder
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"no encoder {name_or_path!r} (model.onnx + tokenizer.json) in: {looked}")


class SemanticDetector(UnitDetector):
    """Finds units of text that are close to a category's examples."""

    def __init__(
        self,
        name: str,
        categories: Sequence[Category],
        encoder_dir: Path,
        *,
        splitter: UnitSplitter | None = None,
        top_k: int = 3,
        min_words: int = 3,
        threads: int = 1,
        max_tokens: int = 256,
        max_batch: int = 32,
        max_wait_ms: float = 2.0,
    ) -> None:
        super().__init__(
            name,
            encoder_dir / "model.onnx",
            encoder_dir / "tokenizer.json",
            splitter or UnitSplitter(),
            threads=threads,
            max_tokens=max_tokens,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
        )
        if not categories:
            raise ValueError("a semantic detector needs at least one category")
        if top_k < 1:
            raise ValueError("top_k must be at least 1")
        self.top_k = top_k
        self.min_words = min_words
        self.categories = tuple(categories)
        self.labels = tuple(c.label for c in self.categories)
        self.encoder_dir = encoder_dir
        self._lock = threading.Lock()
        self._bank: tuple[Any, Any, Any, Any] | None = None

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """L2-normalised sentence embeddings, one row per text.

        One text per model run: the int8 model quantises activations per run, so a
        sentence batched with others comes out slightly different (cosine >= 0.986), and
        a verdict must not depend on which other streams shared the batch. On this CPU
        sixteen runs of one cost about what one run of sixteen does (padding included).
        """
        return self._load().run(texts, sub_batch=1)

    def _examples(self) -> tuple[Any, Any, Any, Any]:
        """Example and counter-example embeddings with, per row, the category index."""
        import numpy as np

        with self._lock:
            if self._bank is None:
                texts: list[str] = []
                owner: list[int] = []
                counter_texts: list[str] = []
                counter_owner: list[int] = []
                for i, cat in enumerate(self.categories):
                    texts.extend(cat.examples)
                    owner.extend([i] * len(cat.examples))
                    counter_texts.extend(cat.counter_examples)
                    counter_owner.extend([i] * len(cat.counter_examples))
                examples = self.embed(texts)
                counters = self.embed(counter_texts) if counter_texts else np.zeros((0, examples.shape[1]), np.float32)
                self._bank = (examples, np.array(owner), counters, np.array(counter_owner, dtype=np.int64))
            return self._bank

    def similarities(
        self, texts: Sequence[str]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Per text: the score for each category (mean similarity to its ``top_k``
        closest examples), the similarity to each category's closest example, and the
        similarity to the closest counter-example of any category (-1 when none).
        """
        import numpy as np

        examples, owner, counters, _ = self._examples()
        emb = self.embed(texts)
        n = len(self.categories)
        score = np.full((len(texts), n), -1.0, dtype=np.float32)
        nearest = np.full((len(texts), n), -1.0, dtype=np.float32)
        sims = emb @ examples.T
        for i in range(n):
            own = np.sort(sims[:, owner == i], axis=1)
            k = min(self.top_k, own.shape[1])
            score[:, i] = own[:, -k:].mean(axis=1)
            nearest[:, i] = own[:, -1]
        counter = np.full(len(texts), -1.0, dtype=np.float32)
        if len(counters):
            counter = (emb @ counters.T).max(axis=1).astype(np.float32)
        return score, nearest, counter

    def judges(self, text: str) -> bool:
        """Whether a unit is long enough to be judged (``min_words`` words)."""
        return len(_WORDS.findall(text)) >= self.min_words

    def verdicts(self, texts: Sequence[str]) -> list[tuple[str, float] | None]:
        """Per text: the category it is found to be (with its score), or None."""
        judged = [i for i, text in enumerate(texts) if self.judges(text)]
        out: list[tuple[str, float] | None] = [None] * len(texts)
        if not judged:
            return out
        score, nearest, counter = self.similarities([texts[i] for i in judged])
        for k, row, near, closest_counter in zip(judged, score, nearest, counter, strict=True):
            i = int(row.argmax())
            cat = self.categories[i]
            if float(row[i]) >= cat.threshold and float(near[i]) > float(closest_counter):
                out[k] = (cat.label, float(row[i]))
        return out

    def judge(self, units: list[str]) -> list[list[tuple[str, float]]]:
        return [[] if v is None else [v] for v in self.verdicts(units)]
