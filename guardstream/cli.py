"""The ``guardstream`` command line: demo, replay, policy check/show."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from ._errors import PolicyError
from .guard import Guard
from .policy import available_presets, load_policy

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guardstream",
        description="Guard a language model's token stream: release only what is settled.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="guard a built-in sample stream live in the terminal")
    demo.add_argument(
        "--policy", default=None, help="preset name or YAML path (default: pii, or patterns without the ner extra)"
    )
    demo.add_argument("--token-ms", type=float, default=25.0, help="pace: ms between tokens (default: 25)")
    demo.add_argument("--color", choices=("auto", "always", "never"), default="auto")

    replay = sub.add_parser("replay", help="replay recorded streams (JSON lines) through a policy")
    replay.add_argument("--policy", required=True, help="preset name or YAML path")
    replay.add_argument("--realtime", action="store_true", help="honour each chunk's delays_ms")
    replay.add_argument("--concurrency", type=int, default=64, help="streams run at once (default: 64)")
    replay.add_argument("input", metavar="INPUT.jsonl", help="input file ('-' for stdin)")
    replay.add_argument("-o", "--output", metavar="OUTPUT.jsonl", help="output file (default: stdout)")

    policy = sub.add_parser("policy", help="check or show policies")
    psub = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    check = psub.add_parser("check", help="validate policy files; exit 0 when all are valid, 1 otherwise")
    check.add_argument("files", nargs="+", metavar="FILE")
    show = psub.add_parser("show", help="print a preset's YAML")
    show.add_argument("name", choices=available_presets())
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    if args.command == "replay":
        return _replay(args)
    if args.policy_command == "check":
        return _check(args.files)
    text = resources.files("guardstream.presets").joinpath(f"{args.name}.yaml").read_text(encoding="utf-8")
    sys.stdout.write(text)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    try:
        asyncio.run(run_demo(sys.stdout, policy=args.policy, color=color, per_token_ms=args.token_ms))
    except PolicyError as exc:
        print(f"guardstream: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into head: stop quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces a closed stdout for the rest of the run
    return 0


def _check(files: Sequence[str]) -> int:
    status = 0
    for name in files:
        try:
            policy = load_policy(name)
        except PolicyError as exc:
            status = 1
            print(f"invalid: {exc}", file=sys.stderr)
            continue
        detectors = ", ".join(f"{d.name} ({d.type})" for d in policy.detectors) or "none"
        print(f"ok: {name}: policy {policy.name!r}; detectors: {detectors}")
    return status


def _replay(args: argparse.Namespace) -> int:
    from .replay import ReplayInputError, parse_records, replay

    try:
        guard = Guard.load(args.policy)
    except PolicyError as exc:
        print(f"guardstream: {exc}", file=sys.stderr)
        return 2
    if args.concurrency < 1:
        print("guardstream: --concurrency must be at least 1", file=sys.stderr)
        return 2
    try:
        if args.input == "-":
            records = parse_records(sys.stdin, "<stdin>")
        else:
            with open(args.input, encoding="utf-8") as handle:
                records = parse_records(handle, args.input)
    except (OSError, ReplayInputError, UnicodeDecodeError) as exc:
        print(f"guardstream: {exc}", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(Path(args.output).open("w", encoding="utf-8")) if args.output else sys.stdout
        counts = asyncio.run(replay(guard, records, out, realtime=args.realtime, concurrency=args.concurrency))
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no streams"
    print(f"guardstream: replayed {len(records)} streams: {summary}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
