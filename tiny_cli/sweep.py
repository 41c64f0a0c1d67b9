"""Sweeps: many seeds of one config trained at once as one batched model, and what became of each.

Every parameter gets a leading seed dimension (`[S, *shape]`, the model's own state_dict names)
and one batched forward for every architecture (`models.batched_forward`, `baddbmm` over the
seeds) runs them all. The loss is
the sum over seeds of each seed's mean loss, so seed k's gradient is exactly its own, and the
optimizers (SGD, Adam, AdamW) are elementwise, so one `optimizer.step()` on the stacked
tensors gives every seed the update it would get trained alone. Seed k starts from
`models.build(cfg with seed=k)` and shuffles with its own `Generator().manual_seed(k)`, as
`train.fit` does: seed k of a sweep follows `tiny train --seed k` (to float rounding).

Activations are laid out `[S, features, samples]`: on a CPU this is ~25% faster than
`[S, samples, features]` for the article's two-neuron layers.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary
from torch import Tensor, nn

from tiny_cli import config, models, runs, tracking
from tiny_cli.config import ExperimentConfig, Override
from tiny_cli.errors import TinyError
from tiny_cli.train import LOSSES, make_optimizer

MAX_SEEDS = 1_000_000
OUTCOMES = ("solved", "stuck at mean", "dead", "partial", "diverged")

# The outcome rule's tolerances (see `classify`).
REGRESSION_TOL = 0.01  # solved regression: MSE on the training data at most this
CONSTANT_EPS = 0.01  # near-constant output: std(output) <= CONSTANT_EPS * std(target)
MEAN_EPS = 0.05  # at the mean: |mean(output) - mean(target)| <= MEAN_EPS * std(target)

# Floats of activations (and their saved copies) allowed per chunk of seeds: ~0.5 GiB.
CHUNK_FLOATS = 1 << 27
MAX_CHUNK = 8192


# --- the command's inputs ---------------------------------------------------------------


def parse_seeds(spec: str) -> range:
    """`N` -> seeds 0..N-1; `A-B` -> seeds A..B inclusive. At most MAX_SEEDS of them."""
    text = spec.strip()
    first, sep, last = text.partition("-")
    try:
        if sep:
            lo, hi = int(first), int(last)
        else:
            lo, hi = 0, int(text) - 1
    except ValueError:
        raise TinyError(
            f"--seeds {spec}: expected a count N (seeds 0..N-1) or a range A-B, e.g. 0-999"
        ) from None
    if not sep and hi < 0:
        raise TinyError(f"--seeds {spec}: the count must be at least 1")
    if sep and lo > hi:
        raise TinyError(f"--seeds {spec}: the range is empty ({lo} > {hi})")
    if hi - lo + 1 > MAX_SEEDS:
        raise TinyError(f"--seeds {spec}: {hi - lo + 1} seeds; at most {MAX_SEEDS:,} per sweep")
    if hi > 2**63 - 1:
        raise TinyError(f"--seeds {spec}: seeds must be below 2^63")
    return range(lo, hi + 1)


GridAxis = tuple[str, list[Any]]


def parse_grid(items: Sequence[str]) -> list[GridAxis]:
    """`train.lr=0.01,0.03` -> ("train.lr", [0.01, 0.03]); each value a YAML scalar."""
    axes: list[GridAxis] = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise TinyError(f"--grid {item!r}: expected key.path=v1,v2,..., e.g. train.lr=0.01,0.1")
        if key == "seed":
            raise TinyError(f"--grid {item}: seed: sweep seeds with --seeds, not --grid")
        if any(key == k for k, _ in axes):
            raise TinyError(f"--grid {item}: {key}: given twice; list all its values in one --grid")
        values = [config.parse_override(f"{key}={v}")[1] for v in raw.split(",")]
        if len(set(map(repr, values))) != len(values):
            raise TinyError(f"--grid {item}: {key}: a value is repeated")
        axes.append((key, values))
    return axes


@dataclass(frozen=True)
class GridPoint:
    values: dict[str, Any]  # grid key -> value at this point ({} without --grid)
    cfg: ExperimentConfig

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values.items()) or "base config"


def grid_points(source: str, overrides: list[Override], axes: list[GridAxis]) -> list[GridPoint]:
    """Every combination of the grid's values, each validated through config.load."""
    points = []
    for combo in itertools.product(*(values for _, values in axes)):
        values = {key: v for (key, _), v in zip(axes, combo, strict=True)}
        extra = [(k, v, f"--grid {k}={v}") for k, v in values.items()]
        cfg, _ = config.load(source, overrides + extra)
        points.append(GridPoint(values, cfg))
    return points


# --- the batched model ------------------------------------------------------------------

Params = models.Params  # state_dict names -> [S, *shape]


def initial_params(cfg: ExperimentConfig, seeds: Sequence[int]) -> Params:
    """Seed k's parameters exactly as `models.build(cfg with seed=k)` makes them, stacked."""
    states = [models.build(cfg.model_copy(update={"seed": s})).state_dict() for s in seeds]
    return {k: torch.stack([st[k] for st in states]) for k in states[0]}


def forward(arch: models.Arch, params: Params, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Samples-first inputs [n, in] (shared) -> outputs [S, n] and ReLU layers [S, units, n]."""
    out, hidden = models.batched_forward(arch, params, x.T.unsqueeze(0))
    relu = [h for h, layer in zip(hidden, arch.layers, strict=False) if layer.activation == "relu"]
    return out[:, 0, :], relu


# --- batched training -------------------------------------------------------------------


@dataclass
class BatchedFit:
    params: Params  # final parameters; a diverged seed keeps its last finite ones
    epochs: Tensor  # [S] epochs completed with finite loss
    diverged: Tensor  # [S] bool


def fit_batched(
    cfg: ExperimentConfig,
    params: Params,
    x: Tensor,
    y: Tensor,
    seeds: Sequence[int],
    on_epoch: Callable[[int], None] | None = None,
) -> BatchedFit:
    """`train.fit` for S seeds at once: same batches, same updates, same divergence rule.

    A seed whose epoch loss or parameters stop being finite is frozen at its last finite
    parameters with the epochs it completed; its loss is masked out, so it cannot touch
    the others.
    """
    t = cfg.train
    arch = cfg.arch
    loss_fn = LOSSES[cfg.loss]
    n, s = len(x), len(seeds)
    full_batch = t.batch_size is None or t.batch_size >= n
    tensors = [nn.Parameter(v.detach().clone()) for v in params.values()]
    leaves: Params = dict(zip(params, tensors, strict=True))
    optimizer = make_optimizer(t.optimizer, tensors, t.lr, t.momentum, t.weight_decay)
    for group in optimizer.param_groups:
        # The same update rule in one fused CPU kernel per tensor: ~14% faster here than
        # foreach, and as close to train.fit's for-loop implementation (float rounding).
        group["fused"], group["foreach"] = True, False
    xt, yt = x.T.unsqueeze(0), y.T.unsqueeze(0)  # [1, in, n], [1, 1, n]
    gens = [] if full_batch else [torch.Generator().manual_seed(k) for k in seeds]
    with torch.no_grad():
        last_good = torch.cat([p.reshape(s, -1) for p in tensors], dim=1)
    alive = torch.ones(s, dtype=torch.bool)
    epochs_done = torch.zeros(s, dtype=torch.long)
    for _ in range(t.epochs):
        if full_batch:
            batches: list[tuple[Tensor, Tensor, int]] = [(xt, yt, n)]
        else:
            perm = torch.stack([torch.randperm(n, generator=g) for g in gens])
            batches = [
                (x[idx].transpose(1, 2), y[idx].transpose(1, 2), idx.shape[1])
                for idx in perm.split(t.batch_size or n, dim=1)
            ]
        total = torch.zeros(s)
        for xb, yb, size in batches:
            pred, _ = models.batched_forward(arch, leaves, xb)
            per_seed = loss_fn(pred, yb.expand_as(pred), reduction="none").mean(dim=(1, 2))  # type: ignore[call-arg]
            optimizer.zero_grad(set_to_none=True)
            per_seed.where(alive, 0.0).sum().backward()
            optimizer.step()
            total = total + per_seed.detach() * size if size < n else per_seed.detach()
        with torch.no_grad():
            now = torch.cat([p.reshape(s, -1) for p in tensors], dim=1)
            # finite * 0 is 0, inf * 0 and nan * 0 are nan: one cheap reduction per seed
            ok = alive & total.isfinite() & now.mul(0.0).sum(dim=1).eq(0.0)
            last_good = torch.where(ok.unsqueeze(1), now, last_good)
            epochs_done += ok
            alive = ok
        if on_epoch is not None:
            on_epoch(s)  # seed-epochs done
    final: Params = {}
    offset = 0
    for key, p in leaves.items():
        size = p[0].numel()
        final[key] = last_good[:, offset : offset + size].reshape(p.shape).clone()
        offset += size
    return BatchedFit(final, epochs_done, ~alive)


# --- outcomes ---------------------------------------------------------------------------


def classify(
    kind: str,
    pred: Tensor,
    y: Tensor,
    hidden: Sequence[Tensor] = (),
    diverged: Tensor | None = None,
    right: Tensor | None = None,
) -> Tensor:
    """Each seed's outcome on the full training data, as an index into OUTCOMES.

    `pred` is [S, n] (each seed's outputs), `y` the n targets, `hidden` the ReLU layers
    [S, units, n] before the output, `right` the right answers [S, n] of a classification
    (default: within 0.5 of the 0/1 target; the task's own rule is `tasks.Task.correct`).
    The first rule that holds wins:

    - diverged: the loss or the parameters stopped being finite (training kept the last
      finite parameters);
    - solved: accuracy 1.0 for classification (every training input answered right);
      for regression MSE <= REGRESSION_TOL (0.01);
    - stuck at mean: near-constant output, std(output) <= CONSTANT_EPS * std(target)
      (1%), at the target's mean, |mean(output) - mean(target)| <= MEAN_EPS * std(target)
      (5%): the article's "predicting the mean";
    - dead: near-constant output anywhere else, or a ReLU layer with no unit active
      (> 0) on any training input;
    - partial: anything else (learned something, not all of it).

    Std is the population std over the n training inputs.
    """
    s = len(pred)
    y = y.reshape(1, -1)
    target_std = float(y.std(correction=0)) or 1.0
    if kind == "classification":
        solved = (right if right is not None else (pred - y).abs() < 0.5).all(dim=1)
    else:
        solved = ((pred - y) ** 2).mean(dim=1) <= REGRESSION_TOL
    constant = pred.std(dim=1, correction=0) <= CONSTANT_EPS * target_std
    at_mean = (pred.mean(dim=1) - y.mean()).abs() <= MEAN_EPS * target_std
    layer_dead = torch.zeros(s, dtype=torch.bool)
    for h in hidden:
        layer_dead |= ~(h > 0).any(dim=2).any(dim=1)
    diverged = torch.zeros(s, dtype=torch.bool) if diverged is None else diverged
    finite = pred.isfinite().all(dim=1)
    outcome = torch.full((s,), OUTCOMES.index("partial"), dtype=torch.int8)
    rules = [
        ("dead", constant | layer_dead),
        ("stuck at mean", constant & at_mean),
        ("solved", solved),
        ("diverged", diverged | ~finite),
    ]
    for name, mask in rules:  # in reverse priority: later rules overwrite earlier ones
        outcome[mask] = OUTCOMES.index(name)
    return outcome


@dataclass
class Evaluation:
    loss: Tensor  # [S] the training loss on the full training data
    pred: Tensor  # [S, n] outputs
    hidden: list[Tensor]  # ReLU layers [S, units, n]
    right: Tensor | None  # [S, n] right answers, classification only
    accuracy: Tensor | None  # [S], classification only


@torch.no_grad()
def evaluate(cfg: ExperimentConfig, params: Params, x: Tensor, y: Tensor) -> Evaluation:
    """Per-seed final loss, accuracy (classification), outputs and ReLU layers."""
    task = cfg.task
    pred, hidden = forward(cfg.arch, params, x)
    target = y.reshape(1, -1).expand_as(pred)
    loss = LOSSES[cfg.loss](pred, target, reduction="none").mean(dim=1)  # type: ignore[call-arg]
    right = task.correct(pred, y.reshape(1, -1)) if task.kind == "classification" else None
    accuracy = right.float().mean(dim=1) if right is not None else None
    return Evaluation(loss, pred, hidden, right, accuracy)


# --- a whole grid point -----------------------------------------------------------------


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

    def summary(self) -> dict[str, Any]:
        """Counts and fractions per outcome, loss quantiles, time and throughput (JSON)."""
        s = len(self.seeds)
        counts = {name: int((self.outcome == i).sum()) for i, name in enumerate(OUTCOMES)}
        finite = self.loss[self.loss.isfinite()].double()
        qs = (0.0, 0.1, 0.5, 0.9, 1.0)
        quantiles = (
            {f"q{int(q * 100)}": float(torch.quantile(finite, q)) for q in qs}
            if len(finite)
            else {}
        )
        epochs = self.point.cfg.train.epochs
        return {
            "grid": self.point.values,
            "label": self.point.label,
            "seeds": s,
            "counts": counts,
            "fractions": {k: v / s for k, v in counts.items()},
            "loss": quantiles,
            "seconds": self.seconds,
            "seed_epochs_per_second": s * epochs / self.seconds if self.seconds > 0 else None,
        }


def chunk_size(cfg: ExperimentConfig, n_samples: int) -> int:
    """Seeds per batched model so that activations stay around CHUNK_FLOATS floats."""
    arch = cfg.arch
    widths = [arch.inputs] + [la.width for la in arch.layers]
    batch = min(cfg.train.batch_size or n_samples, n_samples)
    per_seed = 4 * batch * (sum(widths) + arch.inputs) + 8 * arch.n_parameters
    return max(1, min(MAX_CHUNK, CHUNK_FLOATS // per_seed))


def run_point(
    point: GridPoint,
    seeds: Sequence[int],
    on_epoch: Callable[[int], None] | None = None,
    chunk: int | None = None,
) -> PointResult:
    """Train every seed of one grid point, chunk by chunk; classify each seed's outcome."""
    cfg = point.cfg
    task = cfg.task
    x, y = task.data()
    chunk = chunk or chunk_size(cfg, len(x))
    n_chunks = math.ceil(len(seeds) / chunk)
    chunk = math.ceil(len(seeds) / n_chunks)  # equal chunks: no tiny last one
    start = time.perf_counter()
    parts: list[dict[str, Any]] = []
    for i in range(0, len(seeds), chunk):
        part = list(seeds[i : i + chunk])
        fitted = fit_batched(cfg, initial_params(cfg, part), x, y, part, on_epoch)
        ev = evaluate(cfg, fitted.params, x, y)
        outcome = classify(task.kind, ev.pred, y, ev.hidden, fitted.diverged, ev.right)
        parts.append(
            {
                "params": fitted.params,
                "loss": ev.loss,
                "accuracy": ev.accuracy,
                "epochs": fitted.epochs,
                "outcome": outcome,
            }
        )
    seconds = time.perf_counter() - start

    def cat(key: str) -> Tensor:
        return torch.cat([p[key] for p in parts])

    return PointResult(
        point=point,
        seeds=list(seeds),
        params={k: torch.cat([p["params"][k] for p in parts]) for k in parts[0]["params"]},
        loss=cat("loss"),
        accuracy=cat("accuracy") if parts[0]["accuracy"] is not None else None,
        epochs=cat("epochs"),
        outcome=cat("outcome"),
        seconds=seconds,
    )


def pick_seeds(result: PointResult, keep: int) -> list[tuple[int, str]]:
    """Up to `keep` seeds worth a full run: best, worst, one per outcome, then by loss."""
    order = torch.argsort(torch.nan_to_num(result.loss, nan=math.inf), stable=True).tolist()
    picks: list[tuple[int, str]] = []

    def add(index: int, why: str) -> None:
        if len(picks) < keep and all(index != i for i, _ in picks):
            picks.append((index, why))

    add(order[0], "best")
    add(order[-1], "worst")
    for code, name in enumerate(OUTCOMES):
        found = [i for i in order if int(result.outcome[i]) == code]
        if found:
            add(found[0], name)
    if len(picks) < keep:  # spread the rest evenly over the loss ranking, then fill
        step = len(order) / max(1, keep - len(picks) + 1)
        for j in range(1, len(order)):
            add(order[min(len(order) - 1, int(j * step))], "quantile")
        for i in order:
            add(i, "quantile")
    return [(result.seeds[i], why) for i, why in picks]


# --- the whole sweep, stored ------------------------------------------------------------


@dataclass
class SweepOutcome:
    run: runs.Run
    results: list[PointResult]
    summary: list[dict[str, Any]]
    kept: list[dict[str, Any]]


def _histogram(tag: str, values: Tensor, buckets: int = 30) -> Summary.Value:
    """A TensorBoard histogram of `values` (finite ones) in equal-width buckets."""
    v = values[values.isfinite()].double()
    lo, hi = (float(v.min()), float(v.max())) if len(v) else (0.0, 0.0)
    edges = torch.linspace(lo, hi, buckets + 1)[1:] if hi > lo else torch.tensor([hi])
    counts = torch.bucketize(v, edges.double()).bincount(minlength=len(edges))[: len(edges)]
    histo = HistogramProto(
        min=lo,
        max=hi,
        num=len(v),
        sum=float(v.sum()),
        sum_squares=float((v * v).sum()),
        bucket_limit=edges.tolist(),
        bucket=counts.double().tolist(),
    )
    return Summary.Value(tag=tag, histo=histo)


def _write_events(run: runs.Run, results: list[PointResult]) -> None:
    """Step i is grid point i: outcome counts as scalars, final losses as histograms."""
    writer = tracking.EventWriter(run.path)
    try:
        for i, r in enumerate(results):
            counts = r.summary()["counts"]
            scalars = [
                (f"outcomes/{name.replace(' ', '_')}", float(c)) for name, c in counts.items()
            ]
            writer.scalars(i, scalars)
            values = [_histogram("final_loss", r.loss)]
            positive = r.loss[r.loss > 0]
            if len(positive):
                values.append(_histogram("final_log10_loss", positive.log10()))
            writer.summary(i, Summary(value=values))
    finally:
        writer.close()


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
        points.append(point)
    data = {"seeds": torch.tensor(list(seeds)), "outcomes": list(OUTCOMES), "points": points}
    run.save_tensors(runs.SWEEP, data)


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
    threads: int = 1,
) -> SweepOutcome:
    """Train every grid point's seeds, classify them, store the sweep (and `keep` runs each)."""
    from tiny_cli import experiment

    run = runs.create(runs_root, f"{base.task.name}-sweep")
    run.write_text(runs.CONFIG, config.dump_yaml(base))
    grid = {"axes": {k: v for k, v in axes}, "points": [p.values for p in points]}
    run.write_json(runs.GRID, grid)
    run.write_json(
        runs.META,
        {
            "id": run.id,
            "kind": "sweep",
            "status": "running",
            "task": base.task.name,
            "arch": base.model.arch or base.arch.describe(),
            "init": ",".join(sorted({p.cfg.init.mode for p in points})),
            "seeds": [seeds.start, seeds.stop - 1],
            "n_seeds": len(seeds),
            "grid": grid["axes"],
            "epochs": max(p.cfg.train.epochs for p in points),
            "epochs_done": 0,
            "device": "cpu",
            "source": source,
            "command": sys.argv,
            "versions": experiment.versions(),
            "started": time.time(),
        },
    )
    previous_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        try:
            results = [run_point(p, seeds, on_epoch) for p in points]
        finally:
            torch.set_num_threads(previous_threads)
        summary = [r.summary() for r in results]
        _store_arrays(run, seeds, results)
        run.write_json(runs.SUMMARY, summary)
        losses = torch.cat([r.loss for r in results])
        finite = losses[losses.isfinite()]
        solved = sum(s["counts"]["solved"] for s in summary)
        run.write_json(
            runs.METRICS,
            {
                "seeds": len(seeds),
                "grid_points": len(points),
                "solved": solved / (len(seeds) * len(points)),
                "loss": float(finite.median()) if len(finite) else None,
            },
        )
        _write_events(run, results)
        kept: list[dict[str, Any]] = []
        for i, r in enumerate(results):
            for seed, why in pick_seeds(r, keep) if keep else []:
                cfg = r.point.cfg.model_copy(update={"seed": seed})
                out = experiment.run_experiment(cfg, runs_root=runs_root, source=source)
                kept.append({"point": i, "seed": seed, "why": why, "run": out.run.id})
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        run.update_meta(status=status, reason=f"{type(exc).__name__}: {exc}", finished=time.time())
        raise
    run.update_meta(
        status="completed",
        epochs_done=max(p.cfg.train.epochs for p in points),
        kept=kept,
        seconds=sum(r.seconds for r in results),
        finished=time.time(),
    )
    return SweepOutcome(run, results, summary, kept)
