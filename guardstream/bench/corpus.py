"""A seeded corpus of assistant-style answers, labelled for the holdback sweep.

Everything here is deterministic for a given seed (``random.Random``; no global state),
so two runs feed the guard exactly the same chunks at exactly the same (virtual) times.

The answers look like what a chat model writes: an intro paragraph, a heading, a numbered
or bulleted list, a short fenced code block, a closing paragraph. They are full of
*near misses*: numbers that are not PII but that the pattern detectors must look at
(prices, dates, times, versions, percentages, ports, order numbers, hex colours, short
hashes). With ``pii=True`` every answer also carries planted PII and secrets, each
recorded with its label (:class:`Planted`) and, in the answer's text, its exact offsets
(:class:`LabelledSpan`); every near miss is recorded too (:class:`NearMiss`).

``extended=True`` (the sweep's corpus) plants every built-in label of the ``patterns``
preset in several written forms (IPv6, GitHub, Slack and JWT tokens, private-key blocks,
quoted passwords, dotted and E.164 phones, Amex cards, compact IBANs...) and adds *hard*
near misses: Luhn-failing card numbers, mod-97-failing IBANs, SSNs with impossible areas,
``user@localhost``, ``@handles``, bare three-part versions, ISBNs, UUIDs... Without it the
output is exactly what the throughput benchmarks were measured on. ``names=True`` (for
policies with NER, such as ``pii``) also plants people and places from small built-in
lists, in the sentences, e-mail drafts and sign-offs where assistants write them.
``doses=True`` (for the ``dosage`` and ``default`` presets) makes the answers about health
and plants a medication dosing statement in most of them: drugs of the shipped dose table
by generic or brand name, drug first or dose first, ranges, frequencies, ``mg/kg``, tablets
with their strength, some above the table's adult maximum; and near misses (a drug with
no amount, ``200 g of flour``, ``5000 mAh battery``, ``take 2 tablets`` with no drug, years
and prices next to drug names).

The chunker imitates a BPE tokenizer's output: mostly a leading space plus a word, numbers
in runs of at most three digits, punctuation separate, newlines on their own, no chunk
longer than eight characters. :func:`make_streams` turns answers into
:class:`LabelledStream`\\ s: the model emits BPE-like tokens with realistic pacing (a
slower first token, then 20-50 tokens/s with jitter and rare stalls), and each stream is
cut into chunks one of three ways (``bpe``: the model's tokens; ``char``: one character
per chunk; ``random``: 1-12 characters), each chunk arriving when its last character was
emitted. :func:`write_jsonl` and :func:`read_jsonl` store them in the replay format plus
``spans`` and ``near_misses``.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import IO, Any, Literal, TypeAlias

from ..detectors.dosage import DosageDetector, DoseLimit, DoseTable

__all__ = [
    "CHUNKINGS",
    "DEFAULT_SEED",
    "DEFAULT_STREAMS",
    "Answer",
    "Chunking",
    "CorpusError",
    "LabelledSpan",
    "LabelledStream",
    "NearMiss",
    "Pacing",
    "Planted",
    "chunk_text",
    "iban",
    "luhn_card",
    "make_answer",
    "make_corpus",
    "make_streams",
    "read_jsonl",
    "write_jsonl",
]

# --------------------------------------------------------------------------- vocabulary


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_TOPICS = (
    ("deploy the service", "deployment", "container"),
    ("tune the database", "query planner", "index"),
    ("set up the build", "pipeline", "cache"),
    ("migrate the config", "schema", "field"),
    ("debug the timeout", "request", "retry"),
    ("plan the release", "changelog", "version"),
    ("review the budget", "invoice", "line item"),
    ("organise the trip", "itinerary", "booking"),
)

_WORDS = _words(
    "the a an this that each every some most any other first next last new old same "
    "value setting option file folder service server client request response user team "
    "report result error warning message record table column row key list item step "
    "change update release version test check run build job task queue worker cache "
    "limit timeout retry delay window budget price total order account project branch "
    "simple quick careful small large common useful usual stable default custom local "
    "remote shared public private important optional recent current previous following "
    "is are was were be been has have had do does can could should would may might will "
    "use set add remove keep make take give find show read write send load save start stop "
    "open close move copy merge split sort filter match replace return handle avoid ensure "
    "and or but so because if when while after before then also only just still even "
    "usually often rarely always never quickly safely directly manually automatically "
    "in on at of for with from into over under between through without about per via"
)

# With doses: the answers are about health (same draws from the generator as _TOPICS).
_HEALTH_TOPICS = (
    ("manage a headache", "symptom", "routine"),
    ("bring down a fever", "fever", "thermometer"),
    ("treat back pain", "posture", "pharmacy"),
    ("ease allergy symptoms", "allergy", "season"),
    ("sleep better", "bedtime", "habit"),
    ("recover from a cold", "symptom", "rest"),
    ("prepare for a long flight", "itinerary", "luggage"),
    ("read a medicine label", "label", "leaflet"),
)

_OPENERS = (
    "Sure! Here is how to {task}.",
    "Great question. To {task}, there are a few things to check first.",
    "Here's a short guide to help you {task}.",
    "Happy to help you {task}; the steps below should cover most cases.",
    "You can {task} in a few minutes if you follow this order.",
)

_CLOSERS = (
    "Let me know if anything is unclear and I can go into more detail.",
    "If you run into problems, share the exact error message and I will take a look.",
    "That should be it. Good luck, and feel free to ask follow-up questions!",
    "Hope this helps; I can also write a script that does all of this for you.",
)

_HEADINGS = ("## Steps", "### What to check", "**Summary**", "## Details", "### Example")

_CODE = (
    "```python\nimport json\n\ndef load(path):\n    with open(path) as f:\n        return json.load(f)\n\n"
    'config = load("settings.json")\nprint(config.get("retries", {n}))\n```',
    "```bash\npip install -U requests=={v}\nexport TIMEOUT={n}\npython -m app --port {port} --workers 4\n```",
    "```yaml\nservice:\n  name: api\n  replicas: {n}\n  image: registry/app:{v}\n  port: {port}\n```",
    "```sql\nSELECT id, total\nFROM orders\nWHERE created_at >= '{date}'\nORDER BY total DESC\nLIMIT {n};\n```",
    "```js\nconst total = items.reduce((sum, x) => sum + x.price, 0);\nconsole.log(`total: ${{total}}`);\n```",
)

_MONTHS = _words("January February March April May June July August September October November December")

# --------------------------------------------------------------------------- marks
# While an answer is assembled, every labelled piece of text is wrapped in marks that can
# never occur in the generated text; stripping them at the end yields exact offsets, however
# the pieces were capitalised, punctuated, joined and moved around.

_OPEN, _SEP, _CLOSE = "\x02", "\x1f", "\x03"
_MARKS = re.compile(f"{_OPEN}([^{_SEP}]*){_SEP}|{_CLOSE}")


def _mark(tag: str, text: str) -> str:
    return f"{_OPEN}{tag}{_SEP}{text}{_CLOSE}"


def _strip_marks(text: str) -> tuple[str, list[tuple[int, int, str]]]:
    """The text without marks, and ``(start, end, tag)`` of every marked piece, in order."""
    out: list[str] = []
    pieces: list[tuple[int, int, str]] = []
    size = 0
    pos = 0
    opened: tuple[int, str] | None = None
    for m in _MARKS.finditer(text):
        out.append(text[pos : m.start()])
        size += m.start() - pos
        pos = m.end()
        if m.group(1) is not None:
            opened = (size, m.group(1))
        else:
            assert opened is not None, "unbalanced marks"
            pieces.append((opened[0], size, opened[1]))
            opened = None
    out.append(text[pos:])
    return "".join(out), pieces


def _capitalise(text: str) -> str:
    """Upper-case the first character that is not inside a mark's tag."""
    m = re.match(f"(?:{_OPEN}[^{_SEP}]*{_SEP})*", text)
    i = m.end() if m else 0
    return text[:i] + text[i : i + 1].upper() + text[i + 1 :]


# --------------------------------------------------------------------------- near misses

_NEAR_MISS_KINDS = (
    "price",
    "euro_price",
    "iso_date",
    "long_date",
    "time",
    "time_seconds",
    "version",
    "percent",
    "big_number",
    "port",
    "order_number",
    "hex_colour",
    "short_hash",
    "resolution",
    "http_status",
    "size",
)


def _near_miss(rng: random.Random) -> tuple[str, str]:
    """A number that looks a little like PII but is not: ``(kind, text)``."""
    kind = rng.randrange(16)
    return _NEAR_MISS_KINDS[kind], _near_miss_text(rng, kind)


def _near_miss_text(rng: random.Random, kind: int) -> str:
    if kind == 0:
        return f"${rng.randint(1, 999)}.{rng.randint(0, 99):02d}"
    if kind == 1:
        return f"\u20ac{rng.randint(1, 9)},{rng.randint(0, 999):03d}.00"
    if kind == 2:
        return f"{rng.randint(2019, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if kind == 3:
        return f"{rng.choice(_MONTHS)} {rng.randint(1, 28)}, {rng.randint(2019, 2026)}"
    if kind == 4:
        return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
    if kind == 5:
        return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    if kind == 6:
        return f"v{rng.randint(0, 5)}.{rng.randint(0, 20)}.{rng.randint(0, 30)}"
    if kind == 7:
        return f"{rng.randint(1, 99)}.{rng.randint(0, 9)}%"
    if kind == 8:
        return f"{rng.randint(1, 999)},{rng.randint(0, 999):03d},{rng.randint(0, 999):03d}"
    if kind == 9:
        return f"port {rng.choice((80, 443, 5432, 6379, 8000, 8080, 9090))}"
    if kind == 10:
        return f"order #{rng.randint(10000, 99999)}"
    if kind == 11:
        return f"#{rng.randrange(16**6):06x}"
    if kind == 12:
        return f"commit {rng.randrange(16**7):07x}"
    if kind == 13:
        return f"{rng.randint(640, 3840)}x{rng.randint(480, 2160)}"
    if kind == 14:
        return f"HTTP {rng.choice((200, 201, 301, 404, 429, 500, 503))}"
    return f"{rng.randint(2, 64)} GB"


_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_FIRST = ("jane", "omar", "li", "maria", "tom", "aisha", "ken", "sofia")
_LAST = ("doe", "khan", "wei", "garcia", "smith", "okafor", "sato", "rossi")


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


def _chars(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _hard_near_miss(rng: random.Random) -> tuple[str, str]:
    """Text the detectors must look at hardest and still leave alone: ``(kind, text)``."""
    kind = rng.randrange(12)
    if kind == 0:  # one digit off a valid card: fails Luhn
        card = luhn_card(rng, rng.choice((" ", "-")))
        last = str((int(card[-1]) + rng.randint(1, 9)) % 10)
        return "luhn_failing_card", card[:-1] + last
    if kind == 1:  # check digits off by one or more: fails mod-97
        good = iban(rng)
        check = int(good[2:4])
        bad = (check + rng.randint(1, 90) - 2) % 97 + 2
        return "mod97_failing_iban", f"{good[:2]}{bad:02d}{good[4:]}"
    if kind == 2:
        area = rng.choice(("000", "666", str(rng.randint(900, 999))))
        return "invalid_ssn", f"{area}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    if kind == 3:
        return "localhost_email", f"{rng.choice(_FIRST)}@localhost"
    if kind == 4:
        return "handle", f"@{rng.choice(_FIRST)}_{rng.choice(_LAST)}"
    if kind == 5:
        return "retina_asset", f"{rng.choice(('icon', 'logo', 'avatar'))}@{rng.randint(2, 3)}x.png"
    if kind == 6:
        return "bare_version", f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 30)}"
    if kind == 7:
        return "isbn13", "978" + _digits(rng, 10)
    if kind == 8:
        return "short_aws_id", "AKIA" + _chars(rng, _UPPER, 8)
    if kind == 9:
        return "zip_plus4", f"{rng.randint(10000, 99999)}-{rng.randint(0, 9999):04d}"
    if kind == 10:
        hexd = "0123456789abcdef"
        return "uuid", "-".join(_chars(rng, hexd, n) for n in (8, 4, 4, 4, 12))
    return "epoch_ms", "17" + _digits(rng, 11)


# --------------------------------------------------------------------------- planted PII


@dataclass(frozen=True, slots=True)
class Planted:
    """One piece of PII planted in an answer: its label and its exact text.

    Only ``text[lead:len(text) - trail]`` is the violation (``api_key=`` and quotes around
    a secret are context, not the secret).
    """

    label: str
    text: str
    lead: int = 0
    trail: int = 0

    @property
    def value(self) -> str:
        return self.text[self.lead : len(self.text) - self.trail]


def luhn_card(rng: random.Random, sep: str = " ") -> str:
    """A 16-digit Visa-like number (``4`` + 14 random digits + check digit) that passes Luhn."""
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    s = "".join(map(str, digits)) + _luhn_digit(digits)
    return sep.join(s[i : i + 4] for i in range(0, 16, 4))


def _luhn_digit(digits: Sequence[int]) -> str:
    total = 0
    # The check digit will be at the end, so counting from the right the last of these
    # digits is at an odd position (doubled).
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def _amex(rng: random.Random) -> str:
    digits = [3, rng.choice((4, 7))] + [rng.randrange(10) for _ in range(12)]
    s = "".join(map(str, digits)) + _luhn_digit(digits)
    return f"{s[:4]} {s[4:10]} {s[10:]}"


def iban(rng: random.Random) -> str:
    """A GB IBAN with valid mod-97 check digits, printed in groups of four."""
    bban = "".join(rng.choice(_UPPER) for _ in range(4))
    bban += "".join(str(rng.randrange(10)) for _ in range(14))
    compact = _with_check("GB", bban)
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def _with_check(country: str, bban: str) -> str:
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def _phone_us(rng: random.Random) -> str:
    a, b, c = rng.randint(201, 989), rng.randint(200, 999), rng.randint(0, 9999)
    form = rng.randrange(3)
    if form == 0:
        return f"({a}) {b}-{c:04d}"
    if form == 1:
        return f"{a}-{b}-{c:04d}"
    return f"+1 {a} {b} {c:04d}"


def _ssn(rng: random.Random, sep: str = "-") -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}{sep}{rng.randint(1, 99):02d}{sep}{rng.randint(1, 9999):04d}"


def _plant(rng: random.Random) -> Planted:
    first = rng.choice(_FIRST)
    last = rng.choice(_LAST)
    kind = rng.randrange(9)
    if kind == 0:
        return Planted("EMAIL_ADDRESS", f"{first}.{last}@{rng.choice(('example.com', 'mail.example.org', 'corp.io'))}")
    if kind == 1:
        return Planted("PHONE_NUMBER", _phone_us(rng))
    if kind == 2:
        return Planted("PHONE_NUMBER", f"+44 20 {rng.randint(7000, 7999)} {rng.randint(0, 9999):04d}")
    if kind == 3:
        return Planted("CREDIT_CARD", luhn_card(rng, rng.choice((" ", "-"))))
    if kind == 4:
        return Planted("US_SSN", _ssn(rng))
    if kind == 5:
        return Planted("IP_ADDRESS", f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}")
    if kind == 6:
        return Planted("IBAN_CODE", iban(rng))
    if kind == 7:
        key = "AKIA" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
        return Planted("AWS_ACCESS_KEY", key)
    value = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(24))
    return Planted("API_KEY", f"api_key={value}", lead=len("api_key="))


def _ipv6(rng: random.Random) -> str:
    groups = [f"{rng.randrange(16**4):x}" for _ in range(8)]
    groups[0], groups[1] = "2001", "db8"
    if rng.random() < 0.5:
        return ":".join(groups)
    cut = rng.randint(3, 6)
    return ":".join(groups[:cut]) + "::" + ":".join(groups[cut + 1 :])


def _b64url(rng: random.Random, n: int) -> str:
    return _chars(rng, _ALNUM + "-_", n)


def _pem(rng: random.Random) -> str:
    kind = rng.choice(("RSA ", "EC ", "OPENSSH ", ""))
    lines = [_chars(rng, _ALNUM + "+/", 64) for _ in range(rng.randint(3, 6))]
    lines.append(_chars(rng, _ALNUM + "+/", rng.randint(8, 60)) + "=" * rng.randint(0, 2))
    body = "\n".join(lines)
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"


def _plant_extended(rng: random.Random) -> Planted:
    """Every built-in label of the ``patterns`` preset, equally often, in several forms."""
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    label = rng.choice(_EXTENDED_LABELS)
    form = rng.randrange(4)
    if label == "EMAIL_ADDRESS":
        domain = rng.choice(("example.com", "mail.example.org", "corp.io", "uni.ac.uk"))
        local = f"{first}.{last}" if form < 2 else f"{first}{rng.randint(1, 99)}"
        return Planted(label, f"{local}@{domain}")
    if label == "PHONE_NUMBER":
        if form == 0:
            return Planted(label, _phone_us(rng))
        if form == 1:
            return Planted(label, f"{rng.randint(201, 989)}.{rng.randint(200, 999)}.{rng.randint(0, 9999):04d}")
        if form == 2:
            return Planted(label, f"+44 20 {rng.randint(7000, 7999)} {rng.randint(0, 9999):04d}")
        return Planted(label, f"+4930{_digits(rng, 7)}")
    if label == "CREDIT_CARD":
        if form == 0:
            return Planted(label, luhn_card(rng, " "))
        if form == 1:
            return Planted(label, luhn_card(rng, "-"))
        if form == 2:
            return Planted(label, luhn_card(rng, ""))
        return Planted(label, _amex(rng))
    if label == "US_SSN":
        return Planted(label, _ssn(rng, "-" if form < 3 else " "))
    if label == "IBAN_CODE":
        if form < 2:
            return Planted(label, iban(rng))
        return Planted(label, _with_check("DE", _digits(rng, 18)))
    if label == "IP_ADDRESS":
        if form == 0:
            return Planted(label, f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}")
        if form == 1:
            return Planted(label, f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}")
        return Planted(label, _ipv6(rng))
    if label == "AWS_ACCESS_KEY":
        return Planted(label, rng.choice(("AKIA", "ASIA")) + _chars(rng, _UPPER + "234567", 16))
    if label == "GITHUB_TOKEN":
        if form < 3:
            return Planted(label, rng.choice(("ghp_", "gho_", "ghs_")) + _chars(rng, _ALNUM, 36))
        return Planted(label, "github_pat_" + _chars(rng, _ALNUM, 22) + "_" + _chars(rng, _ALNUM, 59))
    if label == "SLACK_TOKEN":
        return Planted(
            label,
            f"{rng.choice(('xoxb', 'xoxp'))}-{_digits(rng, 11)}-{_digits(rng, 13)}-{_chars(rng, _ALNUM, 24)}",
        )
    if label == "JWT":
        header = rng.choice(("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "eyJhbGciOiJSUzI1NiJ9"))
        return Planted(label, f"{header}.eyJ{_b64url(rng, rng.randint(20, 80))}.{_b64url(rng, 43)}")
    if label == "API_KEY":
        value = _chars(rng, _ALNUM, rng.randint(16, 32))
        if form == 0:
            return Planted(label, f"api_key={value}", lead=len("api_key="))
        if form == 1:
            return Planted(label, f'password: "{value}"', lead=len('password: "'), trail=1)
        if form == 2:
            return Planted(label, f'client_secret = "{value}"', lead=len('client_secret = "'), trail=1)
        return Planted(label, f'"apiKey": "{value}"', lead=len('"apiKey": "'), trail=1)
    return Planted("PRIVATE_KEY", _pem(rng))


_EXTENDED_LABELS = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "IP_ADDRESS",
    "AWS_ACCESS_KEY",
    "GITHUB_TOKEN",
    "SLACK_TOKEN",
    "JWT",
    "API_KEY",
    "PRIVATE_KEY",
)

_PII_SENTENCES = (
    "You can reach {name} at {pii} if the ticket stalls.",
    "The customer wrote their details as {pii} in the form.",
    "Use {pii} when the support agent asks for it.",
    "For reference, the value on file is {pii}, which matches the record.",
)

_BLOCK_INTROS = (
    "The old server still had this key in its config:",
    "Here is the key from the deploy notes, exactly as it was pasted:",
    "For reference, the block in the ticket read:",
)

# --------------------------------------------------------------------------- names and places
# For policies with NER (the ``pii`` preset): people and places where assistants put them.
# Small built-in lists (several languages, accents, multi-word cities); whether the model
# tags each one is decided later, on the whole text, by the sweep (see ``sweep.py``).

_GIVEN = _words(
    "Maria James Olivia Liam Emma Noah Sophie Lukas Hannah Jonas Camille Louis Chloé Hugo "
    "Lucía Javier Carmen Pablo Giulia Matteo Francesca Lorenzo Aisha Omar Priya Arjun Mei "
    "Hiroshi Yuki Chinedu Amara Sean Siobhan Oliver Charlotte Daniel Sarah Michael Jennifer "
    "David Emily Robert Laura Thomas Anna Peter Katarzyna Piotr Ingrid Lars Fatima Elena Dmitri"
)
_FAMILY = _words(
    "Garcia Smith Johnson Williams Brown Miller Müller Schmidt Schneider Fischer Weber Dubois "
    "Martin Bernard Lefèvre Moreau Fernández López Martínez Sánchez Rossi Russo Bianchi Romano "
    "Colombo Khan Patel Sharma Nguyen Tanaka Sato Okafor Adeyemi O'Brien Murphy Kowalski Nowak "
    "Johansson Andersson Petrov Ivanova Wilson Taylor Anderson Thompson Clarke Hughes"
)
_CITIES = (
    *_words(
        "London Manchester Edinburgh Bristol Berlin Hamburg Munich Leipzig Cologne Paris Lyon "
        "Marseille Toulouse Madrid Barcelona Valencia Seville Rome Milan Naples Turin Lisbon Porto "
        "Amsterdam Rotterdam Brussels Vienna Zurich Geneva Prague Warsaw Kraków Stockholm Oslo "
        "Copenhagen Helsinki Dublin Chicago Boston Seattle Denver Austin Toronto Vancouver Sydney "
        "Melbourne Tokyo Osaka Mumbai Bangalore Singapore Nairobi Lagos"
    ),
    "São Paulo",
    "Mexico City",
    "Buenos Aires",
    "San Francisco",
    "New York",
    "Los Angeles",
)
_COUNTRIES = _words(
    "Germany France Spain Italy Portugal Japan India Brazil Canada Mexico Kenya Nigeria Poland "
    "Sweden Norway Ireland Australia Argentina Egypt Vietnam Belgium Austria Switzerland Greece Chile"
)
_STATES = _words("Texas Ohio Oregon Florida Colorado Michigan Arizona Illinois Nevada Vermont Utah Maine")
_TITLES = ("Dr.", "Ms.", "Mr.", "Prof.", "Mrs.")
# Capitalised words that are not people or places: the model sees them, the labels do not.
_PRODUCTS = _words("Python Docker Kubernetes PostgreSQL Excel Jira Monday Friday March README Terraform Chrome")

# Fields: {p} full name, {f} first name, {t} title and surname, {c} city, {k} country,
# {s} US state, {x} any place, {n} one of the answer's nouns, {m} a capitalised non-name.
_NAME_SENTENCES = (
    "{p} is the best person to ask about the {n}; they ran the last review.",
    "I'd suggest emailing {f} first, since they own the {n}.",
    "The {n} was originally written by {p} in {c}.",
    "If you're travelling from {c} to {c}, book the train at least a week ahead.",
    "According to {t}, the {n} should be reviewed every quarter.",
    "{c} is a good base if you want to explore {k} on a budget.",
    "Most of the team works remotely, but {p} and {p} are based in {c}.",
    "You could also ask {p}'s team in {k} for a second opinion.",
    "{p} mentioned that the {n} in {s} still needs an approval.",
    "The office in {c}, {k} opens at nine, so call {f} after that.",
    "My recommendation: let {f} handle the {n} and ask {p} to review it.",
    "When {t} joined, the {n} moved to {m} and nobody in {x} complained.",
    "Both {p} (in {c}) and {p} (in {c}) signed off on the {n}.",
    "{f} from the {c} office can share the {m} export with you.",
    "The new {n} applies to customers in {s} and {k} from {m} onwards.",
    "In {c}, the {n} is handled by a local partner rather than by {p}.",
)
_SIGN_OFFS = ("Best regards", "Thanks", "Kind regards", "Cheers")


class _People:
    """Plants names and places into marked text, recording each in ``planted``."""

    def __init__(self, rng: random.Random, planted: list[Planted], nouns: Sequence[str]) -> None:
        self.rng = rng
        self.planted = planted
        self.nouns = nouns

    def plant(self, label: str, text: str) -> str:
        self.planted.append(Planted(label, text))
        return _mark(f"pii:{len(self.planted) - 1}", text)

    def person(self) -> str:
        return self.plant("PERSON", f"{self.rng.choice(_GIVEN)} {self.rng.choice(_FAMILY)}")

    def first(self) -> str:
        return self.plant("PERSON", self.rng.choice(_GIVEN))

    def titled(self) -> str:
        return f"{self.rng.choice(_TITLES)} {self.plant('PERSON', self.rng.choice(_FAMILY))}"

    def place(self, kind: str = "x") -> str:
        if kind == "x":
            r = self.rng.random()
            kind = "c" if r < 0.6 else "k" if r < 0.85 else "s"
        pool = _CITIES if kind == "c" else _COUNTRIES if kind == "k" else _STATES
        return self.plant("LOCATION", self.rng.choice(pool))

    def fill(self, template: str) -> str:
        def field(m: re.Match[str]) -> str:
            key = m.group(1)
            if key == "p":
                return self.person()
            if key == "f":
                return self.first()
            if key == "t":
                return self.titled()
            if key == "n":
                return self.rng.choice(self.nouns)
            if key == "m":
                return self.rng.choice(_PRODUCTS)
            return self.place(key)

        return re.sub(r"\{(\w)\}", field, template)

    def sentence(self) -> str:
        return self.fill(self.rng.choice(_NAME_SENTENCES))

    def email(self) -> str:
        """A drafted e-mail: greeting, two sentences, a sign-off with a full name."""
        rng = self.rng
        greeting = rng.choice(("Hi", "Dear", "Hello")) + " " + (self.first() if rng.random() < 0.7 else self.titled())
        body = f"{self.sentence()} {self.sentence()}"
        return f"Here is a draft you can send:\n\n{greeting},\n\n{body}\n\n{rng.choice(_SIGN_OFFS)},\n{self.person()}"


# --------------------------------------------------------------------------- doses
# For the dosage detector (the ``dosage`` and ``default`` presets): dosing statements as
# its module docstring defines them, written the ways assistants write them, and the
# near misses it must leave alone. A statement is labelled with what the detector says
# of it alone (``DOSAGE`` or ``DOSAGE_OVER_MAX``); a sweep relabels it with what the
# detector finds on the whole answer (see ``sweep.py``).

_NICE = (
    *(0.5, 1, 2, 2.5, 4, 5, 10, 12.5, 15, 20, 25, 30, 40, 50, 60, 75, 80, 100, 120, 125, 150, 200, 250),
    *(300, 325, 400, 500, 600, 650, 750, 800, 1000, 1200, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000),
)
_COUNT_WORDS = ("one", "two", "three")
_UNIT_WORDS = {
    "mg": ("mg", "mg", "mg", "milligrams"),
    "mcg": ("mcg", "micrograms", "µg"),
    "IU": ("IU", "units"),
    "units": ("units", "IU"),
}
_FREQUENCIES = (
    "twice daily",
    "once daily",
    "daily",
    "every 6 hours",
    "every 4 to 6 hours",
    "every 8 hours",
    "every 12 hours",
    "q6h",
    "TID",
    "BID",
    "three times a day",
    "up to 4 times a day",
    "at bedtime",
    "once weekly",
    "every 4 hours as needed",
    "as needed",
)
# {v}: a statement led by a verb ("take 400 mg of ibuprofen"); {n}: one without.
_DOSE_VERB_SENTENCES = (
    "You can {v}.",
    "If the pain comes back, {v} and rest for a while.",
    "Most adults {v} without any problems.",
    "My suggestion: {v}, and drink plenty of water.",
)
_DOSE_NOUN_SENTENCES = (
    "For most adults, the usual dose is {n}.",
    "A common regimen is {n}, but check with a pharmacist first.",
    "The leaflet lists {n} for adults.",
    "{N} is what most guides suggest.",
    "- {N}",
)
# A dosing statement is over the maximum this often (the frequency can push more over).
_OVER_MAX_P = 0.25


@functools.cache
def _dose_table() -> tuple[DoseTable, tuple[DoseLimit, ...], DosageDetector]:
    """The shipped table, its drugs with no digit in their name, and a detector reporting both labels."""
    table = DoseTable.load()
    drugs = tuple(limit for limit in table.limits if not any(c.isdigit() for c in limit.drug))
    return table, drugs, DosageDetector("dosage", "all", table)


def _drug_names(limit: DoseLimit) -> list[str]:
    return [name for name in limit.names if not any(c.isdigit() for c in name)]


def _nice(value: float) -> float:
    return min(_NICE, key=lambda n: abs(n - value) / n)


def _amount(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}" if value >= 10000 else str(int(value))
    return f"{value:g}"


def _dose(rng: random.Random, limit: DoseLimit, over: bool) -> str:
    """An amount and unit for ``limit``'s drug: plain, a range, mg/kg, a count, a strength, grams."""
    unit = limit.unit
    if limit.max_single is not None:
        single = limit.max_single * (rng.uniform(1.5, 4.0) if over else rng.uniform(0.1, 1.0))
    elif unit == "mg":
        single = rng.uniform(5, 500)
    elif unit == "mcg":
        single = rng.uniform(25, 200)
    else:
        single = rng.uniform(10, 40)
    single = _nice(single)
    word = rng.choice(_UNIT_WORDS[unit])
    form = rng.randrange(7)
    if form == 1:
        to = rng.choice(("-", " to ", "\u2013"))
        return f"{_amount(_nice(single / 2))}{to}{_amount(single)} {word}"
    if form == 2 and unit == "mg":
        per_kg = limit.max_single_per_kg or rng.choice((5, 10, 15))
        return f"{_amount(_nice(per_kg * (rng.uniform(1.5, 3.0) if over else rng.uniform(0.3, 1.0))))} mg/kg"
    if form == 3:
        count = rng.choice(("1 or 2", "2", "one", "two", "1-2"))
        return f"{count} {rng.choice(('tablets', 'capsules', 'tabs', 'caplets'))}"
    if form == 4 and unit in ("mg", "mcg"):
        n = rng.choice((1, 2, 2, 3))
        strength = _amount(_nice(single / n))
        if rng.random() < 0.5:
            count = _COUNT_WORDS[n - 1] if rng.random() < 0.5 else str(n)
            return f"{count} {strength} {word} {rng.choice(('tablets', 'capsules')) if n > 1 else 'tablet'}"
        return f"{n} tablet{'s' if n > 1 else ''} of {strength} {word}"
    if form == 5 and unit == "mg" and single >= 1000:
        return f"{_amount(single / 1000)} g"
    glue = "" if unit == "mg" and word == "mg" and rng.random() < 0.25 else " "
    return f"{_amount(single)}{glue}{word}"


def _dose_statement(rng: random.Random) -> tuple[str, str]:
    """A dosing statement and the verb that leads it (empty for a noun phrase): ``(lead, statement)``."""
    _, drugs, _ = _dose_table()
    limit = rng.choice(drugs)
    names = _drug_names(limit)
    alias = len(names) > 1 and rng.random() < 0.4
    drug = rng.choice(names[1:]) if alias else names[0]
    over = rng.random() < _OVER_MAX_P
    dose = _dose(rng, limit, over)
    order = rng.randrange(6)
    if order < 3 and dose.endswith("mg/kg") and rng.random() < 0.4:
        dose = f"{dose}/day in 3 divided doses"  # only drug first: "X 10 mg/kg/day in 3 divided doses"
    freq = ""
    if "divided" not in dose and rng.random() < 0.75:
        freq = (" by mouth " if rng.random() < 0.15 else " ") + rng.choice(_FREQUENCIES)
    if order == 0:
        return "", f"{drug} {dose}{freq}"
    if order == 1:
        return "", f"{drug}: take {dose}{freq}"
    if order == 2 and len(names) > 1:
        other = names[0] if alias else names[1]
        return "", f"{drug} ({other}) {dose}{freq}"
    if order == 4:
        return "", f"{dose} {drug}{freq}"
    return rng.choice(("take ", "take ", "give ", "use ")), f"{dose} of {drug}{freq}"


def _dose_near_miss(rng: random.Random) -> tuple[str, str, str, str]:
    """A sentence the dosage detector must leave alone: ``(kind, before, the near miss, after)``."""
    _, drugs, _ = _dose_table()
    drug = rng.choice(_drug_names(rng.choice(drugs)))
    title = drug[:1].upper() + drug[1:]
    kind = rng.randrange(10)
    if kind == 0:
        after = rng.choice(
            (
                " can upset the stomach if taken without food.",
                " is sold over the counter in most countries.",
                " should not be mixed with alcohol.",
            )
        )
        return "drug_without_amount", "", title, after
    if kind == 1:
        return "flour_grams", "Mix ", f"{rng.choice((150, 200, 250, 500))} g of flour", " with the butter first."
    if kind == 2:
        battery = f"{rng.choice((3000, 4500, 5000))} mAh battery"
        return "battery_mah", "The spare phone has a ", battery, ", so it lasts a day."
    if kind == 3:
        count = rng.choice(("2", "two", "1 or 2"))
        return "tablets_without_drug", "Then take ", f"{count} tablets", " with a full glass of water."
    if kind == 4:
        return "water_ml", "Drink ", f"{rng.choice((250, 500))} ml of water", " before you go to bed."
    if kind == 5:
        return "year_near_drug", "", f"{title} was first approved in {rng.randint(1950, 2018)}", "."
    if kind == 6:
        price = f"{drug} costs ${rng.randint(3, 30)}.{rng.randint(0, 99):02d}"
        return "price_near_drug", "A pack of ", price, " at most pharmacies."
    if kind == 7:
        weight = f"{rng.choice((200, 400, 500))} mg. {title}"
        return "dose_in_another_sentence", "The tablets weigh about ", weight, " is the active ingredient."
    if kind == 8:
        return "compound_word", "Ask for a ", f"{drug.lower()}-free", " formula if you are sensitive."
    return "percent_near_drug", "A ", f"{drug} {rng.choice((1, 2, 5, 10))}% gel", " is another option."


def _plant_doses(rng: random.Random, planted: list[Planted], blocks: list[str]) -> None:
    """A dosing statement in most answers (one at most), and 2-3 near misses."""
    sentences: list[str] = []
    if rng.random() < 0.85:
        lead, statement = _dose_statement(rng)
        _, _, detector = _dose_table()
        found = detector.open().scan(statement, 0, True).findings
        planted.append(Planted(found[0].label if found else "DOSAGE", statement))
        marked = _mark(f"pii:{len(planted) - 1}", statement)
        if lead:
            sentences.append(rng.choice(_DOSE_VERB_SENTENCES).format(v=lead + marked))
        else:
            template = rng.choice(_DOSE_NOUN_SENTENCES)
            sentences.append(template.format(n=marked, N=_capitalise(marked)))
    for _ in range(rng.randint(2, 3)):
        kind, before, text, after = _dose_near_miss(rng)
        sentences.append(before + _mark(f"nm:{kind}", text) + after)
    rng.shuffle(sentences)
    for sentence in sentences:
        where = rng.randrange(len(blocks) + 1)
        block = blocks[where] if where < len(blocks) else ""
        prose = block and not block.startswith(("```", "#", "**")) and "PRIVATE KEY-----" not in block
        if prose and not sentence.startswith("- "):
            blocks[where] = block + " " + sentence
        else:
            blocks.insert(where, sentence)


# --------------------------------------------------------------------------- answers


@dataclass(frozen=True, slots=True)
class LabelledSpan:
    """A violation in a text: ``[start, end)`` is a ``label`` every detector should catch."""

    start: int
    end: int
    label: str


@dataclass(frozen=True, slots=True)
class NearMiss:
    """Text at ``[start, end)`` that looks like a violation but is not (a ``kind``)."""

    start: int
    end: int
    kind: str


@dataclass(frozen=True, slots=True)
class Answer:
    """One generated answer: its text, what was planted, and where (offsets into ``text``)."""

    text: str
    planted: tuple[Planted, ...] = field(default=())
    spans: tuple[LabelledSpan, ...] = field(default=())
    near_misses: tuple[NearMiss, ...] = field(default=())


def _sentence(rng: random.Random, nouns: tuple[str, str, str], near_miss_rate: float, hard: float = 0.0) -> str:
    words: list[str] = []
    for _ in range(rng.randint(8, 22)):
        r = rng.random()
        if r < near_miss_rate:
            kind, text = _hard_near_miss(rng) if hard and rng.random() < hard else _near_miss(rng)
            words.append(_mark(f"nm:{kind}", text))
        elif r < near_miss_rate + 0.08:
            words.append(rng.choice(nouns))
        else:
            words.append(rng.choice(_WORDS))
    for i in range(3, len(words) - 2):
        if rng.random() < 0.06:
            words[i] += ","
    return _capitalise(" ".join(words)) + rng.choice(".....!?")


def _paragraph(
    rng: random.Random,
    nouns: tuple[str, str, str],
    near_miss_rate: float,
    hard: float = 0.0,
    sentences: tuple[int, int] = (2, 5),
) -> str:
    return " ".join(_sentence(rng, nouns, near_miss_rate, hard) for _ in range(rng.randint(*sentences)))


def _code(rng: random.Random) -> str:
    return rng.choice(_CODE).format(
        n=rng.randint(2, 50),
        v=f"{rng.randint(1, 3)}.{rng.randint(0, 32)}.{rng.randint(0, 9)}",
        port=rng.choice((8000, 8080, 9000)),
        date=f"{rng.randint(2020, 2026)}-{rng.randint(1, 12):02d}-01",
    )


def make_answer(
    rng: random.Random,
    pii: bool = False,
    near_miss_rate: float = 0.05,
    extended: bool = False,
    names: bool = False,
    doses: bool = False,
) -> Answer:
    """One assistant-style answer (roughly 150-450 words); with ``pii``, 2-4 planted items.

    ``extended`` plants every label of the ``patterns`` preset and adds hard near misses
    (see the module's docstring); without it the text for a given ``rng`` state is the
    one the throughput benchmarks use. ``names`` also plants people (``PERSON``) and
    places (``LOCATION``): 2-4 sentences naming them, sometimes a drafted e-mail with a
    greeting and a signature, sometimes a name as the answer's last word; and the person
    a planted item belongs to is named. ``doses`` makes the answer about health and
    plants at most one dosing statement (in 85% of answers) and 2-3 near misses of the
    dosage detector. Without ``names`` and ``doses`` nothing changes.
    """
    hard = 0.4 if extended else 0.0
    # With names the filler prose is about half as long: the names take its place, and
    # the answer stays near the ~1,000-2,000 characters of the other corpora.
    sentences, listed = ((1, 3), (2, 4)) if names else ((2, 5), (3, 6))
    task, *nouns_list = rng.choice(_HEALTH_TOPICS if doses else _TOPICS)
    nouns = (nouns_list[0], nouns_list[1], task.split()[-1])
    blocks: list[str] = [
        rng.choice(_OPENERS).format(task=task) + " " + _paragraph(rng, nouns, near_miss_rate, hard, sentences),
    ]
    blocks.append(rng.choice(_HEADINGS))
    numbered = rng.random() < 0.5
    items = [_sentence(rng, nouns, near_miss_rate, hard) for _ in range(rng.randint(*listed))]
    blocks.append("\n".join(f"{i}. {item}" if numbered else f"- {item}" for i, item in enumerate(items, 1)))
    if rng.random() < 0.7:
        blocks.append(_code(rng))
    if not names or rng.random() < 0.5:
        blocks.append(_paragraph(rng, nouns, near_miss_rate, hard, sentences))
    planted: list[Planted] = []
    people = _People(rng, planted, nouns) if names else None
    if pii:
        for _ in range(rng.randint(2, 4)):
            item = _plant_extended(rng) if extended else _plant(rng)
            index = len(planted)
            planted.append(item)
            marked = (
                item.text[: item.lead] + _mark(f"pii:{index}", item.value) + item.text[len(item.text) - item.trail :]
            )
            if item.label == "PRIVATE_KEY":
                sentence = rng.choice(_BLOCK_INTROS) + "\n\n" + marked
            else:
                name = rng.choice(("the account owner", "our contact", "Dr. Rossi", "the on-call engineer"))
                if people is not None and rng.random() < 0.5:
                    name = people.person() if rng.random() < 0.6 else people.titled()
                sentence = rng.choice(_PII_SENTENCES).format(name=name, pii=marked)
            where = rng.randrange(len(blocks) + 1)
            if item.label == "PRIVATE_KEY":
                blocks.insert(min(where, len(blocks)), sentence)
            elif where < len(blocks) and not blocks[where].startswith(("```", "#", "**")):
                blocks[where] = blocks[where] + " " + sentence
            else:
                blocks.insert(min(where, len(blocks)), sentence)
    if doses:
        _plant_doses(rng, planted, blocks)
    if people is not None:
        _plant_people(rng, people, blocks)
    else:
        blocks.append(rng.choice(_CLOSERS))
    text, pieces = _strip_marks("\n\n".join(blocks))
    spans: list[LabelledSpan] = []
    near: list[NearMiss] = []
    for start, end, tag in pieces:
        what, _, name = tag.partition(":")
        if what == "pii":
            spans.append(LabelledSpan(start, end, planted[int(name)].label))
        else:
            near.append(NearMiss(start, end, name))
    return Answer(text, tuple(planted), tuple(spans), tuple(near))


def _plant_people(rng: random.Random, people: _People, blocks: list[str]) -> None:
    for _ in range(rng.randint(2, 4)):
        sentence = people.sentence()
        where = rng.randrange(len(blocks) + 1)
        block = blocks[where] if where < len(blocks) else ""
        if block and not block.startswith(("```", "#", "**")) and "PRIVATE KEY-----" not in block:
            blocks[where] = block + " " + sentence
        else:
            blocks.insert(where, sentence)
    if rng.random() < 0.3:
        blocks.append(people.email())
    ending = rng.random()
    if ending < 0.1:
        # The answer ends on a name, with no full stop: only the end of the stream settles it.
        blocks.append(f"For anything else, the person to talk to is {people.person()}")
    elif ending < 0.2:
        blocks.append(f"Safe travels, and enjoy {people.place()}!")
    else:
        blocks.append(rng.choice(_CLOSERS))


def make_corpus(seed: int, n: int, pii: bool = False, extended: bool = False) -> list[Answer]:
    """``n`` answers from one seed."""
    rng = random.Random(seed)
    return [make_answer(rng, pii=pii, extended=extended) for _ in range(n)]


# --------------------------------------------------------------------------- chunker

# Pieces a BPE tokenizer tends to keep whole: a leading space plus letters, up to three
# digits, one punctuation character (with a leading space), newline runs, space runs.
_PIECE = re.compile(r" ?[A-Za-z]+| ?[0-9]{1,3}| ?[^\sA-Za-z0-9]|\n+| +(?= )|\s")


def _pieces(text: str) -> Iterator[str]:
    pos = 0
    for m in _PIECE.finditer(text):
        if m.start() != pos:  # cannot happen with the alternatives above; keep it honest
            yield text[pos : m.start()]
        yield m.group()
        pos = m.end()
    if pos < len(text):
        yield text[pos:]


def chunk_text(text: str, rng: random.Random, max_len: int = 8) -> list[str]:
    """Split ``text`` into BPE-like chunks of 1 to ``max_len`` characters; ``"".join`` restores it."""
    chunks: list[str] = []
    for piece in _pieces(text):
        while len(piece) > max_len:
            # Long words split into sub-word pieces of 2-6 characters, like real merges.
            cut = rng.randint(2, min(6, max_len))
            chunks.append(piece[:cut])
            piece = piece[cut:]
        # Now and then a tokenizer merges a word with the punctuation after it.
        if (
            chunks
            and piece in (".", ",", ":", ";")
            and chunks[-1][-1:].isalpha()
            and len(chunks[-1]) < max_len
            and rng.random() < 0.15
        ):
            chunks[-1] += piece
            continue
        chunks.append(piece)
    return chunks


# --------------------------------------------------------------------------- paced streams

Chunking: TypeAlias = Literal["bpe", "char", "random"]
CHUNKINGS: tuple[Chunking, ...] = ("bpe", "char", "random")
DEFAULT_SEED = 20261124
DEFAULT_STREAMS = 300


@dataclass(frozen=True, slots=True)
class Pacing:
    """How a model streams: a slower first token, then a steady rate with jitter and stalls.

    Each stream draws its rate uniformly from ``tokens_per_s``; each interval after the
    first token is ``1000 / rate`` ms times a factor uniform in ``1 ± jitter``; with
    probability ``stall_p`` an interval is lengthened by a stall drawn from ``stall_ms``
    (a busy server, a network hiccup).
    """

    first_token_ms: tuple[float, float] = (250.0, 1000.0)
    tokens_per_s: tuple[float, float] = (20.0, 50.0)
    jitter: float = 0.5
    stall_p: float = 0.01
    stall_ms: tuple[float, float] = (250.0, 1500.0)


@dataclass(frozen=True, slots=True)
class LabelledStream:
    """One stream to replay: chunks, the wait before each, and what its text holds."""

    id: str
    chunks: tuple[str, ...]
    delays_ms: tuple[float, ...]
    spans: tuple[LabelledSpan, ...] = ()
    near_misses: tuple[NearMiss, ...] = ()
    chunking: str = "custom"

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    def arrivals_ms(self) -> list[float]:
        """When each chunk arrives, in ms since the request (the sum of the delays so far)."""
        return list(accumulate(self.delays_ms))


def _char_times(tokens: Sequence[str], rng: random.Random, pacing: Pacing) -> list[float]:
    """When the model emitted each character: a token's characters spread over its interval."""
    rate = rng.uniform(*pacing.tokens_per_s)
    times: list[float] = []
    prev = 0.0
    for k, token in enumerate(tokens):
        if k == 0:
            t = rng.uniform(*pacing.first_token_ms)
            times.extend([t] * len(token))
        else:
            interval = 1000.0 / rate * rng.uniform(1 - pacing.jitter, 1 + pacing.jitter)
            if rng.random() < pacing.stall_p:
                interval += rng.uniform(*pacing.stall_ms)
            t = prev + interval
            n = len(token)
            times.extend(prev + (t - prev) * (i + 1) / n for i in range(n))
        prev = t
    return times


def _cut(text: str, chunking: Chunking, tokens: list[str], rng: random.Random) -> list[str]:
    if chunking == "bpe":
        return tokens
    if chunking == "char":
        return list(text)
    chunks: list[str] = []
    pos = 0
    while pos < len(text):
        n = rng.randint(1, 12)
        chunks.append(text[pos : pos + n])
        pos += n
    return chunks


def pace(text: str, chunks: Sequence[str], rng: random.Random, pacing: Pacing = Pacing()) -> tuple[float, ...]:
    """``delays_ms`` for ``chunks`` of ``text``: each chunk arrives when its last character does."""
    times = _char_times(chunk_text(text, rng), rng, pacing)
    return _delays(chunks, times)


def _delays(chunks: Sequence[str], times: Sequence[float]) -> tuple[float, ...]:
    delays: list[float] = []
    arrived = 0.0
    end = 0
    for chunk in chunks:
        end += len(chunk)
        t = round(times[end - 1], 3)
        delays.append(round(max(t - arrived, 0.0), 3))
        arrived += delays[-1]
    return tuple(delays)


def make_streams(
    seed: int = DEFAULT_SEED,
    n: int = DEFAULT_STREAMS,
    chunking: Chunking | Literal["mixed"] = "mixed",
    pacing: Pacing = Pacing(),
    names: bool = False,
    doses: bool = False,
) -> list[LabelledStream]:
    """``n`` labelled, paced streams from one seed; ``mixed`` cycles bpe, char, random.

    Every answer carries 2-4 planted violations (every label of the ``patterns`` preset
    appears about equally often) and hard near misses; with ``names``, people and places
    too (labelled ``PERSON`` and ``LOCATION`` as planted: a sweep keeps those its model
    tags, see :func:`~guardstream.bench.sweep.label_by_model`); with ``doses``, a dosing
    statement in most answers (``DOSAGE`` or ``DOSAGE_OVER_MAX``: a sweep labels it as
    the detector finds it on the whole answer, see :func:`~guardstream.bench.sweep.label_doses`)
    and near misses of the dosage detector.
    """
    rng = random.Random(seed)
    streams: list[LabelledStream] = []
    for i in range(n):
        answer = make_answer(rng, pii=True, extended=True, names=names, doses=doses)
        cut: Chunking = CHUNKINGS[i % len(CHUNKINGS)] if chunking == "mixed" else chunking
        local = random.Random(f"guardstream-bench:{seed}:{i}")
        tokens = chunk_text(answer.text, local)
        times = _char_times(tokens, local, pacing)
        chunks = _cut(answer.text, cut, tokens, local)
        streams.append(
            LabelledStream(
                id=f"s{i:04d}-{cut}",
                chunks=tuple(chunks),
                delays_ms=_delays(chunks, times),
                spans=answer.spans,
                near_misses=answer.near_misses,
                chunking=cut,
            )
        )
    return streams


# --------------------------------------------------------------------------- files


class CorpusError(ValueError):
    """A corpus line is not a valid labelled stream; the message names the file and line."""


def write_jsonl(streams: Iterable[LabelledStream], out: IO[str]) -> int:
    """Write ``streams`` as JSON lines (the replay format plus labels); returns how many."""
    count = 0
    for s in streams:
        line = {
            "id": s.id,
            "chunks": list(s.chunks),
            "delays_ms": list(s.delays_ms),
            "spans": [{"start": x.start, "end": x.end, "label": x.label} for x in s.spans],
            "near_misses": [{"start": x.start, "end": x.end, "kind": x.kind} for x in s.near_misses],
            "chunking": s.chunking,
        }
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
        count += 1
    return count


def _ranges(value: Any, key: str, name: str, size: int, where: str) -> list[tuple[int, int, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CorpusError(f"{where}: '{key}' must be a list")
    out: list[tuple[int, int, str]] = []
    for j, item in enumerate(value):
        if not isinstance(item, dict):
            raise CorpusError(f"{where}: {key}[{j}] must be an object")
        start, end, tag = item.get("start"), item.get("end"), item.get(name)
        if type(start) is not int or type(end) is not int:
            raise CorpusError(f"{where}: {key}[{j}]: 'start' and 'end' must be integers")
        if not 0 <= start < end <= size:
            raise CorpusError(f"{where}: {key}[{j}]: [{start}, {end}) is not a non-empty range of the text")
        if not isinstance(tag, str) or not tag:
            raise CorpusError(f"{where}: {key}[{j}]: '{name}' must be a non-empty string")
        out.append((start, end, tag))
    return out


def read_jsonl(path: str | Path, pacing: Pacing = Pacing(), seed: int = DEFAULT_SEED) -> list[LabelledStream]:
    """Load labelled streams; every line is checked before any is returned.

    A line without ``delays_ms`` is paced with ``pacing`` (seeded by ``seed`` and its line
    number, so the same file always replays the same way).
    """
    from ..replay import ReplayInputError, parse_records

    source = str(path)
    with open(path, encoding="utf-8") as handle:
        lines = handle.readlines()
    try:
        records = parse_records(lines, source)
    except ReplayInputError as exc:
        raise CorpusError(str(exc)) from None
    numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    streams: list[LabelledStream] = []
    for record, (number, line) in zip(records, numbered, strict=True):
        where = f"{source}:{number}"
        data = json.loads(line)
        text = "".join(record.chunks)
        spans = _ranges(data.get("spans"), "spans", "label", len(text), where)
        near = _ranges(data.get("near_misses"), "near_misses", "kind", len(text), where)
        delays = record.delays_ms
        if delays is None:
            delays = pace(text, record.chunks, random.Random(f"guardstream-bench:{seed}:{number}"), pacing)
        chunking = data.get("chunking")
        streams.append(
            LabelledStream(
                id=record.id,
                chunks=record.chunks,
                delays_ms=delays,
                spans=tuple(LabelledSpan(*x) for x in spans),
                near_misses=tuple(NearMiss(*x) for x in near),
                chunking=chunking if isinstance(chunking, str) else "custom",
            )
        )
    return streams
