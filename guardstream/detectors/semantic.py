"""Semantic policy categories: example sentences, a sentence encoder, cosine similarity.

A category is defined by example sentences (what it looks like) and counter-examples
(near misses it must leave alone). Each complete unit of the answer (a sentence, by
default) is embedded by all-MiniLM-L6-v2, an int8 ONNX export shipped in ``models/``; its
score for a category is the highest cosine similarity to one of the category's examples.
A unit is found when the score reaches the category's threshold and beats its highest
similarity to a counter-example.

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

from .._errors import DetectorError
from .onnx import OnnxModel, UnitDetector, UnitSplitter, load_model

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["DEFAULT_ENCODER", "Category", "SemanticDetector", "encoder_dirs", "find_encoder"]

DEFAULT_ENCODER = "all-minilm-l6-v2-int8"


@dataclass(frozen=True, slots=True)
class Category:
    """A policy category: examples, counter-examples and the similarity that triggers it."""

    label: str
    threshold: float
    examples: tuple[str, ...]
    counter_examples: tuple[str, ...] = ()
    description: str = ""


def encoder_dirs() -> list[Path]:
    """Where named encoders are looked for: ``$GUARDSTREAM_MODELS``, then the project's ``models/``."""
    dirs = []
    env = os.environ.get("GUARDSTREAM_MODELS")
    if env:
        dirs.append(Path(env))
    dirs.append(Path(__file__).resolve().parents[2] / "models")
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
        threads: int = 1,
        max_tokens: int = 256,
        max_batch: int = 32,
        max_wait_ms: float = 2.0,
    ) -> None:
        super().__init__(name, splitter or UnitSplitter(), max_batch=max_batch, max_wait_ms=max_wait_ms)
        if not categories:
            raise ValueError("a semantic detector needs at least one category")
        self.categories = tuple(categories)
        self.labels = tuple(c.label for c in self.categories)
        self.encoder_dir = encoder_dir
        self._threads = threads
        self._max_tokens = max_tokens
        self._lock = threading.Lock()
        self._bank: tuple[Any, Any, Any, Any] | None = None

    def _encoder(self) -> OnnxModel:
        try:
            return load_model(
                self.encoder_dir / "model.onnx",
                self.encoder_dir / "tokenizer.json",
                threads=self._threads,
                max_tokens=self._max_tokens,
            )
        except ValueError as exc:
            raise DetectorError(self.name, str(exc)) from None

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """L2-normalised sentence embeddings, one row per text."""
        return self._encoder().run(texts)

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

    def similarities(self, texts: Sequence[str]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Per text and category: the best similarity to an example, and to a counter-example.

        A category with no counter-examples has -1 in the second array.
        """
        import numpy as np

        examples, owner, counters, counter_owner = self._examples()
        emb = self.embed(texts)
        n = len(self.categories)
        best = np.full((len(texts), n), -1.0, dtype=np.float32)
        best_counter = np.full((len(texts), n), -1.0, dtype=np.float32)
        sims = emb @ examples.T
        for i in range(n):
            best[:, i] = sims[:, owner == i].max(axis=1)
        if len(counters):
            csims = emb @ counters.T
            for i in range(n):
                cols = counter_owner == i
                if cols.any():
                    best_counter[:, i] = csims[:, cols].max(axis=1)
        return best, best_counter

    def judge(self, units: list[str]) -> list[list[tuple[str, float]]]:
        best, best_counter = self.similarities(units)
        out: list[list[tuple[str, float]]] = []
        for row, crow in zip(best, best_counter, strict=True):
            found = []
            for i, cat in enumerate(self.categories):
                score = float(row[i])
                if score >= cat.threshold and score > float(crow[i]):
                    found.append((cat.label, score))
            out.append(found)
        return out
