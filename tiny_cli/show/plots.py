"""Pictures of what a net computes: its output against the true function over the domain.

A curve for a task with one input (lt10, is_even), two heat maps for two inputs (min: the
output and its error), output against truth sample by sample for more inputs (parity).

Two halves, so the drawing can happen in another process (`tiny_cli.sidecar`):
`PredictionPlot` (torch) fixes what is probed over a run, its `Layout`, and computes each
picture's numbers, a `Frame`; `render(layout, frame)` (numpy and matplotlib only) draws
them. matplotlib's Agg backend and object API only (no pyplot, no display), imported only
when a picture is drawn.

Speed: a full matplotlib draw is mostly text (ticks, labels, legend), the same on every
picture of a run. So the figure of a layout is drawn once without the parts that change
(the model's curve or heat maps, the titles); each picture restores that background and
draws only those ("blitting"), then encodes the PNG at a low compression level: a small
part of a full draw. The axes are fixed over a run, so pictures of one run compare frame by
frame in TensorBoard.
"""

from __future__ import annotations

import io
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tiny_cli.show import style

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from torch import Tensor, nn

    from tiny_cli.tasks import Task

DPI = style.DPI
FIGSIZE = (10.4, 5.6)  # 1040 x 560 pixels: for a projector (show/style.py)
SIZE = (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))  # (width, height) of a PNG
CURVE_POINTS = 600  # the net between the integers, where is_even's hardwired net zigzags
GRID_SIDE = 64  # at most this many points per axis for a 2-input task
MAX_MARKERS = 400  # truth markers on a curve; more are a smear, and cost seconds to draw


def ordinal(k: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, 21st."""
    suffix = "th" if k % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


@dataclass(frozen=True)
class Layout:
    """What stays the same over a run's pictures: the kind of picture and its fixed data."""

    mode: str  # "curve" (one input), "heat" (two), "samples" (more)
    data: dict[str, Any]  # numpy arrays and plain values, per mode (see PredictionPlot)
    key: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class Frame:
    """One picture's numbers (numpy) and its title."""

    title: str
    data: dict[str, Any]


# --- the numbers (torch) -------------------------------------------------------------------


class PredictionPlot:
    """The model's output against the task's truth, over the domain and a margin beyond it.

    `layout` is fixed at construction; `frame(model, epoch)` is one picture's numbers;
    `png(model, epoch)` draws it here (`render`)."""

    def __init__(self, task: Task, x: Tensor, hardwired: bool = False) -> None:
        self.task = task
        self.title = task.picture_title()  # expr: its expression, not "expr"
        self.hardwired = hardwired  # titled "hardwired", not "epoch 0"
        self.size = SIZE
        x = task.decode(x)  # the task's own inputs (a one-hot encoding undone)
        mode = {1: "curve", 2: "heat"}.get(x.shape[1], "samples")
        setup = {"curve": self._curve_setup, "heat": self._heat_setup}.get(
            mode, self._samples_setup
        )
        self.layout = Layout(mode, setup(x))

    def _net(self, model: nn.Module) -> Callable[[Tensor], Tensor]:
        """The net over the task's inputs, one number per input: its output, or its class
        (the argmax) for a many-class task."""
        f = self.task.net_fn(model)
        return lambda x: self.task.label(f(x))

    def _truth_of(self, x: Tensor) -> Tensor:
        return self.task.label(self.task.truth(x))

    def _right(self, out: Tensor, truth: Tensor) -> Tensor:
        return out == truth if self.task.many_classes else self.task.correct(out, truth)

    def _when(self, epoch: int) -> str:
        return "hardwired" if self.hardwired and epoch == 0 else f"epoch {epoch}"

    def frame(self, model: nn.Module, epoch: int) -> Frame:
        """The model as it is now; the title says which epoch it is."""
        import torch

        update = {"curve": self._curve_frame, "heat": self._heat_frame}.get(
            self.layout.mode, self._samples_frame
        )
        with torch.no_grad():
            return update(model, epoch)

    def png(self, model: nn.Module, epoch: int) -> bytes:
        return render(self.layout, self.frame(model, epoch))

    # --- one input: the net at the integers, right and wrong ones marked -------------------

    def _curve_setup(self, x: Tensor) -> dict[str, Any]:
        """The integers of the domain and a margin beyond it (a quarter of the domain, at
        least 4: where a net that is right on the domain starts to fail, as the article's
        is_even at -2 and 18), as markers: the truth, and the net's output, green where it is
        right and red where not. A big domain is thinned to every k-th integer (k odd, so
        is_even still alternates), and the title says so; between the integers, the net's
        curve is drawn only while the domain is small enough to see it."""
        import torch

        lo, hi = float(x.min()), float(x.max())
        pad = max(4.0, round(0.25 * (hi - lo)))
        start, stop = math.floor(lo - pad), math.ceil(hi + pad)
        stride = max(1, math.ceil((stop - start + 1) / MAX_MARKERS)) | 1
        self._ints = torch.arange(start, stop + 1, stride, dtype=torch.float32).unsqueeze(1)
        self._truth = self._truth_of(self._ints)
        self._dense = (
            torch.linspace(float(start), float(stop), CURVE_POINTS).unsqueeze(1)
            if stop - start <= CURVE_POINTS and self.task.encoding == "number"
            else None  # (one-hot: no input between the integers)
        )
        t_lo, t_hi = _finite_span(self._truth)
        margin = 0.25 * max(t_hi - t_lo, 1.0)
        return {
            "domain": (lo, hi),
            "range": (start, stop),
            "stride": stride,
            "ints": self._ints.reshape(-1).numpy(),
            "truth": self._truth.numpy(),
            "dense": None if self._dense is None else self._dense.reshape(-1).numpy(),
            "ylim": (t_lo - margin, t_hi + margin),
            "levels": self._levels(t_lo, t_hi),
            "name": self.task.input_names()[0],
        }

    def _levels(self, lo: float, hi: float) -> list[float]:
        """A classifier's decision boundaries: k + 0.5 between the classes (an output rounds
        to its class, `Task.correct`), 0.5 for 0 and 1; none for a regression."""
        if self.task.kind != "classification":
            return []
        return [k + 0.5 for k in range(math.floor(lo), math.ceil(hi))]

    def _curve_frame(self, model: nn.Module, epoch: int) -> Frame:
        f = self._net(model)
        dev = _device_of(model)
        out = f(self._ints.to(dev)).cpu()
        if self.task.kind == "classification":
            right = self._right(out, self._truth)
        else:
            right = (out - self._truth).abs() <= 0.5
        xs = self._ints.reshape(-1)
        shown = out.clamp(*self.layout.data["ylim"])  # off the chart: on its edge
        data: dict[str, Any] = {
            "right": (xs[right].numpy(), shown[right].numpy()),
            "wrong": (xs[~right].numpy(), shown[~right].numpy()),
        }
        if self._dense is not None:
            data["dense"] = f(self._dense.to(dev)).cpu().clamp(-1e6, 1e6).numpy()
        # (the curve may leave the chart: clipped by the axes, as a curve should be)
        wrong = int((~right).sum())
        stride = self.layout.data["stride"]
        thinned = f", every {ordinal(stride)} integer" if stride > 1 else ""
        title = (
            f"{self.title}, {self._when(epoch)}: wrong at {wrong} of the {len(xs)} "
            f"integers shown{thinned}"
        )
        return Frame(title, data)

    # --- two inputs: the output over a grid, the error on the training points ---------------

    def _heat_setup(self, x: Tensor) -> dict[str, Any]:
        """Left: the net's output over a grid of the domain (fixed colour scale: the truth's
        range). Right: its error on the training points themselves, the points the metrics
        use, on a colour scale that follows the error (so a converged net still shows where
        it is off); the title gives their max error, as `max_abs_error` does."""
        import torch

        lo, hi = x.min(dim=0).values.tolist(), x.max(dim=0).values.tolist()
        axes = [
            torch.linspace(lo[i], hi[i], min(GRID_SIDE, int(hi[i] - lo[i]) + 1)) for i in (0, 1)
        ]
        a, b = torch.meshgrid(axes[0], axes[1], indexing="xy")  # rows: b, columns: a
        self._shape = a.shape
        self._grid = torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)
        self._points = x
        self._point_truth = self._truth_of(x)
        truth = self._truth_of(self._grid)
        t_lo, t_hi = _finite_span(truth)
        return {
            "shape": tuple(self._shape),
            "axes": (axes[0].numpy(), axes[1].numpy()),  # the grid's a and b values
            "clim": (t_lo, t_hi),
            "points": x.cpu().numpy(),
            "names": self.task.input_names()[:2],
            "levels": self._levels(t_lo, t_hi),
        }

    def _heat_frame(self, model: nn.Module, epoch: int) -> Frame:
        f = self._net(model)
        dev = _device_of(model)
        out = f(self._grid.to(dev)).cpu().reshape(self._shape)
        err = f(self._points.to(dev)).cpu() - self._point_truth
        # Saturated colours either way; clamping keeps a diverging net's 1e38 out of the
        # colormap's arithmetic.
        lo, hi = self.layout.data["clim"]
        span = hi - lo
        finite = err[err.isfinite()]
        worst = float(finite.abs().max()) if len(finite) else math.inf
        scale = min(max(worst, 1e-6), 1e6)
        data = {
            "out": out.clamp(lo - span, hi + span).numpy(),
            "err": err.clamp(-scale, scale).numpy(),
            "scale": scale,
            "err_title": f"model - truth on the {len(err)} training points\n"
            f"colours to ±max |err| = {worst:.3g}",
        }
        return Frame(f"{self.title}: {self._when(epoch)}", data)

    # --- three or more inputs: output against truth, sample by sample ---------------------

    def _samples_setup(self, x: Tensor) -> dict[str, Any]:
        import torch

        stride = max(1, math.ceil(len(x) / MAX_MARKERS))
        self._points = x[::stride]
        truth = self._truth_of(self._points)
        t_lo, t_hi = _finite_span(truth)
        margin = 0.25 * max(t_hi - t_lo, 1.0)
        return {
            "index": torch.arange(0, len(x), stride).numpy(),
            "truth": truth.numpy(),
            "ylim": (t_lo - margin, t_hi + margin),
            "xlabel": f"training sample ({len(x)} of them"
            + (f", every {stride}th)" if stride > 1 else ")"),
        }

    def _samples_frame(self, model: nn.Module, epoch: int) -> Frame:
        out = self._net(model)(self._points.to(_device_of(model))).cpu()
        return Frame(f"{self.title}, {self._when(epoch)}", {"out": out.clamp(-1e6, 1e6).numpy()})


def _finite_span(truth: Tensor) -> tuple[float, float]:
    """The truth's range over its finite values (beyond the domain, where the picture's
    margin is, a task's truth may be a division by zero): the axis limits."""
    finite = truth[truth.isfinite()]
    return (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)


def _device_of(model: nn.Module) -> Any:
    return next(model.parameters()).device


# --- the drawing (numpy and matplotlib) ----------------------------------------------------


class Canvas:
    """One layout's figure, its fixed parts drawn once; `png(frame)` draws the rest."""

    def __init__(self, layout: Layout) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.layout = layout
        self._dynamic: list[Artist] = []
        self._boundary: Artist | None = None  # a classifier's 0.5 contour, drawn per frame
        with style.rc():
            # A fixed layout: "constrained" would lay the figure out again on every picture.
            self.figure = Figure(figsize=FIGSIZE, dpi=DPI)
            self.canvas = FigureCanvasAgg(self.figure)
            {"curve": self._curve_setup, "heat": self._heat_setup}.get(
                layout.mode, self._samples_setup
            )(layout.data)
            style.literal(self.figure)  # titles, labels, legends as written; ticks render
            for artist in self._dynamic:
                artist.set_animated(True)  # left out of full draws
            self.canvas.draw()
        self._background = self.canvas.copy_from_bbox(self.figure.bbox)

    def png(self, frame: Frame) -> bytes:
        from PIL import Image

        {"curve": self._curve_update, "heat": self._heat_update}.get(
            self.layout.mode, self._samples_update
        )(frame)
        self.canvas.restore_region(self._background)
        for artist in self._dynamic:
            self.figure.draw_artist(artist)
        if self._boundary is not None:
            self.figure.draw_artist(self._boundary)
        width, height = self.canvas.get_width_height()
        image = Image.frombuffer("RGBA", (width, height), self.canvas.buffer_rgba(), "raw")
        buf = io.BytesIO()
        image.save(buf, format="png", compress_level=1)
        return buf.getvalue()

    def _curve_setup(self, d: dict[str, Any]) -> None:
        lo, hi = d["domain"]
        start, stop = d["range"]
        self.figure.subplots_adjust(left=0.08, right=0.8, bottom=0.14, top=0.9)
        ax = self.figure.add_subplot()
        ax.axvspan(lo, hi, color="0.93", zorder=0, label="training\ndomain")
        for k, level in enumerate(d.get("levels", [])):
            label = "decision\nboundary" + (f" ({level:g})" if len(d["levels"]) > 1 else "")
            ax.axhline(level, color="0.45", ls=":", lw=1.5, label=None if k else label)
        ax.plot(d["ints"], d["truth"], "o", color="0.35", ms=8, mfc="none", mew=1.5,
                label="truth")  # fmt: skip
        self._line = None
        if d["dense"] is not None:
            (self._line,) = ax.plot(d["dense"], np.zeros(len(d["dense"])), color="C0", lw=1.5)
            self._dynamic.append(self._line)
        (self._right,) = ax.plot([], [], "o", color="tab:green", ms=6, label="net: right")
        (self._wrong,) = ax.plot([], [], "X", color="tab:red", ms=10, label="net: wrong")
        ax.set_ylim(*d["ylim"])
        ax.set_xlim(float(start) - 0.5, float(stop) + 0.5)
        stride = d["stride"]
        name = d.get("name", "x")
        ax.set_xlabel(name + (f" (every {ordinal(stride)} integer shown)" if stride > 1 else ""))
        ax.grid(alpha=0.25)
        # Legend right of the axes: drawn once, never hidden by the net.
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        self._title = ax.set_title("", loc="left")
        self._dynamic += [self._right, self._wrong, self._title]

    def _curve_update(self, frame: Frame) -> None:
        self._right.set_data(*frame.data["right"])
        self._wrong.set_data(*frame.data["wrong"])
        if self._line is not None:
            self._line.set_ydata(frame.data["dense"])
        self._title.set_text(frame.title)

    def _heat_setup(self, d: dict[str, Any]) -> None:
        x = d["points"]
        t_lo, t_hi = d["clim"]
        a_name, b_name = d["names"]
        self.figure.subplots_adjust(left=0.08, right=0.97, bottom=0.15, top=0.79, wspace=0.3)
        left, right = self.figure.subplots(1, 2)
        self._left = left
        common: dict[str, Any] = {"origin": "lower", "extent": _centred(d["axes"]),
                                  "aspect": "auto"}  # fmt: skip
        self._out_im = left.imshow(np.zeros(d["shape"]), cmap="viridis", vmin=t_lo, vmax=t_hi,
                                   **common)  # fmt: skip
        self._err_pts = right.scatter(
            x[:, 0], x[:, 1], c=np.zeros(len(x)), cmap="RdBu_r", s=14, vmin=-1.0, vmax=1.0
        )
        for ax in (left, right):  # fixed: a contour drawn later must not rescale them
            ax.set_xlim(*common["extent"][:2])
            ax.set_ylim(*common["extent"][2:])
        self.figure.colorbar(self._out_im, ax=left)
        for ax in (left, right):
            ax.set_xlabel(a_name)
            ax.set_ylabel(b_name)
        model = f"model({a_name}, {b_name})"
        if d["levels"]:
            levels = " ".join(f"{v:g}" for v in d["levels"])
            model += f"\nwhite line: output {levels}, the decision"
        left.set_title(model)
        self._err_title = right.set_title("")
        self._title = self.figure.suptitle("")
        self._dynamic = [self._out_im, self._err_pts, self._err_title, self._title]

    def _heat_update(self, frame: Frame) -> None:
        d = frame.data
        self._out_im.set_data(d["out"])
        self._err_pts.set_array(d["err"])
        self._err_pts.set_clim(-d["scale"], d["scale"])
        self._err_title.set_text(d["err_title"])
        self._title.set_text(frame.title)
        self._contour(d["out"])

    def _contour(self, out: np.ndarray) -> None:
        """A classifier's decision boundary on the output map: where the output crosses
        k + 0.5 (none drawn where it never does)."""
        if self._boundary is not None:
            self._boundary.remove()
            self._boundary = None
        levels = [v for v in self.layout.data["levels"] if out.min() < v < out.max()]
        if levels:
            a, b = self.layout.data["axes"]
            self._boundary = self._left.contour(a, b, out, levels=levels, colors="white",
                                                linewidths=2.5)  # fmt: skip
            self._boundary.set_animated(True)

    def _samples_setup(self, d: dict[str, Any]) -> None:
        self.figure.subplots_adjust(left=0.08, right=0.97, bottom=0.14, top=0.88)
        ax = self.figure.add_subplot()
        ax.plot(d["index"], d["truth"], "o", color="0.35", ms=7, mfc="none", label="truth")
        (self._samples,) = ax.plot(d["index"], np.zeros(len(d["index"])), "x", color="C0", ms=7)
        self._samples.set_label("model")
        ax.set_ylim(*d["ylim"])
        ax.set_xlabel(d["xlabel"])
        ax.grid(alpha=0.25)
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, frameon=False)
        self._title = ax.set_title("", loc="left")
        self._dynamic = [self._samples, self._title]

    def _samples_update(self, frame: Frame) -> None:
        self._samples.set_ydata(frame.data["out"])
        self._title.set_text(frame.title)


def _centred(axes: tuple[np.ndarray, np.ndarray]) -> tuple[float, float, float, float]:
    """An image's extent with each pixel centred on its grid point (as the contour's)."""
    out: list[float] = []
    for v in axes:
        half = (float(v[-1]) - float(v[0])) / max(1, len(v) - 1) / 2 or 0.5
        out += [float(v[0]) - half, float(v[-1]) + half]
    return (out[0], out[1], out[2], out[3])


_CANVASES: dict[str, Canvas] = {}
_KEEP = 4  # canvases kept per process (one per run's picture; a process draws one run)


def canvas(layout: Layout) -> Canvas:
    """The process's canvas for `layout` (made on first use: blitting needs it kept)."""
    found = _CANVASES.get(layout.key)
    if found is None:
        while len(_CANVASES) >= _KEEP:
            _CANVASES.pop(next(iter(_CANVASES)))
        found = _CANVASES[layout.key] = Canvas(layout)
    return found


def render(layout: Layout, frame: Frame) -> bytes:
    """A PNG of one frame (the sidecar's "picture" job)."""
    return canvas(layout).png(frame)
