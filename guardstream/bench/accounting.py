"""What the user saw, and what it means: the leak accounting every strategy shares.

A release strategy's whole output for one stream is a list of :class:`Shown` pieces: each
says which source characters ``[start, end)`` were put in front of the user at ``t_ms``,
as what text, and whether that text is the source characters themselves (``raw``) or a
replacement. :func:`account` turns that list into the numbers the sweep reports, with one
definition for every strategy:

* a labelled violation **leaked** when at least one of its characters was shown raw;
* it was **rendered whole** when every one of its characters was shown raw;
* a near miss was **destroyed** when any of its characters was not shown raw (replaced,
  or never shown);
* **hold** is, per source character, the time it was shown minus the time it arrived;
* **added TTFT** is when the first non-whitespace character became visible minus when
  the first non-whitespace source character arrived.

When the policy *blocks* some labels (``block_labels``), a correct guard stops the
stream where the first such violation starts and shows nothing after it: that offset is
the stream's **ideal end**. What a strategy shows before a block counts as for any other
output; what it never shows up to the ideal end is **lost** (an answer **cut early**, by
a block at something that is no violation or by a budget that blocks); and only the near
misses that end before the ideal end can be destroyed (those after it are not shown by
the ideal guard either). Without ``block_labels`` the ideal end is the end of the text.

It also checks the pieces for what no strategy may do (show text out of order, twice, or
before it arrived), so a bug in a strategy fails loudly instead of skewing a table.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from .corpus import LabelledStream

__all__ = ["Shown", "SpanFate", "Tally", "account"]


@dataclass(frozen=True, slots=True)
class Shown:
    """Source ``[start, end)`` reached the user at ``t_ms`` as ``text`` (``raw``: unchanged)."""

    t_ms: float
    start: int
    end: int
    text: str
    raw: bool


@dataclass(frozen=True, slots=True)
class SpanFate:
    """One labelled violation: did any of it reach the user raw, and did all of it?"""

    label: str
    leaked: bool
    whole: bool
    chars: int  # its length
    raw_chars: int  # how many of its characters were shown raw


@dataclass(frozen=True, slots=True)
class Tally:
    """The accounting of one strategy on one stream."""

    spans: tuple[SpanFate, ...]
    near_misses: int  # those that end before the ideal end
    destroyed: tuple[str, ...]  # the kinds of the near misses the output changed
    holds: tuple[tuple[float, int], ...]  # (hold ms, characters)
    added_ttft_ms: float | None
    shown_chars: int
    withheld_chars: int
    spurious: int  # replacements that touch no labelled violation
    ideal_end: int = 0  # where a correct guard stops showing the stream
    lost_chars: int = 0  # characters before the ideal end that were never shown

    @property
    def cut_early(self) -> bool:
        """The stream stopped before its ideal end."""
        return self.lost_chars > 0


def account(stream: LabelledStream, shown: Sequence[Shown], block_labels: Collection[str] = ()) -> Tally:
    """Account for ``shown``, everything one strategy showed for ``stream``.

    ``block_labels`` are the labels the policy blocks on (see the module's docstring).

    Raises:
        ValueError: the pieces are not a contiguous, in-order prefix of the source, a raw
            piece differs from the source, time goes backwards, or a piece is shown
            before its last character arrived.
    """
    text = stream.text
    ends = list(_chunk_ends(stream.chunks))
    arrivals = stream.arrivals_ms()
    raw = bytearray(len(text))
    holds: list[tuple[float, int]] = []
    pos = 0
    last_t = float("-inf")
    first_visible: float | None = None
    replaced: list[tuple[int, int]] = []
    for piece in shown:
        if piece.start != pos or piece.end < piece.start or piece.end > len(text):
            raise ValueError(f"{stream.id}: piece [{piece.start}, {piece.end}) does not continue at {pos}")
        if piece.t_ms < last_t:
            raise ValueError(f"{stream.id}: piece at {piece.t_ms} ms shown after one at {last_t} ms")
        if piece.end == piece.start:
            if piece.raw or piece.text.strip():
                raise ValueError(f"{stream.id}: empty piece at {pos} shows {piece.text!r}")
            continue
        last_chunk = bisect.bisect_left(ends, piece.end)
        if piece.t_ms < arrivals[last_chunk]:
            raise ValueError(
                f"{stream.id}: [{piece.start}, {piece.end}) shown at {piece.t_ms} ms, "
                f"before it arrived at {arrivals[last_chunk]} ms"
            )
        if piece.raw:
            if piece.text != text[piece.start : piece.end]:
                raise ValueError(f"{stream.id}: raw piece [{piece.start}, {piece.end}) is not the source text")
            raw[piece.start : piece.end] = b"\x01" * (piece.end - piece.start)
        else:
            replaced.append((piece.start, piece.end))
        if first_visible is None and piece.text.strip():
            first_visible = piece.t_ms
        # Per chunk the piece overlaps: its characters share one arrival time.
        a = piece.start
        i = bisect.bisect_right(ends, a)
        while a < piece.end:
            b = min(ends[i], piece.end)
            holds.append((piece.t_ms - arrivals[i], b - a))
            a = b
            i += 1
        pos = piece.end
        last_t = piece.t_ms

    fates = tuple(
        SpanFate(
            s.label,
            leaked=raw.find(1, s.start, s.end) >= 0,
            whole=raw.find(0, s.start, s.end) < 0,
            chars=s.end - s.start,
            raw_chars=raw.count(1, s.start, s.end),
        )
        for s in stream.spans
    )
    ideal_end = min((s.start for s in stream.spans if s.label in block_labels), default=len(text))
    reachable = [n for n in stream.near_misses if n.end <= ideal_end]
    destroyed = tuple(n.kind for n in reachable if raw.find(0, n.start, n.end) >= 0)
    spurious = sum(1 for a, b in replaced if not any(s.start < b and a < s.end for s in stream.spans))
    return Tally(
        spans=fates,
        near_misses=len(reachable),
        destroyed=destroyed,
        holds=tuple(holds),
        added_ttft_ms=_added_ttft(text, ends, arrivals, first_visible),
        shown_chars=pos,
        withheld_chars=len(text) - pos,
        spurious=spurious,
        ideal_end=ideal_end,
        lost_chars=max(ideal_end - pos, 0),
    )


def _chunk_ends(chunks: Sequence[str]) -> list[int]:
    ends: list[int] = []
    end = 0
    for chunk in chunks:
        end += len(chunk)
        ends.append(end)
    return ends


def _added_ttft(text: str, ends: list[int], arrivals: list[float], first_visible: float | None) -> float | None:
    stripped = len(text) - len(text.lstrip())
    if stripped == len(text) or first_visible is None:
        return None
    source_first = arrivals[bisect.bisect_right(ends, stripped)]
    return first_visible - source_first
