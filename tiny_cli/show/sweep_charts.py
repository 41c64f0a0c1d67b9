"""A sweep report's charts of its curves and solutions: per grid point, each metric's median
over the seeds inside its 10-90% band and the fraction of seeds solved so far, by epoch
(curves.json, train/curves.py); the solved seeds' alpha per grid point (solutions.json)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tiny_cli.show import phase, style
from tiny_cli.show.charts import LEGEND_LINES, MAX_CHARTS, Chart, _figure, png
from tiny_cli.store.runs import CurvePoint, Solutions, SweepPoint

BANDS = {"q50": "median", "q10": "10th percentile", "q90": "90th percentile"}


def _nan(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else v for v in values]


def curve_charts(
    points: Sequence[CurvePoint], label: Callable[[Mapping[str, Any]], str]
) -> list[Chart]:
    """One chart per grid point with curves: a panel per metric (median line, 10-90% band;
    losses on a log axis) and one of the solved fraction."""
    charts = []
    for p in points[:MAX_CHARTS]:
        if not p.epochs:
            continue
        panels = [*p.metrics.items()]
        with style.rc():
            figure = _figure(len(panels) + (p.solved is not None))
            axes = figure.subplots(1, len(panels) + (p.solved is not None), squeeze=False)[0]
            for ax, (name, series) in zip(axes, panels, strict=False):
                median = _nan(series["q50"])
                ax.fill_between(p.epochs, _nan(series["q10"]), _nan(series["q90"]), alpha=0.3,
                                label="10th to 90th percentile")  # fmt: skip
                ax.plot(p.epochs, median, linewidth=2.5, label="median")
                positive = [v for v in _nan(series["q10"]) if v > 0]
                if name.endswith("loss") and positive and max(median) / min(positive) > 100:
                    ax.set_yscale("log")
                ax.set_title(name)
                ax.set_xlabel("epoch")
                ax.grid(alpha=0.3)
                ax.legend(loc="best")
            if p.solved is not None:
                ax = axes[-1]
                ax.plot(p.epochs, _nan(p.solved), linewidth=2.5)
                ax.set_ylim(-0.02, 1.02)
                ax.set_title("fraction of seeds solved so far")
                ax.set_xlabel("epoch")
                ax.grid(alpha=0.3)
            title = f"over the seeds: {label(p.grid) or 'base config'}"
            figure.suptitle(title)
            charts.append(Chart(title, png(figure)))
    return charts


def alpha_histogram(
    solutions: Solutions, label: Callable[[Mapping[str, Any]], str]
) -> Chart | None:
    """The solved seeds' alpha (min/max's family), one histogram line per grid point; None
    when no point has alphas."""
    found = [(p, [a for a in p.alpha if a is not None]) for p in solutions.points if p.alpha]
    found = [(p, a) for p, a in found if a]
    if not found:
        return None
    with style.rc():
        figure = _figure(1, height=5.4)
        ax = figure.add_subplot()
        bins = [i / 20 for i in range(21)]
        for p, alphas in found[:MAX_CHARTS]:
            clipped = [min(1.0, max(0.0, a)) for a in alphas]
            ax.hist(clipped, bins=bins, histtype="step", linewidth=2.5,
                    label=label(p.grid) or "all seeds")  # fmt: skip
        ax.set_xlabel("alpha")
        ax.set_ylabel("solved seeds")
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        if 1 < len(found) <= LEGEND_LINES:
            ax.legend()
        title = "alpha of the solved seeds in the family, per grid point"
        figure.suptitle(title)
        return Chart(title, png(figure))


def phase_chart(summary: Sequence[SweepPoint]) -> Chart | None:
    """The phase diagram (show/phase.py) of a sweep with held-out data and a grid."""
    png = phase.phase_png(phase.axes_of([p.grid for p in summary]), phase.phase_cells(summary))
    if png is None:
        return None
    title = (
        "phase diagram: each grid point coloured by the held-out outcome most of its seeds "
        "had (generalised, grokked, memorised, not learned), with their median delay from "
        "training solved to test solved, in epochs"
    )
    return Chart(title, png)
