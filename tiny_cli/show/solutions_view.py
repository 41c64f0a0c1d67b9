"""A sweep's solutions (`tiny inspect SWEEP --solutions`): per grid point its solved
seeds' forms, with their formulas and seeds, and the histogram of the task's alpha; the
same as markdown for TensorBoard's TEXT tab."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.text import Text

from tiny_cli.show.tables import GAP, Column, Fitted, decimals, fit, floor_width
from tiny_cli.store.runs import SolutionPoint, Solutions
from tiny_cli.tasks.base import brief


def seed_ranges(seeds: Sequence[int], width: int | None = None) -> str:
    """`3-5, 9, 12`: ascending seeds with runs of consecutive ones as ranges; with `width`,
    at most that many characters, the rest said as `… N more` (N seeds)."""
    items: list[tuple[str, int]] = []  # (text, seeds it stands for)
    ordered = sorted(seeds)
    start = 0
    for k in range(1, len(ordered) + 1):
        if k == len(ordered) or ordered[k] != ordered[k - 1] + 1:
            a, b = ordered[start], ordered[k - 1]
            items.append((f"{a}-{b}" if b > a else str(a), k - start))
            start = k
    if width is None:
        return ", ".join(text for text, _ in items)
    shown, left = "", len(ordered)
    for k, (text, count) in enumerate(items):
        candidate = f"{shown}, {text}" if shown else text
        rest = left - count
        tail = f", … {rest} more" if rest and k + 1 < len(items) else ""
        if len(candidate) + len(tail) > width:
            break
        shown, left = candidate, rest
    if left:
        shown = f"{shown}, … {left} more" if shown else f"… {left} more"
    return shown


def _forms(count: int) -> str:
    return f"{count} form" + ("" if count == 1 else "s")


def _point_head(p: SolutionPoint) -> str:
    if not p.solved_seeds:
        return f"{p.label}: no solved seeds (of {p.seeds})"
    return f"{p.label}: {len(p.solved_seeds)} of {p.seeds} seeds solved, {_forms(len(p.groups))}"


def _unread(p: SolutionPoint) -> str:
    """The groups without a formula (beyond the largest), in one line."""
    rest = [g for g in p.groups if g.formula is None]
    if not rest:
        return ""
    sizes = sorted({g.count for g in rest})
    each = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]} to {sizes[-1]}"
    seeds = sum(g.count for g in rest)
    forms = f"{len(rest)} more form" + ("" if len(rest) == 1 else "s")
    return f"… {forms}, of {each} seeds each ({seeds} seeds; --json lists them)"


def _alpha_bins(values: Sequence[float], bins: int = 10) -> list[tuple[float, float, int]]:
    """Equal-width bins over the values' range (one bin when they are all equal)."""
    lo, hi = min(values), max(values)
    if hi == lo:
        return [(lo, hi, len(values))]
    step = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / step))] += 1
    return [(lo + k * step, lo + (k + 1) * step, c) for k, c in enumerate(counts)]


def alpha_histogram(p: SolutionPoint, width: int) -> list[Text]:
    """A text histogram of the solved seeds' alpha (min/max); none for other tasks."""
    if p.alpha is None or not p.solved_seeds:
        return []
    values = [a for a in p.alpha if a is not None]
    outside = len(p.alpha) - len(values)
    lines = [Text(f"alpha of the {len(values)} solved seeds in the family:")]
    rows = _alpha_bins(values) if values else []
    labels = [f"{decimals(lo, 2):>5} to {decimals(hi, 2):>5}" for lo, hi, _ in rows]
    biggest = max((c for _, _, c in rows), default=0)
    room = max(1, width - 2 - max(map(len, labels), default=0) - 2 - len(str(biggest)) - 1)
    for label, (_, _, count) in zip(labels, rows, strict=True):
        bar = "█" * (round(count / biggest * room) if biggest else 0)
        lines.append(Text(f"  {label}  {bar}{' ' if bar else ''}{count}"))
    if outside:
        lines.append(Text(f"  not in the family: {outside}"))
    return lines


def solutions_view(solutions: Solutions) -> Fitted:
    """Per grid point: its solved seeds' forms, largest first, each with the formula of the
    seed that shows it and its seeds, as ranges cut to the width; the forms beyond those
    with a formula in one line; the alpha histogram for min/max."""

    def build(width: int) -> Group:
        parts: list[RenderableType] = [
            Text(
                f"Solutions: solved seeds grouped by canonical form (units carving the same "
                f"regions, tolerance {solutions.tolerance:g}); each form's formula is its "
                f"simplest seed's",
                style="bold",
            )
        ]
        for p in solutions.points:
            parts.append(Text(_point_head(p)))
            shown = [g for g in p.groups if g.formula is not None]
            if shown:
                counts = Column("seeds", [Text(str(g.count)) for g in shown], justify="right")
                room = max(20, width - floor_width(counts) - GAP)
                cells = []
                for g in shown:
                    cell = Text(str(g.formula))
                    if not g.exact:
                        error = brief(g.max_error, 3)
                        cell.append(f"  (approximate: max error {error})", style="yellow")
                    first = f"seed {g.representative}"
                    if g.alpha is not None:
                        first += f", alpha {decimals(g.alpha, 2)}"
                    head = f"{first}; seeds "
                    cell.append(f"\n{head}{seed_ranges(g.seeds, room - len(head))}", style="dim")
                    cells.append(cell)
                forms = Column(
                    "formula; the seed it is read from; the form's seeds", cells, wrap=True
                )
                parts.append(fit([counts, forms], width))
            if more := _unread(p):
                parts.append(Text(more))
            parts.extend(alpha_histogram(p, width))
        return Group(*parts)

    return Fitted(build)


def solutions_markdown(p: SolutionPoint) -> str:
    """One grid point's solutions as markdown, for TensorBoard's TEXT tab."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [cell(_point_head(p))]
    shown = [g for g in p.groups if g.formula is not None]
    if shown:
        lines += ["", "| seeds | formula | read from seed | exact | its seeds |"]
        lines.append("|---:|---|---:|---|---|")
        for g in shown:
            exact = "yes" if g.exact else f"max error {brief(g.max_error, 3)}"
            ranges = cell(seed_ranges(g.seeds, 500))
            lines.append(f"| {g.count} | `{g.formula}` | {g.representative} | {exact} | {ranges} |")
    if more := _unread(p):
        lines += ["", more]
    values = [a for a in p.alpha or [] if a is not None]
    if values:
        lines += ["", f"alpha of {len(values)} seeds: {min(values):.3g} to {max(values):.3g}"]
    return "\n".join(lines)
