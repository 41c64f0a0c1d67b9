"""TensorBoard event files: the only module that knows their format.

`SummaryWriter.add_scalar` costs ~57 us a value (one Event and a pure-Python CRC each), which
made logging every parameter slower than training the net. Here each logged epoch is one Event
holding all its scalars, its bytes packed into a layout made once per run (`ScalarPacker`),
records are checksummed with the C crc32c, and written in blocks. The files are ordinary
TFRecord event files: TensorBoard and `EventAccumulator` read them.

Everything a run shows in TensorBoard goes into the one event file in its own directory, so a
run directory is one TensorBoard run (`add_hparams` would make a timestamped sub-run):

- step 0: the CUSTOM SCALARS layout, the HPARAMS experiment and this run's session;
- every logged epoch: `metrics/*`, every parameter element, `mechanism/*`, `grad_norm/*`;
- IMAGES `prediction`: the model against the truth at the start, every K epochs, the end;
- at the end: `final/*` (the run's final metrics) and the HPARAMS session's status.
"""

from __future__ import annotations

import array
import math
import os
import re
import socket
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import google_crc32c
import torch
from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as custom_scalars_metadata
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata
from torch import Tensor, nn

from tiny_cli import models
from tiny_cli.train import EpochStats

IMAGE_TAG = "prediction"
SESSION_STATUS = {
    "completed": api_pb2.STATUS_SUCCESS,
    "failed": api_pb2.STATUS_FAILURE,
    "interrupted": api_pb2.STATUS_UNKNOWN,  # TensorBoard's hparams have no "aborted"
}


def _masked_crc(data: bytes) -> int:
    crc = int(google_crc32c.value(data))
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class ScalarPacker:
    """The serialized `Summary` of one scalar per tag, for a tag list fixed once per run.

    Building the proto costs ~1.3 us a value. The bytes of `Summary(value=[Value(tag,
    simple_value)...])` are the tags' bytes (the same every epoch) with a float32 after each,
    so the layout is made once and each epoch is one `struct.pack`.
    """

    def __init__(self, tags: Sequence[str]) -> None:
        self.tags = list(tags)
        prefixes = []
        for tag in self.tags:
            raw = tag.encode()
            value = b"\x0a" + _varint(len(raw)) + raw + b"\x15"  # Value.tag, Value.simple_value
            prefixes.append(b"\x0a" + _varint(len(value) + 4) + value)  # Summary.value
        self._struct = struct.Struct("<" + "".join(f"{len(p)}sf" for p in prefixes))
        self._args: list[Any] = [item for p in prefixes for item in (p, 0.0)]

    def pack(self, values: Iterable[float]) -> bytes:
        # Through float32 first: a double too large for a float becomes inf, not an error.
        self._args[1::2] = array.array("f", values).tolist()
        return self._struct.pack(*self._args)


def event_bytes(step: int, summary: bytes, wall_time: float | None = None) -> bytes:
    """A serialized `Event(wall_time, step, summary)` around serialized summary bytes."""
    wall = time.time() if wall_time is None else wall_time
    return (
        b"\x09" + struct.pack("<d", wall)  # Event.wall_time (1, double)
        + b"\x10" + _varint(step)  # Event.step (2, int64)
        + b"\x2a" + _varint(len(summary)) + summary  # Event.summary (5)
    )  # fmt: skip


class EventWriter:
    """One append-only event file in `log_dir`; buffered, flushed every `flush_secs`.

    `close()` flushes and fsyncs; it is safe to call twice, so every exit path can call it.
    """

    def __init__(self, log_dir: Path, flush_secs: float = 2.0) -> None:
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.tiny"
        self.path = log_dir / name
        self._file = open(self.path, "ab")  # noqa: SIM115 (closed in close())
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
        self.summary(step, Summary(value=[Summary.Value(tag=t, simple_value=v) for t, v in values]))

    def flush(self) -> None:
        if self._buf:
            self._file.write(self._buf)
            self._buf.clear()
        self._file.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if not self._file.closed:
            try:
                self.flush()
                os.fsync(self._file.fileno())
            finally:
                self._file.close()


# --- summaries for the plugins ----------------------------------------------------------


def image_summary(tag: str, png: bytes, width: int, height: int) -> Summary:
    image = Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=png)
    return Summary(value=[Summary.Value(tag=tag, image=image)])


def layout_summary(charts: Mapping[str, Mapping[str, Sequence[str]]]) -> Summary:
    """The CUSTOM SCALARS tab: {category: {chart title: [tag regexes on one chart]}}."""
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
    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        string_val=[layout.SerializeToString()],
        tensor_shape=tensor_shape_pb2.TensorShapeProto(),
    )
    meta = custom_scalars_metadata.create_summary_metadata()
    tag = custom_scalars_metadata.CONFIG_SUMMARY_TAG
    return Summary(value=[Summary.Value(tag=tag, tensor=tensor, metadata=meta)])


HPARAM_TYPES = {
    "number": api_pb2.DATA_TYPE_FLOAT64,
    "string": api_pb2.DATA_TYPE_STRING,
    "bool": api_pb2.DATA_TYPE_BOOL,
}


def _hparams_summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary:
    meta: SummaryMetadata = hparams_metadata.create_summary_metadata(data)
    value = Summary.Value(tag=tag, metadata=meta, tensor=hparams_metadata.NULL_TENSOR)
    return Summary(value=[value])


def hparams_summaries(
    hparams: Mapping[str, Any], kinds: Mapping[str, str], metric_tags: Sequence[str], group: str
) -> list[Summary]:
    """The HPARAMS tab: the experiment (every config key with its kind, the final metrics'
    tags) and this run's session with its config values, grouped under `group` (the run id).

    Every run writes the same experiment, so whichever TensorBoard reads first describes them
    all. A value of None is left out (an empty cell), a list is shown as a string.
    """
    experiment = api_pb2.Experiment(
        hparam_infos=[api_pb2.HParamInfo(name=k, type=HPARAM_TYPES[t]) for k, t in kinds.items()],
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
            hparams_metadata.EXPERIMENT_TAG,
            plugin_data_pb2.HParamsPluginData(experiment=experiment),
        ),
        _hparams_summary(
            hparams_metadata.SESSION_START_INFO_TAG,
            plugin_data_pb2.HParamsPluginData(session_start_info=session),
        ),
    ]


def session_end_summary(status: str) -> Summary:
    info = plugin_data_pb2.SessionEndInfo(status=SESSION_STATUS[status], end_time_secs=time.time())
    return _hparams_summary(
        hparams_metadata.SESSION_END_INFO_TAG,
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
    @property
    def size(self) -> tuple[int, int]: ...

    def png(self, model: nn.Module, epoch: int) -> bytes: ...


class Tracker:
    """Training callback: loss, accuracy, every parameter element, derived quantities and
    gradient norms per layer as scalars; pictures of the prediction.

    Logs epoch 0 (the init, passed to `on_epoch_end` by the caller), every `every` epochs, and
    always the last epoch reached, even when training stops early. Pictures: epoch 0, every
    `images_every` epochs (0: none between) and the last epoch.
    """

    def __init__(
        self,
        writer: EventWriter,
        model: nn.Module,
        arch: models.Arch,
        every: int,
        *,
        picture: Picture | None = None,
        images_every: int = 0,
    ) -> None:
        self.writer = writer
        self.arch = arch
        self.every = every
        self.picture = picture
        self.images_every = images_every
        self.param_tags = models.parameter_tags(model)
        self.final_png: bytes | None = None
        self._params = list(model.parameters())
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
        self._derived_tags = [f"mechanism/{k}" for k in models.derived_names(arch)]
        self._packers: dict[tuple[bool, bool], ScalarPacker] = {}
        self._pending: tuple[EpochStats, list[Tensor | None]] | None = None
        self._last_epoch = 0
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
            charts["mechanism"] = {"threshold and steepness": [r"^mechanism/"]}
        return charts

    def _packer(self, has_accuracy: bool, has_grads: bool) -> ScalarPacker:
        key = (has_accuracy, has_grads)
        if key not in self._packers:
            tags = ["metrics/loss"] + (["metrics/accuracy"] if has_accuracy else [])
            tags += self.param_tags + self._derived_tags + (self._grad_tags if has_grads else [])
            self._packers[key] = ScalarPacker(tags)
        return self._packers[key]

    def _grad_norms(self, grads: list[Tensor | None]) -> list[float]:
        if any(g is None for g in grads):
            return []  # before the first step (the init) there are no gradients
        # One copy out of torch, then plain floats: cheaper than a norm op per tensor.
        flat = torch.cat([g.reshape(-1) for g in grads if g is not None]).tolist()
        return [math.hypot(*flat[s]) for s in self._grad_slices]

    def log(self, stats: EpochStats, grads: list[Tensor | None]) -> None:
        """One Event with every scalar of this epoch."""
        params = stats.params.tolist()
        values = [stats.loss] + ([stats.accuracy] if stats.accuracy is not None else [])
        values += params
        values += models.derived(self.arch, params).values()
        norms = self._grad_norms(grads)
        values += norms
        summary = self._packer(stats.accuracy is not None, bool(norms)).pack(values)
        self.writer.write_record(event_bytes(stats.epoch, summary))
        self._pending = None

    def image(self, model: nn.Module, epoch: int) -> None:
        if self.picture is None or epoch == self._last_image:
            return
        png = self.picture.png(model, epoch)
        width, height = self.picture.size
        self.writer.summary(epoch, image_summary(IMAGE_TAG, png, width, height))
        self.final_png = png
        self._last_image = epoch

    def on_epoch_end(self, stats: EpochStats, model: nn.Module) -> None:
        self._last_epoch = stats.epoch
        # The gradients of the epoch's last batch. The loop sets `p.grad = None` before each
        # backward, so holding these references is enough to keep them for a pending epoch.
        grads = [p.grad for p in self._params]
        if stats.epoch % self.every == 0:
            self.log(stats, grads)
        else:
            self._pending = (stats, grads)
        if stats.epoch == 0 or (self.images_every and stats.epoch % self.images_every == 0):
            self.image(model, stats.epoch)

    def close(
        self, model: nn.Module, status: str = "failed", metrics: Mapping[str, Any] | None = None
    ) -> None:
        """Log the last epoch reached if it fell between logging points, its picture, the final
        metrics and the session's status; close the file, whatever fails on the way.

        `model` must hold that epoch's parameters (the loop leaves them in place, and on
        divergence restores the last finite ones, whose stats are the pending ones).
        """
        try:
            if self._pending is not None:
                self.log(*self._pending)  # the pending stats carry their own parameters
            self.image(model, self._last_epoch)
            if metrics is not None:
                self.writer.scalars(self._last_epoch, final_scalars(metrics))
            self.writer.summary(self._last_epoch, session_end_summary(status))
        finally:
            self.writer.close()


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
