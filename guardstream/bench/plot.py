"""The sweep's picture: leak rate against added latency, one point per strategy and budget.

Two panels share the leak axis: added time to first token (p50) and per-character hold
(p99), both on symmetric-log axes so that "no delay" and "no leak" stay on the chart.
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
}


def _short(s: dict[str, Any]) -> str:
    family = s["family"]
    if family == "guardstream":
        budget = s["params"]["max_hold_ms"]
        return "∞" if budget is None else f"{budget:g} ms"
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


def plot_sweep(result: dict[str, Any], path: str | Path) -> None:
    """Draw the sweep (as :meth:`~.sweep.Sweep.to_dict` returns it) to a PNG at ``path``.

    Raises:
        ExtraRequired: matplotlib (the ``bench`` extra) is not installed.
    """
    try:
        figure_module = importlib.import_module("matplotlib.figure")
    except ImportError:
        raise ExtraRequired("the sweep's plot", "bench") from None
    fig = figure_module.Figure(figsize=(10, 4.4), dpi=100, layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    strategies = result["strategies"]
    target = result["recommended"]["target_leak"] * 100
    panels: tuple[tuple[str, Callable[[dict[str, Any]], float | None]], ...] = (
        ("added time to first token, p50 (ms)", _ttft_p50),
        ("per-character hold, p99 (ms)", _hold_p99),
    )
    for index, (ax, (xlabel, x_of)) in enumerate(zip(axes, panels, strict=True)):
        gs = [s for s in strategies if s["family"] == "guardstream" and x_of(s) is not None]
        if gs:
            ax.plot([x_of(s) for s in gs], [s["leak_rate"] * 100 for s in gs], color=_STYLE["guardstream"][0], lw=1)
        seen: set[str] = set()
        placed: list[tuple[float, float]] = []
        xs = [x for x in (x_of(s) for s in strategies) if x is not None]
        for s in strategies:
            x, rate = x_of(s), s["leak_rate"]
            if x is None or rate is None:
                continue
            color, marker = _STYLE.get(s["family"], ("#7f7f7f", "o"))
            label = s["family"] if s["family"] not in seen else None
            seen.add(s["family"])
            ax.scatter([x], [rate * 100], color=color, marker=marker, s=42, zorder=3, label=label)
            text = _short(s)
            if index == 0 and s["family"] == "guardstream":
                # Added TTFT does not depend on the budget: one label for the column.
                if s is not gs[len(gs) // 2]:
                    continue
                text = "guardstream, every budget"
            # Nudge a label down while it would sit on one placed before (in log-ish units).
            key = (_log(x), _log(rate * 100))
            dy = 4
            while any(abs(key[0] - px) < 0.45 and abs(key[1] - dy / 40 - py) < 0.12 for px, py in placed):
                dy -= 9
            placed.append((key[0], key[1] - dy / 40))
            ax.annotate(text, (x, rate * 100), textcoords="offset points", xytext=(5, dy), fontsize=7, color=color)
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
        ax.grid(True, which="major", color="#dddddd", lw=0.6)
    axes[0].set_ylabel("violations leaked (% with any character shown raw)")
    axes[0].legend(fontsize=7, loc="center left")
    c = result["corpus"]
    fig.suptitle(
        f"{result['policy']}: leak rate against added latency "
        f"({c['streams']} streams, {c['spans']:,} violations; lower left is better)",
        fontsize=10,
    )
    fig.savefig(path, dpi=100)
