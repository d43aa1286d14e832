"""The ``guardstream`` command line: demo, replay, policy check/show."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import shlex
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from ._errors import ExtraRequired, PolicyError
from .bench.corpus import DEFAULT_SEED, DEFAULT_STREAMS
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

    serve = sub.add_parser("serve", help="run an OpenAI-compatible proxy that guards a model server's streams")
    serve.add_argument("--policy", required=True, help="preset name or YAML path")
    serve.add_argument(
        "--upstream", required=True, metavar="URL", help="the model server's base URL, e.g. http://127.0.0.1:8000/v1"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    serve.add_argument("--otel", action="store_true", help="emit OpenTelemetry spans (needs guardstream[otel])")

    policy = sub.add_parser("policy", help="check or show policies")
    psub = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    check = psub.add_parser("check", help="validate policy files; exit 0 when all are valid, 1 otherwise")
    check.add_argument("files", nargs="+", metavar="FILE")
    show = psub.add_parser("show", help="print a preset's YAML")
    show.add_argument("name", choices=available_presets())
    _add_bench_parsers(sub)
    return parser


def _add_bench_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``bench sweep``, ``bench corpus`` and ``calibrate``: leak rate against added latency."""

    def corpus_options(p: argparse.ArgumentParser, streams_help: str) -> None:
        p.add_argument("--corpus", metavar="C.jsonl", help="labelled streams (default: generate them)")
        p.add_argument("--streams", type=int, default=DEFAULT_STREAMS, help=streams_help)
        p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"generator seed (default: {DEFAULT_SEED})")
        p.add_argument("--chunking", choices=("mixed", "bpe", "char", "random"), default="mixed")
        p.add_argument("--names", action="store_true", help="plant people and places too (for NER policies)")
        p.add_argument("--doses", action="store_true", help="plant dosing statements too (for dosage policies)")
        p.add_argument("--progress", action="store_true", help="show a progress bar even when stderr is not a TTY")

    bench = sub.add_parser("bench", help="measure leak rate against added latency")
    bsub = bench.add_subparsers(dest="bench_command", required=True, metavar="ACTION")
    sweep = bsub.add_parser("sweep", help="every release strategy on the same labelled streams; tables and a plot")
    sweep.add_argument("--policy", required=True, help="preset name or YAML path")
    corpus_options(sweep, f"generated streams when no --corpus (default: {DEFAULT_STREAMS})")
    sweep.add_argument("--target-leak", type=float, default=0.001, help="leak rate to recommend a budget for")
    sweep.add_argument("--out-dir", metavar="DIR", help="write sweep_<policy>.md, .json and .png here")
    sweep.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib needed)")
    sweep.add_argument("--workers", type=int, help="processes for model-backed policies (default: one per CPU)")
    corpus = bsub.add_parser("corpus", help="write the generated labelled corpus as JSON lines")
    corpus.add_argument("-o", "--output", required=True, metavar="C.jsonl", help="output file ('-' for stdout)")
    corpus.add_argument("--streams", type=int, default=DEFAULT_STREAMS)
    corpus.add_argument("--seed", type=int, default=DEFAULT_SEED)
    corpus.add_argument("--chunking", choices=("mixed", "bpe", "char", "random"), default="mixed")
    corpus.add_argument("--names", action="store_true", help="plant people and places too (for NER policies)")
    corpus.add_argument("--doses", action="store_true", help="plant dosing statements too (for dosage policies)")
    calibrate = sub.add_parser("calibrate", help="the smallest time budget that meets a leak target on a corpus")
    calibrate.add_argument("--policy", required=True, help="preset name or YAML path")
    corpus_options(calibrate, f"generated streams when no --corpus (default: {DEFAULT_STREAMS})")
    calibrate.add_argument("--target-leak", type=float, default=0.001, help="highest acceptable leak rate")
    calibrate.add_argument(
        "--confidence",
        type=float,
        metavar="C",
        help="judge each budget by the upper bound of its leak rate at this confidence (e.g. 0.95)",
    )
    calibrate.add_argument("--json", metavar="FILE", help="also write the curve as JSON")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    if args.command == "replay":
        return _replay(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "bench":
        return _bench(args)
    if args.command == "calibrate":
        return _calibrate(args)
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


def _serve(args: argparse.Namespace) -> int:
    from ._errors import ExtraRequired

    try:
        guard = Guard.load(args.policy)
        from .integrations.proxy import serve

        serve(guard, args.upstream, host=args.host, port=args.port, otel=args.otel)
    except (PolicyError, ExtraRequired, ValueError) as exc:
        print(f"guardstream: {exc}", file=sys.stderr)
        return 2
    return 0


# --------------------------------------------------------------------------- bench


def _bench_streams(args: argparse.Namespace) -> tuple[list[Any], str, Any]:
    """The streams to replay, a description of them, and the pacing used (None: the file's)."""
    from .bench.corpus import Pacing, make_streams, read_jsonl

    if args.corpus:
        return read_jsonl(args.corpus), args.corpus, None
    if args.streams < 1:
        raise ValueError("--streams must be at least 1")
    pacing = Pacing()
    streams = make_streams(args.seed, args.streams, args.chunking, pacing, names=args.names, doses=args.doses)
    extras = (", names" if args.names else "") + (", doses" if args.doses else "")
    return streams, f"generated (seed {args.seed}, chunking {args.chunking}{extras})", pacing


def _policy_label(name: str) -> str:
    return Path(name).stem if name.endswith((".yaml", ".yml")) else name


def _bench_inputs(args: argparse.Namespace) -> tuple[Guard, list[Any], str, Any] | int:
    """The guard and streams for sweep and calibrate, or the exit code of a clear error."""
    from .bench.corpus import CorpusError

    try:
        guard = Guard.load(args.policy)
        streams, source, pacing = _bench_streams(args)
    except (PolicyError, CorpusError, OSError, ValueError) as exc:
        print(f"guardstream: {exc}", file=sys.stderr)
        return 2
    if not 0 <= args.target_leak < 1:
        print("guardstream: --target-leak must be in [0, 1)", file=sys.stderr)
        return 2
    return guard, streams, source, pacing


def _bench(args: argparse.Namespace) -> int:
    from .bench.corpus import make_streams, write_jsonl

    if args.bench_command == "corpus":
        if args.streams < 1:
            print("guardstream: --streams must be at least 1", file=sys.stderr)
            return 2
        streams = make_streams(args.seed, args.streams, args.chunking, names=args.names, doses=args.doses)
        with contextlib.ExitStack() as stack:
            out = sys.stdout if args.output == "-" else stack.enter_context(open(args.output, "w", encoding="utf-8"))
            count = write_jsonl(streams, out)
        spans = sum(len(s.spans) for s in streams)
        print(f"guardstream: wrote {count} streams, {spans} labelled violations to {args.output}", file=sys.stderr)
        return 0

    from .bench.sweep import corpus_summary, run_sweep, sweep_to_markdown

    loaded = _bench_inputs(args)
    if isinstance(loaded, int):
        return loaded
    guard, streams, source, pacing = loaded
    name = _policy_label(args.policy)
    plot = args.out_dir is not None and not args.no_plot
    if plot and importlib.util.find_spec("matplotlib") is None:
        print("guardstream: the plot needs the 'bench' extra: pip install 'guardstream[bench]'", file=sys.stderr)
        print("  (or pass --no-plot)", file=sys.stderr)
        return 2
    try:
        sweep = run_sweep(
            name,
            guard,
            streams,
            corpus_summary(streams, source, pacing),
            target_leak=args.target_leak,
            progress=True if args.progress else None,
            command=_command_line(),
            workers=args.workers,
        )
    except ExtraRequired as exc:
        print(f"guardstream: {exc}", file=sys.stderr)
        return 2
    result = sweep.to_dict()
    table = sweep_to_markdown(result)
    sys.stdout.write(table)
    if args.out_dir is not None:
        out_dir = Path(args.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"sweep_{name}.md").write_text(table, encoding="utf-8")
        (out_dir / f"sweep_{name}.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        written = [f"sweep_{name}.md", f"sweep_{name}.json"]
        if plot:
            from .bench.plot import plot_sweep

            plot_sweep(result, out_dir / f"sweep_{name}.png")
            written.append(f"sweep_{name}.png")
        print(f"guardstream: wrote {', '.join(written)} to {out_dir}", file=sys.stderr)
    print(f"guardstream: swept {len(streams)} streams in {sweep.elapsed_s:.1f} s", file=sys.stderr)
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from .bench.calibrate import calibrate, format_calibration

    loaded = _bench_inputs(args)
    if isinstance(loaded, int):
        return loaded
    guard, streams, source, _ = loaded
    if args.confidence is not None and not 0 < args.confidence < 1:
        print("guardstream: --confidence must be in (0, 1)", file=sys.stderr)
        return 2
    try:
        result = calibrate(
            guard, streams, args.target_leak, progress=True if args.progress else None, confidence=args.confidence
        )
    except ExtraRequired as exc:
        print(f"guardstream: {exc}", file=sys.stderr)
        return 2
    described = f"{source}: {len(streams)} streams, {result.spans} labelled violations"
    lines = format_calibration(result, _policy_label(args.policy), described)
    if args.json:
        data = {
            "policy": _policy_label(args.policy),
            "corpus": described,
            "target_leak": result.target,
            "confidence": result.confidence,
            "met": result.met,
            "recommended_max_hold_ms": result.recommended,
            "curve": [
                {
                    "max_hold_ms": p.max_hold_ms,
                    "spans": p.spans,
                    "leaked": p.leaked,
                    "leak_rate": p.leak_rate,
                    "leak_rate_upper95": p.upper95,
                    "hold_p99_ms": p.hold_p99_ms,
                    "added_ttft_p50_ms": p.ttft_p50_ms,
                }
                for p in result.points
            ],
        }
        Path(args.json).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0 if result.met else 1


def _command_line() -> str:
    return "guardstream " + " ".join(shlex.quote(a) for a in sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
