"""The ``guardstream replay`` contract, the demo, and the console entry point."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from guardstream import Guard
from guardstream.cli import main
from guardstream.demo import run_demo
from guardstream.replay import hold_percentiles

OUTPUT_KEYS = {
    "id",
    "outcome",
    "released",
    "events",
    "t_first_source_ms",
    "t_first_release_ms",
    "hold_ms_p50",
    "hold_ms_p99",
    "hold_ms_max",
}


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_replay_writes_one_line_per_stream_in_input_order(tmp_path: Path) -> None:
    records = [
        {"id": f"s{i}", "chunks": [f"Stream {i}: mail ", f"u{i}@exam", "ple.com", " bye."], "meta": {"x": i}}
        for i in range(40)
    ]
    records.append({"id": "empty", "chunks": []})
    src = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    assert main(["replay", "--policy", "patterns", "--concurrency", "7", str(src), "-o", str(out)]) == 0
    lines = read_jsonl(out)
    assert [line["id"] for line in lines] == [r["id"] for r in records]
    for i, line in enumerate(lines[:-1]):
        assert set(line) == OUTPUT_KEYS
        assert line["outcome"] == "completed"
        assert line["released"] == f"Stream {i}: mail <EMAIL_ADDRESS> bye."
        assert line["events"][-1]["type"] == "outcome"
        assert all("t_ms" in e for e in line["events"])
        assert line["t_first_source_ms"] is not None and line["t_first_release_ms"] is not None
        assert line["hold_ms_p50"] <= line["hold_ms_p99"] <= line["hold_ms_max"]
    empty = lines[-1]
    assert empty["released"] == "" and empty["outcome"] == "completed"
    assert empty["t_first_source_ms"] is None and empty["hold_ms_p50"] is None


def test_replay_realtime_honours_delays_and_measures_holds(tmp_path: Path) -> None:
    # A card arrives in two chunks 120 ms apart: its first half must be held that long,
    # and the first release happens only after the first chunk's 30 ms delay.
    records = [{"id": "card", "chunks": ["Card 4111 1111 ", "1111 1111 ok"], "delays_ms": [30, 120]}]
    src = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    assert main(["replay", "--policy", "patterns", "--realtime", str(src), "-o", str(out)]) == 0
    (line,) = read_jsonl(out)
    assert line["released"] == "Card <CREDIT_CARD> ok"
    assert line["t_first_source_ms"] >= 30
    assert line["hold_ms_max"] >= 120
    released = [e for e in line["events"] if e["type"] == "released"]
    assert released[0]["text"] == "Card " and released[0]["span"] == [0, 5]


def test_replay_without_realtime_ignores_delays(tmp_path: Path) -> None:
    records = [{"id": "slow", "chunks": ["a ", "b"], "delays_ms": [60_000, 60_000]}]
    src = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    assert main(["replay", "--policy", "patterns", str(src), "-o", str(out)]) == 0
    assert read_jsonl(out)[0]["released"] == "a b"


def test_replay_reports_blocks_and_policy_files(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("block_message: nope\ndetectors:\n  - type: patterns\n    action: block\n", encoding="utf-8")
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "b", "chunks": ["fine ", "123-45-6789", " rest"]}])
    out = tmp_path / "out.jsonl"
    assert main(["replay", "--policy", str(policy), str(src), "-o", str(out)]) == 0
    (line,) = read_jsonl(out)
    assert line["outcome"] == "blocked"
    assert line["released"] == "fine "
    blocked = [e for e in line["events"] if e["type"] == "blocked"]
    assert blocked[0]["message"] == "nope"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "in.jsonl:2: not valid JSON"),
        ('{"id": 3, "chunks": []}', "in.jsonl:2: 'id' must be a string"),
        ('{"id": "x", "chunks": ["a", 1]}', "in.jsonl:2: 'chunks' must be a list of strings"),
        (
            '{"id": "x", "chunks": ["a"], "delays_ms": [1, 2]}',
            "in.jsonl:2: 'delays_ms' has 2 entries but 'chunks' has 1",
        ),
        ('{"id": "x", "chunks": ["a"], "delays_ms": [-1]}', "in.jsonl:2: 'delays_ms' must be a list of non-negative"),
    ],
)
def test_replay_rejects_bad_input_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, problem: str
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "ok", "chunks": ["x"]}\n' + line + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["replay", "--policy", "patterns", str(src), "-o", str(out)]) == 2
    assert problem in capsys.readouterr().err
    assert not out.exists()


def test_replay_unknown_policy_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "chunks": ["x"]}])
    assert main(["replay", "--policy", "no-such-preset", str(src)]) == 2
    assert "no such policy file or preset" in capsys.readouterr().err


def test_console_script_replays_stdin_to_stdout(tmp_path: Path) -> None:
    record = json.dumps({"id": "cli", "chunks": ["ip ", "10.0.0.", "1 ok"]}) + "\n"
    result = subprocess.run(
        [sys.executable, "-m", "guardstream.cli", "replay", "--policy", "patterns", "-"],
        input=record,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    (line,) = [json.loads(x) for x in result.stdout.splitlines()]
    assert line["released"] == "ip <IP_ADDRESS> ok"
    assert "replayed 1 streams: completed 1" in result.stderr


def test_hold_percentiles_weight_by_characters() -> None:
    assert hold_percentiles([]) == (None, None, None)
    assert hold_percentiles([(0.0, 98), (40.0, 1), (90.0, 1)]) == (0.0, 40.0, 90.0)
    assert hold_percentiles([(5.0, 1), (1.0, 3)]) == (1.0, 5.0, 5.0)


async def test_demo_shows_redactions_a_block_and_summaries() -> None:
    out = io.StringIO()
    await run_demo(out, per_token_ms=0.5)
    text = out.getvalue()
    assert "<EMAIL_ADDRESS>" in text and "<CREDIT_CARD>" in text and "<API_KEY>" in text
    assert "policy: default" in text and "Sure, <PERSON>!" in text and "James Whitfield" not in text
    assert "maria.lopez@example.org" not in text and "4111 1111 1111 1111" not in text
    assert "[blocked: the answer contained a private key]" in text
    assert "MIIEowIBAAKCAQEA" not in text
    # The dose within the label's maximum is shown; the one above it blocks the answer.
    assert "500 to 1,000 mg of acetaminophen every 6 hours" in text
    assert "it gave a dose above the labelled adult maximum" in text and "2,000 mg" not in text
    assert text.count("outcome: completed") == 1 and text.count("outcome: blocked") == 2
    # Near misses in the sample stay as written.
    assert "$1,249.99" in text and "2024-11-24" in text and "version 2.4.1" in text


def test_guard_is_shareable_and_immutable() -> None:
    guard = Guard.load("patterns")
    with pytest.raises(AttributeError):
        guard.extra = 1  # type: ignore[attr-defined]
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type
        guard.policy.name = "x"  # type: ignore[misc]
