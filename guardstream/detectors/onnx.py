"""ONNX models over units of text: a classifier runtime, and the sessions both it and the
semantic detector use.

Settling. A classifier judges a whole unit of text (a sentence, or a window of about
``window_chars`` characters ending at a space), so a unit is settled once it is complete
and classified: the session asks for the complete units it has not asked for, and the
answer settles through their end. A unit is complete when the whitespace after its end
has arrived, or when the stream ends. A sentence that runs on past ``max_unit_chars`` is
cut at its last space, so a runaway sentence is not held for ever. Text before a unit's
end waits for the model: the latency of a classifier is the length of its unit.

Cost. Requests from every stream on a loop go to one batcher per detector, which runs one
model call for all of them in a worker thread (sub-batched by length, so little padding),
off the event loop. The ONNX session and tokenizer are loaded once per process.

Privacy. ``ORT_DISABLE_TELEMETRY=1`` is set before onnxruntime is first imported (and
its telemetry events are turned off after), and nothing is ever downloaded: models are
files on disk.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import regex

from .._errors import DetectorError
from ..findings import Finding, Scan, Span
from ._batching import LoopBatchers
from .base import AnalysisRequest

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "OnnxClassifier",
    "UnitDetector",
    "UnitSession",
    "resolve_path",
    "OnnxModel",
    "UnitScore",
    "UnitSplitter",
    "load_model",
]

Unit: TypeAlias = Literal["sentence", "window"]

# The end of a sentence: terminal punctuation (and closing quotes or brackets) before a
# space, or a line break. A full stop after a title or common abbreviation ("Dr.", "e.g.")
# or a lone capital (an initial, "J. Smith") ends nothing: "You can reach Dr." alone read
# as a threat to the encoder.
_SENTENCE_END = regex.compile(
    r"(?:(?<!(?<![\p{L}.])(?:Dr|Mr|Mrs|Ms|Prof|Sr|Jr|St|Mt|Ft|Gen|Col|Capt|Lt|Sgt|Rev|Hon|vs|etc|approx|"
    r"No|Nos|Vol|Fig|Figs|Eq|Ref|Inc|Ltd|Co|Corp|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|"
    r"e\.g|i\.e|a\.m|p\.m|\p{Lu}))\.|[!?…])"
    r"[.!?…]*[\"'”’)\]]*(?=\s)|\n"
)
_HAS_WORD = regex.compile(r"[\p{L}\p{N}]")
_SPACE = regex.compile(r"\s")


@dataclass(frozen=True, slots=True)
class UnitScore:
    """A label a model gave one unit; offsets are relative to the analysed text."""

    start: int
    end: int
    label: str
    score: float


@dataclass(frozen=True, slots=True)
class UnitSplitter:
    """Cuts text into the units a model judges."""

    unit: Unit = "sentence"
    window_chars: int = 256
    max_unit_chars: int = 400

    def complete_end(self, text: str, pos: int, final: bool) -> int:
        """The end (in ``text``) of the last complete unit starting at ``pos``, or ``pos``."""
        if final:
            return len(text)
        end = pos
        for _, unit_end in self._cuts(text, pos):
            # A line break ends its unit at once; a full stop only once a space follows it.
            if text[unit_end - 1] == "\n" or (unit_end < len(text) and text[unit_end].isspace()):
                end = unit_end
        return end

    def units(self, text: str) -> list[tuple[int, int]]:
        """The units of a whole stretch, stripped of surrounding space; wordless ones dropped."""
        spans = []
        for start, end in self._cuts(text, 0, final=True):
            piece = text[start:end]
            lead = len(piece) - len(piece.lstrip())
            trail = len(piece.rstrip())
            if trail > lead and _HAS_WORD.search(piece):
                spans.append((start + lead, start + trail))
        return spans

    def _cuts(self, text: str, pos: int, final: bool = False) -> list[tuple[int, int]]:
        """Consecutive units from ``pos``: each ends at a boundary; with ``final`` the rest too."""
        cuts: list[tuple[int, int]] = []
        size = len(text)
        start = pos
        while start < size:
            if self.unit == "sentence":
                m = _SENTENCE_END.search(text, start, min(size, start + self.max_unit_chars + 1))
                if m is not None:
                    cuts.append((start, m.end()))
                    start = m.end()
                    continue
                limit = self.max_unit_chars
            else:
                limit = self.window_chars
            if size - start <= limit:
                if final:
                    cuts.append((start, size))
                break
            # Cut at the last space within the limit (past it when a word is longer).
            window = text[start : start + limit + 1]
            space = window.rfind(" ")
            if space <= 0:
                m2 = _SPACE.search(text, start + limit)
                if m2 is None:
                    if final:
                        cuts.append((start, size))
                    break
                space = m2.start() - start
            cuts.append((start, start + space))
            start += space
        return cuts


# --------------------------------------------------------------------------- runtime

_ORT_LOCK = threading.Lock()


def _onnxruntime() -> Any:
    """onnxruntime, imported with its telemetry off."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime  # type: ignore[import-untyped]

    disable = getattr(onnxruntime, "disable_telemetry_events", None)
    if disable is not None:
        disable()
    return onnxruntime


class OnnxModel:
    """An ONNX model with its tokenizer: ``run(texts)`` gives the first output.

    Inputs are fed by name: ``input_ids``, ``attention_mask`` and (when the model has it)
    ``token_type_ids``, int64, padded to the longest text of each sub-batch.
    """

    def __init__(self, model_path: Path, tokenizer_path: Path, *, threads: int = 1, max_tokens: int = 256) -> None:
        from tokenizers import Tokenizer

        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ValueError(f"cannot load ONNX model {model_path}: {exc}") from exc
        try:
            self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:
            raise ValueError(f"cannot load tokenizer {tokenizer_path}: {exc}") from exc
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.input_names = {i.name for i in self.session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self.input_names
        if missing:
            raise ValueError(f"ONNX model {model_path} has no input(s) {', '.join(sorted(missing))}")
        outputs = self.session.get_outputs()
        self.output_name: str = outputs[0].name
        self.output_names = [o.name for o in outputs]
        self.output_shape = list(outputs[0].shape)
        pad = self.tokenizer.token_to_id("[PAD]")
        if pad is None:
            pad = self.tokenizer.token_to_id("<pad>")
        self.pad_id = 0 if pad is None else pad
        self.lock = threading.Lock()

    def run(self, texts: Sequence[str], output: str | None = None, sub_batch: int = 32) -> npt.NDArray[np.float32]:
        """The model's output for each text, in order (one row per text)."""
        import numpy as np

        encodings = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        rows: list[Any] = [None] * len(texts)
        name = output or self.output_name
        for k in range(0, len(order), sub_batch):
            idx = order[k : k + sub_batch]
            width = max(1, max(len(encodings[i].ids) for i in idx))
            ids = np.full((len(idx), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            types = np.zeros((len(idx), width), dtype=np.int64)
            for r, i in enumerate(idx):
                enc = encodings[i]
                n = len(enc.ids)
                ids[r, :n] = enc.ids
                mask[r, :n] = enc.attention_mask
                types[r, :n] = enc.type_ids
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.input_names:
                feed["token_type_ids"] = types
            with self.lock:
                (out,) = self.session.run([name], feed)
            out = np.asarray(out, dtype=np.float32)
            if out.ndim == 3:
                # Token states: mean over the attention mask, then L2-normalised.
                weights = mask[:, :, None].astype(np.float32)
                pooled = (out * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
                out = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            for r, i in enumerate(idx):
                rows[i] = out[r]
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack(rows).astype(np.float32)


_MODELS: dict[tuple[str, str, int, int], OnnxModel] = {}


def load_model(model_path: Path, tokenizer_path: Path, *, threads: int = 1, max_tokens: int = 256) -> OnnxModel:
    """The process's one loaded copy of a model (loaded on first use)."""
    key = (str(model_path.resolve()), str(tokenizer_path.resolve()), threads, max_tokens)
    with _ORT_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = _MODELS[key] = OnnxModel(model_path, tokenizer_path, threads=threads, max_tokens=max_tokens)
        return model


# --------------------------------------------------------------------------- sessions


class UnitSession:
    """A stream's session for a detector that judges complete units of text.

    ``detector`` provides ``name``, ``splitter`` and (through the guard) the analysis: a
    list of :class:`UnitScore` per analysed stretch.
    """

    __slots__ = ("_asked_upto", "_found", "_name", "_settled", "_splitter")

    def __init__(self, name: str, splitter: UnitSplitter) -> None:
        self._name = name
        self._splitter = splitter
        self._settled = 0
        self._found: list[Finding] = []
        self._asked_upto = -1

    def scan(self, text: str, base: int, final: bool) -> Scan:
        findings = tuple(self._found)
        self._found.clear()
        start = max(self._settled, base)
        # Space between units judges nothing: settled at once.
        rest = text[start - base :]
        if rest and rest.isspace():
            self._settled = base + len(text)
        return Scan(findings, self._settled)

    def request(self, text: str, base: int, final: bool) -> AnalysisRequest | None:
        start = max(self._settled, base)
        end = base + len(text)
        if start >= end:
            return None
        upto = base + self._splitter.complete_end(text, start - base, final)
        if upto <= start or upto <= self._asked_upto:
            return None
        self._asked_upto = upto
        return AnalysisRequest(text[start - base : upto - base], start, upto, final)

    def deliver(self, request: AnalysisRequest, result: Any) -> None:
        scores: list[UnitScore] = result
        base = request.base
        self._found.extend(Finding(Span(base + s.start, base + s.end), s.label, self._name, s.score) for s in scores)
        self._settled = max(self._settled, request.upto)


class UnitDetector:
    """Shared plumbing of detectors that judge units with one ONNX model: the model and its
    tokenizer (loaded once per process, load errors as :class:`DetectorError`), splitting,
    batching, sessions."""

    name: str
    splitter: UnitSplitter

    def __init__(
        self,
        name: str,
        model_path: Path,
        tokenizer_path: Path,
        splitter: UnitSplitter,
        *,
        threads: int,
        max_tokens: int,
        max_batch: int,
        max_wait_ms: float,
    ) -> None:
        self.name = name
        self.splitter = splitter
        self._model_path = model_path
        self._tokenizer_path = tokenizer_path
        self._threads = threads
        self._max_tokens = max_tokens
        self._batchers = LoopBatchers(name, lambda texts: self.analyze(texts), max_batch, max_wait_ms)

    def _load(self) -> OnnxModel:
        try:
            return load_model(
                self._model_path, self._tokenizer_path, threads=self._threads, max_tokens=self._max_tokens
            )
        except ValueError as exc:
            raise DetectorError(self.name, str(exc)) from None

    def open(self) -> UnitSession:
        return UnitSession(self.name, self.splitter)

    def submit(self, request: AnalysisRequest) -> asyncio.Future[Any]:
        return self._batchers.submit(request.text)

    def analyze(self, texts: list[str]) -> list[list[UnitScore]]:
        """Split each stretch into units, judge all units in one call, regroup per stretch."""
        spans = [self.splitter.units(text) for text in texts]
        flat = [text[s:e] for text, per in zip(texts, spans, strict=True) for s, e in per]
        judged = self.judge(flat) if flat else []
        out: list[list[UnitScore]] = []
        k = 0
        for per in spans:
            scores: list[UnitScore] = []
            for s, e in per:
                scores.extend(UnitScore(s, e, label, score) for label, score in judged[k])
                k += 1
            out.append(scores)
        return out

    def judge(self, units: list[str]) -> list[list[tuple[str, float]]]:
        """The labels (with scores) each unit earns; overridden by each detector."""
        raise NotImplementedError

    def warmup(self) -> None:
        """Load the model now rather than on the first stream that needs it."""
        self.analyze(["Warm up."])


# --------------------------------------------------------------------------- classifier


Activation: TypeAlias = Literal["softmax", "sigmoid"]


class OnnxClassifier(UnitDetector):
    """A sequence-classification model: one logit per label; labels over threshold are found.

    ``labels`` names the model's outputs in order; only labels with a threshold are ever
    reported (a ``SAFE`` class usually has none).
    """

    def __init__(
        self,
        name: str,
        model_path: Path,
        tokenizer_path: Path,
        labels: Sequence[str],
        thresholds: dict[str, float],
        *,
        activation: Activation = "softmax",
        splitter: UnitSplitter | None = None,
        threads: int = 1,
        max_tokens: int = 256,
        max_batch: int = 32,
        max_wait_ms: float = 2.0,
    ) -> None:
        super().__init__(
            name,
            model_path,
            tokenizer_path,
            splitter or UnitSplitter(),
            threads=threads,
            max_tokens=max_tokens,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
        )
        unknown = set(thresholds) - set(labels)
        if unknown:
            raise ValueError(f"thresholds for labels the model does not have: {', '.join(sorted(unknown))}")
        self.labels = tuple(labels)
        self.thresholds = dict(thresholds)
        self.activation = activation
        self._checked = False

    def _model(self) -> OnnxModel:
        model = self._load()
        if not self._checked:
            width = model.output_shape[-1] if model.output_shape else None
            if isinstance(width, int) and width != len(self.labels):
                raise DetectorError(
                    self.name,
                    f"the model gives {width} scores per text but {len(self.labels)} labels are configured",
                )
            self._checked = True
        return model

    def probabilities(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Each text's probability per label (softmax or sigmoid of the logits)."""
        import numpy as np

        logits = self._model().run(texts)
        if logits.shape[-1] != len(self.labels):
            raise DetectorError(
                self.name, f"the model gave {logits.shape[-1]} scores but {len(self.labels)} labels are configured"
            )
        probs: npt.NDArray[np.float32]
        if self.activation == "sigmoid":
            probs = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
        else:
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs = (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
        return probs

    def judge(self, units: list[str]) -> list[list[tuple[str, float]]]:
        probs = self.probabilities(units)
        index = {label: i for i, label in enumerate(self.labels)}
        return [
            [(label, float(row[index[label]])) for label, t in self.thresholds.items() if row[index[label]] >= t]
            for row in probs
        ]


def resolve_path(value: str, base_dir: Path | None) -> Path:
    """``value`` as a path, relative to ``base_dir`` (the policy file's folder) when relative."""
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path
