"""One experiment end to end: config -> task + model -> train -> run directory.

`tiny hardwire` is the same path with the article's weights and zero epochs, so a hardwired
run and a trained run are stored, inspected and compared the same way.
"""

from __future__ import annotations

import contextlib
import platform
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tiny_cli import __version__, config, models, plots, runs, tasks, tracking
from tiny_cli.config import ExperimentConfig
from tiny_cli.train import LOSSES, Callback, EpochStats, FitResult, fit, make_optimizer


@dataclass
class Outcome:
    run: runs.Run
    result: FitResult
    metrics: dict[str, Any]
    params: dict[str, Any]  # parameter name -> nested lists (for rendering)
    picture: Path | None  # the final prediction picture, as a PNG in the run directory


FINAL_STATUS = {"completed": "completed", "diverged": "failed", "interrupted": "interrupted"}


def versions() -> dict[str, str]:
    return {"tiny": __version__, "torch": torch.__version__, "python": platform.python_version()}


def correct_fn(task: tasks.Task) -> Any:
    """Per-sample 'right' for classification tasks: output within 0.5 of the 0/1 target."""
    if task.kind != "classification":
        return None
    return lambda pred, y: (pred - y).abs() < 0.5


def hparams_metrics() -> list[str]:
    """The final-metric tags that get a column in the HPARAMS table, the same for every run."""
    names = ["loss"] + [m for task in tasks.TASKS.values() for m in task.summary_metrics]
    return [f"final/{name}" for name in dict.fromkeys(names)]


@torch.no_grad()
def evaluate(
    cfg: ExperimentConfig, model: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> dict[str, Any]:
    """Final metrics on the training domain (and beyond it, as the task defines)."""
    task = tasks.get(cfg.task)
    assert cfg.train.loss is not None
    pred = tasks.predict(model, x).reshape(y.shape)
    metrics: dict[str, Any] = {"loss": LOSSES[cfg.train.loss](pred, y).item()}
    metrics.update(task.metrics(model, cfg.task, x, y))
    metrics.update(models.derived(cfg.model.arch or "", models.flat_parameters(model).tolist()))
    return metrics


class _StopFlag:
    """First Ctrl-C / SIGTERM asks the loop to stop after this epoch; a second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self) -> bool:
        return self.signal is not None

    def handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum


@contextlib.contextmanager
def _catch_signals(flag: _StopFlag) -> Iterator[None]:
    previous = {s: signal.signal(s, flag.handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_experiment(
    cfg: ExperimentConfig,
    *,
    kind: str = "train",
    runs_root: Path,
    source: str = "",
    device: str = "cpu",
    progress: Callback | None = None,
) -> Outcome:
    """Build, train (zero epochs for a hardwired run), evaluate and store one run.

    The config is already validated, so every failure from here on is ours or the
    machine's: the run is marked failed with the traceback saved in the run directory.
    """
    task = tasks.get(cfg.task)
    x, y = task.data(cfg.task)
    model = models.build(cfg)
    picture = plots.PredictionPlot(cfg.task, x)
    run = runs.create(runs_root, cfg.task.name)
    run.write_text(runs.CONFIG, config.dump_yaml(cfg))
    run.write_json(
        runs.META,
        {
            "id": run.id,
            "kind": kind,
            "status": "running",
            "task": cfg.task.name,
            "arch": cfg.model.arch,
            "init": cfg.init.mode,
            "seed": cfg.seed,
            "epochs": cfg.train.epochs,
            "epochs_done": 0,
            "device": device,
            "source": source,
            "command": sys.argv,
            "versions": versions(),
            "started": time.time(),
        },
    )
    tracker = tracking.Tracker(
        tracking.EventWriter(run.path),
        model,
        cfg.model.arch or "",
        cfg.log.every,
        picture=picture,
        images_every=cfg.log.image_interval(cfg.train.epochs),
    )
    flag = _StopFlag()
    try:
        tracker.begin(config.flatten(cfg), config.flat_keys(), hparams_metrics(), group=run.id)
        dev = torch.device(device)
        model.to(dev)
        xd, yd = x.to(dev), y.to(dev)
        correct = correct_fn(task)
        assert cfg.train.loss is not None
        with torch.no_grad():
            pred0 = model(xd)
            acc0 = correct(pred0, yd).float().mean().item() if correct else None
            loss0 = LOSSES[cfg.train.loss](pred0, yd).item()
            tracker.on_epoch_end(EpochStats(0, loss0, acc0, models.flat_parameters(model)), model)
        t = cfg.train
        optimizer = make_optimizer(
            t.optimizer, model.parameters(), t.lr, t.momentum, t.weight_decay
        )
        callbacks: list[Callback] = [tracker] + ([progress] if progress else [])
        with _catch_signals(flag):
            result = fit(
                model, xd, yd, loss=t.loss or "mse", optimizer=optimizer, epochs=t.epochs,
                batch_size=t.batch_size, seed=cfg.seed, correct=correct, callbacks=callbacks,
                should_stop=flag,
            )  # fmt: skip
        model.cpu()
        metrics = evaluate(cfg, model, x, y)
        tracker.close(model, FINAL_STATUS[result.status], metrics)
        run.save_state(model.state_dict())
        run.write_json(runs.METRICS, metrics)
        png = run.write_bytes(runs.PREDICTION, tracker.final_png) if tracker.final_png else None
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        # Log the last epoch reached and close the event file complete (flushed, fsynced),
        # even if logging is what failed.
        with contextlib.suppress(Exception):
            tracker.close(model, status)
        tracker.writer.close()
        (run.path / "error.txt").write_text(traceback.format_exc())
        run.update_meta(status=status, reason=f"{type(exc).__name__}: {exc}", finished=time.time())
        raise
    run.update_meta(
        status=FINAL_STATUS[result.status],
        epochs_done=result.epochs,
        reason=result.reason,
        finished=time.time(),
    )
    params = {k: v.tolist() for k, v in model.state_dict().items()}
    return Outcome(run, result, metrics, params, png)
