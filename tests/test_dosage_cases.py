"""Real cases for the dosage detector: positives, near misses, settling and arithmetic.

Every case runs through a detector session the way the window drives it: as the whole
text at once (``final=True``), and chunk by chunk (one character at a time, random
chunkings, and a window that drops settled text), calling ``scan`` on the text received
so far after each chunk. All runs must report the same findings, and no run may settle
text that a later finding covers (the holdback promise). Positives pin the exact text of
each finding and its label; near misses must produce no finding.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardstream import Guard
from guardstream.detectors.dosage import (
    DOSAGE_LABELS,
    DosageDetector,
    Dose,
    DoseLimit,
    DoseTable,
    assess,
)
from tests.helpers import chunked, random_sizes, split

DOSAGE, OVER = DOSAGE_LABELS
DETECTOR = DosageDetector()
TABLE = DoseTable.load()


def pos(case_id: str, text: str, *found: tuple[str, str]) -> object:
    """A positive: ``text`` must yield exactly ``found``: ``(label, matched text)`` in order."""
    return pytest.param(text, list(found), id=case_id)


def miss(case_id: str, text: str) -> object:
    """A near miss: ``text`` must yield no finding."""
    return pytest.param(text, [], id=case_id)


POSITIVES = [
    # word orders
    pos(
        "dose-first-of-drug-every-hours",
        "Take 400 mg of ibuprofen every 6 hours with food.",
        (DOSAGE, "400 mg of ibuprofen every 6 hours"),
    ),
    pos(
        "drug-first-twice-daily",
        "For pain, ibuprofen 400 mg twice daily is typical.",
        (DOSAGE, "ibuprofen 400 mg twice daily"),
    ),
    pos("count-with-strength-brand", "She took two 200 mg tablets of Advil.", (DOSAGE, "two 200 mg tablets of Advil")),
    pos("no-space-dose-first", "400mg ibuprofen usually helps.", (DOSAGE, "400mg ibuprofen")),
    pos("dose-first-gram", "Take 1 g of acetaminophen every 6 hours.", (DOSAGE, "1 g of acetaminophen every 6 hours")),
    pos(
        "dose-first-three-gap-words",
        "Take 500 mg of the antibiotic amoxicillin three times a day.",
        (DOSAGE, "500 mg of the antibiotic amoxicillin three times a day"),
    ),
    pos(
        "drug-first-gap-words-mg-per-kg",
        "Give amoxicillin at a dose of 25 mg/kg twice daily.",
        (DOSAGE, "amoxicillin at a dose of 25 mg/kg twice daily"),
    ),
    pos(
        "frequency-before-dose",
        "Take ibuprofen twice daily, 400 mg each time.",
        (DOSAGE, "ibuprofen twice daily, 400 mg"),
    ),
    # brand and generic together
    pos(
        "brand-generic-parens-en-dash-range",
        "Advil (ibuprofen) 200–400 mg every 4 to 6 hours as needed.",
        (DOSAGE, "Advil (ibuprofen) 200–400 mg every 4 to 6 hours as needed"),
    ),
    pos(
        "generic-brand-parens-to-range-route-q6h",
        "Give ibuprofen (Advil) 200 to 400 mg by mouth q6h.",
        (DOSAGE, "ibuprofen (Advil) 200 to 400 mg by mouth q6h"),
    ),
    pos(
        "brand-parens-sprays-nostril",
        "Fluticasone (Flonase) 2 sprays in each nostril once daily.",
        (DOSAGE, "Fluticasone (Flonase) 2 sprays in each nostril once daily"),
    ),
    pos("brand-once-a-day", "Zyrtec 10 mg once a day.", (DOSAGE, "Zyrtec 10 mg once a day")),
    pos("brand-prn-latin", "Q: dosage? A: Motrin 600 mg q6h prn.", (DOSAGE, "Motrin 600 mg q6h prn")),
    pos(
        "brand-colon-tablets",
        "Tylenol: take 2 tablets every 6 hours.",
        (DOSAGE, "Tylenol: take 2 tablets every 6 hours"),
    ),
    pos(
        "brand-strength-product-words",
        "Take 2 caps of Tylenol Extra Strength.",
        (DOSAGE, "2 caps of Tylenol Extra Strength"),
    ),
    pos(
        "count-with-strength-each",
        "Take 2 tablets (500 mg each) of Tylenol.",
        (DOSAGE, "2 tablets (500 mg each) of Tylenol"),
    ),
    pos(
        "strength-then-count",
        "Tylenol 500 mg, take 2 tablets every 6 hours.",
        (DOSAGE, "Tylenol 500 mg, take 2 tablets every 6 hours"),
    ),
    pos("word-count-brand-daily", "Take one tablet of Claritin daily.", (DOSAGE, "one tablet of Claritin daily")),
    # units
    pos(
        "thousands-separator",
        "Acetaminophen 1,000 mg every 6 hours is usual.",
        (DOSAGE, "Acetaminophen 1,000 mg every 6 hours"),
    ),
    pos("decimal-bedtime", "Take 0.5 mg of lorazepam at bedtime.", (DOSAGE, "0.5 mg of lorazepam at bedtime")),
    pos("mcg-once-a-day", "Start levothyroxine 50 mcg once a day.", (DOSAGE, "levothyroxine 50 mcg once a day")),
    pos("micro-sign-iv", "Give 100 µg of fentanyl IV.", (DOSAGE, "100 µg of fentanyl IV")),
    pos("iu-daily", "Vitamin D3 1,000 IU daily is common.", (DOSAGE, "Vitamin D3 1,000 IU daily")),
    pos(
        "iu-weekly-within",
        "The dose of vitamin D is 50,000 IU once weekly.",
        (DOSAGE, "vitamin D is 50,000 IU once weekly"),
    ),
    pos(
        "units-insulin",
        "Inject 10 units of insulin glargine at bedtime.",
        (DOSAGE, "10 units of insulin glargine at bedtime"),
    ),
    pos(
        "ml-product-word-tid",
        "Give 5 mL of amoxicillin suspension TID.",
        (DOSAGE, "5 mL of amoxicillin suspension TID"),
    ),
    pos(
        "ml-brand-liquid",
        "Take 10 mL of Benadryl liquid every 6 hours.",
        (DOSAGE, "10 mL of Benadryl liquid every 6 hours"),
    ),
    pos("puffs", "Use 2 puffs of albuterol every 4 hours.", (DOSAGE, "2 puffs of albuterol every 4 hours")),
    pos(
        "drops-eyes",
        "Instill 1 drop of latanoprost in each eye at bedtime.",
        (DOSAGE, "1 drop of latanoprost in each eye at bedtime"),
    ),
    pos(
        "mg-per-kg-per-day-divided",
        "Amoxicillin 45 mg/kg/day in 2 divided doses.",
        (DOSAGE, "Amoxicillin 45 mg/kg/day in 2 divided doses"),
    ),
    # frequency and route variants
    pos("latin-bid", "Metformin 500 mg BID with meals.", (DOSAGE, "Metformin 500 mg BID")),
    pos("orally-once-daily", "Lisinopril 10 mg orally once daily.", (DOSAGE, "Lisinopril 10 mg orally once daily")),
    pos("iv-every-24-hours", "Ceftriaxone 1 g IV every 24 hours.", (DOSAGE, "Ceftriaxone 1 g IV every 24 hours")),
    pos(
        "intravenously-mg-per-kg",
        "Administer vancomycin 15 mg/kg intravenously every 12 hours.",
        (DOSAGE, "vancomycin 15 mg/kg intravenously every 12 hours"),
    ),
    pos("po-daily", "Prednisone 40 mg PO daily for 5 days.", (DOSAGE, "Prednisone 40 mg PO daily")),
    pos("route-no-frequency", "The patient received morphine 4 mg IV.", (DOSAGE, "morphine 4 mg IV")),
    pos("low-dose-daily", "Aspirin 81 mg daily for the heart.", (DOSAGE, "Aspirin 81 mg daily")),
    # layout
    pos(
        "markdown-bold",
        "- **Ibuprofen**: 200–400 mg every 4–6 hours",
        (DOSAGE, "Ibuprofen**: 200–400 mg every 4–6 hours"),
    ),
    pos(
        "markdown-table-row",
        "| Ibuprofen | 400 mg | every 6 hours |",
        (DOSAGE, "Ibuprofen | 400 mg | every 6 hours"),
    ),
    pos(
        "two-statements-nearest-drug",
        "Take ibuprofen 400 mg or acetaminophen 500 mg.",
        (DOSAGE, "ibuprofen 400 mg"),
        (DOSAGE, "acetaminophen 500 mg"),
    ),
    # above the table's maximum
    pos(
        "over-ibuprofen-every-4-hours",
        "Never take ibuprofen 800 mg every 4 hours.",
        (OVER, "ibuprofen 800 mg every 4 hours"),
    ),
    pos(
        "over-acetaminophen-every-4-hours",
        "Acetaminophen 1000 mg every 4 hours.",
        (OVER, "Acetaminophen 1000 mg every 4 hours"),
    ),
    pos("over-weekly-drug-daily", "Methotrexate 10 mg daily is dangerous.", (OVER, "Methotrexate 10 mg daily")),
    pos(
        "over-mg-per-kg",
        "Children: amoxicillin 50 mg/kg every 8 hours.",
        (OVER, "amoxicillin 50 mg/kg every 8 hours"),
    ),
    pos(
        "over-mcg-daily-total",
        "Take 1,200 mcg of clonidine three times daily.",
        (OVER, "1,200 mcg of clonidine three times daily"),
    ),
    pos("over-mcg-table-mg-statement", "Cytomel 0.5 mg daily.", (OVER, "Cytomel 0.5 mg daily")),
]

NEAR_MISSES = [
    miss("drug-without-amount", "Ibuprofen is an NSAID that reduces fever."),
    miss("drug-with-year", "Ibuprofen was discovered in 1961 by Stewart Adams."),
    miss("drug-with-price", "Advil costs $5 at most pharmacies."),
    miss("recipe-grams", "Mix 200 g of flour with 100 g of sugar."),
    miss("battery-mah", "This phone has a 500 mAh battery."),
    miss("tablets-without-drug", "Take 2 tablets with a full glass of water."),
    miss("dose-in-previous-sentence", "Take 400 mg. Ibuprofen works well for many people."),
    miss("dose-before-line-break", "Take 2 tablets.\nIbuprofen is an option too."),
    miss("dose-before-semicolon", "Aspirin; 81 mg is the low dose."),
    miss("drug-name-inside-word", "Flush with 5 mL of heparinized saline."),
    miss("drug-name-prefix-of-word", "The Tylenolesque packaging held 24 tablets."),
    miss("compound-free", "Try a codeine-free cough syrup, 10 mL at night."),
    miss("compound-non", "Take 2 tablets of a non-aspirin pain reliever."),
    miss("compound-dependent", "Insulin-dependent patients need 3 meals a day."),
    miss("two-drugs-no-amount", "Acetaminophen and ibuprofen are both sold over the counter."),
    miss("count-of-people", "In 2019, 300 people took part in the aspirin trial."),
    miss("recipe-tablespoons", "The recipe needs 2 tablespoons of butter and 1 cup of milk."),
    miss("water-ml", "Run 5 km and drink 500 ml of water."),
    miss("decade", "Metformin has been used since the 1950s."),
    miss("version-number", "Version 2.5 of the ibuprofen app is out."),
    miss("megabytes", "The download is 400 MB, not Tylenol."),
    miss("temperature", "Store insulin at 2 to 8 degrees."),
    miss("supply-days-price", "A 30-day supply of lisinopril costs $4."),
    miss("weight-based-without-drug", "Give 10 mg/kg to the patient."),
    miss("brand-list", "Lipitor, Zocor and Crestor are statins."),
    miss("miles", "He ran 3 miles after taking Advil."),
    miss("tablet-weight-no-drug", "The tablet weighs 2 g because of fillers like starch."),
    miss("generic-without-name", "Take 2 tablets of the generic version daily."),
    miss("count-without-unit", "Two Advil should be enough."),
    miss("ratio", "About 1 in 5 adults takes aspirin."),
    miss("too-many-gap-words", "Take 400 mg of whatever the doctor said would help, not ibuprofen."),
]

CASES = POSITIVES + NEAR_MISSES


def test_the_case_table_is_large_enough() -> None:
    assert len(POSITIVES) >= 35 and len(NEAR_MISSES) >= 25


# --------------------------------------------------------------------------- runners


def _whole(text: str, detector: DosageDetector = DETECTOR) -> list[tuple[str, int, int]]:
    scan = detector.open().scan(text, 0, True)
    assert scan.settled == len(text)
    return [(f.label, f.start, f.end) for f in scan.findings]


def _streamed(
    text: str, sizes: list[int], context: int | None = None, detector: DosageDetector = DETECTOR
) -> list[tuple[str, int, int]]:
    """Feed ``text`` in chunks of ``sizes`` and check the holdback promise at every step.

    With ``context`` the session sees only the text from its settled offset minus
    ``context`` characters, as a window that has released the rest would show it.
    """
    session = detector.open()
    found: list[tuple[str, int, int]] = []
    steps: list[tuple[int, int]] = []  # (settled, findings known) after each scan
    received = 0
    settled = 0
    for chunk in split(text, sizes):
        received += len(chunk)
        final = received == len(text)
        base = 0 if context is None else max(0, settled - context)
        scan = session.scan(text[base:received], base, final)
        assert scan.settled >= settled, "settled offsets only grow"
        assert scan.settled <= received
        settled = scan.settled
        for f in scan.findings:
            assert f.detector == detector.name
            assert f.end <= received
        found += [(f.label, f.start, f.end) for f in scan.findings]
        steps.append((settled, len(found)))
    assert settled == len(text), "with final=True everything is settled"
    for step_settled, known in steps:
        for label, start, _ in found[known:]:
            assert start >= step_settled, f"{label} at {start} was settled ({step_settled}) before it was reported"
    return found


CHUNKINGS = {
    "per-char": ([1], None),
    "random-1": (random_sizes(11), None),
    "random-2": (random_sizes(12, top=17), None),
    "window-16": (random_sizes(13, top=5), 16),
}


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_whole_text(text: str, expected: list[tuple[str, str]]) -> None:
    found = _whole(text)
    assert [(label, text[start:end]) for label, start, end in found] == expected


@pytest.mark.parametrize("chunking", list(CHUNKINGS))
@pytest.mark.parametrize(("text", "expected"), CASES)
def test_streamed_matches_whole_and_never_settles_early(
    text: str, expected: list[tuple[str, str]], chunking: str
) -> None:
    sizes, context = CHUNKINGS[chunking]
    found = _streamed(text, sizes, context)
    assert found == _whole(text)
    assert [(label, text[start:end]) for label, start, end in found] == expected


# Pieces of dosing statements and of prose around them, cut where chunks may fall.
FRAGMENTS = [
    *("Take", " ", "400", " mg", "mg", " of", " ibuprofen", " Advil", " (Advil)", " every", " 4", " to", " 6"),
    *(" hours", ".", ",", " twice", " daily", " two", " tablets", " 1,000", " 0.5", "-", "–", " q6h", " by mouth"),
    *(" IV", " as needed", " the", " and", " acetaminophen", " vitamin D", " 3", " IU", "\n", ";", " 10", " mg/kg"),
    *("/day", " in 2 divided doses", " insulin", " glargine", " units", " puffs", " x", " 500", " each", "(", ")"),
    *(" up to", " times a day", " ibu", " pro", "fen", " $5", " 1961", " mcg", " µg", " g", " mL", " of the"),
    *(" non-aspirin", " codeine-free", "**", " |", " weekly"),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=25).map("".join),
    st.lists(st.integers(1, 7), min_size=1, max_size=20),
    st.sampled_from([None, 8]),
)
def test_any_chunking_finds_what_the_whole_text_finds(text: str, sizes: list[int], context: int | None) -> None:
    assert _streamed(text, sizes, context) == _whole(text)


# --------------------------------------------------------------------------- settling


def test_a_forming_statement_is_held_from_its_amount() -> None:
    session = DETECTOR.open()
    text = "Take 800 mg of ibu"
    scan = session.scan(text, 0, False)
    assert scan.findings == ()
    assert scan.settled == text.index("800")
    done = "Take 800 mg of ibuprofen."
    scan = session.scan(done, 0, True)
    assert [(f.label, done[f.start : f.end]) for f in scan.findings] == [(DOSAGE, "800 mg of ibuprofen")]
    assert scan.settled == len(done)


def test_a_complete_statement_stays_open_while_a_frequency_may_follow() -> None:
    session = DETECTOR.open()
    assert session.scan("ibuprofen 800 mg", 0, False).settled == 0
    assert session.scan("ibuprofen 800 mg every 4", 0, False).settled == 0
    scan = session.scan("ibuprofen 800 mg every 4 hours", 0, False)
    assert scan.findings == () and scan.settled == 0
    text = "ibuprofen 800 mg every 4 hours."
    scan = session.scan(text, 0, False)
    assert [(f.label, text[f.start : f.end]) for f in scan.findings] == [(OVER, "ibuprofen 800 mg every 4 hours")]
    assert scan.settled == len(text)


def test_a_drug_name_is_held_only_while_a_dose_may_still_follow() -> None:
    session = DETECTOR.open()
    assert session.scan("Well, ibuprofen is", 0, False).settled == len("Well, ")
    text = "Well, ibuprofen is an anti-inflammatory drug sold in pharmacies"
    assert session.scan(text, 0, False).settled == len(text)


def test_prose_without_numbers_or_drugs_is_settled_at_once() -> None:
    text = "The weather is lovely today, so we walked along the river "
    assert DETECTOR.open().scan(text, 0, False).settled == len(text)


def test_a_trailing_number_is_held_until_its_unit_is_known() -> None:
    session = DETECTOR.open()
    assert session.scan("It happened in 1961", 0, False).settled == len("It happened in ")
    assert session.scan("It happened in 1961, long ago", 0, False).settled == len("It happened in 1961, long ago")


def test_each_finding_is_reported_once() -> None:
    session = DETECTOR.open()
    text = "Take 400 mg of ibuprofen. "
    first = session.scan(text, 0, False)
    again = session.scan(text + "Rest.", 0, True)
    assert len(first.findings) == 1 and again.findings == ()


# --------------------------------------------------------------------------- modes


def test_over_max_mode_reports_only_doses_above_the_maximum() -> None:
    detector = DosageDetector(mode="over_max")
    assert detector.labels == (OVER,)
    assert DETECTOR.labels == (DOSAGE, OVER)
    text = "Ibuprofen 400 mg twice daily is fine; ibuprofen 800 mg every 4 hours is not."
    found = _whole(text, detector)
    assert [(label, text[s:e]) for label, s, e in found] == [(OVER, "ibuprofen 800 mg every 4 hours")]
    assert _streamed(text, [1], detector=detector) == found


def test_a_within_max_statement_is_still_held_in_over_max_mode() -> None:
    # "ibuprofen 200 mg" may yet become "ibuprofen 200 mg every hour" (4,800 mg/day).
    detector = DosageDetector(mode="over_max")
    assert detector.open().scan("ibuprofen 200 mg", 0, False).settled == 0


def test_a_bad_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        DosageDetector(mode="some")  # type: ignore[arg-type]


def test_a_user_table_replaces_the_shipped_one() -> None:
    table = DoseTable([DoseLimit("frobozol", ("Frobex",), max_single=5, max_daily=10, unit="mg", source="test")])
    detector = DosageDetector("custom", "all", table)
    assert detector.name == "custom"
    text = "Take 4 mg of Frobex twice daily. Take 6 mg of frobozol. Take 400 mg of ibuprofen."
    found = _whole(text, detector)
    assert [(label, text[s:e]) for label, s, e in found] == [
        (DOSAGE, "4 mg of Frobex twice daily"),
        (OVER, "6 mg of frobozol"),
    ]


# --------------------------------------------------------------------------- arithmetic


def _dose(statement: str) -> Dose:
    dose = assess(statement)
    assert dose is not None, statement
    return dose


def _over(statement: str) -> bool:
    dose = _dose(statement)
    limit = next(limit for name in dose.drugs if (limit := TABLE.lookup(name)) is not None)
    return limit.exceeded_by(dose)


def test_ibuprofen_every_4_hours_is_4800_mg_a_day_above_the_prescription_maximum() -> None:
    # The table cites the prescription label: 800 mg per dose, 3,200 mg per day.
    limit = TABLE.lookup("ibuprofen")
    assert limit is not None and limit.max_single == 800 and limit.max_daily == 3200
    dose = _dose("ibuprofen 800 mg every 4 hours")
    assert (dose.single, dose.times_per_day, dose.daily, dose.unit) == (800, 6, 4800, "mg")
    assert limit.exceeded_by(dose)


def test_ibuprofen_twice_daily_is_within() -> None:
    dose = _dose("ibuprofen 400 mg twice daily")
    assert (dose.single, dose.daily) == (400, 800)
    assert not _over("ibuprofen 400 mg twice daily")


def test_acetaminophen_at_exactly_the_maximum_is_within_and_above_it_is_over() -> None:
    dose = _dose("acetaminophen 1 g every 6 hours")
    assert (dose.single, dose.daily) == (1000, 4000)
    assert not _over("acetaminophen 1 g every 6 hours")
    assert _dose("acetaminophen 1000 mg every 4 hours").daily == 6000
    assert _over("acetaminophen 1000 mg every 4 hours")
    assert _over("acetaminophen 5 g")  # grams are converted: 5,000 mg in one dose


def test_a_count_with_its_strength_is_multiplied() -> None:
    assert _dose("two 500 mg tablets of acetaminophen").single == 1000
    assert _dose("2 tablets of 500 mg acetaminophen").single == 1000
    assert _dose("Tylenol 500 mg, take 2 tablets every 6 hours").daily == 4000
    assert _dose("2 tablets (500 mg each) of Tylenol").single == 1000
    # A count in parentheses restates the dose; it does not multiply it.
    assert _dose("acetaminophen 1,000 mg (2 tablets)").single == 1000
    assert _over("three 500 mg tablets of acetaminophen")
    assert not _over("two 500 mg tablets of acetaminophen")


def test_weight_based_doses_use_the_per_kg_columns() -> None:
    dose = _dose("amoxicillin 45 mg/kg twice daily")
    assert dose.per_kg and (dose.single, dose.daily) == (45, 90)
    assert not _over("amoxicillin 45 mg/kg twice daily")
    assert _over("amoxicillin 50 mg/kg every 8 hours")
    per_day = _dose("amoxicillin 90 mg/kg/day in 2 divided doses")
    assert (per_day.single, per_day.daily) == (45, 90)
    assert not _over("amoxicillin 90 mg/kg/day in 2 divided doses")
    assert _over("amoxicillin 120 mg/kg/day")
    assert not _over("ivermectin 200 mcg/kg")
    assert _over("ivermectin 2 mg/kg")


def test_micrograms_are_converted_both_ways() -> None:
    dose = _dose("clonidine 1,200 mcg three times daily")
    assert dose.unit == "mg" and dose.single == pytest.approx(1.2) and dose.daily == pytest.approx(3.6)
    assert _over("clonidine 1,200 mcg three times daily")
    assert not _over("clonidine 100 mcg twice daily")
    assert not _over("clonidine 100 µg twice daily")
    # liothyronine's table unit is mcg: 0.5 mg is 500 mcg, above 100 mcg.
    assert _over("Cytomel 0.5 mg daily")
    assert not _over("Cytomel 25 mcg daily")


def test_ranges_count_as_their_upper_bound() -> None:
    assert _dose("ibuprofen 200-1,000 mg").single == 1000
    assert _over("ibuprofen 200-1,000 mg")
    dose = _dose("ibuprofen 200 to 400 mg every 6 to 8 hours")
    assert (dose.single, dose.times_per_day, dose.daily) == (400, 4, 1600)
    assert _dose("Tylenol 1 or 2 tablets").single == 2


@pytest.mark.parametrize(
    ("frequency", "times"),
    [
        ("q6h", 4),
        ("q4-6h", 6),
        ("TID", 3),
        ("t.i.d.", 3),
        ("BID", 2),
        ("QID", 4),
        ("three times a day", 3),
        ("3 times daily", 3),
        ("twice a day", 2),
        ("once a day", 1),
        ("daily", 1),
        ("every day", 1),
        ("at bedtime", 1),
        ("every 6 to 8 hours", 4),
        ("every 8 hours", 3),
        ("every hour", 24),
        ("every other day", 0.5),
        ("once weekly", 1 / 7),
        ("every 2 weeks", 1 / 14),
        ("every 4 to 6 hours, up to 4 times a day", 4),
        ("every 4 hours, not more than 5 doses in 24 hours", 5),
    ],
)
def test_frequencies(frequency: str, times: float) -> None:
    dose = _dose(f"ibuprofen 200 mg {frequency}")
    assert dose.times_per_day == pytest.approx(times)
    assert dose.daily == pytest.approx(200 * times)


def test_without_a_frequency_only_the_single_dose_is_known() -> None:
    dose = _dose("ibuprofen 800 mg")
    assert (dose.single, dose.daily, dose.times_per_day) == (800, None, None)
    assert not _over("ibuprofen 800 mg")
    assert _over("ibuprofen 1,200 mg")


def test_weekly_drugs_compare_the_weekly_total() -> None:
    assert not _over("methotrexate 15 mg once weekly")
    assert _over("methotrexate 10 mg daily")
    assert not _over("vitamin D 50,000 IU once weekly")
    assert _over("vitamin D 50,000 IU daily")
    assert not _over("alendronate 70 mg once weekly")
    assert _over("alendronate 70 mg daily")


def test_units_that_cannot_be_compared_stay_within() -> None:
    count = _dose("Tylenol 10 tablets every hour")
    assert count.unit == "count" and count.form == "tablets" and count.daily == 240
    assert not _over("Tylenol 10 tablets every hour")
    assert _dose("acetaminophen 500 mL").unit == "mL"
    assert not _over("acetaminophen 500 mL")
    assert not _over("albuterol 20 puffs every hour")
    # IU cannot be compared with a table in mg, nor mg with a table in IU.
    assert not _over("vitamin E 40,000 IU daily")
    assert not _over("vitamin D 900 mg daily")
    # A drug with no maximum in the table is never above it.
    assert not _over("morphine 1,000 mg every hour")


def test_assess_reads_the_drug_names_and_refuses_text_without_a_statement() -> None:
    dose = _dose("Advil (ibuprofen) 200 mg")
    assert dose.drug == "Advil" and dose.drugs == ("Advil", "ibuprofen")
    assert assess("ibuprofen is an NSAID") is None
    assert assess("take 2 tablets") is None


# --------------------------------------------------------------------------- the guard


async def test_a_blocked_dose_reports_the_text_released_before_it() -> None:
    guard = Guard.from_dict(
        {"block_message": "[stopped: a medication dose]", "detectors": [{"type": "dosage", "action": "block"}]}
    )
    text = "Rest and drink fluids. Take 800 mg of ibuprofen every 4 hours. Feel better!"
    for sizes in ([1], [3], random_sizes(5)):
        outcome = await guard.run(chunked(text, sizes))
        assert outcome.kind == "blocked"
        assert outcome.released == "Rest and drink fluids. Take "
        assert outcome.message == "[stopped: a medication dose]"
        assert [(f.label, text[f.start : f.end]) for f in outcome.findings] == [
            (OVER, "800 mg of ibuprofen every 4 hours")
        ]
    checked = guard.check(text)
    assert checked.kind == "blocked" and checked.released == "Rest and drink fluids. Take "


async def test_over_max_policy_lets_a_labelled_dose_through() -> None:
    guard = Guard.from_dict({"detectors": [{"type": "dosage", "mode": "over_max", "action": "block"}]})
    fine = "Take 400 mg of ibuprofen twice daily with food."
    outcome = await guard.run(chunked(fine, [2]))
    assert outcome.kind == "completed" and outcome.released == fine and outcome.findings == ()
    blocked = guard.check("Sure: take 1,000 mg of acetaminophen every 4 hours.")
    assert blocked.kind == "blocked" and blocked.released == "Sure: take "
