"""What a run shows in TensorBoard: the training callback (`Tracker`) and its read-back.

Everything a run shows goes into the one event file in its own directory (events.py), so a
run directory is one TensorBoard run (`add_hparams` would make a timestamped sub-run):

- step 0: the CUSTOM SCALARS layout, the HPARAMS experiment and this run's session;
- every logged epoch: `metrics/*`, every parameter element, `mechanism/*`, `grad_norm/*`,
  and with a test set `progress/*` (the weight norm, the task's `progress` measures);
- IMAGES `prediction`: the model against the truth at the start, every K epochs, the end;
- IMAGES `units`: the hidden units' activations, once, at the last epoch reached;
- IMAGES `task/*`: the task's own pictures (modular's `task/spectrum`), likewise;
- at the end: `final/*` (the run's final metrics) and the HPARAMS session's status.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.nn.utils import vector_to_parameters

from tiny_cli import sidecar
from tiny_cli.errors import Stopped
from tiny_cli.spec import models
from tiny_cli.store import events
from tiny_cli.store.events import EventWriter, ScalarEvent, image_summary, layout_summary, png_size
from tiny_cli.store.hparams import SESSION_END_INFO_TAG, hparams_summaries, session_end_summary
from tiny_cli.tasks import Task

IMAGE_TAG = "prediction"
PROGRESS_NORM = "progress/weight_norm"  # the norm of every parameter together
UNITS_TAG = "units"
TASK_PICTURES = "task/"  # the tags of a task's own pictures (`Task.pictures`): task/spectrum
MAX_PARAM_SCALARS = 4096  # a bigger net logs no scalar per parameter (2 x 1024: 160 MB/6 epochs)


def final_scalars(metrics: Mapping[str, Any]) -> list[tuple[str, float]]:
    """`final/<key>` for each numeric final metric; a list's entries as `final/<key>[i]`."""
    out = []
    for key, value in metrics.items():
        items = enumerate(value) if isinstance(value, list | tuple) else [(None, value)]
        for i, v in items:
            if isinstance(v, int | float) and not isinstance(v, bool):
                out.append((f"final/{key}" + ("" if i is None else f"[{i}]"), float(v)))
    return out


def progress_charts(measures: Sequence[str], accuracy: bool = True) -> dict[str, list[str]]:
    """The CUSTOM SCALARS `progress` category of a run: side by side, so the moment of
    grokking shows on one x axis, the training and test accuracy (loss, for a regression),
    the total weight norm, and each of the task's progress measures (`Task.progress`)."""
    what = "accuracy" if accuracy else "loss"
    charts = {
        f"{what}: training and test": [rf"^metrics/(test_)?{what}$"],
        "total weight norm": [f"^{re.escape(PROGRESS_NORM)}$"],
    }
    for name in measures:
        charts[name] = [f"^progress/{re.escape(name)}$"]
    return charts


# --- the training callback --------------------------------------------------------------


class Picture(Protocol):
    """`plots.PredictionPlot`: a fixed layout, and each picture's numbers from the model."""

    @property
    def size(self) -> tuple[int, int]: ...

    @property
    def layout(self) -> Any: ...

    def frame(self, model: nn.Module, epoch: int) -> Any: ...


class EpochStats:
    """One run's epoch, as the tracker logs it. `params` and `grads` may be given as
    functions, read when first used: most epochs are not logged, and copying every
    parameter out each epoch cost a tenth of `tiny train modadd`. A function must give
    this epoch's values when it is called: during the epoch's callback, or (the tracker's
    last epoch between logging points) once training has stopped after it."""

    def __init__(
        self,
        epoch: int,
        loss: float,
        accuracy: float | None,
        params: Tensor | Callable[[], Tensor],
        grads: Tensor | Callable[[], Tensor | None] | None,
        test_loss: float | None = None,
        test_accuracy: float | None = None,
    ) -> None:
        self.epoch = epoch  # parameters are those after this many epochs (0: the init)
        self.loss = loss  # mean loss over the epoch's batches, each measured before its step
        self.accuracy = accuracy  # classification only
        # on the held-out inputs (a config's `data.train_fraction` < 1), at the logged epochs
        self.test_loss = test_loss
        self.test_accuracy = test_accuracy
        self._params, self._grads = params, grads

    @functools.cached_property
    def params(self) -> Tensor:
        """[P] every parameter, flat, in `model.parameters()` order."""
        p = self._params
        return p if isinstance(p, Tensor) else p()

    @functools.cached_property
    def grads(self) -> Tensor | None:
        """[P] the gradient of the epoch's last batch (None at the init)."""
        g = self._grads
        return g if g is None or isinstance(g, Tensor) else g()


class Tracker:
    """Training callback: loss, accuracy, every parameter element, derived quantities and
    gradient norms per layer as scalars; pictures of the prediction.

    Logs epoch 0 (the init), every `every` epochs, and always the last epoch reached, even
    when training stops early. Pictures: epoch 0, every `images_every` epochs (0: none
    between) and the last epoch, computed from `model` (any module of the architecture: the
    epoch's parameters are loaded into it for each picture) and drawn by `painter` (a
    `sidecar.Sidecar`: another process, so training goes on meanwhile); each is written to
    the event file, at its own step, once it is drawn.
    """

    def __init__(
        self,
        writer: EventWriter,
        model: nn.Module,
        arch: models.Arch,
        every: int,
        *,
        task: Task | None = None,
        picture: Picture | None = None,
        images_every: int = 0,
        painter: sidecar.Sidecar | None = None,
        has_test: bool = False,
    ) -> None:
        self.writer = writer
        self.has_test = has_test  # a test set: its loss and accuracy beside the training's
        self.arch = arch
        self.every = every
        self.picture = picture
        self.images_every = images_every
        tags = models.parameter_tags(model)
        self.param_tags = tags if len(tags) <= MAX_PARAM_SCALARS else []
        self.final_png: bytes | None = None
        self.painter = painter or sidecar.local()
        self._drawing: list[tuple[int, sidecar.Pending]] = []
        self.model = model
        # Gradient norm per module: each module's slice of the flat gradient vector (the
        # parameters of a module are adjacent in `parameters()` order).
        groups: dict[str, list[int]] = {}
        offset = 0
        for name, p in model.named_parameters():
            bounds = groups.setdefault(name.rpartition(".")[0], [offset, offset])
            offset += p.numel()
            bounds[1] = offset
        self._grad_slices = [slice(lo, hi) for lo, hi in groups.values()]
        self._grad_tags = [f"grad_norm/{module}" for module in groups]
        # The task's mechanism scalars (`Task.derived`), their names from the initial weights.
        self.task = task
        flat = models.flat_parameters(model).tolist()
        self._derived_tags = [f"mechanism/{k}" for k in self._derived(flat)]
        # Progress measures (Nanda et al.): the weight norm and the task's own, with a test
        # set or a task that has measures of its own (`Task.progress`).
        measures = self._task_progress(torch.tensor([flat]))
        self._progress_tags = (
            [PROGRESS_NORM, *(f"progress/{k}" for k in measures)] if has_test or measures else []
        )
        self._events: dict[tuple[bool, bool, bool], ScalarEvent] = {}
        self._pending: EpochStats | None = None
        self._last: EpochStats | None = None
        self._last_image = -1

    def begin(
        self,
        hparams: Mapping[str, Any],
        kinds: Mapping[str, str],
        metric_tags: Sequence[str],
        group: str,
    ) -> None:
        """Step 0: the custom-scalars layout and the HPARAMS experiment and session."""
        self.writer.summary(0, layout_summary(self._layout))
        for summary in hparams_summaries(hparams, kinds, metric_tags, group):
            self.writer.summary(0, summary)

    @property
    def _layout(self) -> dict[str, dict[str, list[str]]]:
        """One chart per layer with its weights and biases together (the article's figure),
        one for loss and accuracy (with a test set: one for the training and test loss, one
        for the training and test accuracy), one for the gradient norms, one for the mechanism.

        Charts match tags by regex, so the same layer of another run of the same architecture
        lands on the same chart (TensorBoard merges the layouts of all runs).
        """
        layers = {tag.partition("/")[0]: None for tag in self.param_tags}
        charts: dict[str, dict[str, list[str]]] = {
            "metrics": {"loss and accuracy": [r"^metrics/"]}
            if not self.has_test
            else {
                "loss: training and test": [r"^metrics/(test_)?loss$"],
                "accuracy: training and test": [r"^metrics/(test_)?accuracy$"],
            },
            "parameters": {f"layer {m}: weight and bias": [f"^{re.escape(m)}/"] for m in layers},
            "gradients": {"gradient norm per layer": [r"^grad_norm/"]},
        }
        if self._derived_tags:
            names = " and ".join(tag.partition("/")[2] for tag in self._derived_tags)
            charts["mechanism"] = {names: [r"^mechanism/"]}  # lt: "threshold and steepness"
        if self._progress_tags:
            charts["progress"] = progress_charts(
                [t.partition("/")[2] for t in self._progress_tags[1:]],
                accuracy=self.task is None or self.task.kind == "classification",
            )
        return charts

    def _scalar_event(self, has_accuracy: bool, has_grads: bool, tested: bool) -> ScalarEvent:
        """One per tag layout: with or without accuracy, with or without gradients (none at
        the init), with or without the test set's loss and accuracy."""
        key = (has_accuracy, has_grads, tested)
        if key not in self._events:
            tags = ["metrics/loss"] + (["metrics/accuracy"] if has_accuracy else [])
            if tested:
                tags += ["metrics/test_loss"] + (["metrics/test_accuracy"] if has_accuracy else [])
            tags += self.param_tags + self._derived_tags + (self._grad_tags if has_grads else [])
            tags += self._progress_tags
            self._events[key] = ScalarEvent(tags)
        return self._events[key]

    def _derived(self, params: Sequence[float]) -> dict[str, float]:
        return self.task.derived(self.arch, params) if self.task is not None else {}

    def _task_progress(self, params: Tensor) -> dict[str, Tensor]:
        return self.task.progress(self.arch, params) if self.task is not None else {}

    def _progress(self, params: Tensor) -> list[float]:
        """The weight norm and the task's progress measures, in `_progress_tags`' order."""
        if not self._progress_tags:
            return []
        flat = params.reshape(1, -1)
        measures = self._task_progress(flat)
        return [float(flat.double().norm()), *(float(v.reshape(-1)[0]) for v in measures.values())]

    def _grad_norms(self, grads: Tensor | None) -> list[float]:
        if grads is None:
            return []  # before the first step (the init) there are no gradients
        # a norm op per module (measured: modadd, 24k parameters, 35 us; tolist and hypot 0.9 ms)
        wide = grads.double()
        return torch.stack([wide[s].norm() for s in self._grad_slices]).tolist()

    def log(self, stats: EpochStats) -> None:
        """One Event with every scalar of this epoch."""
        # plain floats only where they are logged or a task's mechanism reads them: a
        # big net's (modadd: 24k) would cost more than its training step
        wanted = self.param_tags or self._derived_tags
        params = stats.params.tolist() if wanted else []
        values = [stats.loss] + ([stats.accuracy] if stats.accuracy is not None else [])
        tested = stats.test_loss is not None
        if stats.test_loss is not None:
            values.append(stats.test_loss)
            if stats.accuracy is not None:
                values.append(math.nan if stats.test_accuracy is None else stats.test_accuracy)
        values += params if self.param_tags else []
        values += self._derived(params).values() if self._derived_tags else []
        norms = self._grad_norms(stats.grads)
        values += norms
        values += self._progress(stats.params)
        event = self._scalar_event(stats.accuracy is not None, bool(norms), tested)
        self.writer.write(event.fill(stats.epoch, values))
        self._pending = None

    def image(self, stats: EpochStats) -> None:
        epoch = stats.epoch
        if self.picture is None or epoch == self._last_image:
            return
        with torch.no_grad():
            vector_to_parameters(stats.params.to(_device(self.model)), self.model.parameters())
        frame = self.picture.frame(self.model, epoch)
        self._drawing.append((epoch, self.painter.call("picture", self.picture.layout, frame)))
        self._last_image = epoch
        self._write_drawn(wait=False)

    def _write_drawn(self, wait: bool, should_stop: Callable[[], bool] | None = None) -> None:
        """Write the pictures drawn so far, in order (all of them with `wait`; `Stopped` when
        `should_stop` says so while waiting)."""
        while self._drawing and (wait or self._drawing[0][1].done()):
            epoch, pending = self._drawing.pop(0)
            png = pending.result(stopping_on(should_stop))
            width, height = self.picture.size if self.picture else (0, 0)
            self.writer.summary(epoch, image_summary(IMAGE_TAG, png, width, height))
            self.final_png = png

    def final_image(self, tag: str, png: bytes) -> None:
        """A picture of the net as training left it, at the last epoch reached (call it
        before `close`)."""
        step = self._last.epoch if self._last is not None else 0
        self.writer.summary(step, image_summary(tag, png, *png_size(png)))

    def on_epoch_end(self, stats: EpochStats) -> None:
        self._last = stats
        if stats.epoch % self.every == 0:
            self.log(stats)
        else:
            self._pending = stats
        if stats.epoch == 0 or (self.images_every and stats.epoch % self.images_every == 0):
            self.image(stats)
        elif self._drawing:
            self._write_drawn(wait=False)

    def close(
        self,
        status: str = "failed",
        metrics: Mapping[str, Any] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        """Log the last epoch reached if it fell between logging points, its picture, the final
        metrics and the session's status; close the file, whatever fails on the way. A stop
        request (`should_stop`) while a picture is drawn skips the pictures left (and there
        is then no final picture, `final_png`)."""
        try:
            last = self._last
            if self._pending is not None:
                self.log(self._pending)
            step = last.epoch if last is not None else 0
            try:
                if last is not None:
                    self.image(last)
                self._write_drawn(wait=True, should_stop=should_stop)
            except Stopped:
                self.final_png = None
            finally:  # a picture that failed to draw still leaves the run's end logged
                self._drawing.clear()
                if metrics is not None:
                    self.writer.scalars(step, final_scalars(metrics))
                self.writer.summary(step, session_end_summary(status))
        finally:
            self.writer.close()


def task_picture_tag(name: str) -> str:
    """A task picture's image tag, from its file name: spectrum.png -> task/spectrum."""
    return TASK_PICTURES + name.rpartition(".")[0]


def stopping_on(should_stop: Callable[[], bool] | None) -> Callable[[], None] | None:
    """What a wait for the sidecar (`Pending.result`) calls: `Stopped` once `should_stop`."""
    if should_stop is None:
        return None

    def check() -> None:
        if should_stop():
            raise Stopped("stopped by a signal while waiting for the sidecar")

    return check


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


# --- reading back -----------------------------------------------------------------------


def scalar_history(log_dir: Path, tag: str = "metrics/loss") -> list[float]:
    """One scalar's logged values in step order, from a run's event file(s), read with
    TensorBoard's own EventAccumulator (every point kept, images and tensors skipped)."""
    return [v for _, v in scalar_points(log_dir, tag)]


def scalar_points(log_dir: Path, tag: str) -> list[tuple[int, float]]:
    """One scalar's logged (step, value) points in step order (`scalar_history`)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    guidance = {"scalars": 0, "images": 1, "tensors": 1, "histograms": 1}
    with events.readable(log_dir) as path:
        acc = EventAccumulator(path, size_guidance=guidance)
        acc.Reload()
    if tag not in acc.Tags().get("scalars", []):
        return []
    return [(e.step, e.value) for e in sorted(acc.Scalars(tag), key=lambda e: e.step)]


# --- a resumed run's one event file -----------------------------------------------------


def rewind(log_dir: Path, epoch: int) -> Path | None:
    """A stopped run's event file, cut back to `epoch` (the checkpoint it resumes from) for
    the resumed run to go on writing: what was logged after that epoch (a killed run's last
    seconds) and what marked the end (the final metrics, the units picture, the session's
    status) are left out, so TensorBoard sees each step once, and the run keeps one file (one
    left by an earlier tiny's resume is merged in and removed). Written to a temporary name
    and renamed over the first file: the old file stays whole whatever fails (`OSError`).
    None: the run has no event file."""
    files = events.run_files(log_dir)
    if not files:
        return None
    tmp = log_dir / f".resume-events.{os.getpid()}.tmp"  # not a name TensorBoard reads
    tmp.unlink(missing_ok=True)
    writer = EventWriter(log_dir, append=tmp)
    try:
        try:
            for data in _kept_records(files, epoch):
                writer.write_record(data)
        finally:
            writer.close()
        os.replace(tmp, files[0])
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    for other in files[1:]:
        other.unlink(missing_ok=True)
    return files[0]


_END_TAGS = {UNITS_TAG, SESSION_END_INFO_TAG}


def _kept_records(files: Sequence[Path], epoch: int) -> Iterator[bytes]:
    """The records of `files` in order that a run resumed after `epoch` keeps: the first
    file's version record, then each event up to `epoch` that does not mark the run's end,
    once (events of the same step and tags in a later file are the same epoch again)."""
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto.event_pb2 import Event

    seen: set[tuple[int, str, int]] = set()
    for i, path in enumerate(files):
        for data in events.read_records(path):
            try:
                event = Event.FromString(data)
            except DecodeError:
                break
            if event.HasField("file_version"):
                if i == 0:
                    yield data
                continue
            tags = [v.tag for v in event.summary.value]
            ends = any(t in _END_TAGS or t.startswith(("final/", TASK_PICTURES)) for t in tags)
            if event.step > epoch or ends:
                continue
            key = (event.step, tags[0] if tags else "", len(tags))
            if key not in seen:
                seen.add(key)
                yield data
