"""A sweep's first solved epochs (`tiny inspect SWEEP`): per grid point a text histogram of
the epoch at which each seed was first solved (train/curves.py), that fits 80 columns."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group
from rich.text import Text

from tiny_cli.errors import one_line

BINS = 10  # rows of the histogram, at most
BAR = 40  # characters of the longest bar


def _nice(width: float) -> int:
    """The bin width: 1, 2 or 5 times a power of ten, at least `width`."""
    if width <= 1:
        return 1
    power = 10 ** math.floor(math.log10(width))
    return next(int(m * power) for m in (1, 2, 5, 10) if m * power >= width)


def histogram_rows(first: Sequence[int]) -> list[tuple[str, int]]:
    """(epochs, seeds) rows: equal bins of a round width over the solved seeds' first solved
    epochs, from 0 to the last; then `never` for those not solved."""
    solved = sorted(e for e in first if e >= 0)
    rows: list[tuple[str, int]] = []
    if solved:
        width = _nice((solved[-1] + 1) / BINS)
        counts: dict[int, int] = {}
        for e in solved:
            counts[e // width] = counts.get(e // width, 0) + 1
        for b in range(solved[-1] // width + 1):
            lo, hi = b * width, (b + 1) * width - 1
            rows.append((str(lo) if lo == hi else f"{lo}-{hi}", counts.get(b, 0)))
    never = len(first) - len(solved)
    if never:
        rows.append(("never", never))
    return rows


def _percentile(values: Sequence[int], q: float) -> int:
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def first_solved_view(label: str, first: Sequence[int]) -> Group:
    """One grid point's first solved epochs (-1: never solved) as a heading and a histogram."""
    solved = sorted(e for e in first if e >= 0)
    head = f"First solved epoch ({label}): {len(solved)} of {len(first)} seeds solved"
    lines = [Text(one_line(head))]
    if solved:
        marks = (("10th percentile", 0.1), ("median", 0.5), ("90th", 0.9))
        qs = ", ".join(f"{name} {_percentile(solved, q)}" for name, q in marks)
        lines.append(Text(f"  of the solved: {qs}"))
    rows = histogram_rows(first)
    if rows:
        lines.append(Text(f"  {'epochs':>13} {'seeds':>7}"))
    top = max((n for _, n in rows), default=0)
    for epochs, n in rows:
        bar = "#" * (math.ceil(BAR * n / top) if n else 0)
        lines.append(Text(f"  {epochs:>13} {n:>7}  {bar}"))
    return Group(*lines)


def first_solved_views(points: Sequence[Mapping[str, Any]], label: Any) -> list[Group]:
    """Every grid point of sweep.pt that holds first solved epochs (`label(grid)` names it)."""
    return [
        first_solved_view(label(p["grid"]), [int(e) for e in p["first_solved"].tolist()])
        for p in points
        if "first_solved" in p
    ]
