"""The holdback window: a synchronous state machine with no I/O and no asyncio.

It receives chunks (``feed``), clock ticks (``tick``) and the end of the source
(``finish``), asks every detector session what is settled, and releases exactly the text
before the release frontier::

    frontier = min(settled offset of every detector)
               pulled back to the start of any known finding it would split
               clipped back to a word or sentence end (granularity)
               pushed forward by the latency budget (max_hold_ms, max_hold_chars)

Offsets seen by detectors are offsets into the *normalised* text (zero-width characters
dropped, compatibility forms folded); the window maps every finding and settled offset
back to the original characters, which are what it releases.

All work per call is proportional to the pending text plus a bounded left context, never
to the whole stream.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import regex

from ._normalize import normalize_char
from .detectors.base import AnalysingSession, AnalysisRequest, DetectorSession
from .events import (
    Blocked,
    BudgetExceeded,
    DetectorFailed,
    Event,
    Flagged,
    Outcome,
    OutcomeKind,
    Redacted,
    Released,
    Retracted,
)
from .findings import Finding, Span

__all__ = ["ActionRule", "Granularity", "Window", "WindowConfig"]

Granularity: TypeAlias = Literal["settled", "word", "sentence"]
OnBudget: TypeAlias = Literal["release", "mask", "block"]
ActionName: TypeAlias = Literal["redact", "mask", "block", "flag"]

_SEVERITY: dict[str, int] = {"flag": 0, "mask": 1, "redact": 2, "block": 3}
_SENTENCE_END = regex.compile(r"(?r)(?:[.!?\u2026][\"')\]\u201d\u2019]*\s|\n)")
_WHITESPACE = regex.compile(r"(?r)\s")


@dataclass(frozen=True, slots=True)
class ActionRule:
    """What to do with a finding: ``redact`` (``template``), ``mask``, ``block``, ``flag``."""

    action: ActionName
    template: str = "<{label}>"
    message: str | None = None


@dataclass(frozen=True, slots=True)
class WindowConfig:
    """Everything a window needs from a policy. Immutable; shared by every stream."""

    action_for: Callable[[Finding], ActionRule]
    max_hold_ms: float | None = None
    max_hold_chars: int | None = None
    on_budget: OnBudget = "release"
    granularity: Granularity = "settled"
    on_detector_error: Literal["block", "release"] = "block"
    block_message: str = "This response was blocked by policy."
    mask_char: str = "*"
    context_chars: int = 64
    retain_chars: int = 4096


@dataclass(slots=True)
class _Cluster:
    start: int
    end: int
    findings: list[Finding]


class Window:
    """Per-stream holdback state. Create one per stream; not thread-safe, not shareable."""

    def __init__(self, sessions: Sequence[tuple[str, DetectorSession]], config: WindowConfig) -> None:
        self._config = config
        self._names = [name for name, _ in sessions]
        self._sessions: list[DetectorSession | None] = [session for _, session in sessions]
        self._settled: list[int] = [0] * len(sessions)
        # Raw text (what the source sent) and normalised text (what detectors see).
        self._raw = ""
        self._rbase = 0
        self._norm = ""
        self._nbase = 0
        # For each normalised character in the buffer: raw start and raw end (absolute).
        # None while the stream has been its own normal form (then offsets coincide).
        self._nstart: list[int] | None = None
        self._nend: list[int] | None = None
        self._released = 0
        self._arrivals: deque[tuple[int, float]] = deque()
        self._findings: list[Finding] = []
        self._leaked: list[Span] = []
        # Every unsettled span the budget forced out (released raw or masked).
        self._forced: list[Span] = []
        self._last_redaction: tuple[int, str] | None = None
        self._acted: list[Finding] = []
        self._out: list[str] = []
        self._holds: list[tuple[float, int]] = []
        self._state: Literal["open", "blocked", "failed", "done"] = "open"
        # The source has ended; the outcome waits only for analyses still in flight.
        self._ending = False
        self._analysing = [isinstance(s, AnalysingSession) for _, s in sessions]
        self._in_flight = [False] * len(sessions)
        self._block_message: str | None = None
        self._error: str | None = None

    # ------------------------------------------------------------------ queries

    @property
    def released_text(self) -> str:
        """Everything released so far, exactly as sent downstream."""
        return "".join(self._out)

    @property
    def source_chars(self) -> int:
        return self._rbase + len(self._raw)

    @property
    def released_offset(self) -> int:
        """Source offset up to which text has been released (or withheld for good)."""
        return self._released

    @property
    def pending_chars(self) -> int:
        return self.source_chars - self._released

    @property
    def is_open(self) -> bool:
        return self._state == "open"

    @property
    def holds(self) -> list[tuple[float, int]]:
        """``(hold_ms, characters)`` pairs: how long each released source character waited."""
        return self._holds

    def next_deadline(self) -> float | None:
        """When (in the caller's ms clock) the oldest held character reaches ``max_hold_ms``."""
        if self._state != "open" or self._config.max_hold_ms is None or not self._arrivals:
            return None
        if self._released >= self.source_chars:
            return None
        return self._arrivals[0][1] + self._config.max_hold_ms

    # ------------------------------------------------------------------ inputs

    def feed(self, chunk: str, now_ms: float) -> list[Event]:
        """Take one chunk that arrived at ``now_ms``; return the events it causes."""
        if self._state != "open" or not chunk:
            return []
        raw_start = self._rbase + len(self._raw)
        self._raw += chunk
        self._arrivals.append((raw_start, now_ms))
        if chunk.isascii():
            self._norm += chunk
            if self._nstart is not None:
                assert self._nend is not None
                self._nstart.extend(range(raw_start, raw_start + len(chunk)))
                self._nend.extend(range(raw_start + 1, raw_start + len(chunk) + 1))
        else:
            self._append_normalised(chunk, raw_start)
        return self._advance(now_ms, final=False)

    def tick(self, now_ms: float) -> list[Event]:
        """The clock moved with no new chunk: enforce the time budget."""
        if self._state != "open":
            return []
        return self._advance(now_ms, final=False, scan=False)

    def finish(self, now_ms: float) -> list[Event]:
        """The source ended normally: settle everything, release it, end with an outcome.

        When a detector still waits for a model's analysis (see :meth:`requests`), the
        outcome comes from the :meth:`deliver` call that settles the last of the text.
        """
        events: list[Event] = []
        self._ending = True
        if self._state == "open":
            events = self._advance(now_ms, final=True)
        self._conclude(now_ms, events)
        return events

    def requests(self) -> list[tuple[int, AnalysisRequest]]:
        """Model analyses the detector sessions need now: ``(session index, request)``.

        The caller runs each with the index's detector and hands the answer to
        :meth:`deliver`. A session has at most one request in flight.
        """
        if self._state != "open":
            return []
        out: list[tuple[int, AnalysisRequest]] = []
        for i, session in enumerate(self._sessions):
            if session is None or not self._analysing[i] or self._in_flight[i]:
                continue
            assert isinstance(session, AnalysingSession)
            request = session.request(self._norm, self._nbase, self._ending)
            if request is not None:
                self._in_flight[i] = True
                out.append((i, request))
        return out

    def deliver(self, index: int, request: AnalysisRequest, result: Any, now_ms: float) -> list[Event]:
        """The answer (or the exception) for a request from :meth:`requests`."""
        self._in_flight[index] = False
        session = self._sessions[index]
        if self._state != "open" or session is None:
            return []
        events: list[Event] = []
        if isinstance(result, BaseException):
            self._detector_failed(index, result, now_ms, events)
        else:
            assert isinstance(session, AnalysingSession)
            session.deliver(request, result)
        if self._state == "open":
            events += self._advance(now_ms, final=self._ending)
        if self._ending:
            self._conclude(now_ms, events)
        return events

    @property
    def ending(self) -> bool:
        """True once the source has ended (``finish`` was called)."""
        return self._ending

    @property
    def waiting_for_analysis(self) -> bool:
        """True while some detector's model call is in flight."""
        return any(self._in_flight)

    def _conclude(self, now_ms: float, events: list[Event]) -> None:
        if self._state == "open":
            if self._released < self.source_chars or self.waiting_for_analysis:
                return
            self._state = "done"
            events.append(self.outcome("completed", now_ms))
        elif self._state == "blocked":
            events.append(self.outcome("blocked", now_ms))
        elif self._state == "failed":
            events.append(self.outcome("detector_error", now_ms))

    def outcome(self, kind: OutcomeKind, now_ms: float, error: str | None = None) -> Outcome:
        """The terminal outcome for the stream as it stands. Stops any further release."""
        if self._state == "open":
            self._state = "done"
        return Outcome(
            kind=kind,
            released=self.released_text,
            source_chars=self.source_chars,
            withheld_chars=self.source_chars - self._released,
            findings=tuple(self._acted),
            t_ms=now_ms,
            error=error if error is not None else self._error,
            message=self._block_message,
        )

    @property
    def state(self) -> str:
        return self._state

    # ------------------------------------------------------------------ text store

    def _append_normalised(self, chunk: str, raw_start: int) -> None:
        parts: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        identity = self._nstart is None
        for i, char in enumerate(chunk):
            folded = normalize_char(char) if not char.isascii() else char
            if folded != char and identity:
                self._materialise_map()
                identity = False
            parts.append(folded)
            if len(folded):
                starts.extend([raw_start + i] * len(folded))
                ends.extend([raw_start + i + 1] * len(folded))
        self._norm += "".join(parts)
        if self._nstart is not None:
            assert self._nend is not None
            self._nstart.extend(starts)
            self._nend.extend(ends)

    def _materialise_map(self) -> None:
        base = self._nbase
        self._nstart = list(range(base, base + len(self._norm)))
        self._nend = list(range(base + 1, base + len(self._norm) + 1))

    def _raw_start_of(self, norm_offset: int) -> int:
        """Raw offset where the normalised character at ``norm_offset`` begins."""
        if self._nstart is None:
            return norm_offset
        i = norm_offset - self._nbase
        if i >= len(self._nstart):
            return self._rbase + len(self._raw)
        return self._nstart[max(i, 0)]

    def _raw_end_of(self, norm_offset: int) -> int:
        """Raw offset where the normalised text ending at ``norm_offset`` ends."""
        if self._nend is None:
            return norm_offset
        i = norm_offset - self._nbase
        if i <= 0:
            return self._nstart[0] if self._nstart else self._rbase
        return self._nend[min(i, len(self._nend)) - 1]

    def _norm_of(self, raw_offset: int) -> int:
        if self._nstart is None:
            return raw_offset
        return self._nbase + bisect.bisect_left(self._nstart, raw_offset)

    def _trim(self) -> None:
        """Drop text no detector can need again, keeping a bounded left context."""
        keep_from = min(self._settled, default=self._nbase + len(self._norm))
        keep_from = min(keep_from, self._norm_of(self._released))
        norm_end = self._nbase + len(self._norm)
        keep_from = max(keep_from, norm_end - self._config.retain_chars)
        keep_from -= self._config.context_chars
        cut = keep_from - self._nbase
        if cut < 1024:  # amortise: slicing costs the length of what is kept
            return
        raw_cut_to = min(self._raw_start_of(keep_from), self._released)
        if self._nstart is None:
            raw_cut_to = keep_from = min(keep_from, raw_cut_to)
            cut = keep_from - self._nbase
        else:
            assert self._nend is not None
            del self._nstart[:cut]
            del self._nend[:cut]
        self._norm = self._norm[cut:]
        self._nbase += cut
        rcut = raw_cut_to - self._rbase
        self._raw = self._raw[rcut:]
        self._rbase += rcut
        # Retraction bookkeeping only matters for text still inside the window.
        self._leaked = [s for s in self._leaked if s.end > self._rbase]
        self._forced = [s for s in self._forced if s.end > self._rbase]

    # ------------------------------------------------------------------ the core

    def _advance(self, now_ms: float, final: bool, scan: bool = True) -> list[Event]:
        events: list[Event] = []
        raw_end = self._rbase + len(self._raw)
        if scan:
            self._scan_all(final, now_ms, events)
            if self._state != "open":
                return events
        norm_end = self._nbase + len(self._norm)
        settled_norm = min(self._settled, default=norm_end)
        # Everything settled: trailing invisible characters go too.
        settled = raw_end if settled_norm >= norm_end else self._raw_start_of(settled_norm)
        settled = max(settled, self._released)

        self._handle_late_findings(now_ms, events)
        if self._state != "open":
            return events

        clusters = self._clusters()
        settled = _pull_back(settled, clusters)
        frontier = settled
        if not final and self._config.granularity != "settled" and frontier > self._released:
            frontier = _pull_back(self._clip(frontier), clusters)

        forced, reason = self._budget_target(now_ms, raw_end)
        if forced > frontier:
            # The budget overrides granularity freely; only unsettled text is a risk.
            forced_end = _push_forward(forced, clusters)
            if forced_end > settled:
                self._release(settled, now_ms, events, clusters)
                if self._state != "open":
                    return events
                unsettled = Span(settled, forced_end)
                waiting = tuple(
                    name
                    for name, session, s in zip(self._names, self._sessions, self._settled, strict=True)
                    if session is not None and self._raw_start_of(s) < forced_end
                )
                action = self._config.on_budget
                assert reason is not None
                events.append(
                    BudgetExceeded(Span(self._released, forced_end), unsettled, reason, action, waiting, now_ms)
                )
                if action == "block":
                    self._block(self._config.block_message, "budget", (), now_ms, events)
                    return events
                self._release(forced_end, now_ms, events, clusters, unsettled_from=settled)
                self._forced.append(unsettled)
                if action == "release":
                    self._leaked.append(unsettled)
            else:
                self._release(max(forced_end, frontier), now_ms, events, clusters)
        elif frontier > self._released:
            self._release(frontier, now_ms, events, clusters)
        if not final:
            self._trim()
        return events

    def _scan_all(self, final: bool, now_ms: float, events: list[Event]) -> None:
        text, base = self._norm, self._nbase
        for i, session in enumerate(self._sessions):
            if session is None:
                continue
            try:
                result = session.scan(text, base, final)
            except Exception as exc:  # a detector's bug must not become a leak
                self._detector_failed(i, exc, now_ms, events)
                if self._state != "open":
                    return
                continue
            self._settled[i] = result.settled
            for f in result.findings:
                raw = self._to_raw(f)
                if raw not in self._findings:  # two patterns may find the very same thing
                    self._findings.append(raw)

    def _detector_failed(self, i: int, exc: BaseException, now_ms: float, events: list[Event]) -> None:
        message = f"{type(exc).__name__}: {exc}"
        events.append(DetectorFailed(self._names[i], message, now_ms))
        if self._config.on_detector_error == "block":
            self._error = f"detector {self._names[i]!r} failed: {message}"
            self._block(self._config.block_message, "detector_error", (), now_ms, events)
            self._state = "failed"
            return
        # A failed detector no longer holds anything back.
        self._sessions[i] = None
        self._settled[i] = 1 << 62

    def _to_raw(self, finding: Finding) -> Finding:
        if self._nstart is None:
            return finding
        span = Span(self._raw_start_of(finding.start), self._raw_end_of(finding.end))
        return Finding(span, finding.label, finding.detector, finding.score)

    def _clusters(self) -> list[_Cluster]:
        """Known findings not yet released, merged where they overlap, in order."""
        if not self._findings:
            return []
        self._findings.sort(key=lambda f: (f.start, -f.end))
        clusters: list[_Cluster] = []
        for f in _without_subsumed(self._findings):
            if clusters and f.start < clusters[-1].end:
                last = clusters[-1]
                last.end = max(last.end, f.end)
                last.findings.append(f)
            else:
                clusters.append(_Cluster(f.start, f.end, [f]))
        return clusters

    def _clip(self, frontier: int) -> int:
        """Move ``frontier`` back to the last word or sentence end before it."""
        start = self._released - self._rbase
        stop = frontier - self._rbase
        pattern = _WHITESPACE if self._config.granularity == "word" else _SENTENCE_END
        m = pattern.search(self._raw, start, stop)
        return self._released if m is None else self._rbase + m.end()

    def _budget_target(self, now_ms: float, raw_end: int) -> tuple[int, Literal["time", "chars"] | None]:
        target = self._released
        reason: Literal["time", "chars"] | None = None
        cfg = self._config
        if cfg.max_hold_chars is not None and raw_end - self._released > cfg.max_hold_chars:
            target, reason = raw_end - cfg.max_hold_chars, "chars"
        if cfg.max_hold_ms is not None and self._arrivals:
            limit = cfg.max_hold_ms
            arrivals = self._arrivals
            # The same expression as next_deadline(), so a tick at the deadline always acts
            # (now - limit could round below the arrival time).
            if arrivals[0][1] + limit <= now_ms:
                # Release through the end of every chunk that has waited too long.
                end = raw_end
                for start, t in arrivals:
                    if t + limit > now_ms:
                        end = start
                        break
                if end > target:
                    target, reason = end, "time"
        return target, reason

    def _handle_late_findings(self, now_ms: float, events: list[Event]) -> None:
        """Findings that start in released text.

        After a budget-forced release, the user saw the forced pieces of the finding. A model
        can also change its mind: NER given more left context may tag a name in text it had
        settled without one. That text went out as settled, so the user saw all of it up to
        the release point; both are reported as :class:`Retracted`. Masked pieces showed
        nothing and are not reported.
        """
        late = [f for f in self._findings if f.start < self._released]
        if not late:
            return
        keep = [f for f in self._findings if f.start >= self._released]
        for f in late:
            # The user saw every budget-forced piece of the finding, over several releases.
            seen = [
                (max(leak.start, f.start), min(leak.end, f.end, self._released))
                for leak in self._leaked
                if max(leak.start, f.start) < min(leak.end, f.end, self._released)
            ]
            shown_end = min(f.end, self._released)
            if not seen and not any(max(p.start, f.start) < min(p.end, shown_end) for p in self._forced):
                # Released as settled: the detector reported it after settling that text.
                seen = [(f.start, shown_end)]
            if seen:
                events.append(Retracted(f, Span(min(a for a, _ in seen), max(b for _, b in seen)), now_ms))
            if f.end > self._released:
                # Act on the part the user has not seen yet.
                keep.append(Finding(Span(self._released, f.end), f.label, f.detector, f.score))
        self._findings = keep

    # ------------------------------------------------------------------ release

    def _release(
        self,
        end: int,
        now_ms: float,
        events: list[Event],
        clusters: list[_Cluster],
        unsettled_from: int | None = None,
    ) -> None:
        """Release source text ``[released, end)``, applying actions; may block instead."""
        start = self._released
        if end <= start:
            return
        pieces: list[str] = []
        pos = start
        cfg = self._config
        for cluster in clusters:
            if cluster.end <= start:
                continue
            if cluster.start >= end:
                break
            if cluster.start > pos:
                pieces.append(self._plain(pos, cluster.start, unsettled_from))
            rule, primary = self._rule_for(cluster)
            span = Span(cluster.start, cluster.end)
            continues = rule.action == "redact" and self._last_redaction == (cluster.start, primary.label)
            self._record_acted(cluster.findings, continues)
            if rule.action == "block":
                self._emit_release(start, cluster.start, pieces, now_ms, events)
                self._block(rule.message or cfg.block_message, "finding", tuple(cluster.findings), now_ms, events)
                return
            if rule.action == "flag":
                events.append(Flagged(span, primary.label, tuple(cluster.findings), now_ms))
                pieces.append(self._plain(cluster.start, cluster.end, None))
            elif rule.action == "mask":
                replacement = self._mask(cluster.start, cluster.end)
                events.append(Redacted(span, primary.label, "mask", replacement, tuple(cluster.findings), now_ms))
                pieces.append(replacement)
            else:
                # A continuation of the redaction just emitted adds no second replacement.
                replacement = "" if continues else _format_template(rule.template, primary)
                events.append(Redacted(span, primary.label, "redact", replacement, tuple(cluster.findings), now_ms))
                pieces.append(replacement)
                self._last_redaction = (cluster.end, primary.label)
            pos = cluster.end
        if pos < end:
            pieces.append(self._plain(pos, end, unsettled_from))
        self._findings = [f for f in self._findings if f.start >= end]
        self._emit_release(start, end, pieces, now_ms, events)

    def _record_acted(self, findings: list[Finding], continues: bool) -> None:
        """Remember findings acted on; a continuation extends the finding it continues.

        A private-key block streamed in pieces is then one finding, as it is when the
        whole text arrives at once.
        """
        for f in findings:
            if continues and self._acted:
                last = self._acted[-1]
                if last.end == f.start and last.label == f.label and last.detector == f.detector:
                    self._acted[-1] = Finding(Span(last.start, f.end), f.label, f.detector, max(last.score, f.score))
                    continue
            self._acted.append(f)

    def _emit_release(self, start: int, end: int, pieces: list[str], now_ms: float, events: list[Event]) -> None:
        if end <= start:
            return
        text = "".join(pieces)
        self._released = end
        self._record_holds(start, end, now_ms)
        if text:
            self._out.append(text)
        events.append(Released(text, Span(start, end), now_ms))

    def _plain(self, a: int, b: int, unsettled_from: int | None) -> str:
        text = self._raw[a - self._rbase : b - self._rbase]
        if unsettled_from is not None and self._config.on_budget == "mask" and b > unsettled_from:
            cut = max(a, unsettled_from) - a
            return text[:cut] + self._mask(max(a, unsettled_from), b)
        return text

    def _mask(self, a: int, b: int) -> str:
        text = self._raw[a - self._rbase : b - self._rbase]
        char = self._config.mask_char
        return "".join(c if c.isspace() else char for c in text)

    def _rule_for(self, cluster: _Cluster) -> tuple[ActionRule, Finding]:
        best: tuple[ActionRule, Finding] | None = None
        for f in cluster.findings:
            rule = self._config.action_for(f)
            if best is None:
                best = (rule, f)
                continue
            # Most severe action, then the surer finding (validated patterns score 1.0,
            # model findings less: the more specific label names it), then the longer.
            rank = (_SEVERITY[rule.action], f.score, f.end - f.start)
            best_rank = (_SEVERITY[best[0].action], best[1].score, best[1].end - best[1].start)
            if rank > best_rank:
                best = (rule, f)
        assert best is not None
        return best

    def _block(
        self,
        message: str,
        reason: Literal["finding", "budget", "detector_error"],
        findings: tuple[Finding, ...],
        now_ms: float,
        events: list[Event],
    ) -> None:
        self._state = "blocked"
        self._block_message = message
        events.append(Blocked(message, reason, findings, now_ms))

    def _record_holds(self, start: int, end: int, now_ms: float) -> None:
        arrivals = self._arrivals
        raw_end = self._rbase + len(self._raw)
        while arrivals:
            chunk_start, t = arrivals[0]
            chunk_end = arrivals[1][0] if len(arrivals) > 1 else raw_end
            a, b = max(chunk_start, start), min(chunk_end, end)
            if b > a:
                self._holds.append((now_ms - t, b - a))
            if chunk_end <= end:
                arrivals.popleft()
            else:
                break


def _without_subsumed(findings: list[Finding]) -> list[Finding]:
    """Drop a finding mostly covered by a surer one from another detector.

    A model's span such as PERSON "Email david@example.com" over a validated
    EMAIL_ADDRESS would otherwise swallow the word "Email" into the redaction. Only a
    finding at least half covered goes; otherwise both merge into one redaction.
    """
    if len(findings) < 2:
        return findings
    kept: list[Finding] = []
    for f in findings:
        subsumed = False
        for g in findings:
            if g is f or g.score <= f.score or g.detector == f.detector:
                continue
            overlap = min(f.end, g.end) - max(f.start, g.start)
            if overlap > 0 and 2 * overlap >= f.end - f.start:
                subsumed = True
                break
        if not subsumed:
            kept.append(f)
    return kept


def _pull_back(frontier: int, clusters: list[_Cluster]) -> int:
    for cluster in clusters:
        if cluster.start >= frontier:
            break
        if cluster.end > frontier:
            return cluster.start
    return frontier


def _push_forward(frontier: int, clusters: list[_Cluster]) -> int:
    for cluster in clusters:
        if cluster.start >= frontier:
            break
        if cluster.end > frontier:
            return cluster.end
    return frontier


def _format_template(template: str, finding: Finding) -> str:
    return template.replace("{label}", finding.label).replace("{detector}", finding.detector)
