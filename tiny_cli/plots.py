"""Pictures of what a net computes: its output against the true function over the domain.

A curve for a task with one input (lt10, is_even), two heat maps for two inputs (min: the
output and its error), output against truth sample by sample for more inputs (parity).
matplotlib's Agg backend and object API only (no pyplot, no display).

Speed: a full matplotlib draw is ~40 ms, mostly text (ticks, labels, legend) that is the same
on every picture of a run. So the figure is drawn once without the parts that change (the
model's curve or heat maps, the titles); each picture restores that background and draws only
those ("blitting"), then encodes the PNG at a low compression level: a few ms a picture. The
axes are fixed over a run, so pictures of one run compare frame by frame in TensorBoard.
"""

from __future__ import annotations

import io
import math
from typing import Any

import torch
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor, nn

from tiny_cli import tasks
from tiny_cli.tasks import Task

DPI = 80
CURVE_POINTS = 600  # the net between the integers, where is_even's hardwired net zigzags
GRID_SIDE = 64  # at most this many points per axis for a 2-input task
MAX_MARKERS = 400  # truth markers on a curve; more are a smear, and cost seconds to draw


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


class PredictionPlot:
    """The model's output against the task's truth, over the domain and a margin beyond it."""

    def __init__(self, task: Task, x: Tensor) -> None:
        self.task = task
        # A fixed layout: "constrained" would lay the figure out again on every picture.
        self.figure = Figure(figsize=(6.4, 3.6), dpi=DPI)
        self.canvas = FigureCanvasAgg(self.figure)
        self._dynamic: list[Artist] = []
        self._mode = {1: "curve", 2: "heat"}.get(x.shape[1], "samples")
        if self._mode == "curve":
            self._curve_setup(x)
        elif self._mode == "heat":
            self._heat_setup(x)
        else:
            self._samples_setup(x)
        for artist in self._dynamic:
            artist.set_animated(True)  # left out of full draws
        self.canvas.draw()
        self._background = self.canvas.copy_from_bbox(self.figure.bbox)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the PNG in pixels."""
        width, height = self.canvas.get_width_height()
        return width, height

    def png(self, model: nn.Module, epoch: int) -> bytes:
        """Render the model as it is now; the title says which epoch it is."""
        if self._mode == "curve":
            self._curve_update(model, epoch)
        elif self._mode == "heat":
            self._heat_update(model, epoch)
        else:
            self._samples_update(model, epoch)
        self.canvas.restore_region(self._background)
        for artist in self._dynamic:
            self.figure.draw_artist(artist)
        width, height = self.size
        image = Image.frombuffer("RGBA", (width, height), self.canvas.buffer_rgba(), "raw")
        buf = io.BytesIO()
        image.save(buf, format="png", compress_level=1)
        return buf.getvalue()

    # --- one input: a curve ---------------------------------------------------------------

    def _curve_setup(self, x: Tensor) -> None:
        lo, hi = float(x.min()), float(x.max())
        pad = max(2.0, round(0.15 * (hi - lo)))
        start, stop = math.floor(lo - pad), math.ceil(hi + pad)
        # An odd stride, so that a thinned is_even still alternates between odd and even.
        stride = max(1, math.ceil((stop - start + 1) / MAX_MARKERS)) | 1
        ints = torch.arange(start, stop + 1, stride, dtype=torch.float32)
        truth = self.task.truth(ints.unsqueeze(1)).reshape(-1)
        self._dense = torch.linspace(float(start), float(stop), CURVE_POINTS).unsqueeze(1)
        self.figure.subplots_adjust(left=0.09, right=0.97, bottom=0.14, top=0.9)
        ax = self.figure.add_subplot()
        ax.axvspan(lo, hi, color="0.93", zorder=0, label="training domain")
        # matplotlib gets numpy arrays: it iterates over torch tensors element by element.
        ax.plot(ints.numpy(), truth.numpy(), "o", color="0.35", ms=3.5, label="truth")
        (self._line,) = ax.plot(self._dense.reshape(-1).numpy(), [0.0] * CURVE_POINTS, color="C0")
        self._line.set_label("model")
        t_lo, t_hi = float(truth.min()), float(truth.max())
        margin = 0.25 * max(t_hi - t_lo, 1.0)
        ax.set_ylim(t_lo - margin, t_hi + margin)
        ax.set_xlim(float(start), float(stop))
        ax.set_xlabel("x")
        # Legend above the axes, right of the title: drawn once, never hidden by the curve.
        ax.legend(
            loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=3, fontsize="small", frameon=False
        )
        self._title = ax.set_title("", loc="left")
        self._dynamic = [self._line, self._title]

    def _curve_update(self, model: nn.Module, epoch: int) -> None:
        out = tasks.predict_fn(model)(self._dense.to(_device_of(model))).cpu()
        self._line.set_ydata(out.clamp(-1e6, 1e6).numpy())  # off the chart either way
        self._title.set_text(f"{self.task.name}, epoch {epoch}")

    # --- two inputs: heat maps of the output and of its error ------------------------------

    def _heat_setup(self, x: Tensor) -> None:
        lo, hi = x.min(dim=0).values.tolist(), x.max(dim=0).values.tolist()
        axes = [
            torch.linspace(lo[i], hi[i], min(GRID_SIDE, int(hi[i] - lo[i]) + 1)) for i in (0, 1)
        ]
        a, b = torch.meshgrid(axes[0], axes[1], indexing="xy")  # rows: b, columns: a
        self._shape = a.shape
        self._grid = torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)
        self._truth = self.task.truth(self._grid).reshape(self._shape)
        extent = (lo[0], hi[0], lo[1], hi[1])
        t_lo, t_hi = float(self._truth.min()), float(self._truth.max())
        err_lim = max(0.1 * (t_hi - t_lo), 1e-6)
        self.figure.subplots_adjust(left=0.1, right=0.95, bottom=0.14, top=0.82, wspace=0.5)
        left, right = self.figure.subplots(1, 2)
        zeros = torch.zeros(self._shape).numpy()
        common: dict[str, Any] = {"origin": "lower", "extent": extent, "aspect": "auto"}
        self._out_im = left.imshow(zeros, cmap="viridis", vmin=t_lo, vmax=t_hi, **common)
        self._err_im = right.imshow(zeros, cmap="RdBu_r", vmin=-err_lim, vmax=err_lim, **common)
        self.figure.colorbar(self._out_im, ax=left)
        self.figure.colorbar(self._err_im, ax=right)
        for ax in (left, right):
            ax.set_xlabel("a")
            ax.set_ylabel("b")
        left.set_title("model(a, b)", fontsize="medium")
        self._err_title = right.set_title("", fontsize="medium")
        self._title = self.figure.suptitle("")
        self._dynamic = [self._out_im, self._err_im, self._err_title, self._title]

    def _heat_update(self, model: nn.Module, epoch: int) -> None:
        out = tasks.predict_fn(model)(self._grid.to(_device_of(model))).cpu().reshape(self._shape)
        err = out - self._truth
        # Saturated colours either way; clamping keeps a diverging net's 1e38 out of the
        # colormap's arithmetic.
        lo, hi = self._out_im.get_clim()
        span = hi - lo
        self._out_im.set_data(out.clamp(lo - span, hi + span).numpy())
        self._err_im.set_data(err.clamp(-span, span).numpy())
        self._err_title.set_text(f"model - truth (max |err| {float(err.abs().max()):.3g})")
        self._title.set_text(f"{self.task.name}: epoch {epoch}")

    # --- three or more inputs: output against truth, sample by sample ---------------------

    def _samples_setup(self, x: Tensor) -> None:
        stride = max(1, math.ceil(len(x) / MAX_MARKERS))
        self._points = x[::stride]
        truth = self.task.truth(self._points).reshape(-1)
        index = torch.arange(0, len(x), stride).numpy()
        self.figure.subplots_adjust(left=0.09, right=0.97, bottom=0.14, top=0.9)
        ax = self.figure.add_subplot()
        ax.plot(index, truth.numpy(), "o", color="0.35", ms=3.5, label="truth")
        (self._line,) = ax.plot(index, [0.0] * len(index), "x", color="C0", ms=4)
        self._line.set_label("model")
        t_lo, t_hi = float(truth.min()), float(truth.max())
        margin = 0.25 * max(t_hi - t_lo, 1.0)
        ax.set_ylim(t_lo - margin, t_hi + margin)
        thinned = f", every {stride}th" if stride > 1 else ""
        ax.set_xlabel(f"training sample ({len(x)} of them{thinned})")
        ax.legend(
            loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, fontsize="small", frameon=False
        )
        self._title = ax.set_title("", loc="left")
        self._dynamic = [self._line, self._title]

    def _samples_update(self, model: nn.Module, epoch: int) -> None:
        out = tasks.predict_fn(model)(self._points.to(_device_of(model))).cpu()
        self._line.set_ydata(out.clamp(-1e6, 1e6).numpy())
        self._title.set_text(f"{self.task.name}, epoch {epoch}")
