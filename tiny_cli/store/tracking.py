"""TensorBoard event files: the only module that knows their format.

`SummaryWriter.add_scalar` costs ~57 us a value (one Event and a pure-Python CRC each), which
made logging every parameter slower than training the net. Here each logged epoch is one Event
holding all its scalars: its `Summary`, one `Summary.Value(tag, simple_value)` per tag, is
built once per run (`ScalarEvent`) and each epoch only its values are set in place before it
is serialized; records are checksummed with the C crc32c and written in blocks. The files are
ordinary TFRecord event files: TensorBoard and `EventAccumulator` read them.

Everything a run shows in TensorBoard goes into the one event file in its own directory, so a
run directory is one TensorBoard run (`add_hparams` would make a timestamped sub-run):

- step 0: the CUSTOM SCALARS layout, the HPARAMS experiment and this run's session;
- every logged epoch: `metrics/*`, every parameter element, `mechanism/*`, `grad_norm/*`;
- IMAGES `prediction`: the model against the truth at the start, every K epochs, the end;
- IMAGES `units`: the hidden units' activations, once, at the last epoch reached;
- at the end: `final/*` (the run's final metrics) and the HPARAMS session's status.

`histogram_value` makes a HISTOGRAMS entry (the sweep's final losses); `write_solutions`
puts a sweep's solutions (TEXT and an alpha histogram) in an event file of its own.

Start-up: TensorBoard's `tensor_util` (behind `hparams.metadata` and the histogram helper)
imports its TensorFlow stub and absl, a tenth of a second or more of every run's start. So the
two tensors a run needs (an empty float vector, a scalar string) and the hparams plugin's
metadata are built here from the protos, as TensorBoard's helpers build them (a test holds
them byte for byte to TensorBoard's own); the histogram helper is imported by sweeps only.
"""

from __future__ import annotations

import array
import contextlib
import math
import os
import re
import socket
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import google_crc32c
import torch
from tensorboard.compat.proto import types_pb2
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as custom_scalars_metadata
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from torch import Tensor, nn
from torch.nn.utils import vector_to_parameters

from tiny_cli import sidecar
from tiny_cli.spec import models
from tiny_cli.tasks import Task

IMAGE_TAG = "prediction"
UNITS_TAG = "units"
SESSION_STATUS = {
    "completed": api_pb2.STATUS_SUCCESS,
    "failed": api_pb2.STATUS_FAILURE,
    "interrupted": api_pb2.STATUS_UNKNOWN,  # TensorBoard's hparams have no "aborted"
}


def _masked_crc(data: bytes) -> int:
    crc = int(google_crc32c.value(data))
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class ScalarEvent:
    """An `Event` of one `Summary.Value(tag, simple_value)` per tag, for tags fixed once per
    run: the protos are built once and `fill` only sets the step, the time and the values.

    Building the Summary afresh costs ~0.8 us a value (25 us an epoch for is_even's 31 tags,
    against 4 us to set them in place).
    """

    def __init__(self, tags: Iterable[str]) -> None:
        self.event = Event(
            summary=Summary(value=[Summary.Value(tag=t, simple_value=0.0) for t in tags])
        )
        self._values = list(self.event.summary.value)

    def fill(self, step: int, values: Iterable[float]) -> Event:
        self.event.wall_time = time.time()
        self.event.step = step
        # Through float32 first: a double too large for a float becomes inf, not an error.
        for value, v in zip(self._values, array.array("f", values).tolist(), strict=True):
            value.simple_value = v
        return self.event


class EventWriter:
    """One append-only event file in `log_dir`; buffered, flushed every `flush_secs`.

    `close()` flushes and fsyncs; it is safe to call twice, so every exit path can call it.
    """

    def __init__(self, log_dir: Path, flush_secs: float = 2.0, suffix: str = "tiny") -> None:
        """`suffix` ends the file's name: files of one kind can be told apart and replaced."""
        stamp = f"{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        name = f"events.out.tfevents.{stamp}.{suffix}"
        self.path = log_dir / name
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 (closed in close())
        self._buf = bytearray()
        self._flush_secs = flush_secs
        self._last_flush = time.monotonic()
        self.write(Event(wall_time=time.time(), file_version="brain.Event:2"))
        self.flush()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def write_record(self, data: bytes) -> None:
        header = struct.pack("<Q", len(data))
        self._buf += header
        self._buf += struct.pack("<I", _masked_crc(header))
        self._buf += data
        self._buf += struct.pack("<I", _masked_crc(data))
        if time.monotonic() - self._last_flush > self._flush_secs:
            self.flush()

    def write(self, event: Event) -> None:
        self.write_record(event.SerializeToString())

    def summary(self, step: int, summary: Summary) -> None:
        self.write(Event(wall_time=time.time(), step=step, summary=summary))

    def scalars(self, step: int, values: Iterable[tuple[str, float]]) -> None:
        """One Event of these (tag, value) scalars, for a one-off set of tags."""
        pairs = list(values)
        self.write(ScalarEvent(t for t, _ in pairs).fill(step, (v for _, v in pairs)))

    def flush(self) -> None:
        """Write the buffered records; if that fails (a full disk), cut the file back to its
        last whole record, drop the buffer and re-raise: the file stays readable."""
        if self._buf:
            size = self._file.tell()
            data = memoryview(bytes(self._buf))
            self._buf.clear()
            try:
                while data:  # a raw write may write part of it (a disk filling up)
                    data = data[self._file.write(data) or 0 :]
            except OSError:
                with contextlib.suppress(OSError):
                    self._file.truncate(size)
                    self._file.seek(size)
                raise
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if not self._file.closed:
            try:
                self.flush()
                os.fsync(self._file.fileno())
            finally:
                self._file.close()


# --- summaries for the plugins ----------------------------------------------------------


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, from its header (the IHDR chunk comes first)."""
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def image_summary(tag: str, png: bytes, width: int, height: int) -> Summary:
    image = Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=png)
    return Summary(value=[Summary.Value(tag=tag, image=image)])


def layout_summary(charts: Mapping[str, Mapping[str, Sequence[str]]]) -> Summary:
    """The CUSTOM SCALARS tab: {category: {chart title: [tag regexes on one chart]}}.

    The Summary `tensorboard.plugins.custom_scalar.summary.pb(layout)` makes, built here
    because `pb` imports TensorFlow (ModuleNotFoundError without it, TensorBoard 2.21).
    """
    layout = layout_pb2.Layout(
        category=[
            layout_pb2.Category(
                title=category,
                chart=[
                    layout_pb2.Chart(
                        title=title, multiline=layout_pb2.MultilineChartContent(tag=list(tags))
                    )
                    for title, tags in chart_map.items()
                ],
            )
            for category, chart_map in charts.items()
        ]
    )
    tensor = string_tensor(layout.SerializeToString())
    meta = custom_scalars_metadata.create_summary_metadata()
    tag = custom_scalars_metadata.CONFIG_SUMMARY_TAG
    return Summary(value=[Summary.Value(tag=tag, tensor=tensor, metadata=meta)])


def histogram_value(tag: str, values: Tensor, buckets: int = 30) -> Summary.Value:
    """A HISTOGRAMS entry of the finite `values` in `buckets` equal-width buckets.

    Made by TensorBoard's own `histogram_pb` (no TensorFlow needed): the format TF2 writes, a
    tensor of one [left edge, right edge, count] row a bucket, read back by
    `EventAccumulator.Tensors` (not `.Histograms`, which holds the older `histo` protos).
    With no finite value every bucket is [0, 0, 0]; with one distinct value every bucket's
    edges are that value and the last bucket holds the count.
    """
    flat = values.detach().reshape(-1)
    finite = flat[flat.isfinite()].to("cpu", torch.float64).numpy()
    from tensorboard.plugins.histogram import summary_v2 as histogram_summary

    value: Summary.Value = histogram_summary.histogram_pb(tag, finite, buckets=buckets).value[0]
    return value


def text_summary(tag: str, markdown: str) -> Summary:
    """A TEXT entry (markdown, tables included), made by TensorBoard's own `text_pb`."""
    from tensorboard.plugins.text import summary_v2 as text

    summary: Summary = text.text_pb(tag, markdown)
    return summary


SOLUTIONS_SUFFIX = "tiny-solutions"


def write_solutions(log_dir: Path, steps: Sequence[tuple[str, Tensor | None]]) -> Path:
    """A sweep's solutions (`tiny inspect SWEEP --solutions`) as one event file of its own:
    per grid point (step i, as the sweep's outcome counts) the markdown under TEXT
    `solutions` and, given alphas, their histogram under `solutions/alpha`. An older
    solutions file in the directory is removed first, so TensorBoard never shows two."""
    for old in log_dir.glob(f"events.out.tfevents.*.{SOLUTIONS_SUFFIX}"):
        old.unlink(missing_ok=True)
    writer = EventWriter(log_dir, suffix=SOLUTIONS_SUFFIX)
    try:
        for step, (markdown, alphas) in enumerate(steps):
            writer.summary(step, text_summary("solutions", markdown))
            if alphas is not None and len(alphas):
                value = histogram_value("solutions/alpha", alphas)
                writer.summary(step, Summary(value=[value]))
    finally:
        writer.close()
    return writer.path


HPARAM_TYPES = {
    "number": api_pb2.DATA_TYPE_FLOAT64,
    "string": api_pb2.DATA_TYPE_STRING,
    "bool": api_pb2.DATA_TYPE_BOOL,
}


# tensorboard.plugins.hparams.metadata's names (the plugin reads them from the file)
HPARAMS_PLUGIN = "hparams"
HPARAMS_DATA_VERSION = 0
EXPERIMENT_TAG = "_hparams_/experiment"
SESSION_START_INFO_TAG = "_hparams_/session_start_info"
SESSION_END_INFO_TAG = "_hparams_/session_end_info"
# its NULL_TENSOR: a float vector of length 0, the smallest valid tensor
NULL_TENSOR = TensorProto(
    dtype=types_pb2.DT_FLOAT, tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=0)])
)


def string_tensor(data: bytes) -> TensorProto:
    """A scalar string tensor: `tensor_util.make_tensor_proto(data, dtype=DT_STRING)`."""
    return TensorProto(
        dtype=types_pb2.DT_STRING, tensor_shape=TensorShapeProto(), string_val=[data]
    )


def _hparams_summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary:
    """`hparams.metadata.create_summary_metadata(data)` on `NULL_TENSOR`."""
    data.version = HPARAMS_DATA_VERSION
    plugin = SummaryMetadata.PluginData(
        plugin_name=HPARAMS_PLUGIN, content=data.SerializeToString()
    )
    meta = SummaryMetadata(plugin_data=plugin)
    return Summary(value=[Summary.Value(tag=tag, metadata=meta, tensor=NULL_TENSOR)])


# The config keys runs are usually compared by: TensorBoard's HPARAMS view opens on them.
COMPARED = ("task.name", "seed", "train.lr", "init.mode", "model.arch", "train.optimizer")


def hparams_summaries(
    hparams: Mapping[str, Any], kinds: Mapping[str, str], metric_tags: Sequence[str], group: str
) -> list[Summary]:
    """The HPARAMS tab: the experiment (every config key with its kind, the final metrics'
    tags) and this run's session with its config values, grouped under `group` (the run id).

    Every run writes the same experiment, so whichever TensorBoard reads first describes them
    all. A value of None is left out (an empty cell), a list is shown as a string.

    The keys users compare runs by (COMPARED) are marked `differs`: TensorBoard sorts those
    first and shows them when it shows only a few columns (its default), instead of the
    first ones alphabetically (init.mode, init.noise, ...).
    """
    experiment = api_pb2.Experiment(
        hparam_infos=[
            api_pb2.HParamInfo(name=k, type=HPARAM_TYPES[t], differs=k in COMPARED)
            for k, t in kinds.items()
        ],
        metric_infos=[
            api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag), display_name=tag)
            for tag in metric_tags
        ],
    )
    session = plugin_data_pb2.SessionStartInfo(group_name=group, start_time_secs=time.time())
    for key, value in hparams.items():
        if isinstance(value, bool):
            session.hparams[key].bool_value = value
        elif isinstance(value, int | float):
            session.hparams[key].number_value = value
        elif value is not None:
            session.hparams[key].string_value = str(value)
    return [
        _hparams_summary(
            EXPERIMENT_TAG,
            plugin_data_pb2.HParamsPluginData(experiment=experiment),
        ),
        _hparams_summary(
            SESSION_START_INFO_TAG,
            plugin_data_pb2.HParamsPluginData(session_start_info=session),
        ),
    ]


def session_end_summary(status: str) -> Summary:
    info = plugin_data_pb2.SessionEndInfo(status=SESSION_STATUS[status], end_time_secs=time.time())
    return _hparams_summary(
        SESSION_END_INFO_TAG,
        plugin_data_pb2.HParamsPluginData(session_end_info=info),
    )


def final_scalars(metrics: Mapping[str, Any]) -> list[tuple[str, float]]:
    """`final/<key>` for each numeric final metric; a list's entries as `final/<key>[i]`."""
    out = []
    for key, value in metrics.items():
        items = enumerate(value) if isinstance(value, list | tuple) else [(None, value)]
        for i, v in items:
            if isinstance(v, int | float) and not isinstance(v, bool):
                out.append((f"final/{key}" + ("" if i is None else f"[{i}]"), float(v)))
    return out


# --- the training callback --------------------------------------------------------------


class Picture(Protocol):
    """`plots.PredictionPlot`: a fixed layout, and each picture's numbers from the model."""

    @property
    def size(self) -> tuple[int, int]: ...

    @property
    def layout(self) -> Any: ...

    def frame(self, model: nn.Module, epoch: int) -> Any: ...


@dataclass(frozen=True)
class EpochStats:
    """One run's epoch, as the tracker logs it."""

    epoch: int  # parameters are those after this many epochs (0: the init)
    loss: float  # mean loss over the epoch's batches, each measured before its step
    accuracy: float | None  # classification only
    params: Tensor  # [P] every parameter, flat, in `model.parameters()` order
    grads: Tensor | None  # [P] the gradient of the epoch's last batch (None at the init)


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
    ) -> None:
        self.writer = writer
        self.arch = arch
        self.every = every
        self.picture = picture
        self.images_every = images_every
        self.param_tags = models.parameter_tags(model)
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
        self._events: dict[tuple[bool, bool], ScalarEvent] = {}
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
        one for loss and accuracy, one for the gradient norms, one for the mechanism.

        Charts match tags by regex, so the same layer of another run of the same architecture
        lands on the same chart (TensorBoard merges the layouts of all runs).
        """
        layers = {tag.partition("/")[0]: None for tag in self.param_tags}
        charts: dict[str, dict[str, list[str]]] = {
            "metrics": {"loss and accuracy": [r"^metrics/"]},
            "parameters": {f"layer {m}: weight and bias": [f"^{re.escape(m)}/"] for m in layers},
            "gradients": {"gradient norm per layer": [r"^grad_norm/"]},
        }
        if self._derived_tags:
            names = " and ".join(tag.partition("/")[2] for tag in self._derived_tags)
            charts["mechanism"] = {names: [r"^mechanism/"]}  # lt: "threshold and steepness"
        return charts

    def _scalar_event(self, has_accuracy: bool, has_grads: bool) -> ScalarEvent:
        """One per tag layout: with or without accuracy, with or without gradients (none at
        the init)."""
        key = (has_accuracy, has_grads)
        if key not in self._events:
            tags = ["metrics/loss"] + (["metrics/accuracy"] if has_accuracy else [])
            tags += self.param_tags + self._derived_tags + (self._grad_tags if has_grads else [])
            self._events[key] = ScalarEvent(tags)
        return self._events[key]

    def _derived(self, params: Sequence[float]) -> dict[str, float]:
        return self.task.derived(self.arch, params) if self.task is not None else {}

    def _grad_norms(self, grads: Tensor | None) -> list[float]:
        if grads is None:
            return []  # before the first step (the init) there are no gradients
        # One copy out of torch, then plain floats: cheaper than a norm op per tensor.
        flat = grads.tolist()
        return [math.hypot(*flat[s]) for s in self._grad_slices]

    def log(self, stats: EpochStats) -> None:
        """One Event with every scalar of this epoch."""
        params = stats.params.tolist()
        values = [stats.loss] + ([stats.accuracy] if stats.accuracy is not None else [])
        values += params
        values += self._derived(params).values()
        norms = self._grad_norms(stats.grads)
        values += norms
        event = self._scalar_event(stats.accuracy is not None, bool(norms))
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

    def _write_drawn(self, wait: bool) -> None:
        """Write the pictures drawn so far, in order (all of them with `wait`)."""
        while self._drawing and (wait or self._drawing[0][1].done()):
            epoch, pending = self._drawing.pop(0)
            png = pending.result()
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

    def close(self, status: str = "failed", metrics: Mapping[str, Any] | None = None) -> None:
        """Log the last epoch reached if it fell between logging points, its picture, the final
        metrics and the session's status; close the file, whatever fails on the way."""
        try:
            last = self._last
            if self._pending is not None:
                self.log(self._pending)
            step = last.epoch if last is not None else 0
            try:
                if last is not None:
                    self.image(last)
                self._write_drawn(wait=True)
            finally:  # a picture that failed to draw still leaves the run's end logged
                self._drawing.clear()
                if metrics is not None:
                    self.writer.scalars(step, final_scalars(metrics))
                self.writer.summary(step, session_end_summary(status))
        finally:
            self.writer.close()


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


# --- reading back -----------------------------------------------------------------------


def scalar_history(log_dir: Path, tag: str = "metrics/loss") -> list[float]:
    """One scalar's logged values in step order, from a run's event file(s), read with
    TensorBoard's own EventAccumulator (every point kept, images and tensors skipped)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    guidance = {"scalars": 0, "images": 1, "tensors": 1, "histograms": 1}
    acc = EventAccumulator(str(log_dir), size_guidance=guidance)
    acc.Reload()
    if tag not in acc.Tags().get("scalars", []):
        return []
    return [e.value for e in sorted(acc.Scalars(tag), key=lambda e: e.step)]
