"""TensorBoard event files: the only module that knows their format.

`SummaryWriter.add_scalar` costs ~57 us a value (one Event and a pure-Python CRC each), which
made logging every parameter slower than training the net. Here each logged epoch is one Event
holding all its scalars, records are checksummed with the C crc32c, and written in blocks.
The files are ordinary TFRecord event files: TensorBoard and `EventAccumulator` read them.
"""

from __future__ import annotations

import math
import os
import socket
import struct
import time
from collections.abc import Iterable
from pathlib import Path

import google_crc32c
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from torch import nn

from tiny_cli import models
from tiny_cli.train import EpochStats


def _masked_crc(data: bytes) -> int:
    crc = int(google_crc32c.value(data))
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class EventWriter:
    """One append-only event file in `log_dir`; buffered, flushed every `flush_secs`."""

    def __init__(self, log_dir: Path, flush_secs: float = 2.0) -> None:
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.tiny"
        self.path = log_dir / name
        self._file = open(self.path, "ab")  # noqa: SIM115 (closed in close())
        self._buf = bytearray()
        self._flush_secs = flush_secs
        self._last_flush = time.monotonic()
        self.write(Event(wall_time=time.time(), file_version="brain.Event:2"))
        self.flush()

    def write(self, event: Event) -> None:
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        self._buf += header
        self._buf += struct.pack("<I", _masked_crc(header))
        self._buf += data
        self._buf += struct.pack("<I", _masked_crc(data))
        if time.monotonic() - self._last_flush > self._flush_secs:
            self.flush()

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
            self.flush()
            os.fsync(self._file.fileno())
            self._file.close()


class Tracker:
    """Training callback: loss, accuracy, every parameter element and derived quantities.

    Logs epoch 0 (the init), every `every` epochs, and always the last epoch reached, even
    when training stops early.
    """

    def __init__(self, writer: EventWriter, model: nn.Module, arch: str, every: int) -> None:
        self.writer = writer
        self.arch = arch
        self.every = every
        self.param_tags = models.parameter_tags(model)
        self._pending: EpochStats | None = None

    def log(self, stats: EpochStats, model: nn.Module) -> None:
        scalars = [("metrics/loss", stats.loss)]
        if stats.accuracy is not None:
            scalars.append(("metrics/accuracy", stats.accuracy))
        scalars += zip(self.param_tags, stats.params.tolist(), strict=True)
        derived = models.derived(self.arch, model.state_dict())
        scalars += [(f"mechanism/{k}", v) for k, v in derived.items() if math.isfinite(v)]
        self.writer.scalars(stats.epoch, scalars)
        self._pending = None

    def on_epoch_end(self, stats: EpochStats, model: nn.Module) -> None:
        if stats.epoch % self.every == 0:
            self.log(stats, model)
        else:
            self._pending = stats

    def close(self, model: nn.Module) -> None:
        """Log the last epoch reached if it fell between logging points; close the file.

        `model` must hold that epoch's parameters (the loop leaves them in place, and on
        divergence restores the last finite ones, whose stats are the pending ones).
        """
        if self._pending is not None:
            self.log(self._pending, model)  # the pending stats carry their own parameters
        self.writer.close()
