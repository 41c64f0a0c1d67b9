"""Stored runs read back into what their nets compute: `tiny inspect`'s Read-out section,
`tiny export` and `tiny report` share `stored_readout`; `tiny compare` is `compare_runs`,
its `--json` document `Comparison.to_json()`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tiny_cli import config
from tiny_cli.errors import TinyError, one_line
from tiny_cli.read import readout
from tiny_cli.read.arrays import domain, from_state
from tiny_cli.read.match import Compared, NetSpec, compare
from tiny_cli.store import runs, tracking
from tiny_cli.train import data as datasets
from tiny_cli.train import inits

if TYPE_CHECKING:
    from tiny_cli.tasks import Task


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
    split: dict[str, Any] = {}
    if cfg.data is not None:  # a split or noise: the claims hold on the training inputs
        data = datasets.prepare(cfg)
        model = inits.build(cfg)
        model.load_state_dict(state)
        train = (data.x.numpy(), data.truth.numpy())
        split = {"data": train}
        if data.has_test:  # (a `data:` section may keep every input: train_fraction 1)
            scores: dict[str, Any] = datasets.scores(task, task.net_fn(model), data)
            held = record.meta.held_out
            scores |= {"held_out": held.model_dump()} if held is not None else {}
            split["split"] = scores
    result = readout.read(
        arch,
        state,
        task,
        metrics=record.metrics,
        init_state=inits.build(cfg).state_dict(),
        losses=tracking.scalar_history(run.path),
        diverged=record.meta.status == "failed",
        construction=(arch, hand.weights()) if hand else None,
        **split,
    )
    return result, task.unit_names()


@dataclass(frozen=True)
class Comparison:
    """`tiny compare`: the runs, their stored details, each one's net against the first
    run's (`match.compare`; in the order of `records`), and every problem met reading them
    (one line each)."""

    records: list[runs.RunRecord]
    infos: list[runs.Details]
    compared: list[Compared]
    problems: list[str]
    # per run: what its net means for its task (`Task.meaning`, as `tiny inspect` reads it:
    # modular's frequencies, lt's threshold), and whose meaning it is; None: no net read
    meanings: list[dict[str, Any] | None] = field(default_factory=list)
    tasks: list[Task | None] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The document `tiny compare --json` prints."""
        return {
            "runs": [
                {
                    "id": r.run.id,
                    "status": r.status,
                    "meta": r.meta.to_json(),
                    "metrics": r.metrics,
                    "parameters": i.params,
                    "canonical": {k: c[k] for k in ("layers", "skip_input", "aligned")},
                    "meaning": m,
                    "against_first": {
                        k: c[k]
                        for k in (
                            "max_abs_difference",
                            "same_function",
                            "tolerance",
                            "parameters",
                            "solves_task",
                        )
                    },
                }
                for r, i, c, m in zip(
                    self.records,
                    self.infos,
                    (c.as_dict() for c in self.compared),
                    self.meanings or [None] * len(self.records),
                    strict=True,
                )
            ],
            "problem": "; ".join(self.problems) or None,
        }


def compare_runs(records: Sequence[runs.RunRecord]) -> Comparison:
    """Every run's net against the first's (`match.compare`). A run whose details or net
    cannot be read compares as nothing, and says why in `problems`."""
    infos = [runs.details(r) for r in records]
    problems = [
        f"run {r.run.id}: {p}" for r, i in zip(records, infos, strict=True) for p in i.problems
    ]
    nets: list[NetSpec | None] = []
    meanings: list[dict[str, Any] | None] = []
    for record, info in zip(records, infos, strict=True):
        stored = None
        if info.params is not None and info.config is not None:
            try:
                stored = stored_net(record.run)
            except runs.RunProblem as exc:
                problems.append(str(exc))
        nets.append((stored[0].arch, stored[1], stored[0].task) if stored else None)
        meant = None
        if stored:
            try:
                meant = meaning(*stored, record.metrics)
            except Exception as exc:  # a task's bug: the rest of the comparison still shows
                why = f"{type(exc).__name__}: {one_line(str(exc), 200)}"
                problems.append(f"run {record.run.id}: no meaning ({why})")
        meanings.append(meant)
    tasks = [net[2] if net else None for net in nets]
    return Comparison(list(records), infos, compare(nets), problems, meanings, tasks)


def meaning(
    cfg: config.ExperimentConfig, state: dict[str, Any], metrics: dict[str, Any]
) -> dict[str, Any]:
    """What a stored net means for its task (`Task.meaning`), on the inputs its read-out
    reads (`stored_readout`: the training inputs of a split), without the rest of the
    read-out (the formula of a wide net is what costs)."""
    task = cfg.task
    if cfg.data is not None:
        data = datasets.prepare(cfg)
        x, y = data.x.numpy(), data.truth.numpy().reshape(len(data.x), -1)
    else:
        x, y = domain(task)
    return task.meaning(from_state(cfg.arch, state), x, y, metrics)
