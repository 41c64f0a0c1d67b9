"""Sweeps: many seeds of one config trained at once by the engine, and what became of each.

The engine (`engine.fit`) trains a chunk of seeds as one batched model; seed k of a sweep is
`tiny train --seed k`, bit for bit, whatever the chunk, the seed range or the thread count.
Each seed's final net is classified by `outcomes.classify`; the sweep is stored as one
directory among the runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensorboard.compat.proto.summary_pb2 import Summary
from torch import Tensor

from tiny_cli import config, engine, models, runs, tracking
from tiny_cli.config import ExperimentConfig, GridAxis, GridPoint
from tiny_cli.outcomes import OUTCOMES, classify, evaluate, pick_seeds

# Floats of activations (and their saved copies) allowed per chunk of seeds: ~0.5 GiB.
CHUNK_FLOATS = 1 << 27
MAX_CHUNK = 8192

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
        fitted = engine.fit(cfg, part, x, y, callbacks=[_counter(on_epoch, len(part))])
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


def _counter(on_epoch: Callable[[int], None] | None, seeds: int) -> engine.Callback:
    def count(e: engine.Epoch) -> None:
        if on_epoch is not None and e.epoch > 0:
            on_epoch(seeds)  # seed-epochs done

    return count


# --- the whole sweep, stored ------------------------------------------------------------


@dataclass
class SweepOutcome:
    run: runs.Run
    results: list[PointResult]
    summary: list[dict[str, Any]]
    kept: list[dict[str, Any]]


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
            values = [tracking.histogram_value("final_loss", r.loss)]
            positive = r.loss[r.loss > 0]
            if len(positive):
                values.append(tracking.histogram_value("final_log10_loss", positive.log10()))
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
        experiment.run_meta(
            run,
            base,
            "sweep",
            source,
            "cpu",
            init=",".join(sorted({p.cfg.init.mode for p in points})),
            seed=None,
            seeds=[seeds.start, seeds.stop - 1],
            n_seeds=len(seeds),
            grid=grid["axes"],
            epochs=max(p.cfg.train.epochs for p in points),
        ),
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
            for seed, why in pick_seeds(r.loss, r.outcome, r.seeds, keep) if keep else []:
                cfg = r.point.cfg.model_copy(update={"seed": seed})
                out = experiment.run_experiment(
                    cfg, runs_root=runs_root, source=source, extra_meta={"sweep": run.id}
                )
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
