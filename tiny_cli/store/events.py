"""TensorBoard event files: the only module that knows their format.

`SummaryWriter.add_scalar` writes one Event and computes a pure-Python CRC per value, which
made logging every parameter slower than training the net (bench/bench_logging.py). Here each
logged epoch is one Event holding all its scalars: its `Summary`, one `Summary.Value(tag,
simple_value)` per tag, is built once per run (`ScalarEvent`) and each epoch only its values
are set in place before it is serialized; records are checksummed with the C crc32c and
written in blocks. The files are ordinary TFRecord event files: TensorBoard and
`EventAccumulator` read them.

Besides the writer, the summaries of TensorBoard's plugins that need no TensorFlow: images,
the CUSTOM SCALARS layout, HISTOGRAMS (`histogram_value`: the sweep's final losses), TEXT;
`write_solutions` puts a sweep's solutions (TEXT and an alpha histogram) in an event file of
its own. The HPARAMS summaries are in hparams.py, what a run logs in tracking.py.

Start-up: TensorBoard's `tensor_util` (behind its summary helpers) imports its TensorFlow stub
and absl, a cost every run's start would pay (bench/bench_claims.py). So the string tensor of
the layout is built here from the protos, as TensorBoard's helpers build it (a test holds it
byte for byte to TensorBoard's own); the histogram and text helpers are imported by sweeps
only.
"""

from __future__ import annotations

import array
import contextlib
import os
import re
import socket
import struct
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import google_crc32c
import torch
from tensorboard.compat.proto import types_pb2
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as custom_scalars_metadata
from torch import Tensor

from tiny_cli.store.files import RunProblem


def _masked_crc(data: bytes) -> int:
    crc = int(google_crc32c.value(data))
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class ScalarEvent:
    """An `Event` of one `Summary.Value(tag, simple_value)` per tag, for tags fixed once per
    run: the protos are built once and `fill` only sets the step, the time and the values.

    Building the Summary afresh every epoch costs several times more than setting its values
    in place (bench/bench_claims.py).
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


PREFIX = "events.out.tfevents."
FILE_VERSION = "brain.Event:2"


def read_records(path: Path) -> Iterator[bytes]:
    """The whole records of an event file in order, read a record at a time; it ends at
    the first record that is cut short or fails its checksum (a run killed mid-write)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        while True:
            header = f.read(12)
            if len(header) < 12 or struct.unpack("<I", header[8:])[0] != _masked_crc(header[:8]):
                return
            (length,) = struct.unpack("<Q", header[:8])
            if length > size - f.tell():
                return
            data = f.read(length)
            crc = f.read(4)
            if len(data) < length or len(crc) < 4:
                return
            if struct.unpack("<I", crc)[0] != _masked_crc(data):
                return
            yield data


@contextlib.contextmanager
def readable(path: Path) -> Iterator[str]:
    """`path` (a run directory or an event file in one) as a string TensorBoard's readers
    take. They encode paths as UTF-8, which a name holding bytes that are not UTF-8 (a
    foreign or hostile run directory; Python keeps them as surrogates) cannot be: such a
    directory is reached through a descriptor of it (`/proc/self/fd`, Linux), and where there
    is none, it is a RunProblem line, not a UnicodeEncodeError."""
    text = str(path)
    if _utf8(text):
        yield text
        return
    folder, name = (path, "") if path.is_dir() else (path.parent, path.name)
    if not _utf8(name) or not os.path.isdir("/proc/self/fd"):
        raise RunProblem(f"{path.name!a}: TensorBoard cannot read a path that is not UTF-8")
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        yield os.path.join(f"/proc/self/fd/{fd}", name) if name else f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def run_files(log_dir: Path) -> list[Path]:
    """A directory's own event files, oldest first: regular files (no symlinks), the
    solutions' file of a sweep left out."""
    try:
        entries = list(os.scandir(log_dir))
    except OSError:
        return []
    return sorted(
        Path(e.path)
        for e in entries
        if e.name.startswith(PREFIX)
        and not e.name.endswith(f".{SOLUTIONS_SUFFIX}")
        and e.is_file(follow_symlinks=False)
    )


class EventWriter:
    """One append-only event file in `log_dir`; buffered, flushed every `flush_secs`.

    `close()` flushes and fsyncs; it is safe to call twice, so every exit path can call it.
    """

    def __init__(
        self,
        log_dir: Path,
        flush_secs: float = 2.0,
        suffix: str = "tiny",
        append: Path | None = None,
    ) -> None:
        """`suffix` ends the file's name: files of one kind can be told apart and replaced.
        `append`: an event file of this writer's to go on with (a resumed run's), else a new
        file is started."""
        stamp = f"{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self.path = append or log_dir / f"{PREFIX}{stamp}.{suffix}"
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 (closed in close())
        self._buf = bytearray()
        self._flush_secs = flush_secs
        self._last_flush = time.monotonic()
        if append is None:
            self.write(Event(wall_time=time.time(), file_version=FILE_VERSION))
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


def string_tensor(data: bytes) -> TensorProto:
    """A scalar string tensor: `tensor_util.make_tensor_proto(data, dtype=DT_STRING)`."""
    return TensorProto(
        dtype=types_pb2.DT_STRING, tensor_shape=TensorShapeProto(), string_val=[data]
    )


class Margin(NamedTuple):
    """A margin chart's series: a line (`value`, a tag) inside its band (`lower`, `upper`)."""

    value: str
    lower: str
    upper: str


def _chart(title: str, tags: Sequence[str] | Sequence[Margin]) -> layout_pb2.Chart:
    if tags and all(isinstance(t, Margin) for t in tags):
        series = [layout_pb2.MarginChartContent.Series(**t._asdict()) for t in tags]  # type: ignore[union-attr]
        return layout_pb2.Chart(title=title, margin=layout_pb2.MarginChartContent(series=series))
    tag_list = [str(t) for t in tags]
    return layout_pb2.Chart(title=title, multiline=layout_pb2.MultilineChartContent(tag=tag_list))


def layout_summary(
    charts: Mapping[str, Mapping[str, Sequence[str] | Sequence[Margin]]],
) -> Summary:
    """The CUSTOM SCALARS tab: {category: {chart title: [tag regexes on one chart]}}, or
    for a margin chart {chart title: [Margin(value, lower, upper) tags]}.

    The Summary `tensorboard.plugins.custom_scalar.summary.pb(layout)` makes, built here
    because `pb` imports TensorFlow (ModuleNotFoundError without it, TensorBoard 2.21).
    """
    layout = layout_pb2.Layout(
        category=[
            layout_pb2.Category(
                title=category, chart=[_chart(title, tags) for title, tags in chart_map.items()]
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


def write_sweep(
    log_dir: Path,
    points: Sequence[tuple[Mapping[str, int], Tensor]],
    curves: Sequence[tuple[str, Mapping[str, Any]]] = (),
    images: Sequence[tuple[str, bytes]] = (),
) -> Path:
    """A sweep's event file: step i is grid point i, given as (its outcome counts, its seeds'
    final losses): the counts as scalars `outcomes/<name>`, the losses as histograms
    (`final_loss`, and `final_log10_loss` of the positive ones). `curves`: per grid point
    its label and curves (`train.curves.Curves.to_json`), written with the epoch as step
    (`curve_scalars`) under a CUSTOM SCALARS layout of margin charts (`curve_layout`).
    `images`: (tag, PNG) pictures at step 0 (the phase diagram)."""
    writer = EventWriter(log_dir)
    try:
        for tag, picture in images:
            writer.summary(0, image_summary(tag, picture, *png_size(picture)))
        if curves:
            writer.summary(0, layout_summary(curve_layout(curves)))
            for step, values in curve_scalars(curves):
                writer.scalars(step, values)
        for i, (counts, loss) in enumerate(points):
            scalars = [
                (f"outcomes/{name.replace(' ', '_')}", float(c)) for name, c in counts.items()
            ]
            writer.scalars(i, scalars)
            values = [histogram_value("final_loss", loss)]
            positive = loss[loss > 0]
            if len(positive):
                values.append(histogram_value("final_log10_loss", positive.log10()))
            writer.summary(i, Summary(value=values))
    finally:
        writer.close()
    for old in run_files(log_dir):  # a sweep stored again (resumed after it was stored)
        if old != writer.path:
            old.unlink()
    return writer.path


def _curve_tag(point: int, name: str) -> str:
    return f"curves/p{point}/{name}"


def curve_layout(
    curves: Sequence[tuple[str, Mapping[str, Any]]],
) -> dict[str, dict[str, list[Margin] | list[str]]]:
    """One category per grid point (`sweep curves: <label>`): a margin chart per metric, its
    median inside the 10-90% band of the seeds, and the solved fraction on one line."""
    layout: dict[str, dict[str, list[Margin] | list[str]]] = {}
    for i, (label, c) in enumerate(curves):
        charts: dict[str, list[Margin] | list[str]] = {}
        for name in c.get("metrics", {}):
            tag = _curve_tag(i, name)
            title = f"{name}: median, 10th to 90th percentile over the seeds"
            charts[title] = [Margin(f"{tag}/median", f"{tag}/p10", f"{tag}/p90")]
        if c.get("solved") is not None:
            charts["fraction of seeds solved so far"] = [f"^{_curve_tag(i, 'solved')}$"]
        layout[f"sweep curves: {label or 'base config'}"] = charts
    progress = progress_layout(curves)
    return {"progress": progress, **layout} if progress else layout


def progress_layout(
    curves: Sequence[tuple[str, Mapping[str, Any]]],
) -> dict[str, list[Margin] | list[str]]:
    """A sweep's `progress` category (as a run's, `tracking.progress_charts`): the median
    over the seeds of every grid point on one chart per measure, side by side, so where
    the test accuracy catches up with the training's shows on one x axis; {} for a sweep
    that recorded no progress measures (no test set, no `Task.progress`)."""
    names = list(dict.fromkeys(n for _, c in curves for n in c.get("metrics", {})))
    if PROGRESS_NORM not in names:
        return {}
    what = "accuracy" if "accuracy" in names else "loss"
    charts: dict[str, list[Margin] | list[str]] = {
        f"{what}: training and test, median over the seeds": [
            rf"^curves/p\d+/(test_)?{what}/median$"
        ],
        "total weight norm, median over the seeds": [rf"^curves/p\d+/{PROGRESS_NORM}/median$"],
    }
    for name in names:
        if name not in (PROGRESS_NORM, "loss", "accuracy", "test_loss", "test_accuracy"):
            charts[f"{name}, median over the seeds"] = [rf"^curves/p\d+/{re.escape(name)}/median$"]
    return charts


PROGRESS_NORM = "weight_norm"  # a sweep's curves: the weight norm (`train.curves`)


def curve_scalars(
    curves: Sequence[tuple[str, Mapping[str, Any]]],
) -> Iterator[tuple[int, list[tuple[str, float]]]]:
    """Per recorded epoch (in order), every grid point's curve values there as scalars."""
    names = {"q50": "median", "q10": "p10", "q90": "p90"}
    steps: dict[int, list[tuple[str, float]]] = {}
    for i, (_, c) in enumerate(curves):
        for j, epoch in enumerate(c.get("epochs", [])):
            values = steps.setdefault(epoch, [])
            for name, series in c.get("metrics", {}).items():
                for q, short in names.items():
                    if series[q][j] is not None:
                        values.append((f"{_curve_tag(i, name)}/{short}", series[q][j]))
            if c.get("solved") is not None:
                values.append((_curve_tag(i, "solved"), c["solved"][j]))
    for epoch in sorted(steps):
        if steps[epoch]:
            yield epoch, steps[epoch]


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
