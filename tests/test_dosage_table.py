"""The shipped dose reference table, and how a user's table is read and refused."""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import pytest

from guardstream.detectors.dosage import DosageDetector, DoseLimit, DoseTable

UNITS = {"mg", "mcg", "IU", "units"}
NUMBERS = ("max_single", "max_daily", "max_weekly", "max_single_per_kg", "max_daily_per_kg")
HEADER = "drug,aliases,max_single,max_daily,max_weekly,unit,max_single_per_kg,max_daily_per_kg,source"


def _rows() -> list[dict[str, str]]:
    """The shipped CSV read with the csv module alone, independently of the loader."""
    text = resources.files("guardstream.detectors.data").joinpath("dosage_table.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


ROWS = _rows()


def _number(cell: str) -> float | None:
    return float(cell) if cell else None


def test_the_table_has_at_least_150_drugs() -> None:
    assert len(ROWS) >= 150
    assert len(DoseTable.load()) == len(ROWS)


def test_every_row_is_complete() -> None:
    for row in ROWS:
        assert list(row) == HEADER.split(","), row
        assert row["drug"].strip() == row["drug"] and row["drug"], row
        assert row["unit"] in UNITS, row
        assert row["source"].strip(), f"{row['drug']}: no source"
        for column in NUMBERS:
            value = _number(row[column])
            assert value is None or value > 0, (row["drug"], column)


def test_no_name_is_used_twice() -> None:
    seen: dict[str, str] = {}
    for row in ROWS:
        names = [row["drug"], *(a for a in row["aliases"].split("|") if a)]
        for name in names:
            key = name.casefold()
            assert key not in seen, f"{name!r} is on the rows of {seen.get(key)!r} and {row['drug']!r}"
            seen[key] = row["drug"]


def test_maxima_are_ordered() -> None:
    for row in ROWS:
        single, daily, weekly = (_number(row[c]) for c in ("max_single", "max_daily", "max_weekly"))
        for low, high in ((single, daily), (single, weekly), (daily, weekly)):
            if low is not None and high is not None:
                assert low <= high, row
        per_kg = _number(row["max_single_per_kg"]), _number(row["max_daily_per_kg"])
        if None not in per_kg:
            assert per_kg[0] <= per_kg[1], row  # type: ignore[operator]


@pytest.mark.parametrize(
    "drug",
    [
        "acetaminophen",  # analgesics
        "ibuprofen",  # NSAIDs
        "naproxen",
        "diphenhydramine",  # antihistamines
        "cetirizine",
        "amoxicillin",  # antibiotics
        "azithromycin",
        "lisinopril",  # antihypertensives
        "amlodipine",
        "atorvastatin",  # statins
        "metformin",  # antidiabetics
        "sertraline",  # antidepressants
        "bupropion",
        "gabapentin",  # anticonvulsants
        "lamotrigine",
        "oxycodone",  # opioids
        "tramadol",
        "alprazolam",  # benzodiazepines
        "omeprazole",  # PPIs
        "prednisone",  # steroids
        "levothyroxine",  # thyroid
        "warfarin",  # anticoagulants
        "apixaban",
        "cholecalciferol",  # vitamins
        "insulin glargine",
    ],
)
def test_the_common_classes_are_covered(drug: str) -> None:
    assert DoseTable.load().lookup(drug) is not None


def test_the_values_the_arithmetic_tests_rely_on() -> None:
    table = DoseTable.load()
    acetaminophen = table.lookup("Tylenol")
    assert acetaminophen is not None and acetaminophen.drug == "acetaminophen"
    assert (acetaminophen.max_single, acetaminophen.max_daily, acetaminophen.unit) == (1000, 4000, "mg")
    vitamin_d = table.lookup("vitamin D")
    assert vitamin_d is not None and vitamin_d.unit == "IU"
    insulin = table.lookup("Lantus")
    assert insulin is not None and (insulin.max_single, insulin.max_daily, insulin.unit) == (None, None, "units")


def test_lookup_ignores_case_and_spacing() -> None:
    table = DoseTable.load()
    advil = table.lookup("ADVIL")
    assert advil is not None and advil.drug == "ibuprofen"
    assert table.lookup("  Vitamin   d3 ") is table.lookup("cholecalciferol")
    assert table.lookup("frobozol") is None
    names = table.names()
    assert "Advil" in names and "ibuprofen" in names and len(names) > len(table)


# --------------------------------------------------------------------------- user tables


def _write(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "doses.csv"
    path.write_text(header + "\n" + body, encoding="utf-8")
    return path


def test_a_user_table_is_loaded(tmp_path: Path) -> None:
    path = _write(tmp_path, 'frobozol,Frobex|Frob,5,10,,mg,,,"house formulary"\nzapazine,,,,,units,,,\n')
    table = DoseTable.load(path)
    assert len(table) == 2
    assert table.lookup("frob") == DoseLimit(
        "frobozol", ("Frobex", "Frob"), max_single=5, max_daily=10, unit="mg", source="house formulary"
    )
    assert table.lookup("ibuprofen") is None
    text = "Take 6 mg of Frob."
    scan = DosageDetector(table=table).open().scan(text, 0, True)
    assert [(f.label, text[f.start : f.end]) for f in scan.findings] == [("DOSAGE_OVER_MAX", "6 mg of Frob")]


def test_only_drug_and_unit_columns_are_required(tmp_path: Path) -> None:
    table = DoseTable.load(_write(tmp_path, "frobozol,mg\n", header="drug,unit"))
    limit = table.lookup("frobozol")
    assert limit is not None and limit.max_single is None and limit.source == ""


@pytest.mark.parametrize(
    ("body", "header", "where"),
    [
        ("frobozol,,5,10,,grains,,,x\n", HEADER, "row 2, column 'unit'"),
        ("frobozol,,5,ten,,mg,,,x\n", HEADER, "row 2, column 'max_daily'"),
        ("frobozol,,-5,10,,mg,,,x\n", HEADER, "row 2, column 'max_single'"),
        ("frobozol,,20,10,,mg,,,x\n", HEADER, "row 2, column 'max_single'"),
        ("frobozol,,5,10,,mg,,,x\nzapazine,Frobozol,,,,mg,,,x\n", HEADER, "row 3, column 'aliases'"),
        ("frobozol,,5,10,,mg,,,x\n,,5,10,,mg,,,x\n", HEADER, "row 3, column 'drug'"),
        ("frobozol,,5,10,,mg,,\n", HEADER, "row 2"),
        ("frobozol,mg,x\n", "drug,unit,notes", "row 1, column 3"),
        ("frobozol\n", "drug", "row 1"),
        ("", HEADER, "no rows"),
    ],
)
def test_a_bad_user_table_names_the_file_row_and_column(tmp_path: Path, body: str, header: str, where: str) -> None:
    path = _write(tmp_path, body, header)
    with pytest.raises(ValueError) as info:
        DoseTable.load(path)
    message = str(info.value)
    assert str(path) in message and where in message


def test_a_byte_order_mark_is_not_part_of_the_header(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_text("\ufeffdrug,unit\nfrobozol,mg\n", encoding="utf-8")
    assert DoseTable.load(path).lookup("frobozol") is not None


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        DoseTable.load(str(path))


def test_duplicate_names_are_refused_when_built_in_code() -> None:
    with pytest.raises(ValueError, match="twice"):
        DoseTable([DoseLimit("frobozol"), DoseLimit("zapazine", ("FROBOZOL",))])
