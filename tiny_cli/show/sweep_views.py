"""Sweeps: outcomes per grid point (`tiny sweep`, `tiny inspect SWEEP`) and one seed's
parameters at every grid point (`--seed`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from tiny_cli.config.grid import axis_words, grid_words, words
from tiny_cli.errors import one_line
from tiny_cli.show.phase import phase_view
from tiny_cli.show.run_views import header, seed_label, sweep_epochs
from tiny_cli.show.tables import (
    GAP,
    OUTCOME_STYLES,
    Column,
    Fitted,
    fit,
    floor_width,
    parameters_table,
    safe_text,
)
from tiny_cli.store.runs import Details, GridValue, RunRecord, SeedResult, SweepPoint


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" if value < 600 else f"{value / 60:.1f} min"


def _short(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _grid_lines(grid: Mapping[str, GridValue], split: bool) -> list[str]:
    """`key=value` per line, the value in words (`8 relu -> 1 identity`, not a Python
    repr); `split` puts a long value under its key."""
    out = []
    for k, v in grid.items():
        value = one_line(words(v))
        out.extend([one_line(f"{k}="), f"  {value}"] if split else [one_line(f"{k}={value}")])
    return out


def sweep_table(
    summary: Sequence[SweepPoint] | Sequence[Mapping[str, Any]], title: str = "Outcomes"
) -> Fitted:
    """One row per grid point: count and fraction per outcome, final-loss quantiles; time taken
    and seed-epochs per second under the grid point."""
    points = [p if isinstance(p, SweepPoint) else SweepPoint.model_validate(p) for p in summary]
    outcomes = list(points[0].counts) if points else list(OUTCOME_STYLES)
    seeds = points[0].seeds if points else 0
    heading = Text(f"{title} of {seeds} seeds per grid point")

    def build(width: int) -> Table:
        def label_column(split: bool) -> Column:
            cells = []
            for p in points:
                label = "\n".join(_grid_lines(p.grid, split)) or "base config"
                speed = p.seed_epochs_per_second
                rate = f", {speed:,.0f} seed-epochs/s" if speed is not None else ""
                cells.append(Text.assemble(label, "\n", (f"{_seconds(p.seconds)}{rate}", "dim")))
            return Column("grid point, time, speed", cells, wrap=True)

        columns = [label_column(split=False)]
        for name in outcomes:
            header = name.replace(" at mean", "\nat mean").replace("diverged", "diver-\nged")
            cells = [Text(f"{p.counts[name]}\n{p.fractions[name]:.1%}") for p in points]
            columns.append(
                Column(header, cells, justify="right", style=OUTCOME_STYLES.get(name, ""))
            )
        for name, of in (("loss", "loss"), ("test loss", "test_loss")):
            values = [getattr(p, of) for p in points]
            if of == "loss" or any(values):
                cells = [
                    Text("\n".join(_short(v.get(q)) for q in ("q10", "q50", "q90"))) for v in values
                ]
                columns.append(Column(f"{name}\nq10,50,90", cells, justify="right", keep=1))
        if sum(floor_width(c) for c in columns) + GAP * (len(columns) - 1) > width:
            columns[0] = label_column(split=True)
        return fit(columns, width, heading)

    return Fitted(build)


def point_label(grid: Mapping[str, GridValue]) -> str:
    """A grid point as one line of `key=value`s (`base config` for a sweep without a grid)."""
    return one_line(grid_words(grid)) or "base config"


def partial_line(done: int, remaining: Sequence[Mapping[str, GridValue]], limit: int = 4) -> str:
    """What a sweep that did not complete shows of itself: how many grid points it finished
    (`done`) and which remain (the first `limit`)."""
    total = done + len(remaining)
    if not remaining:
        return f"partial: all {total} grid point(s) finished, the sweep not completed"
    names = ", ".join(point_label(p) for p in remaining[:limit])
    more = f" and {len(remaining) - limit} more" if len(remaining) > limit else ""
    return f"partial: {done} of {total} grid points finished; not yet: {names}{more}"


def sweep_view(record: RunRecord, info: Details) -> Group:
    meta = record.meta
    detail = f"seeds {seed_label(meta)}, {sweep_epochs(meta)} epochs"
    # A grid over the net (model.layers, model.widths, ...): each point has its own.
    nets = any(k.startswith("model.") for k in meta.grid or {})
    arch = "one per grid point (model.* in the grid)" if nets else None
    parts = header("sweep", record, detail, info.config, "; ".join(info.problems), arch)
    if meta.grid:
        grid = "  ".join(f"{k}={axis_words(values)}" for k, values in meta.grid.items())
        parts.append(safe_text(f"grid: {grid}"))
    if info.summary:
        parts.append(sweep_table(info.summary, "Partial outcomes" if info.partial else "Outcomes"))
        diagram = phase_view(info.summary)
        parts.extend([diagram] if diagram is not None else [])
    if info.partial:
        line = partial_line(len(info.summary or []), info.remaining or [])
        parts.append(Text(line, style="yellow"))
    if info.arrays is not None:
        from tiny_cli.show.curves_view import first_solved_views

        parts.extend(first_solved_views(info.arrays.points, point_label))
    for kept in meta.kept or []:
        parts.append(
            safe_text(
                f"kept seed {kept.seed} ({kept.why}, grid point {kept.point}): run {kept.run}"
            )
        )
    return Group(*parts)


def seed_tables(seed: int, results: Iterable[SeedResult], precision: int = 2) -> Group:
    """`tiny inspect SWEEP --seed N`: the seed's parameters at every grid point."""
    tables = []
    for r in results:
        accuracy = f", accuracy {r.accuracy:.4f}" if r.accuracy is not None else ""
        title = (
            f"seed {seed}, {r.label}: {r.outcome} "
            f"(loss {r.loss:.4g}{accuracy}, {r.epochs_done} epochs)"
        )
        tables.append(parameters_table(r.parameters, precision, title=title))
    return Group(*tables)
