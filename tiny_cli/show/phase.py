"""A sweep's phase diagram (Liu et al. 2022): each grid point a cell, coloured by the
held-out outcome most of its seeds had (generalised, grokked, memorised, not learned:
`outcomes.held_out`), with that count and the median delay written in (of the seeds that
grokked, in a grokked cell; of those that solved both sides, in a generalised one).

Which axes are drawn: the sweep's first grid key (in `--grid` order) across, the second
down; one key is a strip of one row; with more than two, one panel per combination of
the other keys' values (at most MAX_PANELS, the rest counted in the title). A sweep without
a grid, or without a test set (no held-out outcomes), has no phase diagram.

`phase_cells` reads the cells off summary.json's points (typed views or the plain dicts a
sweep stores); `phase_png` draws them with matplotlib (Agg, no pyplot) and `phase_table`
lays them out for the terminal, one line per row of the diagram.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tiny_cli.config.grid import words
from tiny_cli.show import style
from tiny_cli.store.runs import GridValue, SweepPoint
from tiny_cli.train.held_out import GROK_EPOCHS, HELD_OUT

if TYPE_CHECKING:
    from rich.console import Group

MAX_PANELS = 12
VALUE_CHARS = 18  # of a grid value on an axis
COLOURS = {
    "generalised": "#2ca02c",
    "grokked": "#1f77b4",
    "memorised": "#ff7f0e",
    "not learned": "#c7c7c7",
}
SHORT = {"generalised": "gen", "grokked": "grok", "memorised": "mem", "not learned": "none"}


@dataclass(frozen=True)
class Cell:
    """One grid point of the diagram: its majority outcome, how many of its seeds had it,
    and, when that is grokked, the median delay of its seeds that grokked (generalised: of
    those that solved both sides; None otherwise)."""

    grid: Mapping[str, GridValue]
    majority: str
    count: int
    seeds: int
    delay: float | None


def phase_cells(summary: Sequence[SweepPoint] | Sequence[Mapping[str, Any]]) -> list[Cell]:
    """The grid points that have held-out outcomes, as cells."""
    cells = []
    for p in summary:
        point = p if isinstance(p, SweepPoint) else SweepPoint.model_validate(p)
        held = point.held_out
        if held is None or held.majority not in held.counts:
            continue
        count = held.counts[held.majority]
        # the delay of the seeds the colour stands for: those that grokked, or generalised
        delay = {"grokked": held.grokked_delay, "generalised": held.delay}.get(held.majority)
        cells.append(Cell(point.grid, held.majority, count, point.seeds, delay))
    return cells


def axes_of(grids: Sequence[Mapping[str, GridValue]]) -> dict[str, list[GridValue]]:
    """A sweep's grid keys and their values, in order, from its points (grid.json's order:
    the first key varies slowest)."""
    axes: dict[str, list[GridValue]] = {}
    for grid in grids:
        for k, v in grid.items():
            values = axes.setdefault(k, [])
            if _index(values, v) is None:
                values.append(v)
    return axes


def phase_view(summary: Sequence[SweepPoint] | Sequence[Mapping[str, Any]]) -> Group | None:
    """`tiny sweep` and `tiny inspect SWEEP`: `phase_lines` as text (never markup)."""
    from rich.console import Group

    from tiny_cli.show.tables import safe_text

    lines = phase_lines(summary)
    return Group(*(safe_text(line) for line in lines)) if lines else None


def phase_lines(summary: Sequence[SweepPoint] | Sequence[Mapping[str, Any]]) -> list[str]:
    """The diagram as lines of text under a title that says how to read it; [] without
    one."""
    points = [p if isinstance(p, SweepPoint) else SweepPoint.model_validate(p) for p in summary]
    cells = phase_cells(points)
    axes = axes_of([p.grid for p in points])
    table = phase_table(axes, cells)
    if not table:
        return []
    key = ", ".join(f"{SHORT[n]} {n}" for n in HELD_OUT)
    title = "Phase diagram: most seeds' held-out outcome, their median delay in epochs"
    return [title, f"(G = {GROK_EPOCHS}; {key})", *table]


def _short(value: GridValue) -> str:
    text = " ".join(words(value).split())
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


@dataclass(frozen=True)
class Panel:
    """One picture's worth: the other keys' values (its title), and cells by (row, col)."""

    title: str
    x: tuple[str, list[GridValue]]
    y: tuple[str, list[GridValue]] | None
    cells: dict[tuple[int, int], Cell]


def panels(axes: Mapping[str, Sequence[GridValue]], cells: Sequence[Cell]) -> list[Panel]:
    """The cells laid out: x the first key, y the second (none: a strip), a panel per
    combination of the rest, in grid order."""
    keys = list(axes)
    if not keys or not cells:
        return []
    xk, yk, rest = keys[0], (keys[1] if len(keys) > 1 else None), keys[2:]
    xs = list(axes[xk])
    ys: list[GridValue] = list(axes[yk]) if yk is not None else [None]
    out = []
    for combo in itertools.product(*(list(axes[k]) for k in rest)):
        fixed = dict(zip(rest, combo, strict=True))
        title = " ".join(f"{k}={_short(v)}" for k, v in fixed.items())
        placed: dict[tuple[int, int], Cell] = {}
        for c in cells:
            if any(c.grid.get(k) != v for k, v in fixed.items()):
                continue
            col = _index(xs, c.grid.get(xk))
            row = _index(ys, c.grid.get(yk)) if yk is not None else 0
            if col is not None and row is not None:
                placed[(row, col)] = c
        y = (yk, ys) if yk is not None else None
        out.append(Panel(title, (xk, xs), y, placed))
    return out


def _index(values: Sequence[GridValue], value: GridValue) -> int | None:
    for i, v in enumerate(values):
        if v == value and type(v) is type(value):
            return i
    return None


def _delay(delay: float | None) -> str:
    return "" if delay is None else f"{delay:,.0f}"


def phase_png(axes: Mapping[str, Sequence[GridValue]], cells: Sequence[Cell]) -> bytes | None:
    """The diagram as a PNG (None: nothing to draw)."""
    drawn = panels(axes, cells)
    if not drawn:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    shown = drawn[:MAX_PANELS]
    columns = min(len(shown), 3)
    rows = (len(shown) + columns - 1) // columns
    nx, ny = len(shown[0].x[1]), len(shown[0].y[1]) if shown[0].y else 1
    side = max(4.5, 1.3 * nx + 2.2)
    height = max(2.6, 1.0 * ny + 2.2)
    with style.rc():
        figure = Figure(figsize=(max(10.0, side * columns), height * rows + 0.8), dpi=style.DPI)
        FigureCanvasAgg(figure)
        grid = figure.subplots(rows, columns, squeeze=False)
        for ax in grid.flat[len(shown) :]:
            ax.set_axis_off()
        for ax, panel in zip(grid.flat, shown, strict=False):
            _draw_panel(ax, panel)
        more = (
            f" ({len(drawn) - len(shown)} more panels not drawn)" if len(drawn) > MAX_PANELS else ""
        )
        figure.suptitle(
            f"phase diagram: most seeds' held-out outcome, their median delay in epochs "
            f"(G = {GROK_EPOCHS}){more}"
        )
        handles = [Patch(color=COLOURS[n], label=n) for n in HELD_OUT]
        figure.legend(handles=handles, loc="lower center", ncol=len(HELD_OUT), frameon=False)
        figure.tight_layout(rect=(0, 0.07, 1, 1))
        style.literal(figure)  # (not `charts.png`: its tight_layout drops the legend's room)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=style.DPI)
        return buffer.getvalue()


def _draw_panel(ax: Any, panel: Panel) -> None:
    from matplotlib.patches import Rectangle

    xk, xs = panel.x
    ys = panel.y[1] if panel.y else [None]
    for (row, col), c in panel.cells.items():
        ax.add_patch(Rectangle((col, row), 1, 1, color=COLOURS.get(c.majority, "white")))
        text = f"{c.majority}\n{c.count}/{c.seeds}"
        text += f"\ndelay {_delay(c.delay)}" if c.delay is not None else ""
        ink = "white" if c.majority == "grokked" else "black"  # on the dark blue
        ax.text(col + 0.5, row + 0.5, text, ha="center", va="center", color=ink,
                fontsize=style.FONT - 3)  # fmt: skip
    ax.set_xlim(0, len(xs))
    ax.set_ylim(0, len(ys))
    ax.set_xticks([i + 0.5 for i in range(len(xs))], [_short(v) for v in xs])
    ax.set_xlabel(xk)
    if panel.y:
        ax.set_yticks([i + 0.5 for i in range(len(ys))], [_short(v) for v in ys])
        ax.set_ylabel(panel.y[0])
    else:
        ax.set_yticks([])
    for i in range(len(xs) + 1):
        ax.axvline(i, color="white", linewidth=2)
    for j in range(len(ys) + 1):
        ax.axhline(j, color="white", linewidth=2)
    if panel.title:
        ax.set_title(panel.title)


def phase_table(axes: Mapping[str, Sequence[GridValue]], cells: Sequence[Cell]) -> list[str]:
    """The diagram as text lines: per panel a header of the first key's values, then per
    value of the second key its cells (`grok 1,500`: the majority outcome shortened, its
    median delay), the rows from the top of the picture down."""
    lines: list[str] = []
    for panel in panels(axes, cells):
        xk, xs = panel.x
        ys = panel.y[1] if panel.y else [None]
        labels = [_short(v) for v in ys] if panel.y else [""]
        left = max([len(s) for s in labels] + [len(panel.y[0]) if panel.y else 0])
        shown = {
            k: f"{SHORT[c.majority]} {_delay(c.delay)}".strip() for k, c in panel.cells.items()
        }
        width = max([4] + [len(t) for t in shown.values()] + [len(_short(v)) for v in xs])
        if panel.title:
            lines.append(panel.title)
        down = panel.y[0] if panel.y else ""
        lines.append(f"{down:<{left}}  {xk}")
        lines.append(" " * left + "  " + "  ".join(f"{_short(v):>{width}}" for v in xs))
        for row in reversed(range(len(ys))):
            cells_text = []
            for col in range(len(xs)):
                cells_text.append(f"{shown.get((row, col), '-'):>{width}}")
            lines.append(f"{labels[row]:>{left}}  " + "  ".join(cells_text))
    return lines
