"""Pattern detectors built on the ``regex`` module's partial matching.

A pattern settles text up to the start of the earliest match that could still change:
a *partial* match that runs into the end of the text, or a complete match from which
some path of the pattern still reaches the end (``4111 1111 1111 11`` is a complete
14-digit match that may grow to a valid 16-digit card). The second check compiles each
pattern once more as ``(?:P)(?!)``: it can never match completely, so with
``partial=True`` it matches exactly when some path of ``P`` from that position reaches the
end of the text. When nothing can be forming, everything is settled: no added latency.

Private-key blocks and long tokens are *regions*: once ``-----BEGIN ... PRIVATE KEY-----``
is complete, everything up to the matching END line, or to the end of the stream, is a
finding the moment it arrives; once an unambiguous token prefix is complete (``ghp_`` and
eight token characters, ``xoxb-`` and ten, ``eyJ….eyJ``), the token is a finding from its
first character and grows with every token character that arrives, up to the first one
that cannot belong to it. From then on neither is released raw, nor waits on the budget.
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
    """A region that is a finding from its ``begin`` match on, each piece as it arrives.

    A *block* region (``end`` set) runs to the end of an ``end`` match, or to the end of
    the stream. A *token* region (``token`` set, a character class) runs over token
    characters, of which the ``joins`` characters (say ``.``) may occur at most
    ``max_joins`` times after ``begin``, and ends at the first character that cannot belong
    to the token, or at the end of the stream. Either way the finding starts where ``begin``
    matched, and ``begin`` is searched with partial matching, so text that could still
    complete it is held, as for a pattern.
    """

    label: str
    begin: str
    end: str | None = None
    token: str | None = None
    joins: str = ""
    max_joins: int = 0
    max_end_chars: int = 80
    score: float = 1.0
    begin_re: regex.Pattern[str] = field(init=False, repr=False, compare=False)
    end_re: regex.Pattern[str] | None = field(init=False, repr=False, compare=False)
    token_re: regex.Pattern[str] | None = field(init=False, repr=False, compare=False)
    starts: frozenset[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.end is None) == (self.token is None):
            raise ValueError("a region needs exactly one of end (a block) and token (a token)")
        if self.token is not None and (len(self.token) < 3 or self.token[0] != "[" or self.token[-1] != "]"):
            raise ValueError(f"token must be one character class, like [A-Za-z0-9]; got {self.token!r}")
        if self.joins and self.token is None:
            raise ValueError("joins only applies to a token region")
        begin_re = regex.compile(self.begin, _REGEX_FLAGS)
        object.__setattr__(self, "begin_re", begin_re)
        object.__setattr__(self, "end_re", None if self.end is None else regex.compile(self.end, _REGEX_FLAGS))
        object.__setattr__(
            self, "token_re", None if self.token is None else regex.compile(f"{self.token}*", _REGEX_FLAGS)
        )
        object.__setattr__(self, "starts", _start_chars(self.begin, begin_re))


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
        # Not the account part of an IBAN-shaped token ("GB05 QLOQ 4441 2427 8935 03" that
        # fails mod-97 is no IBAN, and its digits are no card either).
        r"(?<![A-Za-z_\d-])(?<!(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: [A-Z0-9]{4}){1,7} )"
        r"(?:4\d{12}(?!\d)|\d(?<![01])(?:\d{13,18}|\d{3}(?P<s>[ -])\d{4}(?P=s)\d{4}(?P=s)\d{1,4}"
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
    # Long tokens are token regions (see ``RegionSpec``): a finding from the token's first
    # character as soon as a prefix no ordinary text has is complete, so the budget never
    # forces a token out while the rest of it is still streaming. Each prefix keeps the near
    # misses of ``tests/test_pattern_cases.py`` alone:
    #   GitHub: a known type, ``_`` and eight token characters, the token holding a capital
    #     or a digit somewhere: real tokens are random base62 (a token whose first eight have
    #     neither, 0.1% of them, is found at its first capital or digit, still from its first
    #     character), placeholders like ``ghp_yourtokenhere`` are lower-case words. A token of
    #     the old full length (36, or 22 after ``github_pat_``) is a token in any case. A
    #     classic token's last six characters are a checksum of the first thirty, so a
    #     truncated token is the secret all the same, and is found.
    RegionSpec(
        "GITHUB_TOKEN",
        begin=r"(?<![A-Za-z0-9_])gh[pousr]_(?:(?=[a-z]{0,255}[A-Z0-9])[A-Za-z0-9]{8}|[a-z]{36})",
        token=r"[A-Za-z0-9]",
    ),
    RegionSpec(
        "GITHUB_TOKEN",
        begin=r"(?<![A-Za-z0-9_])github_pat_(?:(?=[a-z_]{0,255}[A-Z0-9])[A-Za-z0-9_]{8}|[a-z_]{22})",
        token=r"[A-Za-z0-9_]",
    ),
    #   Slack: a known type, ``-`` and ten token characters, the shortest token the pattern
    #     used to accept (``xoxb-123`` and ``xoxb-...`` stay prose).
    RegionSpec("SLACK_TOKEN", begin=r"(?<![A-Za-z0-9_-])xox[baprse]-[A-Za-z0-9-]{10}", token=r"[A-Za-z0-9-]"),
    #   JWT: a header of at least five base64url characters after ``eyJ`` (``{"``), then
    #     ``.eyJ``: a header alone, ``eyJ.eyJ.abc`` and a header with an opaque second part
    #     are left alone. The token then runs over base64url characters and one more ``.``
    #     (before the signature, or the final ``.`` of an unsigned token), so the ``.`` that
    #     ends a sentence after a signature is not taken.
    RegionSpec(
        "JWT",
        begin=r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,1024}\.eyJ",
        token=r"[A-Za-z0-9_-]",
        joins=".",
        max_joins=1,
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
        # Per region: (resume offset, inside-from offset or -1, end-search-from offset,
        # joins taken by the token inside).
        self._region_state = [(0, -1, 0, 0)] * len(regions)

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
        resume, inside, end_from, joins = self._region_state[j]
        size = len(text)
        settled = base + size
        if (
            inside < 0
            and resume >= self._seen
            and spec.starts is not None
            and (new_text := text[max(self._seen - base, 0) :]).isascii()
            and spec.starts.isdisjoint(new_text)
        ):
            # Nothing open for this region, and no new character can begin it.
            self._region_state[j] = (base + size, -1, end_from, 0)
            return settled
        pos = max(resume - base, 0)
        while True:
            if inside >= 0:
                if spec.token_re is not None:
                    # A token region: token characters, and at most max_joins joins,
                    # from where the last scan stopped (the end of ``begin`` at first).
                    stop = max(end_from - base, 0)
                    while True:
                        m = spec.token_re.match(text, stop)
                        assert m is not None  # a starred class always matches
                        stop = m.end()
                        if stop < size and joins < spec.max_joins and text[stop] in spec.joins:
                            joins += 1
                            stop += 1
                            continue
                        break
                    open_end = stop == size and not final
                else:
                    assert spec.end_re is not None
                    m = spec.end_re.search(text, max(end_from - base, 0))
                    stop = m.end() if m is not None else size
                    open_end = m is None
                if base + stop > inside:
                    findings.append(Finding(Span(inside, base + stop), spec.label, self._name, spec.score))
                if open_end:
                    inside = base + size
                    if spec.token_re is not None:
                        end_from = base + size
                    else:
                        end_from = max(end_from, base + size - spec.max_end_chars)
                    pos = size
                    break
                inside = -1
                joins = 0
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
        self._region_state[j] = (base + pos, inside, end_from, joins)
        return settled
