"""`tiny inspect`, `tiny export` and `tiny compare`: stored runs read back (`app.inspection`)
and shown as tables or printed as JSON. Each JSON document is assembled in one `_*_json`
function."""

from __future__ import annotations

import sys
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from tiny_cli.app import inspection
from tiny_cli.cli.options import Json, MetricsPrecision, RunsDir
from tiny_cli.cli.output import STALE, console, dump, fail, say
from tiny_cli.errors import TinyError, printable

if TYPE_CHECKING:
    from tiny_cli.store.runs import RunRecord

RunOrSweep = Annotated[
    str,
    typer.Argument(
        metavar="RUN", help="A run or sweep id, its short id, a unique prefix, or latest."
    ),
]
SweepSeed = Annotated[
    int | None, typer.Option("--seed", metavar="N", help="Sweeps: show this seed's parameters.")
]
Solutions = Annotated[
    bool,
    typer.Option(
        "--solutions",
        help="Sweeps: the solved seeds grouped by canonical form, with a formula per group.",
    ),
]


def inspect(
    run_ref: RunOrSweep,
    as_json: Json = False,
    runs_dir: RunsDir = None,
    precision: MetricsPrecision = None,
    seed: SweepSeed = None,
    solutions: Solutions = False,
) -> None:
    """Show a run: config, status, metrics and learned parameters; or a sweep's outcomes.

    A run that cannot be read whole is shown as far as it can be, with the problem on stderr
    and exit code 1.
    """
    from tiny_cli.show import render
    from tiny_cli.store import runs

    if solutions and seed is not None:
        raise TinyError(f"--solutions and --seed {seed}: give one")
    run = runs.find(runs.root(runs_dir), run_ref)
    record = runs.read(run)
    if record.meta.is_sweep:
        if solutions:
            _inspect_solutions(record, as_json)
        elif seed is not None:
            _inspect_seed(record, seed, as_json, precision)
        else:
            _inspect_sweep(record, as_json)
        return
    if seed is not None:
        raise TinyError(f"--seed {seed}: run {run.id} is not a sweep")
    if solutions:
        raise TinyError(f"--solutions: run {run.id} is not a sweep (see tiny runs)")
    info, read = inspection.run_details(record)
    if as_json:
        dump(info.to_json(record, read[0].as_dict() if read else None))
    else:
        params, metrics = _precisions(precision)
        console.print(render.run_view(record, info, params, metrics))
        if read:
            console.print(render.readout_view(read[0].as_dict(), read[0].task))
    stale = [STALE.format(id=run.id)] if record.status == "stale" else []
    fail([f"run {run.id}: {p}" for p in info.problems] + stale)


def _precisions(precision: int | None) -> tuple[int, int]:
    """Decimals for parameters and for metrics: `--precision` for both, else 2 and 4."""
    return (2, 4) if precision is None else (precision, precision)


def _inspect_sweep(record: RunRecord, as_json: bool) -> None:
    """`tiny inspect SWEEP`: its metrics, grid and outcome table."""
    from tiny_cli.show import render
    from tiny_cli.store import runs

    run = record.run
    info = runs.details(record)
    problems = [f"sweep {run.id}: {p}" for p in info.problems]
    if as_json:
        dump(info.to_json(record))
    else:
        console.print(render.sweep_view(record, info))
    if record.status == "stale":
        problems = [*problems, STALE.format(id=run.id).replace("train", "sweep")]
    fail(problems)


def _inspect_seed(record: RunRecord, seed: int, as_json: bool, precision: int | None) -> None:
    """`tiny inspect SWEEP --seed N`: how that seed ended at each grid point, its parameters."""
    from tiny_cli.show import render

    found = inspection.seed_results(record, seed)
    if as_json:
        dump(found.to_json())
        return
    console.print(render.seed_tables(seed, found.points, 2 if precision is None else precision))


def _inspect_solutions(record: RunRecord, as_json: bool) -> None:
    """`tiny inspect SWEEP --solutions`: computed once, then read from solutions.json; of a
    sweep that did not complete, the grid points it finished, marked partial."""
    from tiny_cli.show import render

    found, unstored, remaining = inspection.solutions(record)
    if unstored:
        say(f"warning: {unstored}")
    if as_json:
        doc = found.model_dump(mode="json")
        dump({**doc, "partial": remaining is not None, "remaining": remaining})
        return
    if remaining is not None:
        line = render.partial_line(len(found.points), remaining)
        console.print(Text(f"sweep {record.run.id} {record.status}, {line}", style="yellow"))
    if not any(p.solved_seeds for p in found.points):
        seeds = found.points[0].seeds if found.points else 0
        where = f" at each of {len(found.points)} grid points" if len(found.points) > 1 else ""
        console.print(Text(f"sweep {record.run.id}: no solved seeds (of {seeds}{where})"))
    else:
        console.print(render.solutions_view(found))


class ExportFormat(str, Enum):
    json = "json"
    formula = "formula"


def export(
    run_ref: Annotated[
        str, typer.Argument(metavar="RUN", help="A run id, a unique prefix of one, or latest.")
    ],
    fmt: Annotated[
        ExportFormat,
        typer.Option("--format", help="json: the canonical net; formula: text, then LaTeX."),
    ] = ExportFormat.json,
    runs_dir: RunsDir = None,
) -> None:
    """Export what a run's net computes: its canonical form as JSON, or its formula.

    Example: tiny export latest --format formula
    """
    from tiny_cli.store import runs

    run = runs.find(runs.root(runs_dir), run_ref)
    result, names = inspection.export_readout(runs.read(run))
    if fmt == ExportFormat.formula:
        if result.skipped:
            raise TinyError(f"export {run.id}: no formula (skipped, {result.skipped})")
        sys.stdout.write(printable(f"{result.formula}\n{result.latex}\n"))
        return
    dump(result.to_json(names))


def compare(
    run_refs: Annotated[
        list[str],
        typer.Argument(
            metavar="RUN RUN...", help="Two or more runs: ids, short ids, prefixes, latest."
        ),
    ],
    as_json: Json = False,
    runs_dir: RunsDir = None,
    precision: MetricsPrecision = None,
) -> None:
    """Show runs side by side: metrics, canonical forms, each run against the first
    (max difference on its domain, same function or not, canonical distance), and what each
    net means for its task (modular's key frequencies, lt's threshold, min's alpha).

    A run that cannot be read whole shows "-" where it lacks something; the problem is one
    line on stderr and the exit code is 1.
    """
    from tiny_cli.show import render

    found = inspection.compare(runs_dir, run_refs)
    if as_json:
        dump(found.to_json())
    else:
        params, metrics = _precisions(precision)
        console.print(
            render.compare_view(
                found.records,
                [i.config for i in found.infos],
                [i.params for i in found.infos],
                params,
                metrics,
                canonical=[c.as_dict() for c in found.compared],
                meanings=found.meanings,
                run_tasks=found.tasks,
            )
        )
    fail(found.problems)
