"""One experiment end to end: config -> task + model -> train -> run directory.

`tiny hardwire` is the same path with the article's weights and zero epochs, so a hardwired
run and a trained run are stored, inspected and compared the same way.
"""

from __future__ import annotations

import contextlib
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.utils import vector_to_parameters

from tiny_cli import __version__, config, sidecar, tasks
from tiny_cli.app import resume as resuming
from tiny_cli.config import ExperimentConfig
from tiny_cli.errors import RunFailed
from tiny_cli.show import plots
from tiny_cli.spec import models
from tiny_cli.store import events, locks, runs, tracking
from tiny_cli.tasks import Task
from tiny_cli.train import curves, engine, inits, outcomes, stopping
from tiny_cli.train import data as datasets
from tiny_cli.train.data import Data
from tiny_cli.train.engine import LOSSES
from tiny_cli.train.held_out import GROK_EPOCHS, HELD_OUT


@dataclass(frozen=True)
class FitResult:
    """What became of one run's training."""

    status: Literal["completed", "diverged", "interrupted"]
    epochs: int  # epochs completed with finite loss
    reason: str = ""
    engine: str = "torch"  # which engine trained: "kernel" or "torch"


@dataclass
class Outcome:
    run: runs.Run
    result: FitResult
    metrics: dict[str, Any]
    params: dict[str, Any]  # parameter name -> nested lists (for rendering)
    picture: Path | None  # the final prediction picture, as a PNG in the run directory
    units: Path | None = None  # the hidden units' activations (none without hidden units)
    readout: dict[str, Any] | None = None  # `readout.Readout.as_dict()` of the final net
    readout_problem: str = ""  # why there is no read-out (a bug of ours: the run is fine)
    task: Task | None = None  # the run's task: how its meaning reads
    task_pictures: list[Path] = field(default_factory=list)  # `Task.pictures` (spectrum.png)


FINAL_STATUS = {"completed": "completed", "diverged": "failed", "interrupted": "interrupted"}


def versions() -> dict[str, str]:
    return {
        "tiny": __version__,
        "engine": str(engine.ENGINE),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def hparams_metrics() -> list[str]:
    """The final-metric tags that get a column in the HPARAMS table, the same for every run."""
    names = ["loss"] + [m for task in tasks.classes() for m in task.summary_metrics]
    names += datasets.TEST_METRICS
    return [f"final/{name}" for name in dict.fromkeys(names)]


@torch.no_grad()
def evaluate(
    cfg: ExperimentConfig,
    model: nn.Module,
    data: Data,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Final metrics on the training inputs (and beyond them, as the task defines): the loss
    on the targets trained on, the rest against the clean ones; with a test set, its
    `test_*` metrics (`data.TEST_METRICS`). A stop request is honoured between chunks of
    2^20 inputs (`stopping.Stopped`)."""
    f = cfg.task.net_fn(model, should_stop=should_stop)
    x, y = data.x, data.y
    pred = f(x)
    metrics: dict[str, Any] = {"loss": LOSSES[cfg.loss](pred.reshape(y.shape), y).item()}
    metrics.update(cfg.task.metrics(f, x, data.truth, pred))
    if data.has_test:
        metrics.update(datasets.test_metrics(cfg, f, data))
    metrics.update(cfg.task.derived(cfg.arch, models.flat_parameters(model).tolist()))
    return metrics


def run_meta(
    run: runs.Run,
    cfg: ExperimentConfig,
    kind: str,
    source: str,
    device: str,
    trainer: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """What a run's `run.json` starts as: what made it (runs and sweeps alike). Its
    versions say which engine trains it (`trainer`: "kernel" or "torch"; default `cfg`'s)."""
    trains = trainer or (engine.which(cfg, device) if cfg.train.epochs else "none")
    return {
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
        **({"split": datasets.prepare(cfg).summary()} if cfg.data is not None else {}),
        "source": source,
        "command": sys.argv,
        "versions": {**versions(), "trainer": trains},
        "started": time.time(),
        **runs.process_identity(),
        **extra,
    }


def run_experiment(
    cfg: ExperimentConfig,
    *,
    kind: str = "train",
    runs_root: Path,
    source: str = "",
    device: str = "cpu",
    progress: Callable[[tracking.EpochStats], None] | None = None,
    origin: str | None = None,
    extra_meta: dict[str, Any] | None = None,
    resume: runs.Run | None = None,
    painter: sidecar.Sidecar | None = None,
) -> Outcome:
    """Build, train (zero epochs for a hardwired run), evaluate and store one run.

    Training is `engine.fit` with one seed, so seed k here is seed k of any sweep, bit for
    bit. The config is already validated, so a failure from here on is ours or the
    machine's: the run keeps the parameters of its last completed epoch, is marked failed
    (or interrupted, on a second Ctrl-C) and the traceback is saved in it; `RunFailed` says
    so in one line. The first Ctrl-C or SIGTERM ends training cleanly before the next
    mini-batch, with the parameters of the last completed epoch.

    The training state is checkpointed (`checkpoint.pt`, atomically) every
    CHECKPOINT_EPOCHS epochs, at least every CHECKPOINT_SECONDS, and when training stops
    between epochs; `resume=` continues a stopped run from it in its own directory.

    Pictures and the read-out are made by `painter` (`sidecar.Sidecar`; default: here),
    the read-out once the run is stored. A stop request once the net is evaluated skips
    what is left of the pictures and the read-out within a fraction of a second: the run is
    stored whole (weights, metrics, event file), completed, and says what it skipped.
    """
    flag = stopping.StopFlag()
    painter = painter or sidecar.local()
    # the run locked until its record says how it ended
    with contextlib.ExitStack() as held, stopping.catch_signals(flag):
        if resume is not None:  # one process at a time: the lock first, then the checks
            held.enter_context(locks.hold(resume))
        state = resuming.checkpoint_state(cfg, resume) if resume is not None else None
        built = _build(cfg, kind)
        run, events_file = _open(
            cfg, kind, runs_root, source, device, origin, extra_meta, resume, state
        )
        if resume is None:
            held.enter_context(locks.hold(run))
        log = _EpochLog(run, cfg, built, painter, progress, events_file)
        try:
            if resume is None:
                log.begin(cfg, run.id)
            result = _train(run, cfg, built, log, flag, device, state)
            # A signal that stopped training leaves the evaluation and storing to run; one
            # that training never saw (0 epochs, the last epoch) stops what comes next.
            after = flag.from_now() if result.status == "interrupted" else flag
            metrics = evaluate(cfg, built.model, built.data, after)
            history = log.history(run, resumed=resume is not None)
            judged = log.held_out(run, resumed=resume is not None)
            drawing, reading = _read(
                painter, cfg, built.model, built.data, metrics, built.init_state, history,
                result, kind, judged,
            )  # fmt: skip
            drawn = _task_pictures(painter, cfg, built.model, built.init_state, result, kind)
            png, units, pictures = _store(
                run, built.model, log.tracker, result, metrics, drawing, after, drawn
            )
        except BaseException as exc:
            raise _store_failure(run, built.model, log.tracker, log.last, exc) from exc
        outcome = _finish(
            run, result, metrics, built.model, png, units, reading, cfg.task, after, judged
        )
        outcome.task_pictures = pictures
        return outcome


@dataclass
class _Built:
    """What one run trains: the task's data (split, with noise, as the config says), the
    model (its init), the init's state (for the read-out) and the prediction picture's
    layout."""

    data: Data
    model: nn.Module
    init_state: dict[str, Any]
    picture: plots.PredictionPlot


def _build(cfg: ExperimentConfig, kind: str) -> _Built:
    data = datasets.prepare(cfg)
    model = inits.build(cfg)
    init_state = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
    picture = plots.PredictionPlot(
        cfg.task, data.domain, hardwired=kind == "hardwire", labels=data.domain_labels(),
        test=data.test_rows,
    )  # fmt: skip
    return _Built(data, model, init_state, picture)


def _open(
    cfg: ExperimentConfig,
    kind: str,
    runs_root: Path,
    source: str,
    device: str,
    origin: str | None,
    extra_meta: dict[str, Any] | None,
    resume: runs.Run | None,
    state: engine.State | None,
) -> tuple[runs.Run, Path | None]:
    """The run's directory: a new one with its config and run.json, or the stopped run
    `resume`, marked running again (`resume.reopen`); and the event file to go on with."""
    if resume is None or state is None:
        run = runs.create(runs_root, cfg.task.name)
        run.write_text(runs.CONFIG, config.dump_yaml(cfg))
        meta = run_meta(run, cfg, kind, source, device, from_run=origin, **(extra_meta or {}))
        run.write_json(runs.META, meta)
        return run, None
    return resume, resuming.reopen(resume, state)


class _EpochLog:
    """The engine's callback for one run: each epoch to the tracker (the event file), the
    heartbeat and `progress`. Keeps the last epoch (what a failure stores) and the losses at
    the logged epochs, as the event file has them (the read-out's history)."""

    def __init__(
        self,
        run: runs.Run,
        cfg: ExperimentConfig,
        built: _Built,
        painter: sidecar.Sidecar,
        progress: Callable[[tracking.EpochStats], None] | None,
        events_file: Path | None = None,
    ) -> None:
        self.tracker = tracking.Tracker(
            events.EventWriter(run.path, append=events_file),
            built.model,
            cfg.arch,
            cfg.log.every,
            task=cfg.task,
            picture=built.picture,
            images_every=cfg.log.image_interval(cfg.train.epochs),
            painter=painter,
            has_test=built.data.has_test,
        )
        self.every = cfg.log.every
        self.last: tracking.EpochStats | None = None
        self.losses: list[float] = []
        self.beat = runs.Heartbeat(run)
        self.progress = progress
        # with a test set: when the training and the test inputs were first solved
        self.solved = curves.FirstSolved(cfg, 1) if built.data.has_test else None

    def begin(self, cfg: ExperimentConfig, run_id: str) -> None:
        """A new run's step 0: the charts' layout, the HPARAMS experiment and session."""
        self.tracker.begin(config.flatten(cfg), config.flat_keys(), hparams_metrics(), run_id)

    def __call__(self, e: engine.Epoch) -> None:
        stats = epoch_stats(e)
        self.last = stats
        if self.solved is not None:
            self.solved(e)
        if stats.epoch % self.every == 0:
            self.losses.append(stats.loss)
        self.tracker.on_epoch_end(stats)
        self.beat(stats.epoch)
        if self.progress is not None:
            self.progress(stats)

    def held_out(self, run: runs.Run, resumed: bool) -> dict[str, Any] | None:
        """With a test set: the held-out outcome (`outcomes.held_out`), its delay and the
        epochs each side was first solved (None: never), for run.json and the read-out;
        None without a test set or where the rule cannot be applied per epoch. A resumed
        run's epochs before it stopped are read from its event file (at the logged epochs:
        its training side then to within `log.every`)."""
        solved = self.solved
        if solved is None or not solved.judged:
            return None
        if resumed:
            self.tracker.writer.flush()
            for seen, side in ((solved.train, ""), (solved.test, "test_")):
                was = _first_solved_logged(run, solved.kind, side)
                if was is not None and (int(seen[0]) < 0 or was < int(seen[0])):
                    seen[0] = was
        code, delay = outcomes.held_out(solved.train, solved.test)
        first = {k: int(v[0]) for k, v in (("train", solved.train), ("test", solved.test))}
        return {
            "outcome": HELD_OUT[int(code[0])],
            "delay": int(delay[0]) if int(delay[0]) >= 0 else None,
            "train_solved": first["train"] if first["train"] >= 0 else None,
            "test_solved": first["test"] if first["test"] >= 0 else None,
            "grok_epochs": GROK_EPOCHS,
        }

    def history(self, run: runs.Run, resumed: bool) -> list[float]:
        """The loss at every logged epoch, the last one reached included (it is always
        logged); a resumed run's from its event file, which holds the epochs before too."""
        if self.last is not None and self.last.epoch % self.every:
            self.losses.append(self.last.loss)
        if not resumed:
            return self.losses
        self.tracker.writer.flush()  # what this process logged, too
        return tracking.scalar_history(run.path)


def _first_solved_logged(run: runs.Run, kind: str, side: str) -> int | None:
    """The first logged epoch at which the run's event file says a side (`""`: training,
    `"test_"`) was solved (`outcomes.solved`, the test side's `test_solved`, on its logged
    accuracy, or loss as MSE)."""
    tag = f"metrics/{side}accuracy" if kind == "classification" else f"metrics/{side}loss"
    rule = outcomes.test_solved if side else outcomes.solved
    for step, value in tracking.scalar_points(run.path, tag):
        v = torch.tensor([value])
        if bool(rule(kind, v, v)[0]):
            return step
    return None


def _train(
    run: runs.Run,
    cfg: ExperimentConfig,
    built: _Built,
    log: _EpochLog,
    flag: stopping.StopFlag,
    device: str,
    state: engine.State | None,
) -> FitResult:
    """`engine.fit` with the run's one seed; the parameters it ends with go into the model."""
    task = cfg.task
    correct = task.correct if task.kind == "classification" else None
    split = str(built.data.summary()["test_rows"]) if built.data.has_test else None
    saver = _Checkpointer(run, config.fingerprint(cfg), log.tracker.writer.flush, split)
    data = built.data
    fitted = engine.fit(
        cfg, [cfg.seed], data.x, data.y, correct=correct, callbacks=[log], should_stop=flag,
        device=device, checkpoint=saver, resume=state, truth=data.truth,
        test=(data.x_test, data.y_test) if data.has_test else None, test_every=cfg.log.every,
    )  # fmt: skip
    result = _result(fitted)
    built.model.load_state_dict({k: v[0] for k, v in fitted.params.items()})
    return result


def _store(
    run: runs.Run,
    model: nn.Module,
    tracker: tracking.Tracker,
    result: FitResult,
    metrics: dict[str, Any],
    drawing: sidecar.Pending | None,
    should_stop: Callable[[], bool],
    task_pictures: Sequence[tuple[str, sidecar.Pending]] = (),
) -> tuple[Path | None, Path | None, list[Path]]:
    """The run's files: units.png and the task's pictures (`Task.pictures`: spectrum.png),
    once drawn, in the event file too; the event file closed with the final metrics and
    status, model.pt, metrics.json and prediction.png; the checkpoint goes once the run
    completed (model.pt is final). Returns the pictures: prediction.png and units.png, None
    for one a stop request skipped (`should_stop`, asked while they are drawn), and the
    task's that were drawn."""
    units = None
    if drawing is not None:
        with contextlib.suppress(stopping.Stopped):
            units_png = drawing.result(tracking.stopping_on(should_stop))
            tracker.final_image(tracking.UNITS_TAG, units_png)
            units = run.write_bytes(runs.UNITS, units_png)
    pictures = []
    for name, pending in task_pictures:
        with contextlib.suppress(stopping.Stopped):
            picture_png = pending.result(tracking.stopping_on(should_stop))
            tracker.final_image(tracking.task_picture_tag(name), picture_png)
            pictures.append(run.write_bytes(name, picture_png))
    tracker.close(FINAL_STATUS[result.status], metrics, should_stop)
    run.save_state(model.state_dict())
    run.write_json(runs.METRICS, metrics)
    final_png = tracker.final_png
    png = run.write_bytes(runs.PREDICTION, final_png) if final_png else None
    if result.status == "completed":
        (run.path / runs.CHECKPOINT_STATE).unlink(missing_ok=True)
    return png, units, pictures


def _finish(
    run: runs.Run,
    result: FitResult,
    metrics: dict[str, Any],
    model: nn.Module,
    png: Path | None,
    units: Path | None,
    reading: Callable[[], sidecar.Pending],
    task: Task,
    should_stop: Callable[[], bool],
    held: dict[str, Any] | None = None,
) -> Outcome:
    """Mark the run finished in run.json (with its held-out outcome, given a test set); its
    outcome, with the read-out (started by `reading`) once it is made, or without it once
    `should_stop` says so."""
    run.update_meta(
        status=FINAL_STATUS[result.status],
        epochs_done=result.epochs,
        reason=result.reason,
        finished=time.time(),
        **({"held_out": held} if held is not None else {}),
    )
    params = {k: v.tolist() for k, v in model.state_dict().items()}
    found, problem = None, ""
    try:
        if should_stop():
            raise stopping.Stopped("stopped before the read-out")
        found = reading().result(tracking.stopping_on(should_stop))
    except (stopping.Stopped, KeyboardInterrupt):  # the run is stored whole, completed
        skipped = "read-out" if png is not None else "final picture and read-out"
        problem = f"{skipped} skipped (stopped by a signal); tiny inspect {run.id} reads it"
    except Exception as exc:  # the run is stored whole; only its read-out is missing
        problem = f"no read-out ({type(exc).__name__}: {str(exc).splitlines()[0]})"
    return Outcome(run, result, metrics, params, png, units, found, problem, task)


def _read(
    painter: sidecar.Sidecar,
    cfg: ExperimentConfig,
    model: nn.Module,
    split: Data,
    metrics: dict[str, Any],
    init_state: dict[str, Any],
    losses: list[float],
    result: FitResult,
    kind: str,
    held: dict[str, Any] | None = None,
) -> tuple[sidecar.Pending | None, Callable[[], sidecar.Pending]]:
    """Start, in the sidecar, the drawing of `units.png` (None for a net without hidden
    units); and how to start the read-out of the trained net (`readout.read`), which the
    caller does once the run is stored. What needs torch is done here: the read-out's
    verdict (the one outcome rule shared with sweeps)."""
    from tiny_cli.read import arrays, diagnose
    from tiny_cli.show import unitplot

    arch, task = cfg.arch, cfg.task
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    data = (split.x.cpu().numpy(), split.truth.cpu().numpy().reshape(len(split.x), -1))
    net = arrays.from_state(arch, state)
    diverged = result.status == "diverged"
    run = arrays.forward(net, data[0])  # once, for the verdict and the units' liveness
    verdict = diagnose.outcome(task, run, *data, net, diverged)
    when = "hardwired" if kind == "hardwire" else f"epoch {result.epochs}"
    title = f"{task.picture_title()}, {when}"  # expr: its expression
    units = unitplot.unit_data(net, data[0], task.unit_names(), title, run, task.plane())
    drawing = painter.call("units", units) if units is not None else None
    hand = task.construction_for(cfg.init, arch)
    construction = None
    if hand:
        weights = hand.weights()
        construction = (arch, {k: v.detach().cpu().numpy() for k, v in weights.items()})
    options = {
        "metrics": metrics,
        "init_state": init_state,
        "losses": losses,
        "diverged": diverged,
        "construction": construction,
        "data": data,
        "verdict": verdict,
        **({"split": _split(task, model, split, held)} if split.has_test else {}),
    }
    return drawing, lambda: painter.call("readout", arch, state, task, options)


def _task_pictures(
    painter: sidecar.Sidecar,
    cfg: ExperimentConfig,
    model: nn.Module,
    init_state: dict[str, Any],
    result: FitResult,
    kind: str,
) -> list[tuple[str, sidecar.Pending]]:
    """Start, in the sidecar, the drawing of the task's own pictures (`Task.pictures`) of
    the run's first logged epoch (epoch 0: the init) and its last; of one net when it never
    trained (hardwired). Each with its file name."""
    from tiny_cli.read import arrays

    last = arrays.from_state(
        cfg.arch, {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    )
    if kind == "hardwire" or not result.epochs:
        nets = [("hardwired" if kind == "hardwire" else "epoch 0", last)]
    else:
        nets = [
            ("epoch 0", arrays.from_state(cfg.arch, init_state)),
            (f"epoch {result.epochs}", last),
        ]
    pictures = cfg.task.pictures(nets)
    unknown = [p.name for p in pictures if p.name not in cfg.task.picture_files]
    if unknown:  # a task's bug: the report would not find the file
        raise ValueError(f"task {cfg.task.name}: {unknown[0]} is not one of its picture_files")
    return [(p.name, painter.call("task_picture", p)) for p in pictures]


def _split(task: Task, model: nn.Module, data: Data, held: dict[str, Any] | None) -> Any:
    """The read-out's `split`: how right the net is on each side, and the held-out outcome."""
    scores: dict[str, Any] = datasets.scores(task, task.net_fn(model), data)
    return scores | ({"held_out": held} if held is not None else {})


CHECKPOINT_EPOCHS = 1000
CHECKPOINT_SECONDS = 30.0


class _Checkpointer:
    """The engine's checkpoint callback: the training state into `checkpoint.pt` every
    CHECKPOINT_EPOCHS epochs, at least every CHECKPOINT_SECONDS, and when forced."""

    def __init__(
        self, run: runs.Run, made: str, flush: Callable[[], None], split: str | None = None
    ) -> None:
        self.run = run
        self.made = made  # the config's fingerprint, checked by a resume
        self.split = {resuming.SPLIT: split} if split else {}  # the held-out rows, too
        self.flush = flush  # the event file's: it holds every epoch up to the checkpoint
        self._due = time.monotonic() + CHECKPOINT_SECONDS

    def __call__(self, epoch: int, snapshot: Callable[[], engine.State], force: bool) -> None:
        now = time.monotonic()
        if force or epoch % CHECKPOINT_EPOCHS == 0 or now >= self._due:
            self.flush()  # first: a resume goes on from the checkpoint, in the event file too
            state = {**snapshot(), resuming.FINGERPRINT: self.made, **self.split}
            self.run.save_tensors(runs.CHECKPOINT_STATE, state)
            self._due = now + CHECKPOINT_SECONDS


def epoch_stats(e: engine.Epoch) -> tracking.EpochStats:
    """The engine's epoch of a one-seed run, as the tracker logs it."""
    return tracking.EpochStats(
        e.epoch,
        float(e.loss[0]),
        float(e.accuracy[0]) if e.accuracy is not None else None,
        lambda: e.params[0],
        lambda: e.grads[0] if e.grads is not None else None,
        float(e.test_loss[0]) if e.test_loss is not None else None,
        float(e.test_accuracy[0]) if e.test_accuracy is not None else None,
    )


def _result(fitted: engine.Result) -> FitResult:
    done, by = int(fitted.epochs[0]), fitted.engine
    if bool(fitted.diverged[0]):
        loss = float(fitted.diverged_at[0])
        return FitResult("diverged", done, f"loss became {loss} at epoch {done + 1}", by)
    if fitted.status == "interrupted":
        return FitResult("interrupted", done, f"stopped by a signal after epoch {done}", by)
    return FitResult("completed", done, engine=by)


def _store_failure(
    run: runs.Run,
    model: nn.Module,
    tracker: tracking.Tracker,
    last: tracking.EpochStats | None,
    exc: BaseException,
) -> RunFailed:
    """Keep what the run reached, mark it, and say so in one line, whatever else fails
    (a full disk included: the status is written first, then the rest as far as it goes).

    The checkpoint and the event file end at the last completed epoch, whatever state the
    interrupted epoch left the model in; the event file is closed complete (on a whole
    record) even if logging is what failed.
    """
    trace = traceback.format_exc()
    interrupted = isinstance(exc, KeyboardInterrupt | stopping.Stopped)
    status = "interrupted" if interrupted else "failed"
    epochs = last.epoch if last is not None else 0
    if isinstance(exc, stopping.Stopped):
        reason = str(exc)
    elif interrupted:
        reason = "aborted by a second Ctrl-C"
    elif isinstance(exc, OSError) and exc.strerror:
        reason = f"{exc.strerror} ({type(exc).__name__}, errno {exc.errno})"
    else:
        reason = f"{type(exc).__name__}: {exc}"
    with contextlib.suppress(Exception):  # the event file first: it frees a partial record
        tracker.close(status)
    try:
        run.update_meta(status=status, epochs_done=epochs, reason=reason, finished=time.time())
    except OSError:
        run.overwrite_meta(status=status, epochs_done=epochs, reason=reason, finished=time.time())
    saved = ""
    if last is not None:
        try:
            model.cpu()
            with torch.no_grad():
                vector_to_parameters(last.params.cpu(), model.parameters())
            run.save_state(model.state_dict())
        except OSError:
            saved = " (its last checkpoint is kept)"
    if interrupted:  # asked for: no traceback to look at
        return RunFailed(f"run {run.id} interrupted after epoch {epochs}{saved} ({reason})", 130)
    where = run.path / "error.txt"
    try:
        run.write_text("error.txt", trace)
        told = f"traceback in {where}"
    except OSError:
        told = "no room for its traceback"
    return RunFailed(
        f"run {run.id} failed ({reason.splitlines()[0]}) after epoch {epochs}{saved}; {told}",
        exit_code=1,
    )
