"""Whether a stopped run or sweep can continue, checked before anything is trained:
`--resume` goes on with the stored config alone, a run needs a checkpoint to continue from,
and a sweep's progress bar counts the seed-epochs its files describe."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tiny_cli.errors import TinyError

if TYPE_CHECKING:
    from tiny_cli.config import ExperimentConfig
    from tiny_cli.store.runs import Run


def refuse_changes(resume: str, what: str, others: dict[str, Any]) -> None:
    """`--resume` continues with the stored config: refuse anything that would change it.
    `others`: each other argument by its flag, None where it was not given."""
    given = [flag for flag, value in others.items() if value is not None]
    if given:
        raise TinyError(f"--resume {resume}: the {what}'s own config is used; drop {given[0]}")


def resumable(runs_dir: Path | None, ref: str) -> tuple[Run, ExperimentConfig]:
    """A stopped run that can continue, and its config; else one line saying why not."""
    from tiny_cli import config
    from tiny_cli.store import runs

    run = runs.find(runs.root(runs_dir), ref)
    record = runs.read(run)
    if record.meta.kind == "sweep":
        raise TinyError(f"--resume {run.id}: a sweep; use tiny sweep --resume {run.id}")
    if record.status == "completed":
        raise TinyError(f"--resume {run.id}: the run is complete")
    if record.status in ("running", "starting"):
        raise TinyError(f"--resume {run.id}: the run is still running (pid {record.meta.pid})")
    if not (run.path / runs.CHECKPOINT_STATE).is_file():
        raise TinyError(
            f"--resume {run.id}: no {runs.CHECKPOINT_STATE} to continue from "
            f"(stopped before its first checkpoint): tiny train --from {run.id} starts it anew"
        )
    cfg, _ = config.load(str(run.path / runs.CONFIG))
    return run, cfg


def sweep_total(run: Run) -> int:
    """Seed-epochs of a stored sweep, for its progress bar (0 if its files do not say)."""
    from tiny_cli.store import runs

    meta = runs.read(run).meta
    if meta.seeds is None or meta.epochs is None:
        return 0
    points = max(1, len(runs.read_grid(run).points))
    return (meta.seeds[1] - meta.seeds[0] + 1) * meta.epochs * points
