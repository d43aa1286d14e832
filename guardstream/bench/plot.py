"""The sweep's picture: leak rate against added latency, one point per strategy and budget.

Two panels share the leak axis: added time to first token (p50) and per-character hold
(p99), both on symmetric-log axes so that "no delay" and "no leak" stay on the chart. A
policy that blocks gets a third: answers cut early against the per-character hold.
Needs matplotlib (the ``bench`` extra); it is imported only here.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._errors import ExtraRequired

__all__ = ["plot_sweep"]

_STYLE: dict[str, tuple[str, str]] = {
    "stream first": ("#d62728", "X"),
    "fixed window": ("#ff7f0e", "s"),
    "chunk-and-check": ("#9467bd", "^"),
    "sentence": ("#8c564b", "D"),
    "guardstream": ("#1f77b4", "o"),
    "guardstream, block on budget": ("#17becf", "P"),
}


def _short(s: dict[str, Any]) -> str:
    family = s["family"]
    if family.startswith("guardstream"):
        budget = s["params"]["max_hold_ms"]
        text = "∞" if budget is None else f"{budget:g} ms"
        return text
    if family == "fixed window":
        return f"fixed {s['params']['chars']}"
    if family == "chunk-and-check":
        return f"chunk {s['params']['chunk_size']}/{s['params']['context_size']}"
    if family == "sentence":
        return "sentence"
    return "stream first"


def _ttft_p50(s: dict[str, Any]) -> float | None:
    value: float | None = s["added_ttft_ms"]["p50"]
    return value


def _hold_p99(s: dict[str, Any]) -> float | None:
    value: float | None = s["hold_ms"]["p99"]
    return value


def _log(value: float) -> float:
    """Where a value sits on a symmetric-log axis, roughly (decades above the linear part)."""
    return math.log10(1 + abs(value))


def _tick_ms(ms: float) -> str:
    return f"{ms / 1000:g} s" if ms >= 1000 else f"{ms:g}"


def _leak(s: dict[str, Any]) -> float | None:
    rate: float | None = s["leak_rate"]
    return None if rate is None else rate * 100


def _cut(s: dict[str, Any]) -> float | None:
    rate: float | None = s.get("cut_early_rate")
    return None if rate is None else rate * 100


_Of = Callable[[dict[str, Any]], float | None]


def plot_sweep(result: dict[str, Any], path: str | Path) -> None:
    """Draw the sweep (as :meth:`~.sweep.Sweep.to_dict` returns it) to a PNG at ``path``.

    For a policy that blocks, a third panel shows the answers each strategy cut early
    against the per-character hold: what blocking on budget costs instead of leaks.

    Raises:
        ExtraRequired: matplotlib (the ``bench`` extra) is not installed.
    """
    try:
        figure_module = importlib.import_module("matplotlib.figure")
    except ImportError:
        raise ExtraRequired("the sweep's plot", "bench") from None
    strategies = result["strategies"]
    target = result["recommended"]["target_leak"] * 100
    leak_axis = "violations leaked (% with any character shown raw)"
    panels: list[tuple[str, _Of, _Of, str]] = [
        ("added time to first token, p50 (ms)", _ttft_p50, _leak, leak_axis),
        ("per-character hold, p99 (ms)", _hold_p99, _leak, leak_axis),
    ]
    if result.get("block_labels") or any(s.get("cut_early") for s in strategies):
        panels.append(("per-character hold, p99 (ms)", _hold_p99, _cut, "answers cut early (%)"))
    fig = figure_module.Figure(figsize=(5 * len(panels), 4.4), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(panels))
    for index, (ax, (xlabel, x_of, y_of, ylabel)) in enumerate(zip(axes, panels, strict=True)):
        leak_panel = y_of is _leak
        for family in ("guardstream", "guardstream, block on budget"):
            line = [s for s in strategies if s["family"] == family and x_of(s) is not None and y_of(s) is not None]
            if line:
                ax.plot([x_of(s) for s in line], [y_of(s) for s in line], color=_STYLE[family][0], lw=1)
        seen: set[str] = set()
        placed: list[tuple[float, float]] = []
        xs = [x for x in (x_of(s) for s in strategies) if x is not None]
        for s in strategies:
            x, y = x_of(s), y_of(s)
            if x is None or y is None:
                continue
            color, marker = _STYLE.get(s["family"], ("#7f7f7f", "o"))
            label = s["family"] if s["family"] not in seen else None
            seen.add(s["family"])
            ax.scatter([x], [y], color=color, marker=marker, s=42, zorder=3, label=label)
            text = _short(s) if leak_panel else _short(s).split(",")[0]
            if s["family"].startswith("guardstream"):
                # One label for a column of budgets (added TTFT does not depend on the
                # budget), or for a row of them (blocking on budget leaks nothing).
                same = [g for g in strategies if g["family"] == s["family"] and x_of(g) is not None]
                if index == 0:
                    if s is not same[len(same) // 2]:
                        continue
                    text = f"{s['family'].replace('guardstream, ', '')}, every budget"
                elif len({y_of(g) for g in same}) == 1:
                    if s is not min(same, key=lambda g: x_of(g) or 0.0):
                        continue
                    text = "every budget"
            # Nudge a label down while it would sit on one placed before (in log-ish units).
            key = (_log(x), _log(y))
            dy = 4
            while any(abs(key[0] - px) < 0.45 and abs(key[1] - dy / 40 - py) < 0.12 for px, py in placed):
                dy -= 9
            placed.append((key[0], key[1] - dy / 40))
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(5, dy), fontsize=7, color=color)
        if leak_panel:
            ax.axhline(target, color="#2ca02c", ls="--", lw=1)
            ax.text(
                0.99,
                target,
                f"target {target:g}% ",
                color="#2ca02c",
                fontsize=7,
                ha="right",
                va="bottom",
                transform=ax.get_yaxis_transform(),
            )
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(-1, max(xs, default=10) * 4)
        ticks = [t for t in (0, 10, 100, 1000, 10000, 100000) if t <= max(xs, default=10) * 4]
        ax.set_xticks(ticks, [_tick_ms(t) for t in ticks])
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set_ylim(-0.02, 150)
        ax.set_yticks([0, 0.1, 1, 10, 100], ["0", "0.1%", "1%", "10%", "100%"])
        ax.set_xlabel(xlabel)
        if index == 0 or not leak_panel:
            ax.set_ylabel(ylabel)
        else:
            ax.tick_params(labelleft=False)
        ax.grid(True, which="major", color="#dddddd", lw=0.6)
    axes[0].legend(fontsize=7, loc="center left")
    c = result["corpus"]
    fig.suptitle(
        f"{result['policy']}: leak rate against added latency "
        f"({c['streams']} streams, {c['spans']:,} violations; lower left is better)",
        fontsize=10,
    )
    fig.savefig(path, dpi=100)
