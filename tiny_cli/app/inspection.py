"""What `tiny inspect`, `tiny export` and `tiny compare` read from stored runs beyond one
record: a run's details and read-out, a sweep seed's results, a sweep's grouped solutions,
the net to export, and the nets of runs to compare. What cannot be read is one line naming
the run (a `RunProblem` or `TinyError`), or a list of such lines where the rest can be shown."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from tiny_cli.errors import TinyError

if TYPE_CHECKING:
    from tiny_cli.read.readout import Readout
    from tiny_cli.read.stored import Comparison
    from tiny_cli.store.runs import Details, GridValue, RunRecord, Solutions
    from tiny_cli.store.views import SeedResults


def run_details(record: RunRecord) -> tuple[Details, tuple[Readout, tuple[str, ...]] | None]:
    """A run's details, and its read-out with its input names where it has a net to read."""
    from tiny_cli.read import stored as reading
    from tiny_cli.store import runs

    info = runs.details(record)
    has_net = info.params is not None and info.config is not None
    return info, reading.stored_readout(record.run, record) if has_net else None


def seed_results(record: RunRecord, seed: int) -> SeedResults:
    """One seed of a sweep at each of its grid points (`tiny inspect SWEEP --seed N`)."""
    from tiny_cli.store import runs
    from tiny_cli.store.views import SeedResults

    run = record.run
    if record.problem:
        raise runs.RunProblem(f"sweep {run.id}: {record.problem}")
    try:
        arrays = runs.read_sweep_arrays(run, record.meta.n_seeds)
    except runs.RunProblem as exc:
        raise runs.RunProblem(f"sweep {run.id}: {exc}") from None
    if seed not in arrays.seeds:
        first, last = (arrays.seeds[0], arrays.seeds[-1]) if arrays.seeds else ("?", "?")
        raise TinyError(f"--seed {seed}: not in sweep {run.id} (seeds {first}-{last})")
    return SeedResults(run.id, seed, arrays.at(seed))


def solutions(
    record: RunRecord,
) -> tuple[Solutions, str | None, list[dict[str, GridValue]] | None]:
    """A sweep's solved seeds grouped by canonical form: computed once, then read from
    solutions.json; why they could not be stored, if they could not; and, for a sweep that
    did not complete but stored the grid points it finished, the points that remain (None:
    the sweep is complete)."""
    from tiny_cli.app import solutions as grouping
    from tiny_cli.store import runs

    run = record.run
    if record.problem:
        raise runs.RunProblem(f"sweep {run.id}: {record.problem}")
    done = record.meta.status == "completed"
    if not done and not os.path.lexists(run.path / runs.SWEEP):
        raise runs.RunProblem(
            f"sweep {run.id}: {record.status}, no grid point finished: no solutions to group yet"
        )
    try:
        found, unstored = grouping.solutions(run, record.meta.n_seeds)
        grid = None if done else runs.read_grid(run)
    except runs.RunProblem as exc:
        raise runs.RunProblem(f"sweep {run.id}: {exc}") from None
    finished = [p.grid for p in found.points]
    remaining = None if grid is None else [p for p in grid.points if p not in finished]
    return found, unstored, remaining


def export_readout(record: RunRecord) -> tuple[Readout, tuple[str, ...]]:
    """The read-out of a run's final net, and its input names (`tiny export`)."""
    from tiny_cli.read import stored as reading
    from tiny_cli.store import runs

    run = record.run
    if record.meta.kind == "sweep":
        raise TinyError(f"export {run.id}: a sweep; export one of its kept runs")
    if not (run.path / runs.CHECKPOINT).exists():
        raise TinyError(f"export {run.id}: no {runs.CHECKPOINT} (see tiny inspect {run.id})")
    read = reading.stored_readout(run, record)
    if read is None:
        raise TinyError(f"export {run.id}: its {runs.CONFIG} no longer loads")
    return read


def compare(runs_dir: Path | None, refs: list[str]) -> Comparison:
    """`tiny compare`: two or more runs read as far as they can be, their nets compared."""
    from tiny_cli.read import stored as reading
    from tiny_cli.store import runs

    if len(refs) < 2:
        raise TinyError("compare: give at least two runs")
    root = runs.root(runs_dir)
    return reading.compare_runs([runs.read(runs.find(root, ref)) for ref in refs])
