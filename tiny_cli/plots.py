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

    def __init__(self, task: Task, x: Tensor, hardwired: bool = False) -> None:
        self.task = task
        self.hardwired = hardwired  # titled "hardwired", not "epoch 0"
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

    def _when(self, epoch: int) -> str:
        return "hardwired" if self.hardwired and epoch == 0 else f"epoch {epoch}"

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

    # --- one input: the net at the integers, right and wrong ones marked -------------------

    def _curve_setup(self, x: Tensor) -> None:
        """The integers of the domain and a margin beyond it (a quarter of the domain, at
        least 4: where a net that is right on the domain starts to fail, as the article's
        is_even at -2 and 18), as markers: the truth, and the net's output, green where it is
        right and red where not. A big domain is thinned to every k-th integer (k odd, so
        is_even still alternates), and the title says so; between the integers, the net's
        curve is drawn only while the domain is small enough to see it."""
        lo, hi = float(x.min()), float(x.max())
        pad = max(4.0, round(0.25 * (hi - lo)))
        start, stop = math.floor(lo - pad), math.ceil(hi + pad)
        stride = max(1, math.ceil((stop - start + 1) / MAX_MARKERS)) | 1
        self._ints = torch.arange(start, stop + 1, stride, dtype=torch.float32).unsqueeze(1)
        self._truth = self.task.truth(self._ints).reshape(-1)
        self._stride = stride
        self._dense = (
            torch.linspace(float(start), float(stop), CURVE_POINTS).unsqueeze(1)
            if stop - start <= CURVE_POINTS
            else None
        )
        self.figure.subplots_adjust(left=0.09, right=0.8, bottom=0.14, top=0.9)
        ax = self.figure.add_subplot()
        ax.axvspan(lo, hi, color="0.93", zorder=0, label="training\ndomain")
        # matplotlib gets numpy arrays: it iterates over torch tensors element by element.
        xs = self._ints.reshape(-1).numpy()
        ax.plot(xs, self._truth.numpy(), "o", color="0.35", ms=3.5, mfc="none", label="truth")
        self._dynamic = []
        if self._dense is not None:
            (self._line,) = ax.plot(
                self._dense.reshape(-1).numpy(), [0.0] * CURVE_POINTS, color="C0", lw=0.8
            )
            self._dynamic.append(self._line)
        (self._right,) = ax.plot([], [], "o", color="tab:green", ms=3, label="net: right")
        (self._wrong,) = ax.plot([], [], "X", color="tab:red", ms=5, label="net: wrong")
        t_lo, t_hi = float(self._truth.min()), float(self._truth.max())
        margin = 0.25 * max(t_hi - t_lo, 1.0)
        self._ylim = (t_lo - margin, t_hi + margin)
        ax.set_ylim(*self._ylim)
        ax.set_xlim(float(start) - 0.5, float(stop) + 0.5)
        ax.set_xlabel("x" + (f" (every {stride}th integer shown)" if stride > 1 else ""))
        # Legend right of the axes: drawn once, never hidden by the net.
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="x-small", frameon=False)
        self._title = ax.set_title("", loc="left", fontsize="small")
        self._dynamic += [self._right, self._wrong, self._title]

    def _curve_update(self, model: nn.Module, epoch: int) -> None:
        f = tasks.predict_fn(model)
        dev = _device_of(model)
        out = f(self._ints.to(dev)).cpu()
        if self.task.kind == "classification":
            right = self.task.correct(out, self._truth)
        else:
            right = (out - self._truth).abs() <= 0.5
        xs = self._ints.reshape(-1)
        shown = out.clamp(*self._ylim)  # an output off the chart sits on its edge
        self._right.set_data(xs[right].numpy(), shown[right].numpy())
        self._wrong.set_data(xs[~right].numpy(), shown[~right].numpy())
        if self._dense is not None:
            self._line.set_ydata(f(self._dense.to(dev)).cpu().clamp(-1e6, 1e6).numpy())
        # (the curve may leave the chart: clipped by the axes, as a curve should be)
        wrong = int((~right).sum())
        thinned = f", every {self._stride}th integer" if self._stride > 1 else ""
        self._title.set_text(
            f"{self.task.name}, {self._when(epoch)}: wrong at {wrong} of the {len(xs)} "
            f"integers shown{thinned}"
        )

    # --- two inputs: the output over a grid, the error on the training points ---------------

    def _heat_setup(self, x: Tensor) -> None:
        """Left: the net's output over a grid of the domain (fixed colour scale: the truth's
        range). Right: its error on the training points themselves, the points the metrics
        use, on a colour scale that follows the error (so a converged net still shows where
        it is off); the title gives their max error, as `max_abs_error` does."""
        lo, hi = x.min(dim=0).values.tolist(), x.max(dim=0).values.tolist()
        axes = [
            torch.linspace(lo[i], hi[i], min(GRID_SIDE, int(hi[i] - lo[i]) + 1)) for i in (0, 1)
        ]
        a, b = torch.meshgrid(axes[0], axes[1], indexing="xy")  # rows: b, columns: a
        self._shape = a.shape
        self._grid = torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)
        self._points = x
        self._point_truth = self.task.truth(x).reshape(-1)
        truth = self.task.truth(self._grid)
        extent = (lo[0], hi[0], lo[1], hi[1])
        t_lo, t_hi = float(truth.min()), float(truth.max())
        self.figure.subplots_adjust(left=0.1, right=0.95, bottom=0.14, top=0.82, wspace=0.5)
        left, right = self.figure.subplots(1, 2)
        zeros = torch.zeros(self._shape).numpy()
        common: dict[str, Any] = {"origin": "lower", "extent": extent, "aspect": "auto"}
        self._out_im = left.imshow(zeros, cmap="viridis", vmin=t_lo, vmax=t_hi, **common)
        self._err_pts = right.scatter(
            x[:, 0].numpy(), x[:, 1].numpy(), c=[0.0] * len(x), cmap="RdBu_r", s=6,
            vmin=-1.0, vmax=1.0,
        )  # fmt: skip
        right.set_xlim(lo[0], hi[0])
        right.set_ylim(lo[1], hi[1])
        self.figure.colorbar(self._out_im, ax=left)
        for ax in (left, right):
            ax.set_xlabel("a")
            ax.set_ylabel("b")
        left.set_title("model(a, b)", fontsize="medium")
        self._err_title = right.set_title("", fontsize="small")
        self._title = self.figure.suptitle("")
        self._dynamic = [self._out_im, self._err_pts, self._err_title, self._title]

    def _heat_update(self, model: nn.Module, epoch: int) -> None:
        f = tasks.predict_fn(model)
        dev = _device_of(model)
        out = f(self._grid.to(dev)).cpu().reshape(self._shape)
        err = f(self._points.to(dev)).cpu() - self._point_truth
        # Saturated colours either way; clamping keeps a diverging net's 1e38 out of the
        # colormap's arithmetic.
        lo, hi = self._out_im.get_clim()
        span = hi - lo
        self._out_im.set_data(out.clamp(lo - span, hi + span).numpy())
        finite = err[err.isfinite()]
        worst = float(finite.abs().max()) if len(finite) else math.inf
        scale = min(max(worst, 1e-6), 1e6)
        self._err_pts.set_array(err.clamp(-scale, scale).numpy())
        self._err_pts.set_clim(-scale, scale)
        self._err_title.set_text(
            f"model - truth on the {len(err)} training points\ncolours to ±max |err| = {worst:.3g}"
        )
        self._title.set_text(f"{self.task.name}: {self._when(epoch)}")

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
        self._title.set_text(f"{self.task.name}, {self._when(epoch)}")
