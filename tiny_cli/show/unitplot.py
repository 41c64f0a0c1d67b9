"""Which hidden unit fires where: each unit's activation over the domain (`units.png`).

Two steps, so that drawing can move to another process: `unit_data` computes what is drawn
(numpy only: the net's activations at the points drawn, which units are dead on the whole
domain) as a picklable `UnitData`; `draw` turns that, and nothing else, into PNG bytes
(matplotlib's Agg backend and object API, imported there). No torch here, not even lazily.

- One input (lt, abs, is_even, mod, a one-input expr): one panel per hidden layer, each of
  its units' activation against x at the domain's inputs; a big domain is thinned to every
  k-th input (k odd, so is_even's parities both show), and the title says so.
- Two inputs (min, max, xor): one heat map per unit over a grid of the domain's box, grey
  where the unit is not active (a ReLU's 0), coloured by how much it is; for a task of the
  continuous plane (circle, spiral: `Task.plane`), over that plane: Playground's per-neuron
  thumbnails.
- More inputs (parity): one panel per hidden layer, activations against the sample index.

At most MAX_UNITS units are drawn, from at most MAX_LAYERS layers (the first ones, and the
first units of each: the same number per layer); the title says when some are left out. A
ReLU unit never > 0 on the whole domain (`canonical.dead_units`) is labelled dead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tiny_cli.read.arrays import Net, Pass, forward, hidden_activations
from tiny_cli.read.canonical import dead_units
from tiny_cli.show import style
from tiny_cli.show.plots import ordinal
from tiny_cli.spec import activations

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = style.DPI
MIN_INCHES = 12.0  # the narrowest figure: 1,200 pixels (show/style.py)
MAX_UNITS = 16  # units drawn at most
MAX_LAYERS = 8  # hidden layers drawn at most
MAX_POINTS = 400  # inputs (or samples) a curve is drawn at; more are thinned
GRID_SIDE = 48  # at most this many grid points per axis of a heat map
MARKERS = 64  # curves of at most this many points get a marker at each
DEAD = "0.6"  # a dead unit's colour


@dataclass(frozen=True)
class Unit:
    layer: int  # hidden layer, from 0
    index: int  # the unit's index in its layer (as in `canonical.dead_units`)
    activation: str
    values: np.ndarray  # its activation at `UnitData.points` ("heat": [rows, columns])
    dead: bool  # a ReLU unit never > 0 on the whole domain


@dataclass(frozen=True)
class UnitData:
    """What `draw` needs, and nothing else: numpy arrays, strings, numbers (picklable)."""

    mode: Literal["lines", "heat"]
    title: str  # two lines: the caller's title, then what is shown and what is left out
    xlabel: str
    ylabel: str  # "heat": the second input's name
    xs: np.ndarray  # "lines": each point's x (its input or sample index); "heat": the grid's
    ys: np.ndarray  # values of the first input (xs) and of the second (ys); "lines": no ys
    points: np.ndarray  # [points, inputs]: where the activations were computed
    units: tuple[Unit, ...]
    thinned: bool  # "lines": only every k-th input or sample is drawn


def chosen(widths: Sequence[int]) -> list[tuple[int, int]]:
    """(layer, unit) pairs to draw: the first units of the first MAX_LAYERS layers, as many
    from each layer as MAX_UNITS allows for all of them."""
    layers = list(range(min(len(widths), MAX_LAYERS)))
    per_layer = max(1, MAX_UNITS // max(1, len(layers)))
    return [(i, j) for i in layers for j in range(min(widths[i], per_layer))]


def _every(n: int) -> int:
    """An odd stride that leaves at most MAX_POINTS of n (1 when n is small enough)."""
    return max(1, math.ceil(n / MAX_POINTS)) | 1


def unit_data(
    net: Net,
    x: np.ndarray,
    names: Sequence[str],
    title: str,
    run: Pass | None = None,
    plane: tuple[float, float, float, float] | None = None,
) -> UnitData | None:
    """The activations to draw for a net on its domain `x` [n, inputs] (None: the net has
    no hidden unit). `run`: the net's `arrays.forward` over all of `x`, if the caller has it
    (dead units are judged on the whole domain, in chunks; the activations are computed only
    at the points drawn). `plane`: a two-input task's `Task.plane`, the box its heat maps
    span (default: the domain's own)."""
    hidden = net.layers[:-1]
    widths = [layer.width for layer in hidden]
    if not sum(widths) or not len(x):
        return None
    run = run or forward(net, x)
    dead = {(i, j) for i, units in enumerate(dead_units(net, run)) for j in units}
    picks = chosen(widths)
    n = len(x)
    notes = []
    ylabel = ""
    if x.shape[1] == 2:
        mode: Literal["lines", "heat"] = "heat"
        lo, hi = x.min(axis=0).astype(np.float64), x.max(axis=0).astype(np.float64)
        axes = [np.linspace(lo[k], hi[k], min(GRID_SIDE, int(hi[k] - lo[k]) + 1)) for k in (0, 1)]
        if plane is not None:
            axes = [np.linspace(plane[2 * k], plane[2 * k + 1], GRID_SIDE) for k in (0, 1)]
        a, b = np.meshgrid(axes[0], axes[1], indexing="xy")  # rows: b, columns: a
        points = np.stack([a.reshape(-1), b.reshape(-1)], axis=1)
        xs, ys = axes
        xlabel, ylabel = names[0], names[1]
        box = "the plane" if plane is not None else "the inputs' range"
        notes.append(f"over a {len(ys)}x{len(xs)} grid of {box}")
        thinned = False
    else:
        mode = "lines"
        stride = _every(n)
        thinned = stride > 1
        index = np.arange(0, n, stride)
        if x.shape[1] == 1:
            order = np.argsort(x[index, 0], kind="stable")
            index = index[order]
            xs = x[index, 0].astype(np.float64)
            xlabel = names[0]
        else:
            xs = index.astype(np.float64)
            xlabel = f"training sample ({', '.join(names)})"
        points = x[index].astype(np.float64)
        ys = np.zeros(0)
        what = "inputs" if x.shape[1] == 1 else "samples"
        notes.append(f"every {ordinal(stride)} of the {n} {what}" if thinned else f"all {n} {what}")
    acts = hidden_activations(net, points)
    units = tuple(
        Unit(
            i,
            j,
            hidden[i].activation,
            acts[i][:, j].reshape(len(ys), len(xs)) if mode == "heat" else acts[i][:, j],
            (i, j) in dead,
        )
        for i, j in picks
    )
    total = sum(widths)
    if len(units) < total:
        last = max(u.index for u in units)
        notes.append(
            f"{len(units)} of {total} units drawn (units 0-{last} of layers "
            f"1-{max(u.layer for u in units) + 1} of {len(widths)})"
        )
    if dead:
        notes.append(f"{len(dead)} dead (never > 0 on the domain)")
    heading = f"{title}: hidden units' activations"
    return UnitData(mode, f"{heading}\n{'; '.join(notes)}", xlabel, ylabel, xs, ys, points,
                    units, thinned)  # fmt: skip


def draw(data: UnitData) -> bytes:
    """The picture of `data` as PNG bytes (depends on nothing else)."""
    return style.png(figure(data))


def figure(data: UnitData) -> Figure:
    """The picture of `data`, drawn on an Agg canvas (`draw` encodes it).

    Speed: text is most of a matplotlib draw, so the panels
    have few ticks, titles at a fixed height (an automatic one measures the ticks above
    it), no axis labels of their own (the figure's say what the axes are) and one legend
    for the figure: unit j has colour Cj in every panel.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    heat = data.mode == "heat"
    layers = sorted({u.layer for u in data.units})
    panels = len(data.units) if heat else len(layers)
    cols = min(panels, 4 if heat else 3)
    rows = math.ceil(panels / cols)
    margin = 0.0 if heat else 1.6  # the legend's, right of the panels
    width = max(MIN_INCHES, (3.4 if heat else 4.4) * cols + margin)
    panel = (width - margin) / cols
    height = min(panel * 0.85, 4.6) if heat else 3.0
    inches = (width, height * rows + 1.4)
    with style.rc():
        fig = Figure(figsize=inches, dpi=DPI)
        canvas = FigureCanvasAgg(fig)
        fig.subplots_adjust(
            left=0.8 / inches[0],
            right=1 - (0.2 + margin) / inches[0],
            bottom=0.75 / inches[1],
            top=1 - 1.05 / inches[1],
            wspace=0.3,
            hspace=0.5,
        )
        spec = fig.add_gridspec(rows, cols)
        axes = [fig.add_subplot(spec[k // cols, k % cols]) for k in range(panels)]
        for ax in axes:
            ax.locator_params(nbins=4)
        if heat:
            _heat(data, axes)
            fig.supylabel(data.ylabel, x=0.01)
        else:
            _lines(data, layers, axes, fig)
        fig.supxlabel(data.xlabel, y=0.01)
        fig.suptitle(data.title, x=0.01, ha="left")
        style.literal(fig)  # titles and labels as written (an input's name); ticks render
        canvas.draw()
    return fig


def _lines(data: UnitData, layers: list[int], axes: list[Axes], figure: Figure) -> None:
    from matplotlib.lines import Line2D

    if data.thinned:  # only points: what lies between them is not drawn
        look: dict[str, Any] = {"marker": ".", "linestyle": "none", "ms": 6}
    else:
        look = {"marker": "o", "ms": 5, "lw": 2} if len(data.xs) <= MARKERS else {"lw": 2}
    for ax, layer in zip(axes, layers, strict=True):
        units = [u for u in data.units if u.layer == layer]
        for u in units:
            if u.dead:
                ax.plot(data.xs, u.values, color=DEAD, ls="--", lw=2)
            else:
                ax.plot(data.xs, u.values, color=f"C{u.index % 10}", **look)
        dead = [str(u.index) for u in units if u.dead]
        note = f"; dead: unit {', '.join(dead)}" if dead else ""
        ax.set_title(f"layer {layer + 1} ({units[0].activation}){note}", y=1.0)
    shown = sorted({u.index for u in data.units if not u.dead})
    handles = [Line2D([], [], color=f"C{j % 10}", **look) for j in shown]
    labels = [f"unit {j}" for j in shown]
    if any(u.dead for u in data.units):
        handles.append(Line2D([], [], color=DEAD, ls="--", lw=2))
        labels.append("dead unit")
    figure.legend(handles, labels, loc="upper right", bbox_to_anchor=(1.0, 0.9), frameon=False)


def _heat(data: UnitData, axes: list[Axes]) -> None:
    from matplotlib import colormaps

    cmap = colormaps["viridis"].with_extremes(bad="0.88")  # masked: not active
    # pixels centred on their grid points
    dx = (data.xs[-1] - data.xs[0]) / max(1, len(data.xs) - 1) / 2 or 0.5
    dy = (data.ys[-1] - data.ys[0]) / max(1, len(data.ys) - 1) / 2 or 0.5
    extent = (data.xs[0] - dx, data.xs[-1] + dx, data.ys[0] - dy, data.ys[-1] + dy)
    for ax, u in zip(axes, data.units, strict=True):
        values = u.values
        if activations.get(u.activation).rectifier:  # grey where the unit is not active
            shown = np.ma.masked_less_equal(values, 0.0)
            vmin, vmax = 0.0, max(float(values.max()), 0.0)
        else:
            shown = np.ma.masked_invalid(values)
            vmin, vmax = float(values.min()), float(values.max())
        ax.imshow(shown, origin="lower", extent=extent, aspect="auto", cmap=cmap, vmin=vmin,
                  vmax=vmax if vmax > vmin else vmin + 1.0)  # fmt: skip
        what = "dead" if u.dead else f"{vmin:.3g} to {vmax:.3g}"
        ax.set_title(f"layer {u.layer + 1} unit {u.index}: {what}", fontsize=style.FONT - 1, y=1.0)
