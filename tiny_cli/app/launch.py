"""Starting what `tiny train`, `tiny hardwire` and `tiny sweep` ask for, once their options
are parsed: the checks that need no torch first (device names, resume eligibility, a Dask
extra), then the config with its overrides, the device, the sidecar, a cluster if asked for,
and the run or the sweep itself (`experiment.run_experiment`, `sweep.run_sweep`).

The caller owns the display: it passes `display` (a progress bar for a label, a total or
None, and a unit) and `announce` (where a cluster sweep trains). torch is imported only once
every argument is checked, so a mistake is one quick line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tiny_cli.app import devices, painter
from tiny_cli.app import resume as resuming
from tiny_cli.errors import TinyError

if TYPE_CHECKING:
    from tiny_cli.app.cluster import Cluster
    from tiny_cli.app.experiment import Outcome
    from tiny_cli.app.sweep import SweepOutcome
    from tiny_cli.config import ExperimentConfig, Override
    from tiny_cli.store.runs import Run
    from tiny_cli.store.tracking import EpochStats


class Progress(Protocol):
    """What a command shows while it trains: a run's epochs (called with each epoch's
    stats), a sweep's seed-epochs (`advance`) and a cluster's state (`note`)."""

    def __call__(self, stats: EpochStats) -> None: ...
    def advance(self, count: int) -> None: ...
    def note(self, text: str) -> None: ...
    def __enter__(self) -> Progress: ...
    def __exit__(self, *exc: object) -> None: ...


Display = Callable[[str, int | None, str], Progress]  # label, total (None: no count), unit
Announce = Callable[[str, str | None], None]  # where a sweep trains, its dashboard link


def overrides(sets: list[str] | None, **flags: tuple[str, Any]) -> list[Override]:
    """A command's config overrides: its named flags (`epochs=("train.epochs", 500)` is
    `--epochs 500`; a value of None was not given), then each `--set`."""
    from tiny_cli.config import parse_override

    named = [
        (key, value, f"--{flag.replace('_', '-')} {value}")
        for flag, (key, value) in flags.items()
        if value is not None
    ]
    return named + [parse_override(item) for item in sets or []]


def train(
    config_ref: str | None,
    *,
    from_run: str | None,
    resume: str | None,
    epochs: int | None,
    seed: int | None,
    lr: float | None,
    sets: list[str] | None,
    runs_dir: Path | None,
    device: str,
    display: Display,
    extra: Sequence[Override] = (),
) -> Outcome:
    """`tiny train`: a run from a config, from a stored run's config (`from_run`), or a
    stopped run continued from its last checkpoint (`resume`). `extra`: overrides after the
    `--set`s (the Python API's keyword arguments)."""
    from tiny_cli import config
    from tiny_cli.store import runs

    devices.check(device)
    _check_engine()
    painter.start()
    if resume is not None:
        named = sets or [label for _, _, label in extra] or None
        given = {"NAME|PATH": config_ref, "--from": from_run, "--epochs": epochs,
                 "--seed": seed, "--lr": lr, "--set": named}  # fmt: skip
        resuming.refuse_changes(resume, "run", given)
        run, cfg = resuming.resumable(runs_dir, resume)
        kind = runs.read(run).meta.kind or "train"
        return start_run(cfg, kind, run.path / runs.CONFIG, runs_dir, device, display, None, run)
    if config_ref is None and from_run is None:
        raise TinyError("train: give a config (NAME|PATH), --from RUN or --resume RUN")
    if config_ref is not None and from_run is not None:
        raise TinyError(f"train: give a config ({config_ref}) or --from {from_run}, not both")
    origin = None
    if from_run is not None:
        run = runs.find(runs.root(runs_dir), from_run)
        config_ref, origin = str(run.path / runs.CONFIG), run.id
    assert config_ref is not None
    changes = overrides(
        sets, epochs=("train.epochs", epochs), seed=("seed", seed), lr=("train.lr", lr)
    )
    cfg, path = config.load(config_ref, changes + list(extra))
    return start_run(cfg, "train", path, runs_dir, device, display, origin)


def hardwire(
    config_ref: str,
    *,
    bits: int | None,
    scale: float | None,
    sets: list[str] | None,
    runs_dir: Path | None,
    device: str,
    display: Display,
    extra: Sequence[Override] = (),
) -> Outcome:
    """`tiny hardwire`: the task's construction, evaluated with zero epochs, stored as a run."""
    from tiny_cli import config
    from tiny_cli.tasks import catalog

    devices.check(device)
    painter.start()
    base, _ = config.load(config_ref, overrides(sets) + list(extra))
    task = base.task
    if bits is not None and "bits" not in type(task).model_fields:
        raise TinyError(f"--bits {bits}: task {task.name} has no task.bits")
    if scale is not None and "scale" not in task.construction_options:
        raise TinyError(f"--scale {scale}: task {task.name}'s construction has no scale")
    if not task.constructions(base.init):
        having = catalog.with_construction()
        raise TinyError(
            f"hardwire {config_ref}: task {task.name} has no construction; "
            f"tasks with one: {', '.join(having)}"
        )
    forced = [("init.mode", "hardwired", "hardwire"), ("train.epochs", 0, "hardwire")]
    changes = overrides(sets, bits=("task.bits", bits), scale=("init.scale", scale))
    forced += _construction_net(config_ref, changes + list(extra))
    cfg, path = config.load(config_ref, changes + list(extra) + forced)
    return start_run(cfg, "hardwire", path, runs_dir, device, display)


def _construction_net(config_ref: str, changes: list[Override]) -> list[Override]:
    """The first construction's net, as `model.layers`, where the config's net is another and
    no `--set model.*` asks for a net (the config's net may be a training net: modadd's 256
    units; `--set model.layers=...` hardwires a construction of that net, if there is one)."""
    from tiny_cli import config

    if any(key == "model" or key.startswith("model.") for key, _, _ in changes):
        return []
    cfg, _ = config.load(config_ref, [*changes, ("train.epochs", 0, "hardwire")])
    built = cfg.task.constructions(cfg.init)
    arch = built[0].arch if built else None
    if arch is None or arch == cfg.arch or arch.names is not None or arch.skip_input:
        return []
    layers = [{"width": la.width, "activation": la.activation} for la in arch.layers]
    return [
        (f"model.{k}", v, "hardwire")
        for k, v in (("arch", None), ("widths", None), ("layers", layers))
    ]


def start_run(
    cfg: ExperimentConfig,
    kind: str,
    source: Path,
    runs_dir: Path | None,
    device: str,
    display: Display,
    origin: str | None = None,
    resume: Run | None = None,
) -> Outcome:
    """One run of a resolved config on the device asked for, with its progress shown and
    its pictures and read-out made by the sidecar."""
    from tiny_cli.app import experiment
    from tiny_cli.store import runs

    dev = devices.resolve(device)
    root = runs.root(runs_dir)
    label, total = ("training", cfg.train.epochs) if cfg.train.epochs else ("evaluating", None)
    with display(label, total, "epochs") as progress:
        return experiment.run_experiment(
            cfg,
            kind=kind,
            runs_root=root,
            source=str(source),
            device=dev,
            progress=progress,
            origin=origin,
            resume=resume,
            painter=painter.start(),
        )


def sweep(
    config_ref: str | None,
    *,
    seeds: str | None,
    resume: str | None,
    grid: list[str] | None,
    keep: int,
    epochs: int | None,
    lr: float | None,
    sets: list[str] | None,
    runs_dir: Path | None,
    threads: int | None,
    chunk: int | None,
    cluster: str | None,
    workers: int | None,
    device: str,
    display: Display,
    announce: Announce,
    extra: Sequence[Override] = (),
) -> SweepOutcome:
    """`tiny sweep`: many seeds (crossed with a grid) as batched models, here or on a Dask
    cluster (`cluster`: a scheduler's address; `workers`: a local one); or a stopped sweep
    finished (`resume`)."""
    distributed = _check_sweep(cluster, workers, device, threads)
    if resume is not None:
        given = {"NAME|PATH": config_ref, "--seeds": seeds, "--grid": grid, "--chunk": chunk,
                 "--epochs": epochs, "--lr": lr, "--set": sets}  # fmt: skip
        resuming.refuse_changes(resume, "sweep", given)
        return _resume_sweep(
            resume, runs_dir, threads, cluster, workers, device, distributed, display, announce
        )
    if config_ref is None or seeds is None:
        raise TinyError("sweep: give a config (NAME|PATH) and --seeds, or --resume SWEEP")
    from tiny_cli import config
    from tiny_cli.store import runs

    seed_range = config.parse_seeds(seeds)
    axes = config.parse_grid(grid or [])
    config.check_sweep_size(axes, seed_range, grid or [])
    changes = overrides(sets, epochs=("train.epochs", epochs), lr=("train.lr", lr))
    changes += list(extra)
    base, path = config.load(config_ref, changes)
    points = config.grid_points(config_ref, changes, axes)
    from tiny_cli.app import sweep as sweeping  # torch: only once every argument is valid

    dev = device if distributed else devices.resolve(device)
    total = sum(p.cfg.train.epochs for p in points) * len(seed_range)
    with _on_cluster(cluster, workers, dev, announce) as remote:
        if remote is not None and chunk is None:
            sizes = [remote.chunk_for(p.cfg, p.cfg.task.size()) for p in points]
            chunk = min(s for s in sizes if s is not None) if None not in sizes else None
        with display("sweep", total, "seed-epochs") as progress:
            if remote is not None:
                remote.on_status = progress.note
            return sweeping.run_sweep(
                base, points, axes, seed_range, runs_root=runs.root(runs_dir),
                source=str(path), keep=keep, on_epoch=progress.advance, threads=threads,
                chunk=chunk, runner=remote, device=dev,
                slots=remote.slots() if remote is not None else 1,
            )  # fmt: skip


def _check_sweep(
    cluster: str | None, workers: int | None, device: str, threads: int | None
) -> bool:
    """A sweep's own options, checked before torch is imported; True: it trains on Dask."""
    if cluster is not None and workers is not None:
        raise TinyError("--cluster and --workers: give one (a running scheduler or local workers)")
    distributed = cluster is not None or workers is not None
    if distributed:
        from tiny_cli.app import cluster as dask  # no torch, no Dask at import

        dask.require()  # before torch: a missing extra is one quick line
        if cluster is not None:
            dask.refuse_fast(cluster)  # a refused address is known at once, before torch
        if device != "cpu" and device.partition(":")[0] != "cuda":
            raise TinyError(f"--device {device}: on a cluster, use cpu, cuda or cuda:N")
    from tiny_cli import config

    if threads is not None:
        config.check_threads(threads)
    devices.check(device)
    _check_engine()
    return distributed


def _check_engine() -> None:
    """TINY_ENGINE, if set, is one the engine knows (before any run is made)."""
    from tiny_cli.train import kernel

    kernel.switch()


def _resume_sweep(
    ref: str,
    runs_dir: Path | None,
    threads: int | None,
    cluster: str | None,
    workers: int | None,
    device: str,
    distributed: bool,
    display: Display,
    announce: Announce,
) -> SweepOutcome:
    """`tiny sweep --resume`: the chunks a stopped sweep has not stored, then the sweep."""
    from tiny_cli.app import sweep as sweeping
    from tiny_cli.store import runs

    root = runs.root(runs_dir)
    run = runs.find(root, ref)
    total = resuming.sweep_total(run)
    dev = device if distributed else devices.resolve(device)
    with (
        _on_cluster(cluster, workers, dev, announce) as remote,
        display("sweep", total, "seed-epochs") as progress,
    ):
        if remote is not None:
            remote.on_status = progress.note
        return sweeping.resume_sweep(
            run,
            runs_root=root,
            on_epoch=progress.advance,
            threads=threads,
            runner=remote,
            device=dev,
        )


@contextlib.contextmanager
def _on_cluster(
    address: str | None, workers: int | None, device: str, announce: Announce
) -> Iterator[Cluster | None]:
    """The Dask cluster a sweep runs on (None: this process), announced with its dashboard."""
    if address is None and workers is None:
        yield None
        return
    from tiny_cli.app.cluster import Cluster

    with Cluster(address, workers, device) as remote:
        if device != "cpu":
            remote.cuda_free()  # every worker has the device, or one line now
        announce(remote.where, remote.dashboard())
        yield remote
