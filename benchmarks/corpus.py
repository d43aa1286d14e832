"""A seeded corpus of assistant-style answers and a BPE-like chunker, for benchmarks only.

Everything here is deterministic for a given seed (``random.Random(seed)``; no global
state), so two runs of the benchmarks feed the guard exactly the same chunks.

The answers look like what a chat model writes: an intro paragraph, a heading, a numbered
or bulleted list, a short fenced code block, a closing paragraph. They are full of
*near misses*: numbers that are not PII but that the pattern detectors must look at
(prices, dates, times, versions, percentages, ports, order numbers, hex colours, short
hashes). With ``pii=True`` every answer also carries planted PII and secrets (emails,
US and international phone numbers, Luhn-valid card numbers, SSNs, IPv4 addresses,
mod-97-valid IBANs, AWS access key ids, ``api_key=...`` assignments), each recorded with
its label so a benchmark can check the guard caught them.

The chunker imitates a BPE tokenizer's output: mostly a leading space plus a word, numbers
in runs of at most three digits, punctuation separate, newlines on their own, no chunk
longer than eight characters.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "Answer",
    "Planted",
    "chunk_text",
    "iban",
    "luhn_card",
    "make_answer",
    "make_corpus",
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

# --------------------------------------------------------------------------- near misses


def _near_miss(rng: random.Random) -> str:
    """A number that looks a little like PII but is not: the detectors must still look."""
    kind = rng.randrange(16)
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


# --------------------------------------------------------------------------- planted PII


@dataclass(frozen=True, slots=True)
class Planted:
    """One piece of PII planted in an answer: its label and its exact text."""

    label: str
    text: str


def luhn_card(rng: random.Random, sep: str = " ") -> str:
    """A 16-digit Visa-like number (``4`` + 14 random digits + check digit) that passes Luhn."""
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = 0
    # The check digit will be at the end, so counting from the right the last of these
    # fifteen digits is at an odd position (doubled).
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    digits.append((10 - total % 10) % 10)
    s = "".join(map(str, digits))
    return sep.join(s[i : i + 4] for i in range(0, 16, 4))


def iban(rng: random.Random) -> str:
    """A GB IBAN with valid mod-97 check digits, printed in groups of four."""
    bban = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4))
    bban += "".join(str(rng.randrange(10)) for _ in range(14))
    numeric = "".join(str(int(c, 36)) for c in bban + "GB00")
    check = 98 - int(numeric) % 97
    compact = f"GB{check:02d}{bban}"
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def _phone_us(rng: random.Random) -> str:
    a, b, c = rng.randint(201, 989), rng.randint(200, 999), rng.randint(0, 9999)
    form = rng.randrange(3)
    if form == 0:
        return f"({a}) {b}-{c:04d}"
    if form == 1:
        return f"{a}-{b}-{c:04d}"
    return f"+1 {a} {b} {c:04d}"


def _ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _plant(rng: random.Random) -> Planted:
    first = rng.choice(("jane", "omar", "li", "maria", "tom", "aisha", "ken", "sofia"))
    last = rng.choice(("doe", "khan", "wei", "garcia", "smith", "okafor", "sato", "rossi"))
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
    return Planted("API_KEY", f"api_key={value}")


_PII_SENTENCES = (
    "You can reach {name} at {pii} if the ticket stalls.",
    "The customer wrote their details as {pii} in the form.",
    "Use {pii} when the support agent asks for it.",
    "For reference, the value on file is {pii}, which matches the record.",
)

# --------------------------------------------------------------------------- answers


@dataclass(frozen=True, slots=True)
class Answer:
    """One generated answer and the PII planted in it (empty for clean prose)."""

    text: str
    planted: tuple[Planted, ...] = field(default=())


def _sentence(rng: random.Random, nouns: tuple[str, str, str], near_miss_rate: float) -> str:
    words: list[str] = []
    for _ in range(rng.randint(8, 22)):
        r = rng.random()
        if r < near_miss_rate:
            words.append(_near_miss(rng))
        elif r < near_miss_rate + 0.08:
            words.append(rng.choice(nouns))
        else:
            words.append(rng.choice(_WORDS))
    for i in range(3, len(words) - 2):
        if rng.random() < 0.06:
            words[i] += ","
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice(".....!?")


def _paragraph(rng: random.Random, nouns: tuple[str, str, str], near_miss_rate: float) -> str:
    return " ".join(_sentence(rng, nouns, near_miss_rate) for _ in range(rng.randint(2, 5)))


def _code(rng: random.Random) -> str:
    return rng.choice(_CODE).format(
        n=rng.randint(2, 50),
        v=f"{rng.randint(1, 3)}.{rng.randint(0, 32)}.{rng.randint(0, 9)}",
        port=rng.choice((8000, 8080, 9000)),
        date=f"{rng.randint(2020, 2026)}-{rng.randint(1, 12):02d}-01",
    )


def make_answer(rng: random.Random, pii: bool = False, near_miss_rate: float = 0.05) -> Answer:
    """One assistant-style answer (roughly 150-450 words); with ``pii``, 2-4 planted items."""
    task, *nouns_list = rng.choice(_TOPICS)
    nouns = (nouns_list[0], nouns_list[1], task.split()[-1])
    blocks: list[str] = [rng.choice(_OPENERS).format(task=task) + " " + _paragraph(rng, nouns, near_miss_rate)]
    blocks.append(rng.choice(_HEADINGS))
    numbered = rng.random() < 0.5
    items = [_sentence(rng, nouns, near_miss_rate) for _ in range(rng.randint(3, 6))]
    blocks.append("\n".join(f"{i}. {item}" if numbered else f"- {item}" for i, item in enumerate(items, 1)))
    if rng.random() < 0.7:
        blocks.append(_code(rng))
    blocks.append(_paragraph(rng, nouns, near_miss_rate))
    planted: list[Planted] = []
    if pii:
        for _ in range(rng.randint(2, 4)):
            item = _plant(rng)
            planted.append(item)
            name = rng.choice(("the account owner", "our contact", "Dr. Rossi", "the on-call engineer"))
            sentence = rng.choice(_PII_SENTENCES).format(name=name, pii=item.text)
            where = rng.randrange(len(blocks) + 1)
            if where < len(blocks) and not blocks[where].startswith(("```", "#", "**")):
                blocks[where] = blocks[where] + " " + sentence
            else:
                blocks.insert(min(where, len(blocks)), sentence)
    blocks.append(rng.choice(_CLOSERS))
    return Answer("\n\n".join(blocks), tuple(planted))


def make_corpus(seed: int, n: int, pii: bool = False) -> list[Answer]:
    """``n`` answers from one seed."""
    rng = random.Random(seed)
    return [make_answer(rng, pii=pii) for _ in range(n)]


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
