"""A seeded corpus of assistant-style answers full of names and places, for the NER benchmarks.

Each answer reads like a chat model's reply: an opener, a paragraph, sometimes a short
list, sometimes a drafted e-mail with a greeting and a sign-off, a closer. Names and
places come from Faker (first and last names from six locales, so accents, double-barrelled
and multi-word surnames occur; cities from four; countries and US states in English) and
sit where assistants put them: at the start of a sentence, before a comma or a full stop,
in parentheses, in list items, as possessives, after a title (``Dr.``, ``Ms.``), in a
greeting (``Hi Ana,``), as the sign-off, and now and then as the very last word of the
answer with no full stop after it. Capitalised words that are not names (products,
weekdays, months, acronyms) are mixed in as near misses.

Everything is deterministic for a seed: one ``random.Random`` plus Faker instances seeded
per locale (Faker's multi-locale proxy would draw from the global ``random``).

The planted entities are recorded, but they are not the reference for parity: the
reference is what the NER model finds on the whole text (see ``ner_parity.py``).
The BPE-like chunker is :func:`benchmarks.corpus.chunk_text`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from benchmarks.corpus import chunk_text

__all__ = ["NerAnswer", "Place", "chunkings", "make_ner_answer", "make_ner_corpus", "new_fakers"]

NAME_LOCALES = ("en_US", "en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT")
# Not it_IT: its city() depends on the string hash seed, so the corpus would change per process.
CITY_LOCALES = ("en_US", "en_GB", "de_DE", "es_ES")


@dataclass(frozen=True, slots=True)
class Place:
    """One planted name or place: its kind (``person`` or ``location``) and exact text."""

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class NerAnswer:
    text: str
    planted: tuple[Place, ...]


def new_fakers(seed: int) -> dict[str, Any]:
    """Fresh Faker instances, one per locale, each seeded from ``seed``."""
    from faker import Faker

    fakers: dict[str, Any] = {}
    for i, locale in enumerate(sorted(set(NAME_LOCALES + CITY_LOCALES))):
        fake = Faker(locale)
        fake.seed_instance(seed * 1000 + i)
        fakers[locale] = fake
    return fakers


class _Names:
    """Draws names and places from per-locale Faker instances with one seeded rng."""

    def __init__(self, rng: random.Random, fakers: dict[str, Any]) -> None:
        self.rng = rng
        self.fake = fakers
        self.planted: list[Place] = []

    def _f(self, locales: tuple[str, ...]) -> Any:
        return self.fake[self.rng.choice(locales)]

    def _plant(self, kind: str, text: str) -> str:
        self.planted.append(Place(kind, text))
        return text

    def first(self) -> str:
        return self._plant("person", self._f(NAME_LOCALES).first_name())

    def last(self) -> str:
        return self._f(NAME_LOCALES).last_name()

    def person(self) -> str:
        fake = self._f(NAME_LOCALES)
        return self._plant("person", f"{fake.first_name()} {fake.last_name()}")

    def titled(self) -> str:
        title = self.rng.choice(("Dr.", "Ms.", "Mr.", "Prof.", "Mrs."))
        return f"{title} {self._plant('person', self.last())}"

    def city(self) -> str:
        return self._plant("location", self._f(CITY_LOCALES).city())

    def country(self) -> str:
        return self._plant("location", self._f(("en_US", "en_GB")).country())

    def state(self) -> str:
        return self._plant("location", self.fake["en_US"].state())

    def place(self) -> str:
        r = self.rng.random()
        return self.city() if r < 0.6 else self.country() if r < 0.85 else self.state()


_TASKS = (
    "plan the offsite",
    "hand over the project",
    "organise the trip",
    "reply to the customer",
    "prepare the quarterly review",
    "find the right contact",
)
_OPENERS = (
    "Sure! Here is how I would {task}.",
    "Great question. To {task}, start with the people involved.",
    "Here's a short plan to help you {task}.",
    "Happy to help you {task}; the notes below should cover it.",
)
_CLOSERS = (
    "Let me know if you want me to draft the follow-up messages as well.",
    "If anything changes, send me the new details and I will update the plan.",
    "Hope this helps!",
    "I can also turn this into a checklist if that is easier to share.",
)
_NOUNS = ("contract", "budget", "roadmap", "migration", "audit", "itinerary", "invoice", "schedule", "report")

# Capitalised near misses: a sentence may mention them; they are not people or places.
_NEAR_MISS = (
    "Python",
    "Docker",
    "Kubernetes",
    "PostgreSQL",
    "Excel",
    "Slack",
    "Jira",
    "Monday",
    "Friday",
    "March",
    "Q3",
    "README",
    "API",
    "CSV",
    "Terraform",
    "Chrome",
)

# Sentences with names and places. Fields: {p} person, {f} first name, {t} titled
# surname, {c} city, {k} country, {s} US state, {x} any place, {n} noun, {m} near miss.
_ENTITY_SENTENCES = (
    "{p} is the best person to ask about the {n}; they ran the last review.",
    "I'd suggest emailing {f} first, since they own the {n}.",
    "The {n} was originally written by {p} in {c}.",
    "If you're travelling from {c} to {c}, book the train at least a week ahead.",
    "According to {t}, the {n} should be reviewed every quarter.",
    "{c} is a good base if you want to explore {k} on a budget.",
    "Most of the team works remotely, but {p} and {p} are based in {c}.",
    "You could also ask {p}'s team in {k} for a second opinion.",
    "The conference moved from {c} to {c} this year, so double-check the venue.",
    "{p} mentioned that the {n} in {s} still needs an approval.",
    "Here's a summary of what {f} said about the {n}.",
    "Shipping to {k} usually takes five to seven business days.",
    "The office in {c}, {k} opens at nine, so call {f} after that.",
    "My recommendation: let {f} handle the {n} and ask {p} to review it.",
    "When {t} joined, the {n} moved to {m} and nobody in {x} complained.",
    "Both {p} (in {c}) and {p} (in {c}) signed off on the {n}.",
    "{f} from the {c} office can share the {m} export with you.",
    "It is worth checking with {p} before you change the {n}.",
    "I couldn't find anything from {p} about the {n}, so I'd ask {f} directly.",
    "The new {n} applies to customers in {s} and {k} from {m} onwards.",
    "As {p} put it, the {n} is only as good as its tests.",
    "In {c}, the {n} is handled by a local partner rather than by {p}.",
)

_PLAIN_SENTENCES = (
    "Start by backing up the {n} so you can roll back if anything goes wrong.",
    "The {m} integration is optional, but it saves time on larger projects.",
    "Check the {n} settings first; most problems come from a stale cache.",
    "This usually takes about ten minutes, and you only need to do it once.",
    "If the {n} still fails, run the same step again with verbose logging on.",
    "Keep the {m} file next to the {n} so the tooling can find it.",
    "The numbers below are estimates, not guarantees.",
    "On {m}, the team reviews every open {n} together.",
)

_LIST_ITEMS = (
    "{p} ({c}): owns the {n}",
    "{x}: two days for the {n}, one for review",
    "Ask {t} about the {n}",
    "Book a meeting room in {c} for the {n} review",
    "{f} will send the {m} notes",
    "Update the {n} for the {k} launch",
)


def _fill(template: str, names: _Names) -> str:
    rng = names.rng
    makers = {
        "p": names.person,
        "f": names.first,
        "t": names.titled,
        "c": names.city,
        "k": names.country,
        "s": names.state,
        "x": names.place,
        "n": lambda: rng.choice(_NOUNS),
        "m": lambda: rng.choice(_NEAR_MISS),
    }
    out: list[str] = []
    i = 0
    while i < len(template):
        j = template.find("{", i)
        if j < 0:
            out.append(template[i:])
            break
        k = template.index("}", j)
        out.append(template[i:j])
        out.append(makers[template[j + 1 : k]]())
        i = k + 1
    return "".join(out)


def _paragraph(names: _Names, entity_rate: float) -> str:
    rng = names.rng
    sentences: list[str] = []
    used: set[str] = set()
    for _ in range(rng.randint(2, 5)):
        pool = _ENTITY_SENTENCES if rng.random() < entity_rate else _PLAIN_SENTENCES
        template = rng.choice([t for t in pool if t not in used])
        used.add(template)
        sentences.append(_fill(template, names))
    return " ".join(sentences)


def _email(names: _Names) -> str:
    """A drafted e-mail: greeting, one or two sentences, sign-off with a name."""
    rng = names.rng
    to = names.first() if rng.random() < 0.7 else names.titled()
    greeting = rng.choice(("Hi {}", "Dear {}", "Hello {}")).format(to)
    body = _paragraph(names, 0.5)
    sign = rng.choice(("Best regards", "Thanks", "Kind regards", "Cheers"))
    return f"Here is a draft you can send:\n\n{greeting},\n\n{body}\n\n{sign},\n{names.person()}"


def make_ner_answer(rng: random.Random, fakers: dict[str, Any], entity_rate: float = 0.6) -> NerAnswer:
    """One answer (roughly 300-1,000 characters) with names and places planted in it."""
    names = _Names(rng, fakers)
    task = rng.choice(_TASKS)
    blocks = [rng.choice(_OPENERS).format(task=task) + " " + _paragraph(names, entity_rate)]
    r = rng.random()
    if r < 0.35:
        items = [_fill(rng.choice(_LIST_ITEMS), names) for _ in range(rng.randint(2, 4))]
        blocks.append("\n".join(f"- {item}" for item in items))
    elif r < 0.6:
        blocks.append(_email(names))
    if rng.random() < 0.5:
        blocks.append(_paragraph(names, entity_rate))
    ending = rng.random()
    if ending < 0.15:
        # The answer ends on a name, with no full stop: only the end of the stream settles it.
        blocks.append(f"For anything else, the person to talk to is {names.person()}")
    elif ending < 0.25:
        blocks.append(f"Safe travels, and enjoy {names.place()}!")
    else:
        blocks.append(rng.choice(_CLOSERS))
    return NerAnswer("\n\n".join(blocks), tuple(names.planted))


def make_ner_corpus(seed: int, n: int) -> list[NerAnswer]:
    """``n`` answers from one seed."""
    rng = random.Random(seed)
    fakers = new_fakers(seed)
    return [make_ner_answer(rng, fakers) for _ in range(n)]


def chunkings(text: str, seed: int) -> dict[str, list[str]]:
    """The chunkings the NER benchmarks stream: one character at a time, and BPE-like."""
    bpe = chunk_text(text, random.Random(seed))
    assert "".join(bpe) == text
    return {"per-char": list(text), "bpe-like": bpe}
