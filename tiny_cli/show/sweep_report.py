"""What a sweep's report shows beyond a run's (show/report.py): each grid point with its own
architecture and its own outcome counts, grid values in words, and the solutions
`tiny inspect SWEEP --solutions` stored (solutions.json), when there are some.

A grid over `model.layers` or `model.widths` makes a different net at each point, so the
facts do not name the base config's one: they list each point's, read back from the sweep's
config and grid the way `tiny sweep --resume` reads them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tiny_cli.config.grid import grid_words
from tiny_cli.show.htmlparts import esc, metric_text, table
from tiny_cli.show.solutions_view import seed_ranges
from tiny_cli.store import runs
from tiny_cli.store.runs import MetricValue, RunProblem, RunRecord, Solutions, SweepPoint
from tiny_cli.tasks.base import brief

SEED_CHARS = 120  # a form's seeds, as ranges, in one cell


def architectures(record: RunRecord) -> list[str] | None:
    """Each grid point's architecture (`2 -> 8 relu -> 1 identity`), in summary.json's order;
    None for a sweep without a grid."""
    from tiny_cli import config
    from tiny_cli.errors import TinyError

    run = record.run
    if not record.meta.grid:
        return None
    grid = runs.read_grid(run)
    axes = [(k, list(v)) for k, v in grid.axes.items()]
    try:
        points = config.grid_points(str(run.path / runs.CONFIG), [], axes)
    except TinyError as exc:
        raise RunProblem(f"the grid's configs cannot be read back ({exc})") from None
    return [p.cfg.arch.describe() for p in points]


def architecture_fact(archs: Sequence[str] | None) -> str | None:
    """The facts' `architecture`: the one every point shares, or each point's."""
    if not archs:
        return None
    distinct = list(dict.fromkeys(archs))
    if len(distinct) == 1:
        return distinct[0]
    return f"one per grid point ({len(distinct)} of them, see Outcomes): " + "; ".join(distinct)


def metrics_words(metrics: Mapping[str, MetricValue]) -> dict[str, MetricValue]:
    """A sweep's metrics.json with what its pooled numbers pool said: `solved` is the
    fraction over every grid point's seeds together (each point's own is in Outcomes)."""
    names = {
        "seeds": "seeds per grid point",
        "grid_points": "grid points",
        "solved": "solved, all grid points pooled (each point's: Outcomes)",
        "loss": "median final loss, all grid points pooled",
    }
    return {names.get(k, k): v for k, v in metrics.items()}


def outcome_table(summary: Sequence[SweepPoint], archs: Sequence[str] | None) -> str:
    """One row per grid point: its label in words, its architecture when the grid changes
    it, its seeds, each outcome's count and fraction of them, loss quantiles, time."""
    outcomes = list(dict.fromkeys(name for p in summary for name in p.counts))
    own = archs if archs and len(set(archs)) > 1 and len(archs) == len(summary) else None
    headers = ["grid point", *(["architecture"] if own else []), "seeds", *outcomes]
    headers += ["loss q10", "loss q50", "loss q90", "time"]
    rows = []
    for i, p in enumerate(summary):
        label = grid_words(p.grid) if p.grid else (p.label or "")
        cells = [esc(label or "base config"), *([esc(own[i])] if own else []), esc(p.seeds)]
        for name in outcomes:
            count, fraction = p.counts.get(name), p.fractions.get(name)
            cells.append("-" if count is None else esc(f"{count} ({fraction or 0:.1%})"))
        cells += [esc(metric_text(p.loss.get(q))) for q in ("q10", "q50", "q90")]
        cells.append("-" if p.seconds is None else esc(f"{p.seconds:.1f} s"))
        rows.append(cells)
    return table(headers, rows, numeric=2 if own else 1)


def read_solutions(run: runs.Run) -> Solutions:
    found = runs.read_solutions(run)
    if found.sweep != run.id:
        raise RunProblem(f"{runs.SOLUTIONS} is another sweep's ({found.sweep})")
    return found


def solutions_html(solutions: Solutions) -> str:
    """Per grid point: how many seeds it solved, and each form of them (largest first) with
    its formula, the seed it is read from and its seeds."""
    parts = [
        f"<p>Solved seeds grouped by canonical form (units carving the same regions, "
        f"tolerance {esc(f'{solutions.tolerance:g}')}); each form's formula is its simplest "
        f"seed's. Stored by <code>tiny inspect SWEEP --solutions</code>.</p>"
    ]
    for p in solutions.points:
        label = grid_words(p.grid) if p.grid else p.label
        solved = len(p.solved_seeds)
        parts.append(f"<h3>{esc(label)}: {solved} of {esc(p.seeds)} seeds solved</h3>")
        shown = [g for g in p.groups if g.formula is not None]
        rows = [
            (
                esc(g.count),
                f"<code>{esc(g.formula)}</code>"
                + ("" if g.exact else esc(f" (approximate: max error {brief(g.max_error, 3)})")),
                esc(g.representative),
                esc(seed_ranges(g.seeds, SEED_CHARS)),
            )
            for g in shown
        ]
        if rows:
            headers = ["seeds", "formula", "read from seed", "its seeds"]
            parts.append(table(headers, rows, numeric=9))
        rest = len(p.groups) - len(shown)
        if rest:
            parts.append(f"<p>{rest} more form(s), without a formula here.</p>")
    return "\n".join(parts)
