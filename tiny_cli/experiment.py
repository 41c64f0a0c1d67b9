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
from torch.nn.utils import vector_to_parameters

from tiny_cli import __version__, config, models, plots, runs, tasks, tracking
from tiny_cli.config import ExperimentConfig
from tiny_cli.errors import RunFailed
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


def hparams_metrics() -> list[str]:
    """The final-metric tags that get a column in the HPARAMS table, the same for every run."""
    names = ["loss"] + [m for task in tasks.classes() for m in task.summary_metrics]
    return [f"final/{name}" for name in dict.fromkeys(names)]


@torch.no_grad()
def evaluate(
    cfg: ExperimentConfig, model: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> dict[str, Any]:
    """Final metrics on the training domain (and beyond it, as the task defines)."""
    f = tasks.predict_fn(model)
    pred = f(x)
    metrics: dict[str, Any] = {"loss": LOSSES[cfg.loss](pred.reshape(y.shape), y).item()}
    metrics.update(cfg.task.metrics(f, x, y, pred))
    metrics.update(models.derived(cfg.arch, models.flat_parameters(model).tolist()))
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


class _LastEpoch:
    """Remembers the last completed epoch's stats (and so its parameters) for a failure."""

    def __init__(self, stats: EpochStats) -> None:
        self.stats = stats

    def on_epoch_end(self, stats: EpochStats, model: nn.Module) -> None:
        self.stats = stats


def run_experiment(
    cfg: ExperimentConfig,
    *,
    kind: str = "train",
    runs_root: Path,
    source: str = "",
    device: str = "cpu",
    progress: Callback | None = None,
    origin: str | None = None,
) -> Outcome:
    """Build, train (zero epochs for a hardwired run), evaluate and store one run.

    The config is already validated, so a failure from here on is ours or the machine's:
    the run keeps the parameters of its last completed epoch, is marked failed (or
    interrupted, on a second Ctrl-C) and the traceback is saved in it; `RunFailed` says so
    in one line. The first Ctrl-C or SIGTERM ends training cleanly after the current epoch.
    """
    flag = _StopFlag()
    with _catch_signals(flag):
        task = cfg.task
        x, y = task.data()
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
                "arch": cfg.model.arch or cfg.arch.describe(),
                "init": cfg.init.mode,
                "seed": cfg.seed,
                "epochs": cfg.train.epochs,
                "epochs_done": 0,
                "device": device,
                "source": source,
                "from_run": origin,
                "command": sys.argv,
                "versions": versions(),
                "started": time.time(),
            },
        )
        tracker = tracking.Tracker(
            tracking.EventWriter(run.path),
            model,
            cfg.arch,
            cfg.log.every,
            picture=picture,
            images_every=cfg.log.image_interval(cfg.train.epochs),
        )
        last: _LastEpoch | None = None
        try:
            tracker.begin(config.flatten(cfg), config.flat_keys(), hparams_metrics(), run.id)
            dev = torch.device(device)
            model.to(dev)
            xd, yd = x.to(dev), y.to(dev)
            correct = task.correct if task.kind == "classification" else None
            t = cfg.train
            loss_name = cfg.loss
            with torch.no_grad():
                pred0 = model(xd)
                acc0 = correct(pred0, yd).float().mean().item() if correct else None
                loss0 = LOSSES[loss_name](pred0, yd).item()
                stats0 = EpochStats(0, loss0, acc0, models.flat_parameters(model))
            tracker.on_epoch_end(stats0, model)
            last = _LastEpoch(stats0)
            optimizer = make_optimizer(
                t.optimizer, model.parameters(), t.lr, t.momentum, t.weight_decay
            )
            callbacks: list[Callback] = [tracker, last]
            if progress is not None:
                callbacks.append(progress)
            result = fit(
                model, xd, yd, loss=loss_name, optimizer=optimizer, epochs=t.epochs,
                batch_size=t.batch_size, seed=cfg.seed, correct=correct, callbacks=callbacks,
                should_stop=flag,
            )  # fmt: skip
            model.cpu()
            metrics = evaluate(cfg, model, x, y)
            tracker.close(model, FINAL_STATUS[result.status], metrics)
            run.save_state(model.state_dict())
            run.write_json(runs.METRICS, metrics)
            final_png = tracker.final_png
            png = run.write_bytes(runs.PREDICTION, final_png) if final_png else None
        except BaseException as exc:
            raise _store_failure(run, model, tracker, last, exc) from exc
    run.update_meta(
        status=FINAL_STATUS[result.status],
        epochs_done=result.epochs,
        reason=result.reason,
        finished=time.time(),
    )
    params = {k: v.tolist() for k, v in model.state_dict().items()}
    return Outcome(run, result, metrics, params, png)


def _store_failure(
    run: runs.Run,
    model: nn.Module,
    tracker: tracking.Tracker,
    last: _LastEpoch | None,
    exc: BaseException,
) -> RunFailed:
    """Keep what the run reached, mark it, and say so in one line.

    The checkpoint and the event file end at the last completed epoch, whatever state the
    interrupted epoch left the model in; the event file is closed complete even if logging
    is what failed.
    """
    run.write_text("error.txt", traceback.format_exc())
    interrupted = isinstance(exc, KeyboardInterrupt)
    status = "interrupted" if interrupted else "failed"
    epochs = 0
    try:
        model.cpu()
        if last is not None:
            epochs = last.stats.epoch
            with torch.no_grad():
                vector_to_parameters(last.stats.params.cpu(), model.parameters())
            run.save_state(model.state_dict())
    finally:
        with contextlib.suppress(Exception):  # it closes the event file whatever fails
            tracker.close(model, status)
    reason = "aborted by a second Ctrl-C" if interrupted else f"{type(exc).__name__}: {exc}"
    run.update_meta(status=status, epochs_done=epochs, reason=reason, finished=time.time())
    what = "interrupted" if interrupted else f"failed ({reason.splitlines()[0]})"
    return RunFailed(
        f"run {run.id} {what} after epoch {epochs}; traceback in {run.path / 'error.txt'}",
        exit_code=130 if interrupted else 1,
    )
