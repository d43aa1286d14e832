"""The holdback sweep: leak rate against added latency, for guardstream and the strategies peers use.

* :mod:`.corpus`: a seeded generator of labelled, paced streams (and their JSON-lines form);
* :mod:`.strategies`: stream first, fixed windows, NeMo-style chunk-and-check, sentence
  buffering and guardstream's settled frontier, replayed on a virtual clock;
* :mod:`.accounting`: one function that turns what a strategy showed into leaks, holds and TTFT;
* :mod:`.latency`: model calls (NER, semantic categories) priced on the virtual clock and run
  once per distinct text;
* :mod:`.sweep`: every strategy on the same streams, as markdown and JSON;
* :mod:`.calibrate`: the smallest time budget that meets a leak target;
* :mod:`.plot`: the PNG (needs the ``bench`` extra).

Command line: ``guardstream bench sweep``, ``guardstream bench corpus``, ``guardstream calibrate``.
"""

from __future__ import annotations

from .accounting import Shown, SpanFate, Tally, account
from .calibrate import Calibration, calibrate
from .corpus import LabelledSpan, LabelledStream, NearMiss, make_streams, read_jsonl, write_jsonl
from .latency import LatencyModel, ModelClock, measure_latency
from .strategies import Checker, ChunkAndCheck, FixedWindow, SentenceBuffer, Settled, Strategy
from .sweep import Sweep, block_labels, default_strategies, label_by_model, label_doses, run_sweep

__all__ = [
    "Calibration",
    "Checker",
    "ChunkAndCheck",
    "FixedWindow",
    "LabelledSpan",
    "LabelledStream",
    "LatencyModel",
    "ModelClock",
    "NearMiss",
    "SentenceBuffer",
    "Settled",
    "Shown",
    "SpanFate",
    "Strategy",
    "Sweep",
    "Tally",
    "account",
    "block_labels",
    "calibrate",
    "default_strategies",
    "label_by_model",
    "label_doses",
    "make_streams",
    "measure_latency",
    "read_jsonl",
    "run_sweep",
    "write_jsonl",
]
