"""The report's charts: a run's trajectories (read from its event file) and a sweep's
final losses, as PNGs for a projector (show/style.py).

Tags and grid values come from disk and are drawn as written, never as mathtext
(`style.literal`); a log axis keeps its `10^k` tick labels. A curve whose first epochs jump
far beyond where it settles (lt10's threshold: about 72 at epoch 1, 9.47 at the end) is drawn
on the range of its later epochs, and its title says so.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tiny_cli.config.grid import grid_words
from tiny_cli.show import style

if TYPE_CHECKING:
    from tiny_cli.store import runs

MAX_CHARTS = 40  # a hostile or huge event file must not make thousands of figures
MAX_LINES = 64  # lines on one chart; the rest are counted in its title
LEGEND_LINES = 12  # a legend of more lines hides the chart
SKIPPED_GROUPS = ("final",)  # `final/*` is one point: the metrics table shows it
PANEL_GROUPS = ("metrics", "mechanism", "progress")  # tags of different scales: a panel each
WIDTH_INCHES = 12.0  # 1,200 pixels
HEIGHT_INCHES = 4.8
EARLY = 0.1  # the first tenth of the epochs: where a curve may jump before it settles
SETTLE_RATIO = 4.0  # clipped when the whole range is this many times the later one's


@dataclass(frozen=True)
class Series:
    """One scalar tag over the run: TensorBoard's steps (epochs) and values."""

    steps: list[int]
    values: list[float]


@dataclass(frozen=True)
class Chart:
    title: str
    png: bytes


def _figure(panels: int, height: float = HEIGHT_INCHES) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(WIDTH_INCHES, 4.5 * panels), height), dpi=style.DPI)
    FigureCanvasAgg(figure)
    return figure


def png(figure: Any) -> bytes:
    style.literal(figure)  # titles, labels and legends as written; tick labels render
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=style.DPI)
    return buffer.getvalue()


def _finite(values: Iterable[float]) -> list[float]:
    return [v if math.isfinite(v) else math.nan for v in values]


def _wide_positive(values: Sequence[float]) -> bool:
    """Log scale for a positive series spanning more than two decades (losses, gradients)."""
    finite = [v for v in values if math.isfinite(v)]
    return bool(finite) and min(finite) > 0 and max(finite) / min(finite) > 100


def settled_range(series: Sequence[Series]) -> tuple[float, float, int, float] | None:
    """(low, high, from_epoch, peak) when the curves' first tenth of epochs reach far beyond
    the range of the rest (SETTLE_RATIO times its span): the y range to draw them on, the
    epoch it starts from and the farthest value left off the chart. None: draw it all."""
    late: list[float] = []
    every: list[float] = []
    start = 0
    for s in series:
        cut = max(1, math.ceil(len(s.steps) * EARLY))
        start = max(start, s.steps[cut] if cut < len(s.steps) else 0)
        late += [v for v in s.values[cut:] if math.isfinite(v)]
        every += [v for v in s.values if math.isfinite(v)]
    if len(late) < 2 or not every:
        return None
    lo, hi = min(late), max(late)
    span = hi - lo or max(abs(hi), 1e-12) * 0.1
    if max(every) - min(every) <= SETTLE_RATIO * span:
        return None
    peak = max(every, key=lambda v: max(v - hi, lo - v))
    return lo - 0.15 * span, hi + 0.15 * span, start, peak


def _plot(ax: Any, scalars: Mapping[str, Series], tags: Sequence[str], label: Any) -> str:
    """The tags' curves on `ax`; returns what the title adds when the range is clipped."""
    shown = list(tags[:MAX_LINES])
    for tag in shown:
        series = scalars[tag]
        ax.plot(
            series.steps,
            _finite(series.values),
            label=label(tag),
            linewidth=2.0,
            linestyle="--" if "/bias" in tag else "-",
            marker="." if len(series.steps) < 30 else None,
        )
    values = [v for tag in shown for v in scalars[tag].values]
    note = ""
    if _wide_positive(values):
        ax.set_yscale("log")
    elif (clip := settled_range([scalars[t] for t in shown])) is not None:
        lo, hi, start, peak = clip
        ax.set_ylim(lo, hi)
        note = f"y range of epochs {start} on (earlier ones reach {peak:.3g})"
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    if 1 < len(shown) <= LEGEND_LINES:
        ax.legend(loc="best")
    return note


def _groups(tags: Iterable[str]) -> dict[str, list[str]]:
    """Tags by their first path part, in the order the run logged them: `metrics`, each layer
    (`0`, `fc1`, ...), `mechanism`, `grad_norm`."""
    groups: dict[str, list[str]] = {}
    for tag in tags:
        group = tag.partition("/")[0]
        if group not in SKIPPED_GROUPS:
            groups.setdefault(group, []).append(tag)
    return groups


def _title(group: str, tags: Sequence[str]) -> str:
    cut = f" (first {MAX_LINES} of {len(tags)})" if len(tags) > MAX_LINES else ""
    if group == "metrics":
        return "loss and accuracy"
    if group == "grad_norm":
        return f"gradient norm per layer{cut}"
    if any("[" in t for t in tags):
        return f"layer {group}: weights (solid) and biases (dashed){cut}"
    return f"{group}{cut}"


def trajectory_charts(scalars: Mapping[str, Series]) -> list[Chart]:
    """One chart per group of tags: loss and accuracy side by side, one per layer with all its
    weights and biases (as TensorBoard's CUSTOM SCALARS shows them), the mechanism, the
    gradient norms."""
    charts = []
    with style.rc():
        for group, tags in list(_groups(scalars).items())[:MAX_CHARTS]:
            charts.append(_chart(scalars, group, tags))
    return charts


def _chart(scalars: Mapping[str, Series], group: str, tags: list[str]) -> Chart:
    title, figure = chart_figure(scalars, group, tags)
    return Chart(title, png(figure))


def chart_figure(scalars: Mapping[str, Series], group: str, tags: list[str]) -> tuple[str, Any]:
    """One group's chart, drawn but not encoded: its title and figure."""
    panels = group in PANEL_GROUPS and len(tags) <= 4
    figure = _figure(len(tags) if panels else 1)
    title = _title(group, tags)
    if panels:
        for i, tag in enumerate(tags):
            ax = figure.add_subplot(1, len(tags), i + 1)
            note = _plot(ax, scalars, [tag], str)
            ax.set_title(tag + (f"\n{note}" if note else ""))
    else:
        ax = figure.add_subplot()
        note = _plot(ax, scalars, tags, _short_tag)
        title += f"; {note}" if note else ""
    figure.suptitle(title)
    return title, figure


def _short_tag(tag: str) -> str:
    return tag.partition("/")[2] or tag


def loss_histogram(
    arrays: runs.SweepArrays, label: Callable[[Mapping[str, Any]], str] = grid_words
) -> Chart:
    """The seeds' final losses per grid point, on a log scale (losses span decades); seeds
    whose loss is not finite or not positive cannot be drawn there and are counted."""
    import numpy as np

    left_out = 0
    logs = []
    for point in arrays.points:
        loss = point["loss"].double().numpy()
        ok = np.isfinite(loss) & (loss > 0)
        left_out += int((~ok).sum())
        logs.append(np.log10(loss[ok]))
    every = np.concatenate(logs) if logs else np.array([])
    bins = np.histogram_bin_edges(every, bins=30) if every.size else 30
    with style.rc():
        figure = _figure(1, height=5.4)
        ax = figure.add_subplot()
        for point, values in zip(arrays.points, logs, strict=True):
            ax.hist(values, bins=bins, histtype="step", linewidth=2.5,
                    label=label(point["grid"]) or "all seeds")  # fmt: skip
        ax.set_xlabel("log10(final loss)")
        ax.set_ylabel("seeds")
        ax.yaxis.get_major_locator().set_params(integer=True)  # whole seeds
        ax.grid(alpha=0.3)
        if 1 < len(logs) <= LEGEND_LINES:
            ax.legend()
        title = f"final loss of {len(arrays.seeds)} seeds per grid point"
        if left_out:
            title += f" ({left_out} not finite or zero, not drawn)"
        figure.suptitle(title)
        return Chart(title, png(figure))
