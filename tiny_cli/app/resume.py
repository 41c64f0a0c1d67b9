"""Whether a stopped run or sweep can continue, checked before anything is trained:
`--resume` goes on with the stored config alone, a run needs a checkpoint to continue from,
and a sweep's progress bar counts the seed-epochs its files describe. Once the run is locked
(`store.locks`), what it continues from is checked to be its own and unchanged: a run's
checkpoint (`checkpoint_state`), a sweep's config and chunks (`check_sweep_config`,
`check_chunks`); `reopen` marks a run running again, its one event file cut back to its
checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tiny_cli.errors import TinyError

if TYPE_CHECKING:
    from tiny_cli.config import ExperimentConfig
    from tiny_cli.store.runs import Run
    from tiny_cli.train.engine import State

FINGERPRINT = "config"  # the key of the config's fingerprint in a checkpoint or a chunk
SPLIT = "split"  # a checkpoint's held-out rows (`Data.summary()["test_rows"]`), with a test set


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


def changed(run: Run, what: str) -> TinyError:
    """The run's config.yaml is not the config it was trained with: one line (exit 2)."""
    from tiny_cli.store import runs

    anew = f"tiny train --from {run.id} trains it anew" if what == "run" else "start it anew"
    return TinyError(f"--resume {run.id}: {runs.CONFIG} changed since the {what} started; {anew}")


def checkpoint_state(cfg: ExperimentConfig, run: Run) -> State:
    """The training state a locked, stopped run resumes from, checked whole before anything
    is touched: still not complete (another resume may have finished it), the checkpoint
    made with this config (its fingerprint; a checkpoint from before fingerprints is taken
    as it is) and usable (`engine.state_problem`: shapes, seeds, finite weights)."""
    from tiny_cli import config
    from tiny_cli.store import runs
    from tiny_cli.train import engine

    if runs.read(run).status == "completed":
        raise TinyError(f"--resume {run.id}: the run is complete")
    state = runs.load_tensors(run.path, runs.CHECKPOINT_STATE)
    made = state.get(FINGERPRINT)
    if made is not None and made != config.fingerprint(cfg):
        raise changed(run, "run")
    split = state.get(SPLIT)
    if split is not None and cfg.data is not None:
        from tiny_cli.train import data

        if split != data.prepare(cfg).summary()["test_rows"]:
            raise runs.RunProblem(
                f"--resume {run.id}: its checkpoint holds out other inputs than its config "
                "now does (the task's data changed); start a new run"
            )
    if (problem := engine.state_problem(cfg, [cfg.seed], state)) is not None:
        raise runs.RunProblem(f"--resume {run.id}: {runs.CHECKPOINT_STATE}: {problem}")
    return state


def reopen(run: Run, state: State) -> Path | None:
    """Mark a stopped run running again, its event file first cut back to the checkpoint's
    epoch (`tracking.rewind`); the event file to go on writing (None: start one)."""
    import time

    from tiny_cli.store import runs, tracking

    try:
        kept = tracking.rewind(run.path, int(state["epoch"]))
    except OSError as exc:
        raise runs.RunProblem(
            f"run {run.id}: its event file cannot be rewritten for the resume ({exc.strerror})"
        ) from None
    run.update_meta(
        status="running", reason="", resumed=time.time(), heartbeat=time.time(),
        **runs.process_identity(),
    )  # fmt: skip
    return kept


def check_sweep_config(run: Run, made: Any) -> None:
    """The sweep's config.yaml is the one it started with (`made`: the fingerprint its
    run.json recorded; None for a sweep stored before fingerprints)."""
    from tiny_cli import config
    from tiny_cli.store import runs

    if made is not None and made != config.fingerprint(config.load(str(run.path / runs.CONFIG))[0]):
        raise changed(run, "sweep")


def check_chunks(run: Run, chunks: Sequence[tuple[str, tuple[int, ...], str]]) -> None:
    """Every stored chunk of a sweep (its file, seeds and its point's config fingerprint) is
    readable and its own (`chunk_problem`): checked before anything is trained or marked;
    else one line naming it (exit 1)."""
    from tiny_cli.store import runs

    for name, seeds, made in chunks:
        if not (run.path / name).is_file():
            continue
        try:
            problem = chunk_problem(runs.load_tensors(run.path, name), seeds, made)
        except runs.RunProblem as exc:
            problem = str(exc).removeprefix(f"{name} ")
        if problem is not None:
            raise runs.RunProblem(
                f"--resume {run.id}: {name} {problem}; without it, --resume trains it again"
            )


def chunk_problem(part: dict[str, Any], seeds: tuple[int, ...], made: str) -> str | None:
    """Why a stored chunk is not this sweep's chunk of `seeds` trained with the config of
    fingerprint `made` (None: it is); a chunk from before fingerprints is judged by its
    seeds alone."""
    import torch

    stored = part.get("seeds")
    if not isinstance(stored, torch.Tensor) or stored.tolist() != list(seeds):
        return f"is not this sweep's (its seeds are not {_span(seeds)})"
    if part.get(FINGERPRINT, made) != made:
        return "is not this sweep's (trained with another config)"
    for key in ("params", "loss", "epochs", "outcome", "seconds"):
        if key not in part:
            return f"has no {key}"
    return None


def _span(seeds: tuple[int, ...]) -> str:
    return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
