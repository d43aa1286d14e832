"""Policies: strict validation with messages that name the file, the key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardstream import Guard, PolicyError, available_presets, load_policy
from guardstream.cli import main


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.path == str(path)
    return str(info.value).splitlines()


def test_bad_regex_names_the_file_the_key_and_the_pattern(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "detectors:\n  - type: patterns\n    custom:\n      - label: EMPLOYEE_ID\n        regex: 'EMP-(\\d{6}'\n",
    )
    assert errors_of(path) == [
        f"{path}: detectors[0].custom[0].regex: bad regular expression 'EMP-(\\\\d{{6}}': missing ) at position 10"
    ]


def test_unknown_keys_labels_and_types_are_all_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "detectors:\n  - type: patterns\n    labels: [EMAIL, CREDIT_CARD]\n    colour: red\n  - type: nerd\n",
    )
    assert errors_of(path) == [
        f"{path}: detectors[0].labels: unknown built-in label 'EMAIL'; did you mean 'EMAIL_ADDRESS'?",
        f"{path}: detectors[0].colour: unknown key",
        f"{path}: detectors[1]: unknown detector type 'nerd'; "
        "expected one of: patterns, presidio, dosage, onnx, semantic",
    ]


def test_out_of_range_numbers_and_bad_choices(tmp_path: Path) -> None:
    path = write(tmp_path, "budget:\n  max_hold_ms: -5\n  on_budget: explode\nmask_char: '##'\n")
    assert errors_of(path) == [
        f"{path}: budget.max_hold_ms: Input should be greater than 0",
        f"{path}: budget.on_budget: Input should be 'release', 'mask' or 'block'",
        f"{path}: mask_char: String should have at most 1 character",
    ]


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "detectors:\n  - type: patterns\n    labels: [CREDIT_CARD\n")
    assert errors_of(path) == [f"{path}: invalid YAML at line 4, column 1: expected ',' or ']', but got '<stream end>'"]


def test_templates_validators_and_labels_are_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "default_action: {action: redact, template: '<{kind}>'}\n"
        "detectors:\n  - type: patterns\n    custom:\n      - {label: emp, regex: 'x', validator: crc32}\n",
    )
    assert errors_of(path) == [
        f"{path}: default_action.template: unknown placeholder(s) {{kind}}; use {{label}} or {{detector}}",
        f"{path}: detectors[0].custom[0].label: 'emp' is not a valid label: use UPPER_SNAKE_CASE, like EMPLOYEE_ID",
        f"{path}: detectors[0].custom[0].validator: unknown validator 'crc32'; choose one of: e164, ip, luhn, mod97",
    ]


def test_actions_for_labels_nobody_reports_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "actions:\n  PASSPORT: block\ndetectors:\n  - type: patterns\n")
    assert errors_of(path) == [f"{path}: actions: 'PASSPORT' is not a label any detector reports"]


def test_a_pattern_that_matches_nothing_but_emptiness_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "detectors:\n  - type: patterns\n    custom:\n      - {label: X, regex: 'a*'}\n")
    assert errors_of(path) == [
        f"{path}: detectors[0].custom[0].regex: regular expression 'a*' matches the empty string"
    ]


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- just\n- a list\n")
    assert errors_of(path) == [f"{path}: a policy must be a mapping of keys, not list"]


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(PolicyError) as info:
        load_policy("nonexistent")
    assert str(info.value) == f"nonexistent: no such policy file or preset; presets: {', '.join(available_presets())}"


def test_every_preset_loads_and_patterns_covers_every_builtin_label() -> None:
    from guardstream.detectors import BUILTIN_LABELS

    assert "patterns" in available_presets()
    for name in available_presets():
        load_policy(name)
    guard = Guard.load("patterns")
    labels = {label for det in guard.policy.detectors for label in det.label_names()}
    assert labels == set(BUILTIN_LABELS)


def test_custom_pattern_with_validator_and_group(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "detectors:\n  - type: patterns\n    labels: none\n    custom:\n"
        "      - {label: ACCOUNT, regex: 'acct:(?P<n>\\d{13,19})\\b', group: n, validator: luhn}\n",
    )
    guard = Guard.from_yaml(path)
    assert guard.check("acct:4111111111111111 ok").released == "acct:<ACCOUNT> ok"
    assert guard.check("acct:4111111111111112 ok").released == "acct:4111111111111112 ok"


def test_actions_resolve_label_then_detector_then_default() -> None:
    guard = Guard.from_dict(
        {
            "default_action": {"action": "redact", "template": "[{label}]"},
            "actions": {"EMAIL_ADDRESS": "mask"},
            "detectors": [{"type": "patterns", "action": "redact", "actions": {"US_SSN": {"action": "flag"}}}],
        }
    )
    out = guard.check("a@b.com 123-45-6789 4111 1111 1111 1111 ok").released
    assert out == "******* 123-45-6789 [CREDIT_CARD] ok"


def test_policy_check_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "detectors:\n  - type: patterns\n", "good.yaml")
    bad = write(tmp_path, "budget: {max_hold_chars: 0}\n", "bad.yaml")
    assert main(["policy", "check", str(good)]) == 0
    assert f"ok: {good}" in capsys.readouterr().out
    assert main(["policy", "check", str(good), str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: budget.max_hold_chars: Input should be greater than or equal to 1" in err


def test_policy_show_prints_a_preset_that_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "show", "patterns"]) == 0
    text = capsys.readouterr().out
    path = write(tmp_path, text, "copy.yaml")
    assert load_policy(path) == load_policy("patterns")
