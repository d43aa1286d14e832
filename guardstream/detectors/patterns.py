"""Pattern detectors built on the ``regex`` module's partial matching.

A pattern settles text up to the start of the earliest match that could still change:
a *partial* match that runs into the end of the text, or a complete match from which
some path of the pattern still reaches the end (``4111 1111 1111 11`` is a complete
14-digit match that may grow to a valid 16-digit card). The second check compiles each
pattern once more as ``(?:P)(?!)``: it can never match completely, so with
``partial=True`` it matches exactly when some path of ``P`` from that position reaches the
end of the text. When nothing can be forming, everything is settled: no added latency.

Private-key blocks are *regions*: once ``-----BEGIN ... PRIVATE KEY-----`` is complete,
everything up to the matching END line, or to the end of the stream, is a finding the
moment it arrives, so an unterminated block is never released and never waits on the
budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import regex

from ..findings import Finding, Scan, Span
from .base import DetectorSession
from .validators import VALIDATORS

__all__ = ["BUILTIN_LABELS", "PatternDetector", "PatternSpec", "RegionSpec", "builtin_specs"]

_REGEX_FLAGS = regex.VERSION0


@dataclass(frozen=True, slots=True)
class PatternSpec:
    """One label's pattern. ``group`` (a group name) narrows the finding to that group."""

    label: str
    pattern: str
    validator: str | None = None
    group: str | None = None
    score: float = 1.0
    flags: int = 0
    compiled: regex.Pattern[str] = field(init=False, repr=False, compare=False)
    open_check: regex.Pattern[str] = field(init=False, repr=False, compare=False)
    check: Callable[[str], bool] | None = field(init=False, repr=False, compare=False)
    starts: frozenset[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        flags = _REGEX_FLAGS | self.flags
        object.__setattr__(self, "compiled", regex.compile(self.pattern, flags))
        object.__setattr__(self, "open_check", regex.compile(f"(?:{self.pattern})(?!)", flags))
        if self.validator is not None and self.validator not in VALIDATORS:
            raise ValueError(f"unknown validator {self.validator!r}; known: {', '.join(sorted(VALIDATORS))}")
        object.__setattr__(self, "check", VALIDATORS[self.validator] if self.validator else None)
        if self.group is not None and self.group not in self.compiled.groupindex:
            raise ValueError(f"pattern has no group named {self.group!r}")
        object.__setattr__(self, "starts", _start_chars(self.pattern, self.compiled))


# A positive lookbehind, or an anchor (^ outside a class negation, \A, \G).
_UNPROBEABLE = regex.compile(r"\(\?<=|(?<![\\\[])\^|\\[AG]")


def _start_chars(pattern: str, compiled: regex.Pattern[str]) -> frozenset[str] | None:
    """The ASCII characters a match can begin with, or None when that cannot be known.

    A scan skips a settled pattern when the new text holds none of them (and is ASCII),
    which spares most regex calls per chunk. Positive lookbehinds and anchors make the
    probe unreliable, so such patterns are always searched.
    """
    if _UNPROBEABLE.search(pattern):
        return None
    chars = [chr(c) for c in range(32, 127)] + ["\t", "\n", "\r"]
    found = {c for c in chars if compiled.match(c, partial=True) or compiled.match(" " + c, 1, partial=True)}
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class RegionSpec:
    """A block from a ``begin`` line to an ``end`` line (or the end of the stream)."""

    label: str
    begin: str
    end: str
    max_end_chars: int = 80
    score: float = 1.0
    begin_re: regex.Pattern[str] = field(init=False, repr=False, compare=False)
    end_re: regex.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "begin_re", regex.compile(self.begin, _REGEX_FLAGS))
        object.__setattr__(self, "end_re", regex.compile(self.end, _REGEX_FLAGS))


# --------------------------------------------------------------------------- built-ins
# Every pattern starts with a lookbehind so that a match can never begin in the middle of
# a token: this keeps incremental scanning aligned with a scan of the whole text.

_HEX = r"[0-9A-Fa-f]"
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"

_BUILTINS: tuple[PatternSpec | RegionSpec, ...] = (
    # Token boundaries are ASCII classes (``[A-Za-z0-9_]``), not ``\w``: in scripts written
    # without spaces an entity touches a letter (``電話番号は555-123-4567です``), and ``\w``
    # would hide it. Full-width letters and digits arrive folded to ASCII.
    # ``icon@2x.png`` (a retina asset name) is not an address, nor is the ``git@host:path``
    # of an SSH remote: an address followed by ``:`` and a non-space is refused.
    PatternSpec(
        "EMAIL_ADDRESS",
        r"(?<![A-Za-z0-9_.%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,63})@(?!\d{1,2}x\.(?:png|jpe?g|gif|webp|svg|avif)(?![A-Za-z0-9_-]))"
        r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9_-]|:\S)",
    ),
    # US: (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567, +1 555 123 4567, 1-555-...
    PatternSpec(
        "PHONE_NUMBER",
        r"(?<![A-Za-z0-9_+.-])(?:(?:\+|00)?1[ .-]?)?"
        r"(?:\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\d{3}(?P<sep>[ .-])\d{3}(?P=sep)\d{4})"
        r"(?:[ ]?(?:x|[Ee]xt\.?|[Ee]xtension)[ ]?\d{1,5})?(?!\d|[.-]\d)",
    ),
    # E.164 and other international forms: +44 20 7946 0958, +4930123456, +33 (0)1 23 45 67 89
    PatternSpec(
        "PHONE_NUMBER",
        r"(?<![A-Za-z0-9_+])\+[1-9]\d{0,2}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,4})){1,6}(?!\d)",
        validator="e164",
    ),
    # No card number starts with 0 or 1 (this drops 13-digit epoch milliseconds and 0000...
    # runs, at the cost of 1xxx UATP airline cards); the only 13-digit cards are Visa's (4...),
    # which keeps ISBN-13s and EAN-13 barcodes out. A card is not the head of a dashed run.
    PatternSpec(
        "CREDIT_CARD",
        r"(?<![A-Za-z_\d-])(?:4\d{12}(?!\d)|\d(?<![01])(?:\d{13,18}|\d{3}(?P<s>[ -])\d{4}(?P=s)\d{4}(?P=s)\d{1,4}"
        r"(?:(?P=s)\d{3})?|\d{3}(?P<t>[ -])\d{6}(?P=t)\d{4,5}))(?![A-Za-z_\d]|-\d)",
        validator="luhn",
    ),
    PatternSpec(
        "US_SSN",
        r"(?<![A-Za-z_\d-])(?!000|666|9\d\d)\d{3}(?P<d>[- ])(?!00)\d{2}(?P=d)(?!0000)\d{4}(?!\d|(?P=d)\d)",
    ),
    # One branch per IBAN length (SWIFT IBAN registry, as validators.IBAN_LENGTHS): a match has
    # exactly its country's length, so an IBAN followed by ``EUR``, ``BIC:`` or a further group
    # of four is still found, and a token whose country has no IBAN never matches.
    PatternSpec(
        "IBAN_CODE",
        r"(?<![A-Za-z0-9_])(?:"
        r"NO\d\d(?:[A-Z0-9]{11}|(?: [A-Z0-9]{4}){2} [A-Z0-9]{3})"  # 15
        r"|BE\d\d(?:[A-Z0-9]{12}|(?: [A-Z0-9]{4}){3})"  # 16
        r"|(?:DK|FI|FK|FO|GL|NL|SD)\d\d(?:[A-Z0-9]{14}|(?: [A-Z0-9]{4}){3} [A-Z0-9]{2})"  # 18
        r"|(?:MK|SI)\d\d(?:[A-Z0-9]{15}|(?: [A-Z0-9]{4}){3} [A-Z0-9]{3})"  # 19
        r"|(?:AT|BA|EE|KZ|LT|LU|MN|XK)\d\d(?:[A-Z0-9]{16}|(?: [A-Z0-9]{4}){4})"  # 20
        r"|(?:CH|HR|LI|LV)\d\d(?:[A-Z0-9]{17}|(?: [A-Z0-9]{4}){4} [A-Z0-9])"  # 21
        r"|(?:BG|BH|CR|DE|GB|GE|IE|ME|RS|VA)\d\d(?:[A-Z0-9]{18}|(?: [A-Z0-9]{4}){4} [A-Z0-9]{2})"  # 22
        r"|(?:AE|GI|IL|IQ|OM|SO|TL)\d\d(?:[A-Z0-9]{19}|(?: [A-Z0-9]{4}){4} [A-Z0-9]{3})"  # 23
        r"|(?:AD|CZ|ES|MD|PK|RO|SA|SE|SK|TN|VG)\d\d(?:[A-Z0-9]{20}|(?: [A-Z0-9]{4}){5})"  # 24
        r"|(?:LY|PT|ST)\d\d(?:[A-Z0-9]{21}|(?: [A-Z0-9]{4}){5} [A-Z0-9])"  # 25
        r"|(?:IS|TR)\d\d(?:[A-Z0-9]{22}|(?: [A-Z0-9]{4}){5} [A-Z0-9]{2})"  # 26
        r"|(?:BI|DJ|FR|GR|IT|MC|MR|SM)\d\d(?:[A-Z0-9]{23}|(?: [A-Z0-9]{4}){5} [A-Z0-9]{3})"  # 27
        r"|(?:AL|AZ|BY|CY|DO|GT|HN|HU|LB|NI|PL|SV)\d\d(?:[A-Z0-9]{24}|(?: [A-Z0-9]{4}){6})"  # 28
        r"|(?:BR|EG|PS|QA|UA)\d\d(?:[A-Z0-9]{25}|(?: [A-Z0-9]{4}){6} [A-Z0-9])"  # 29
        r"|(?:JO|KW|MU|YE)\d\d(?:[A-Z0-9]{26}|(?: [A-Z0-9]{4}){6} [A-Z0-9]{2})"  # 30
        r"|(?:MT|SC)\d\d(?:[A-Z0-9]{27}|(?: [A-Z0-9]{4}){6} [A-Z0-9]{3})"  # 31
        r"|LC\d\d(?:[A-Z0-9]{28}|(?: [A-Z0-9]{4}){7})"  # 32
        r"|RU\d\d(?:[A-Z0-9]{29}|(?: [A-Z0-9]{4}){7} [A-Z0-9])"  # 33
        r")(?![A-Za-z0-9_])",
        validator="mod97",
    ),
    PatternSpec(
        "IP_ADDRESS",
        rf"(?<![A-Za-z0-9_.]){_OCTET}(?:\.{_OCTET}){{3}}(?![A-Za-z0-9_]|\.\d)",
    ),
    # An IPv6 address must hold a digit and a run of two hex digits: ``s[::-1]``, ``x[1::2]``
    # (Python slices) and ``Abc::Def``, ``cafe::babe`` (C++ names) are all valid addresses
    # to ``ipaddress``. This also drops the bare loopback ``::1``, which identifies no one.
    PatternSpec(
        "IP_ADDRESS",
        rf"(?<![A-Za-z0-9_:.])(?=[0-9A-Fa-f:]{{0,38}}\d)(?=[0-9A-Fa-f:]{{0,37}}{_HEX}{{2}})"
        rf"(?:{_HEX}{{0,4}}:){{2,7}}(?:{_HEX}{{1,4}}|{_OCTET}(?:\.{_OCTET}){{3}})?"
        r"(?:%[A-Za-z0-9]{1,16})?(?![A-Za-z0-9_:]|\.\d)",
        validator="ip",
    ),
    PatternSpec("AWS_ACCESS_KEY", r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    PatternSpec(
        "GITHUB_TOKEN",
        r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?![A-Za-z0-9_])",
    ),
    PatternSpec("SLACK_TOKEN", r"(?<![A-Za-z0-9_-])xox[baprse]-[A-Za-z0-9-]{10,250}(?![A-Za-z0-9_-])"),
    PatternSpec(
        "JWT",
        r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,1024}\.eyJ[A-Za-z0-9_-]{5,8192}\.[A-Za-z0-9_-]{0,2048}(?![A-Za-z0-9_-])",
    ),
    # ``password: ...``, ``DB_PASSWORD=...``, ``"api_key": "..."``: only the value is the
    # finding. The keyword may be the last word of an identifier (``AWS_SECRET_ACCESS_KEY``,
    # ``X-Api-Key``): like AWS_ACCESS_KEY's, the lookbehind refuses only a letter or digit, so
    # a match still never begins inside a word. The value is
    #   quoted:  8-200 non-space characters between the quotes;
    #   ``=``:   a run of value characters not ending in ``.``, except an identifier path
    #            (``os.environ``, ``settings.SECRET_KEY``, ``user_password``) or a call or
    #            subscript (``os.getenv(``): code that names a secret is not one;
    #   ``:``:   the same, holding a digit: after a colon, ``secret: consistency`` is prose
    #            (so a letters-only ``password: sunshine`` is missed; quoted, it is found).
    # (``\x5e`` is a literal ``^``, spelled so that no ``^`` reads as an anchor.)
    PatternSpec(
        "API_KEY",
        r"(?<![A-Za-z0-9])"
        r"(?:api[_-]?key|apikey|access[_-]?key|secret[_-]?key|client[_-]?secret|"
        r"access[_-]?token|auth[_-]?token|api[_-]?token|secret|password|passwd)[\"']?[ \t]{0,16}"
        r"(?:[:=][ \t]{0,16}(?:\"(?P<value>[^\"\s]{8,200})\"|'(?P<value>[^'\s]{8,200})')"
        r"|=[ \t]{0,16}(?![A-Za-z]{1,64}(?:[_.][A-Za-z]{1,64}){1,8}(?!\.?[\w\-/+=!@%\x5e~]))"
        r"(?P<value>[\w\-/+=!@%\x5e~](?:\.?[\w\-/+=!@%\x5e~]){7,199})(?!\.?[\w\-/+=!@%\x5e~(\[])"
        r"|:[ \t]{0,16}(?=[A-Za-z_\-./+=!@%\x5e~]{0,199}\d)"
        r"(?P<value>[\w\-/+=!@%\x5e~](?:\.?[\w\-/+=!@%\x5e~]){7,199})(?!\.?[\w\-/+=!@%\x5e~(\[]))",
        group="value",
        flags=regex.IGNORECASE,
    ),
    RegionSpec(
        "PRIVATE_KEY",
        begin=r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----",
        end=r"-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----",
    ),
)

BUILTIN_LABELS: tuple[str, ...] = tuple(dict.fromkeys(spec.label for spec in _BUILTINS))


def builtin_specs(labels: Iterable[str] | None = None) -> list[PatternSpec | RegionSpec]:
    """The built-in specs for ``labels`` (all of them when ``None``), in a fixed order."""
    if labels is None:
        return list(_BUILTINS)
    wanted = set(labels)
    unknown = wanted - set(BUILTIN_LABELS)
    if unknown:
        raise ValueError(f"unknown built-in label(s): {', '.join(sorted(unknown))}")
    return [spec for spec in _BUILTINS if spec.label in wanted]


# --------------------------------------------------------------------------- detector


class PatternDetector:
    """Detects pattern PII and secrets; immutable, shareable across streams."""

    def __init__(self, name: str, specs: Sequence[PatternSpec | RegionSpec]) -> None:
        self.name = name
        self._patterns = tuple(s for s in specs if isinstance(s, PatternSpec))
        self._regions = tuple(s for s in specs if isinstance(s, RegionSpec))

    @property
    def labels(self) -> tuple[str, ...]:
        specs: tuple[PatternSpec | RegionSpec, ...] = (*self._patterns, *self._regions)
        return tuple(dict.fromkeys(s.label for s in specs))

    def open(self) -> DetectorSession:
        return _PatternSession(self.name, self._patterns, self._regions)


def _shorter_valid(spec: PatternSpec, text: str, start: int, end: int) -> tuple[int, int] | None:
    """A shorter match at ``start`` that validates, ending where the text has a space.

    "4000 0000 0000 0002 100.0.0.0": the greedy match takes " 100" into a 19-digit number
    that fails Luhn; the card before it is still a card. Only ends followed by whitespace
    are tried, where the pattern's own end-of-token check would pass in the full text too.
    """
    assert spec.check is not None
    for p in range(end - 1, start, -1):
        if not text[p].isspace() or text[p - 1].isspace():
            continue
        m = spec.compiled.fullmatch(text, start, p)
        if m is None:
            continue
        g_start, g_end = m.span(spec.group) if spec.group is not None else (start, p)
        if g_end > g_start and spec.check(text[g_start:g_end]):
            return g_start, g_end
    return None


class _PatternSession:
    __slots__ = ("_name", "_patterns", "_region_state", "_regions", "_resume", "_seen")

    def __init__(self, name: str, patterns: tuple[PatternSpec, ...], regions: tuple[RegionSpec, ...]) -> None:
        self._name = name
        self._patterns = patterns
        self._regions = regions
        # Per pattern: the absolute offset from which its next match may start.
        self._resume = [0] * len(patterns)
        # Where the text ended at the previous scan.
        self._seen = 0
        # Per region: (resume offset, inside-from offset or -1, end-search-from offset).
        self._region_state = [(0, -1, 0)] * len(regions)

    def scan(self, text: str, base: int, final: bool) -> Scan:
        size = len(text)
        text_end = base + size
        settled = text_end
        findings: list[Finding] = []
        name = self._name
        partial = not final
        resume = self._resume
        seen = self._seen
        new_text = text[seen - base :] if seen >= base else text
        new_chars = frozenset(new_text) if new_text.isascii() else None
        for i, spec in enumerate(self._patterns):
            pos = resume[i] - base
            if pos < 0:
                pos = 0
            elif (
                resume[i] >= seen
                and new_chars is not None
                and spec.starts is not None
                and new_chars.isdisjoint(spec.starts)
            ):
                # Nothing open for this pattern, and no new character can begin a match.
                resume[i] = text_end
                continue
            compiled = spec.compiled
            while True:
                m = compiled.search(text, pos, partial=partial)
                if m is None:
                    pos = size
                    break
                start, end = m.span()
                if m.partial:
                    pos = size if start == size else start
                    break
                if partial and spec.open_check.match(text, start, partial=True) is not None:
                    pos = start
                    break
                if spec.group is not None:
                    g_start, g_end = m.span(spec.group)
                else:
                    g_start, g_end = start, end
                if g_end > g_start and (spec.check is None or spec.check(text[g_start:g_end])):
                    findings.append(Finding(Span(base + g_start, base + g_end), spec.label, name, spec.score))
                elif spec.check is not None:
                    shorter = _shorter_valid(spec, text, start, end)
                    if shorter is not None:
                        findings.append(
                            Finding(Span(base + shorter[0], base + shorter[1]), spec.label, name, spec.score)
                        )
                pos = end if end > start else end + 1
                if pos > size:
                    pos = size
                    break
            resume[i] = base + pos
            if base + pos < settled:
                settled = base + pos
        for j, region in enumerate(self._regions):
            region_settled = self._scan_region(j, region, text, base, final, findings)
            if region_settled < settled:
                settled = region_settled
        self._seen = text_end
        return Scan(tuple(findings), settled)

    def _scan_region(self, j: int, spec: RegionSpec, text: str, base: int, final: bool, findings: list[Finding]) -> int:
        resume, inside, end_from = self._region_state[j]
        size = len(text)
        pos = max(resume - base, 0)
        settled = base + size
        while True:
            if inside >= 0:
                m = spec.end_re.search(text, max(end_from - base, 0))
                stop = m.end() if m is not None else size
                if base + stop > inside:
                    findings.append(Finding(Span(inside, base + stop), spec.label, self._name, spec.score))
                if m is None:
                    inside = base + size
                    end_from = max(end_from, base + size - spec.max_end_chars)
                    pos = size
                    break
                inside = -1
                pos = stop
                continue
            m = spec.begin_re.search(text, pos, partial=not final)
            if m is None:
                pos = size
                break
            if m.partial:
                pos = size if m.start() == size else m.start()
                settled = base + pos
                break
            inside = base + m.start()
            end_from = base + m.end()
            pos = m.end()
        self._region_state[j] = (base + pos, inside, end_from)
        return settled
