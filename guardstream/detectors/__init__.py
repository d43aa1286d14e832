"""Detectors: one module per kind, built from a policy's ``detectors`` list."""

from __future__ import annotations

import regex

from .base import Detector, DetectorSession
from .patterns import BUILTIN_LABELS, PatternDetector, PatternSpec, RegionSpec, builtin_specs

__all__ = [
    "BUILTIN_LABELS",
    "Detector",
    "DetectorSession",
    "PatternDetector",
    "PatternSpec",
    "RegionSpec",
    "build_detector",
]


def build_detector(config: object) -> Detector:
    """The detector a validated policy entry describes."""
    from ..policy import (
        DosageDetectorConfig,
        OnnxDetectorConfig,
        PatternsDetectorConfig,
        PresidioDetectorConfig,
        SemanticDetectorConfig,
    )

    if isinstance(config, DosageDetectorConfig):
        from .dosage import DosageDetector, DoseTable

        table = DoseTable.load(config.table) if config.table is not None else None
        return DosageDetector(config.name, config.mode, table)

    if isinstance(config, OnnxDetectorConfig | SemanticDetectorConfig):
        from pathlib import Path

        from .onnx import OnnxClassifier, UnitSplitter

        splitter = UnitSplitter(config.unit, config.window_chars, config.max_unit_chars)
        if isinstance(config, OnnxDetectorConfig):
            return OnnxClassifier(
                config.name,
                Path(config.model),
                Path(config.tokenizer),
                config.labels,
                config.thresholds,
                activation=config.activation,
                splitter=splitter,
                threads=config.threads,
                max_tokens=config.max_tokens,
                max_batch=config.max_batch,
                max_wait_ms=config.max_wait_ms,
            )
        from .semantic import Category, SemanticDetector

        categories = [
            Category(c.label, c.threshold, tuple(c.examples), tuple(c.counter_examples), c.description)
            for c in config.resolved_categories()
        ]
        return SemanticDetector(
            config.name,
            categories,
            config.encoder_dir(),
            splitter=splitter,
            top_k=config.top_k,
            min_words=config.min_words,
            threads=config.threads,
            max_tokens=config.max_tokens,
            max_batch=config.max_batch,
            max_wait_ms=config.max_wait_ms,
        )

    if isinstance(config, PresidioDetectorConfig):
        from .presidio import PresidioDetector

        return PresidioDetector(
            config.name,
            config.entities,
            score_threshold=config.score_threshold,
            right_context_words=config.right_context_words,
            context_chars=config.context_chars,
            model=config.model,
            max_batch=config.max_batch,
            max_wait_ms=config.max_wait_ms,
        )

    if isinstance(config, PatternsDetectorConfig):
        labels = config.labels
        specs: list[PatternSpec | RegionSpec]
        if labels == "all":
            specs = builtin_specs()
        elif labels == "none":
            specs = []
        else:
            specs = builtin_specs(labels)
        for custom in config.custom:
            specs.append(
                PatternSpec(
                    custom.label,
                    custom.regex,
                    validator=custom.validator,
                    group=custom.group,
                    score=custom.score,
                    flags=regex.IGNORECASE if custom.ignore_case else 0,
                )
            )
        return PatternDetector(config.name, specs)
    raise TypeError(f"no detector for {type(config).__name__}")
