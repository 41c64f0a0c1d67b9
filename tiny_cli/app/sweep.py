"""Sweeps: many seeds of one config trained at once by the engine, and what became of each.

The engine (`engine.fit`) trains a chunk of seeds as one batched model; seed k of a sweep is
`tiny train --seed k`, bit for bit, whatever the chunk, the seed range or the thread count.
Each seed's final net is classified by `outcomes.classify`; the sweep is stored as one
directory among the runs.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from tiny_cli import config
from tiny_cli.app import resume as resuming
from tiny_cli.config import ExperimentConfig, GridAxis, GridPoint
from tiny_cli.errors import RunFailed, TinyError
from tiny_cli.show import phase
from tiny_cli.spec import models
from tiny_cli.store import events, locks, runs
from tiny_cli.train import backprop, engine, stopping
from tiny_cli.train import data as datasets
from tiny_cli.train.curves import Curves, Recorder
from tiny_cli.train.data import Data
from tiny_cli.train.held_out import GROK_EPOCHS, HELD_OUT
from tiny_cli.train.outcomes import OUTCOMES, classify, evaluate, pick_seeds

# Floats of a chunk's training (activations, products, buffers) allowed: ~0.5 GiB.
CHUNK_FLOATS = 1 << 27
MAX_CHUNK = 8192
CHUNKS = runs.CHUNKS  # a sweep's finished chunks, one file each, until it completes
PHASE_TAG = "phase_diagram"  # TensorBoard IMAGES: the held-out outcomes over the grid

Params = models.Params  # state_dict names -> [S, *shape]


@dataclass
class PointResult:
    point: GridPoint
    seeds: list[int]
    params: Params  # [S, *shape]
    loss: Tensor  # [S] final loss on the training data
    accuracy: Tensor | None  # [S], classification only
    epochs: Tensor  # [S] epochs completed
    outcome: Tensor  # [S] index into OUTCOMES
    seconds: float
    # on the held-out inputs (a config's `data:` section), None without a test set
    test_loss: Tensor | None = None  # [S]
    test_accuracy: Tensor | None = None  # [S], classification only
    curves: Curves | None = None  # over the epochs (None: chunks stored without them)

    def summary(self) -> dict[str, Any]:
        """Counts and fractions per outcome, loss quantiles, time and throughput (JSON)."""
        s = len(self.seeds)
        counts = {name: int((self.outcome == i).sum()) for i, name in enumerate(OUTCOMES)}
        epochs = self.point.cfg.train.epochs
        tested = {
            key: _quantiles(values)
            for key, values in (
                ("test_loss", self.test_loss),
                ("test_accuracy", self.test_accuracy),
            )
            if values is not None
        }
        held = self.held_out()
        return {
            "grid": self.point.values,
            "label": self.point.label,
            "seeds": s,
            "counts": counts,
            "fractions": {k: v / s for k, v in counts.items()},
            "loss": _quantiles(self.loss),
            **tested,
            **({"held_out": held} if held is not None else {}),
            "seconds": self.seconds,
            "seed_epochs_per_second": s * epochs / self.seconds if self.seconds > 0 else None,
        }

    def held_out(self) -> dict[str, Any] | None:
        """With a test set: the seeds' held-out outcomes (`outcomes.held_out`, the rule of
        a run), counted, the majority (the first of HELD_OUT among ties) and the median
        delay of the seeds that solved both sides (None: none did)."""
        found = self.curves.held_out() if self.curves is not None else None
        if found is None:
            return None
        code, delay = found
        counts = {name: int((code == i).sum()) for i, name in enumerate(HELD_OUT)}
        both = delay[delay >= 0].double()
        grokked = delay[code == HELD_OUT.index("grokked")].double()
        return {
            "counts": counts,
            "majority": max(counts, key=lambda k: counts[k]),
            "delay": float(both.median()) if len(both) else None,
            "grokked_delay": float(grokked.median()) if len(grokked) else None,
            "grok_epochs": GROK_EPOCHS,
        }


def _quantiles(values: Tensor) -> dict[str, float]:
    """The 0, 10, 50, 90 and 100th percentiles of the finite values ({} when none is)."""
    finite = values[values.isfinite()].double()
    qs = (0.0, 0.1, 0.5, 0.9, 1.0)
    return {f"q{int(q * 100)}": float(torch.quantile(finite, q)) for q in qs} if len(finite) else {}


def chunk_size(cfg: ExperimentConfig, n_samples: int) -> int:
    """Seeds per batched model so that activations stay around CHUNK_FLOATS floats."""
    arch = cfg.arch
    widths = [arch.inputs] + [la.width for la in arch.layers]
    batch = min(cfg.train.batch_size or n_samples, n_samples)
    # per sample: each layer's input and output (and a transient copy), and every
    # parameter's product (backprop.SeedNets's segments, then their first halving) but a
    # wide layer's weights (a per-seed bmm sums those: no product per sample)
    per_sample = arch.n_parameters - sum(
        fan_in * la.width
        for blocks, la in zip(arch.blocks(), arch.layers, strict=True)
        if not backprop.small(fan_in := blocks[0][1], la.width)
    )
    per_seed = batch * (3 * (sum(widths) + arch.inputs) + 2 * per_sample)
    per_seed += 8 * arch.n_parameters  # the flat buffers: parameters, moments, gradients
    return max(1, min(MAX_CHUNK, CHUNK_FLOATS // per_seed))


@dataclass(frozen=True)
class Chunk:
    """The unit of work: some seeds of one grid point, trained as one batched model."""

    point: int  # index into the grid's points
    index: int  # chunk number within the point
    seeds: tuple[int, ...]

    @property
    def file(self) -> str:
        return f"p{self.point:04d}-c{self.index:05d}.pt"


def plan(
    points: Sequence[GridPoint], seeds: Sequence[int], chunk: int | None = None, slots: int = 1
) -> list[Chunk]:
    """Every grid point's seeds in equal chunks (no tiny last one), the same every time for
    the same sweep: what `--resume` relies on (`chunk` and `slots` are stored in run.json).

    With `slots` workers (a cluster's threads), a point's chunk count is rounded up to a
    multiple of it, so the last round keeps every worker busy: 100,000 seeds in 13 chunks
    on 2 workers leave one idle for a whole chunk; in 14 they finish together (their sizes
    then differ by at most one seed)."""
    chunks = []
    for p, point in enumerate(points):
        size = chunk or chunk_size(point.cfg, point.cfg.task.size())
        n = math.ceil(len(seeds) / size)
        if slots > 1 and n > 1:
            n = min(len(seeds), math.ceil(n / slots) * slots)
            bounds = [len(seeds) * i // n for i in range(n + 1)]
        else:  # (sweeps stored before `slots` were planned this way: keep it for --resume)
            size = math.ceil(len(seeds) / n)
            bounds = [*range(0, len(seeds), size), len(seeds)]
        for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            chunks.append(Chunk(p, i, tuple(seeds[lo:hi])))
    return chunks


def train_chunk(
    cfg: ExperimentConfig,
    seeds: Sequence[int],
    on_epoch: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    data: Data | None = None,
    device: str = "cpu",
) -> dict[str, Any] | None:
    """Train and classify one chunk: per-seed parameters, loss, accuracy, epochs, outcome and
    the seconds it took (plain tensors on the CPU, no models); None if stopped before it
    finished. A pure function of the config and the seeds: what a cluster worker runs.

    On more than one torch thread, a net of wide layers only (seeds first) trains in parts
    side by side (`side_by_side`); each seed's bits are the same either way."""
    start = time.perf_counter()
    data = data if data is not None else datasets.prepare(cfg)
    parts = side_by_side(cfg, len(seeds), device)
    if parts > 1:
        return _train_in_parts(cfg, seeds, parts, on_epoch, should_stop, data, device)
    x, y, truth = data.x, data.y, data.truth
    correct = cfg.task.correct if cfg.task.kind == "classification" else None
    recorder = Recorder(cfg, len(seeds), has_test=data.has_test)
    fitted = engine.fit(
        cfg, list(seeds), x, y, correct=correct,
        callbacks=[_counter(on_epoch, len(seeds)), recorder], should_stop=should_stop,
        device=device, truth=truth, test_every=cfg.log.every,
        test=(data.x_test, data.y_test) if data.has_test else None,
    )  # fmt: skip
    if fitted.status == "interrupted":
        return None
    ev = evaluate(cfg, fitted.params, x, y, truth)
    outcome = classify(cfg.task.kind, ev.pred, truth, ev.hidden, fitted.diverged, ev.right)
    tested = {}
    if data.has_test:
        test = evaluate(cfg, fitted.params, data.x_test, data.y_test)
        tested = {"test_loss": test.loss, "test_accuracy": test.accuracy}
    return {
        "seeds": torch.tensor(list(seeds)),
        "params": fitted.params,
        "loss": ev.loss,
        "accuracy": ev.accuracy,
        "epochs": fitted.epochs,
        "outcome": outcome,
        "curves": recorder.part(),
        "first_solved": recorder.first_solved,
        **({"test_first_solved": recorder.test_first_solved} if data.has_test else {}),
        "seconds": time.perf_counter() - start,
        **tested,
        resuming.FINGERPRINT: config.fingerprint(cfg),  # what a resume checks
    }


def side_by_side(cfg: ExperimentConfig, seeds: int, device: str = "cpu") -> int:
    """Into how many parts `train_chunk` splits a chunk of `seeds` seeds, trained side by
    side in threads of one torch thread each: one per torch thread for a net of wide layers
    only on the torch engine on the CPU (seeds first), else 1. Its ops are few and large,
    and on several torch threads each waits on the others; its seeds apart, a part on a
    core of its own (measured: 10 modadd seeds x 300 epochs, 2.6 s as one part on two
    threads, 1.65 s as two parts)."""
    if device != "cpu" or seeds < 2 or not backprop.seeds_first(cfg.arch):
        return 1
    if engine.which(cfg, device) == "kernel":
        return 1
    return max(1, min(torch.get_num_threads(), seeds))


def _train_in_parts(
    cfg: ExperimentConfig,
    seeds: Sequence[int],
    parts: int,
    on_epoch: Callable[[int], None] | None,
    should_stop: Callable[[], bool],
    data: Data,
    device: str,
) -> dict[str, Any] | None:
    """`train_chunk` of `seeds` as `parts` chunks side by side, merged into one part."""
    from concurrent.futures import ThreadPoolExecutor

    start = time.perf_counter()
    lock = threading.Lock()

    def count(n: int) -> None:  # (the progress bar and the heartbeat: one thread at a time)
        if on_epoch is not None:
            with lock:
                on_epoch(n)

    def train(lo: int, hi: int) -> dict[str, Any] | None:
        torch.set_num_threads(1)  # (this thread's own setting)
        return train_chunk(cfg, seeds[lo:hi], count, should_stop, data, device)

    bounds = [len(seeds) * i // parts for i in range(parts + 1)]
    with ThreadPoolExecutor(parts, thread_name_prefix="tiny-part") as pool:
        done = list(pool.map(train, bounds[:-1], bounds[1:]))
    trained = [d for d in done if d is not None]
    if len(trained) < len(done):
        return None
    merged = merge_parts(trained)
    merged["seconds"] = time.perf_counter() - start  # (side by side: not their sum)
    merged[resuming.FINGERPRINT] = trained[0][resuming.FINGERPRINT]
    return merged


def merge_parts(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Chunks of one grid point, in seed order, as one part: what `train_chunk` returns for
    all their seeds (their seconds summed; curves merged where every part has them)."""

    def cat(key: str) -> Tensor | None:
        values = [p.get(key) for p in parts]
        tensors = [v for v in values if v is not None]
        return torch.cat(tensors) if len(tensors) == len(values) else None

    merged: dict[str, Any] = {
        "seeds": cat("seeds"),
        "params": {k: torch.cat([p["params"][k] for p in parts]) for k in parts[0]["params"]},
        "seconds": sum(float(p["seconds"]) for p in parts),
    }
    for key in ("loss", "accuracy", "epochs", "outcome", "test_loss", "test_accuracy"):
        if key in parts[0]:
            merged[key] = cat(key)
    if all("curves" in p for p in parts):
        tested = all("test_first_solved" in p for p in parts)
        curves = Curves.merge(
            [p["curves"] for p in parts],
            [p["first_solved"] for p in parts],
            [p["test_first_solved"] for p in parts] if tested else None,
        )
        merged["curves"] = curves.part()
        merged["first_solved"] = cat("first_solved")
        if tested:
            merged["test_first_solved"] = cat("test_first_solved")
    return merged


def _point_result(point: GridPoint, parts: Sequence[dict[str, Any]]) -> PointResult:
    m = merge_parts(parts)
    curves = None
    if "curves" in m:
        tested = [m["test_first_solved"]] if "test_first_solved" in m else None
        curves = Curves.merge([m["curves"]], [m["first_solved"]], tested)
    return PointResult(
        point=point,
        seeds=m["seeds"].tolist(),
        params=m["params"],
        loss=m["loss"],
        accuracy=m["accuracy"],
        epochs=m["epochs"],
        outcome=m["outcome"],
        seconds=m["seconds"],
        test_loss=m.get("test_loss"),
        test_accuracy=m.get("test_accuracy"),
        curves=curves,
    )


def run_point(
    point: GridPoint,
    seeds: Sequence[int],
    on_epoch: Callable[[int], None] | None = None,
    chunk: int | None = None,
) -> PointResult:
    """Train every seed of one grid point, chunk by chunk, in memory; classify each seed."""
    data = datasets.prepare(point.cfg)
    parts = []
    for c in plan([point], seeds, chunk):
        part = train_chunk(point.cfg, c.seeds, on_epoch, data=data)
        assert part is not None  # nothing asks it to stop
        parts.append(part)
    return _point_result(point, parts)


class _counter:  # (a callback, named as the function it was)
    """Seed-epochs done, for the progress bar; takes the kernel's spans of epochs at once."""

    def __init__(self, on_epoch: Callable[[int], None] | None, seeds: int) -> None:
        self.on_epoch, self.seeds = on_epoch, seeds

    def __call__(self, e: engine.Epoch) -> None:
        if self.on_epoch is not None and e.epoch > 0:
            self.on_epoch(self.seeds)

    def span(self, s: engine.Span) -> None:
        if self.on_epoch is not None:
            self.on_epoch(self.seeds * len(s.loss))


# --- who trains the chunks: this process, or a cluster (cluster.py) ----------------------

Part = dict[str, Any]  # what train_chunk returns
# runner(chunks to train, the grid's points, should_stop, on_epoch) yields each chunk with
# its part as it finishes, in any order; it ends early (or raises RunnerLost) when asked to stop.
# on_epoch(0) is a fine way to say "still alive" (it beats the sweep's heartbeat).
Runner = Callable[
    [Sequence[Chunk], Sequence[GridPoint], Callable[[], bool], Callable[[int], None]],
    Iterator[tuple[Chunk, Part]],
]


class RunnerLost(Exception):
    """A runner could not go on: the sweep ends interrupted, resumable. The message names
    the cause, as in "stopped by <cause>" (say, "a lost scheduler (tcp://...)")."""


def default_threads(cfg: ExperimentConfig, device: str = "cpu") -> int:
    """A sweep's threads when `--threads` is not given: every CPU this process may use for
    the compiled kernel (plain threads, each on whole blocks of seeds) and for a net of wide
    layers only on the CPU (seeds first: a chunk's seeds in parts side by side, one per
    thread, `side_by_side`; measured, 10 modadd seeds x 500 epochs, 3.1 s on two threads,
    5.0 s on one), one for the rest of the torch engine (whose small ops on several
    threads wait on each other, worst on a busy machine). A seed's bits are the same either way."""
    wide = device == "cpu" and backprop.seeds_first(cfg.arch)
    if engine.which(cfg, device) != "kernel" and not wide:
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # (not on Linux)
        return os.cpu_count() or 1


def local_runner(threads: int | None = None, device: str = "cpu") -> Runner:
    """Train the chunks one after another in this process, with `threads` torch threads
    (None: `default_threads` of each chunk's config)."""

    def run(
        todo: Sequence[Chunk],
        points: Sequence[GridPoint],
        should_stop: Callable[[], bool],
        on_epoch: Callable[[int], None],
    ) -> Iterator[tuple[Chunk, Part]]:
        previous = torch.get_num_threads()
        try:
            data: dict[int, Data] = {}
            for c in todo:
                cfg = points[c.point].cfg
                torch.set_num_threads(threads or default_threads(cfg, device))
                if c.point not in data:
                    data = {c.point: datasets.prepare(cfg)}
                part = train_chunk(cfg, c.seeds, on_epoch, should_stop, data[c.point], device)
                if part is None:
                    return
                yield c, part
        finally:
            torch.set_num_threads(previous)

    return run


# --- the whole sweep, stored ------------------------------------------------------------


@dataclass
class SweepOutcome:
    run: runs.Run
    results: list[PointResult]
    summary: list[dict[str, Any]]
    kept: list[dict[str, Any]]


def _store_arrays(run: runs.Run, seeds: Sequence[int], results: list[PointResult]) -> None:
    points = []
    for r in results:
        point: dict[str, Any] = {
            "grid": r.point.values,
            "params": r.params,
            "loss": r.loss,
            "epochs": r.epochs,
            "outcome": r.outcome,
        }
        if r.accuracy is not None:
            point["accuracy"] = r.accuracy
        if r.test_loss is not None:
            point["test_loss"] = r.test_loss
        if r.test_accuracy is not None:
            point["test_accuracy"] = r.test_accuracy
        if r.curves is not None and r.curves.first_solved is not None:
            point["first_solved"] = r.curves.first_solved  # -1: never
        if r.curves is not None and r.curves.test_first_solved is not None:
            point["test_first_solved"] = r.curves.test_first_solved  # -1: never
        points.append(point)
    data = {"seeds": torch.tensor(list(seeds)), "outcomes": list(OUTCOMES), "points": points}
    run.save_tensors(runs.SWEEP, data)
    run.write_json(runs.CURVES, _curves_json(results))


def _curves_json(results: list[PointResult]) -> list[dict[str, Any]]:
    """curves.json: per grid point, its label and curves (`curves.Curves.to_json`)."""
    return [
        {"grid": r.point.values, "label": r.point.label}
        | (r.curves.to_json() if r.curves is not None else {})
        for r in results
    ]


def run_sweep(
    base: ExperimentConfig,
    points: list[GridPoint],
    axes: list[GridAxis],
    seeds: range,
    *,
    runs_root: Path,
    source: str = "",
    keep: int = 0,
    on_epoch: Callable[[int], None] | None = None,
    threads: int | None = None,
    chunk: int | None = None,
    runner: Runner | None = None,
    device: str = "cpu",
    slots: int = 1,
) -> SweepOutcome:
    """Create the sweep's directory, then train, classify and store it (`_Sweep.complete`).
    `runner` trains the chunks (default: this process, `threads` torch threads) on `slots`
    workers at once (`plan`). Signals are stop requests from the start: one before the
    directory exists stores nothing; after, the sweep ends interrupted (`_Sweep`)."""
    flag = stopping.StopFlag()
    with stopping.catch_signals(flag):
        _check_data(points)
        if flag():
            raise RunFailed("sweep stopped by a signal before it started; nothing stored", 130)
        run = _create(base, points, axes, seeds, runs_root, source, device, chunk, slots, keep)
        runner = runner or local_runner(threads, device)
        work = plan(points, seeds, chunk, slots)
        with locks.hold(run, "sweep"):  # one process at a time: see resume_sweep
            sweep = _Sweep(
                run, points, seeds, work, runner, on_epoch, runs_root, source, keep, flag
            )
            return sweep.complete()


def _check_data(points: Sequence[GridPoint]) -> None:
    """A task whose data cannot be built fails here, before anything is stored."""
    for cfg in {config.dump_yaml(p.cfg): p.cfg for p in points}.values():
        cfg.task.data()


def _create(
    base: ExperimentConfig,
    points: list[GridPoint],
    axes: list[GridAxis],
    seeds: range,
    runs_root: Path,
    source: str,
    device: str,
    chunk: int | None,
    slots: int,
    keep: int,
) -> runs.Run:
    """The sweep's directory: its base config, grid and run.json (what `resume_sweep` reads
    back to finish it)."""
    from tiny_cli.app import experiment

    run = runs.create(runs_root, f"{base.task.name}-sweep")
    run.write_text(runs.CONFIG, config.dump_yaml(base))
    grid = {"axes": {k: v for k, v in axes}, "points": [p.values for p in points]}
    run.write_json(runs.GRID, grid)
    modes = ",".join(sorted({p.cfg.init.mode for p in points}))
    trainers = ", ".join(sorted({engine.which(p.cfg, device) for p in points}))
    meta = experiment.run_meta(
        run, base, "sweep", source, device, trainers, init=modes, seed=None,
        seeds=[seeds.start, seeds.stop - 1], n_seeds=len(seeds), grid=grid["axes"],
        epochs=max(p.cfg.train.epochs for p in points), chunk=chunk, slots=slots, keep=keep,
        config_hash=config.fingerprint(base),
    )  # fmt: skip
    run.write_json(runs.META, meta)
    return run


def resume_sweep(
    run: runs.Run,
    *,
    runs_root: Path,
    on_epoch: Callable[[int], None] | None = None,
    threads: int | None = None,
    runner: Runner | None = None,
    device: str = "cpu",
) -> SweepOutcome:
    """Finish an interrupted, failed or stale sweep: train only the chunks it has not stored,
    then store it as an uninterrupted sweep would have been (the same results, bit for bit).
    The sweep is locked first (a second resume, or the sweep still training, is one line),
    then checked: its config unchanged, every stored chunk its own (`resume.check_chunks`)."""
    with locks.hold(run, "sweep"):
        return _resume(run, runs_root, on_epoch, threads, runner, device)


def _resume(
    run: runs.Run,
    runs_root: Path,
    on_epoch: Callable[[int], None] | None,
    threads: int | None,
    runner: Runner | None,
    device: str,
) -> SweepOutcome:
    record = runs.read(run)
    meta = record.meta
    if meta.kind != "sweep":
        raise TinyError(f"--resume {run.id}: not a sweep (resume a run with tiny train --resume)")
    if meta.status == "completed":
        raise TinyError(f"--resume {run.id}: the sweep is already complete")
    if meta.seeds is None:
        raise TinyError(f"--resume {run.id}: run.json has no seed range; cannot resume")
    made_by = (meta.versions or {}).get("engine")
    if made_by != str(engine.ENGINE):
        raise TinyError(
            f"--resume {run.id}: trained by another version of tiny's training engine "
            f"({'engine ' + str(made_by) if made_by else 'before engine 2'}); its remaining "
            f"chunks would not match its stored ones bit for bit: start the sweep anew"
        )
    grid = runs.read_grid(run)
    axes = [(k, list(v)) for k, v in grid.axes.items()]
    points = config.grid_points(str(run.path / runs.CONFIG), [], axes)
    seeds = range(meta.seeds[0], meta.seeds[1] + 1)
    raw = run.read_json(runs.META)
    resuming.check_sweep_config(run, raw.get("config_hash"))
    chunk = raw.get("chunk") if isinstance(raw.get("chunk"), int) else None
    slots = raw.get("slots") if isinstance(raw.get("slots"), int) else 1
    keep = raw.get("keep") if isinstance(raw.get("keep"), int) else 0
    runner = runner or local_runner(threads, device)
    work = plan(points, seeds, chunk, max(1, slots))  # the sweep's own plan, whoever trains it
    made = [config.fingerprint(p.cfg) for p in points]  # each chunk's its own, unchanged
    resuming.check_chunks(run, [(f"{CHUNKS}/{c.file}", c.seeds, made[c.point]) for c in work])
    source, flag = meta.source or "", stopping.StopFlag()
    with stopping.catch_signals(flag):
        sweep = _Sweep(run, points, seeds, work, runner, on_epoch, runs_root, source, keep, flag)
        return sweep.complete(previous=meta.kept or [])


def total_seed_epochs(points: Sequence[GridPoint], seeds: Sequence[int]) -> int:
    return sum(p.cfg.train.epochs for p in points) * len(seeds)


class _Stop(Exception):
    """A stop request seen between two steps of a sweep (or a lost runner): `cause` as in
    "stopped by <cause>"."""

    def __init__(self, cause: str = "a signal") -> None:
        super().__init__(cause)
        self.cause = cause


@dataclass
class _Sweep:
    """A stored sweep to complete: its directory, grid points, seeds and plan (`work`), who
    trains its chunks, where its kept runs go, and the stop flag its signals set. `phase`
    says what it is doing, for the record of how it stopped."""

    run: runs.Run
    points: list[GridPoint]
    seeds: range
    work: list[Chunk]
    runner: Runner
    on_epoch: Callable[[int], None] | None
    runs_root: Path
    source: str
    keep: int
    flag: stopping.StopFlag
    phase: str = "planning"
    kept: list[dict[str, Any]] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return self.run.path / CHUNKS

    def complete(self, previous: Sequence[runs.Kept] = ()) -> SweepOutcome:
        """Train every chunk not yet stored in `chunks/` (`runner`: here or on a cluster),
        each saved as it finishes, in whatever order; then store the sweep and its kept
        runs (those of `previous`, an earlier try's, that completed are not trained again).

        A first Ctrl-C or SIGTERM stops at the next mini-batch (a cluster's chunks in
        flight are cancelled), between two steps, or before the next kept run; a second
        Ctrl-C aborts at once. Whatever stops it (a signal in any phase, a kept run stopped
        or failed, an error), the sweep is marked interrupted or failed with the phase it
        was in, every finished chunk kept for `--resume`, and the grid points finished so
        far are stored as a completed sweep stores them (`store_finished`)."""
        run = self.run
        self.folder.mkdir(exist_ok=True)
        run.update_meta(
            status="running", reason=None, heartbeat=time.time(), **runs.process_identity()
        )
        try:
            self.step("training its chunks")
            self.train_chunks(runs.Heartbeat(run))
            self.step("gathering its chunks")
            results = self.gather()
            self.step("storing it")
            summary = self.store(results)
            self.step("training its kept runs")
            self.keep_runs(results, previous)
        except _Stop as stop:
            raise self.stopped("interrupted", f"stopped by {stop.cause}") from None
        except RunFailed as exc:  # a kept run that was stopped or failed: stored as such
            status = "interrupted" if exc.exit_code == 130 else "failed"
            raise self.stopped(status, f"{exc}", exc.exit_code) from None
        except KeyboardInterrupt:  # at once: the finished points are not stored
            raise self.stopped("interrupted", "aborted by a second Ctrl-C", store=False) from None
        except BaseException as exc:
            self.mark("failed", f"{type(exc).__name__}: {exc}")
            raise
        shutil.rmtree(self.folder, ignore_errors=True)  # all in sweep.pt now
        run.update_meta(
            status="completed",
            reason=None,
            epochs_done=max(p.cfg.train.epochs for p in self.points),
            kept=self.kept,
            seconds=sum(r.seconds for r in results),
            finished=time.time(),
        )
        return SweepOutcome(run, results, summary, self.kept)

    def step(self, phase: str) -> None:
        """The next phase, unless a stop request came in the one before."""
        if self.flag():
            raise _Stop()
        self.phase = phase

    def train_chunks(self, beat: runs.Heartbeat) -> None:
        """Have the runner train the chunks not stored yet, each stored as it comes back
        (those stored before count as done for `on_epoch`); stopped (`_Stop`) unless every
        chunk is stored in the end."""
        todo = []
        for c in self.work:
            if not (self.folder / c.file).is_file():
                todo.append(c)
            elif self.on_epoch is not None:
                self.on_epoch(len(c.seeds) * self.points[c.point].cfg.train.epochs)
        try:
            for c, part in self.runner(todo, self.points, self.flag, _and(self.on_epoch, beat)):
                self.run.save_tensors(f"{CHUNKS}/{c.file}", part)
        except RunnerLost as exc:
            raise _Stop(str(exc)) from None
        if self.chunks_done() < len(self.work):
            raise _Stop()

    def chunks_done(self) -> int:
        return sum((self.folder / c.file).is_file() for c in self.work)

    def gather(self, which: Sequence[int] | None = None) -> list[PointResult]:
        """Each grid point's result (or those of the points `which`), from its stored chunks
        in plan order."""
        wanted = range(len(self.points)) if which is None else which
        parts: dict[int, list[dict[str, Any]]] = {p: [] for p in wanted}
        for c in self.work:
            if c.point in parts:
                parts[c.point].append(runs.load_tensors(self.folder, c.file))
        return [_point_result(self.points[p], ps) for p, ps in parts.items()]

    def store(self, results: list[PointResult]) -> list[dict[str, Any]]:
        """sweep.pt, summary.json, metrics.json and the event file; returns the summary."""
        run, n_seeds = self.run, len(self.seeds)
        summary = [r.summary() for r in results]
        _store_arrays(run, self.seeds, results)
        run.write_json(runs.SUMMARY, summary)
        losses = torch.cat([r.loss for r in results])
        finite = losses[losses.isfinite()]
        solved = sum(s["counts"]["solved"] for s in summary)
        run.write_json(
            runs.METRICS,
            {
                "seeds": n_seeds,
                "grid_points": len(self.points),
                "solved": solved / (n_seeds * len(self.points)),
                "loss": float(finite.median()) if len(finite) else None,
            },
        )
        counts = [s["counts"] for s in summary]
        diagram = phase.phase_png(
            phase.axes_of([r.point.values for r in results]), phase.phase_cells(summary)
        )
        events.write_sweep(
            run.path,
            list(zip(counts, [r.loss for r in results], strict=True)),
            curves=[(r.point.label, r.curves.to_json()) for r in results if r.curves],
            images=[(PHASE_TAG, diagram)] if diagram is not None else [],
        )
        return summary

    def store_finished(self) -> int:
        """The grid points whose chunks are all stored, in sweep.pt and summary.json as a
        completed sweep has them (the points not finished left out), for inspect, report
        and --solutions to show; how many. What cannot be read or written stores none."""
        stored = {c.file for c in self.work if (self.folder / c.file).is_file()}
        finished = [
            p
            for p in range(len(self.points))
            if all(c.file in stored for c in self.work if c.point == p)
        ]
        if not finished:
            return 0
        try:
            results = self.gather(finished)
            _store_arrays(self.run, self.seeds, results)
            self.run.write_json(runs.SUMMARY, [r.summary() for r in results])
        except Exception:  # a chunk that cannot be read, a full disk: --resume says more
            return 0
        return len(finished)

    def keep_runs(self, results: list[PointResult], previous: Sequence[runs.Kept]) -> None:
        """A run of its own (`tiny train --seed k`, naming the sweep) for each of `keep`
        seeds per outcome and grid point (`pick_seeds`), recorded in run.json as each is
        stored; one that `previous` holds, completed, is kept as it is. A stop request
        between them stops the sweep (`_Stop`); a kept run stopped, `RunFailed`."""
        from tiny_cli.app import experiment

        done = {(k.point, k.seed): k for k in previous if _completed(self.runs_root, k.run)}
        for i, r in enumerate(results):
            for seed, why in pick_seeds(r.loss, r.outcome, r.seeds, self.keep) if self.keep else []:
                if (i, seed) in done:
                    self.kept.append(done[(i, seed)].model_dump())
                    continue
                self.step("training its kept runs")
                cfg = r.point.cfg.model_copy(update={"seed": seed})
                out = experiment.run_experiment(
                    cfg,
                    runs_root=self.runs_root,
                    source=self.source,
                    extra_meta={"sweep": self.run.id},
                )
                if out.result.status != "interrupted":
                    self.kept.append({"point": i, "seed": seed, "why": why, "run": out.run.id})
                    self.run.update_meta(kept=self.kept)
                else:
                    raise _Stop(f"a signal (kept run {out.run.id} interrupted)")

    def mark(self, status: str, how: str) -> str:
        """Record in run.json how the sweep stopped, in which phase and with what done;
        returns that record's reason."""
        done, total = self.chunks_done(), len(self.work)
        reason = f"{how} while {self.phase}, with {done} of {total} chunks trained"
        if self.phase == "training its kept runs":
            reason += f", {len(self.kept)} kept run(s) stored"
        self.run.update_meta(status=status, reason=reason, finished=time.time())
        return reason

    def stopped(self, status: str, how: str, code: int = 130, store: bool = True) -> RunFailed:
        """`mark`, then the grid points finished stored (`store_finished`, unless `store` is
        false or they are stored already); the one line."""
        reason = self.mark(status, how)
        store = store and self.phase != "training its kept runs"
        finished = self.store_finished() if store else 0
        points = len(self.points)
        shown = f"; {finished} of {points} grid points finished" if 0 < finished < points else ""
        return RunFailed(
            f"sweep {self.run.id} {status}: {reason}{shown}; "
            f"tiny sweep --resume {self.run.id} finishes it",
            exit_code=code,
        )


def _completed(root: Path, run_id: str) -> bool:
    """A kept run of an earlier try, still there and completed."""
    try:
        return runs.read_meta(runs.Run(root / run_id)).status == "completed"
    except runs.RunProblem:
        return False


def _and(first: Callable[[int], None] | None, second: Callable[[], None]) -> Callable[[int], None]:
    def both(count: int) -> None:
        if first is not None:
            first(count)
        second()

    return both
