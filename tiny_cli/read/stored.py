"""A stored run read back into what its net computes: `tiny inspect`'s Read-out section,
`tiny export` and `tiny report` share it."""

from __future__ import annotations

from typing import Any

from tiny_cli import config
from tiny_cli.errors import TinyError
from tiny_cli.read import readout
from tiny_cli.store import runs, tracking
from tiny_cli.train import inits


def stored_net(run: runs.Run) -> tuple[config.ExperimentConfig, dict[str, Any]] | None:
    """A stored run's config and final weights; None when its config no longer loads (e.g.
    a plugin task that is gone). A checkpoint that is not of its config's net: RunProblem."""
    try:
        cfg, _ = config.load(str(run.path / runs.CONFIG), [])
    except TinyError:
        return None
    state = run.load_state()
    expected = {k: tuple(v.shape) for k, v in inits.build(cfg).state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}
    if found != expected:  # a checkpoint that is not of this config's net: say so, read nothing
        wrong = next((k for k in expected if found.get(k) != expected[k]), None) or next(
            k for k in found if k not in expected
        )
        raise runs.RunProblem(
            f"run {run.id}: {runs.CHECKPOINT} does not match its config ({wrong}: "
            f"{found.get(wrong, 'missing')}, expected {expected.get(wrong, 'none')})"
        )
    return cfg, state


def stored_readout(
    run: runs.Run, record: runs.RunRecord
) -> tuple[readout.Readout, tuple[str, ...]] | None:
    """A stored run's read-out and its input names; None when its config no longer loads
    (e.g. a plugin task that is gone). The initial weights are rebuilt from the config
    (seeded, so they are the run's own); the loss history is read from its event file.
    A checkpoint that is not of the config's net is a `RunProblem`."""
    stored = stored_net(run)
    if stored is None:
        return None
    cfg, state = stored
    arch, task = cfg.arch, cfg.task
    hand = task.construction_for(cfg.init, arch)
    result = readout.read(
        arch,
        state,
        task,
        metrics=record.metrics,
        init_state=inits.build(cfg).state_dict(),
        losses=tracking.scalar_history(run.path),
        diverged=record.meta.status == "failed",
        construction=(arch, hand.weights()) if hand else None,
    )
    return result, task.input_names()
