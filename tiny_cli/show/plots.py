"""Pictures of what a net computes: its output against the true function over the domain.

A curve for a task with one input (lt10, is_even), two heat maps for two inputs (min: the
output and its error), output against truth sample by sample for more inputs (parity), and
for a task of the continuous plane (`Task.plane`: Playground's spiral) the decision region
over the plane with the training and test points on it.

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
PLANE_SIDE = 100  # points per axis of the plane's decision region (Playground's density)
ORANGE, BLUE = "#f59322", "#0877bd"  # Playground's colours: label 0 (its -1) and label 1
MAX_MARKERS = 400  # truth markers on a curve; more are a smear, and cost seconds to draw


def ordinal(k: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, 21st."""
    suffix = "th" if k % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


@dataclass(frozen=True)
class Layout:
    """What stays the same over a run's pictures: the kind of picture and its fixed data."""

    mode: str  # "curve" (one input), "heat" (two), "plane" (`Task.plane`), "samples" (more)
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
    `png(model, epoch)` draws it here (`render`). For a task of the plane only: `labels`,
    the points' labels as trained on (default: the task's truth), and `test`, a [n] bool
    mask of the points of `x` that are held out (drawn hollow; default none)."""

    def __init__(
        self,
        task: Task,
        x: Tensor,
        hardwired: bool = False,
        labels: Tensor | None = None,
        test: Tensor | None = None,
    ) -> None:
        self.task = task
        self.title = task.picture_title()  # expr: its expression, not "expr"
        self.hardwired = hardwired  # titled "hardwired", not "epoch 0"
        self.size = SIZE
        x = task.decode(x)  # the task's own inputs (a one-hot encoding undone)
        mode = {1: "curve", 2: "heat"}.get(x.shape[1], "samples")
        self._labels, self._test = labels, test
        if mode == "heat" and task.plane() is not None:
            mode = "plane"
        self.layout = Layout(mode, getattr(self, f"_{mode}_setup")(x))

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

        update: Callable[[nn.Module, int], Frame] = getattr(self, f"_{self.layout.mode}_frame")
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
            # the held-out integers (a config's `data:` section), marked under the points
            "held_out": (x[self._test, 0] if self._test is not None else x[:0, 0]).numpy(),
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

    # --- the plane: the decision region, the training and test points ----------------------

    def _plane_setup(self, x: Tensor) -> dict[str, Any]:
        """The net's output over a PLANE_SIDE x PLANE_SIDE grid of `Task.plane` (one batched
        forward per picture), the points coloured by their label, the held-out ones hollow,
        and the task's truth over the grid (its noiseless rule), drawn once as a dashed line."""
        import torch

        plane = self.task.plane()
        assert plane is not None
        axes = [torch.linspace(plane[2 * i], plane[2 * i + 1], PLANE_SIDE) for i in (0, 1)]
        a, b = torch.meshgrid(axes[0], axes[1], indexing="xy")  # rows: x2, columns: x1
        self._shape = a.shape
        self._grid = torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)
        self._points = x
        labels = self._labels if self._labels is not None else self.task.truth(x)
        self._point_truth = labels.reshape(-1).float()
        test = self._test if self._test is not None else torch.zeros(len(x), dtype=torch.bool)
        self._held = test.reshape(-1).bool()
        truth = self.task.truth(self._grid).reshape(self._shape)
        return {
            "shape": tuple(self._shape),
            "axes": (axes[0].numpy(), axes[1].numpy()),
            "clim": (0.0, 1.0),
            "points": x.cpu().numpy(),
            "labels": self._point_truth.numpy(),
            "test": self._held.numpy(),
            "truth": truth.numpy(),
            "names": self.task.input_names()[:2],
            "levels": [0.5],
        }

    def _plane_frame(self, model: nn.Module, epoch: int) -> Frame:
        from tiny_cli import tasks

        f = tasks.predict_fn(model)
        dev = _device_of(model)
        out = f(self._grid.to(dev)).cpu().reshape(self._shape)
        right = self.task.correct(f(self._points.to(dev)).cpu(), self._point_truth)
        parts = []
        for name, rows in (("training", ~self._held), ("test", self._held)):
            if bool(rows.any()):
                parts.append(f"{int(right[rows].sum())} of {int(rows.sum())} {name} points")
        title = f"{self.title}, {self._when(epoch)}: right on " + ", ".join(parts)
        wrong = self._points[~right].cpu().numpy().reshape(-1, 2)
        return Frame(title, {"out": out.clamp(-1.0, 2.0).numpy(), "wrong": wrong})

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
        self._boundary_colour = "white"
        with style.rc():
            # A fixed layout: "constrained" would lay the figure out again on every picture.
            self.figure = Figure(figsize=FIGSIZE, dpi=DPI)
            self.canvas = FigureCanvasAgg(self.figure)
            getattr(self, f"_{layout.mode}_setup")(layout.data)  # one method per mode
            style.literal(self.figure)  # titles, labels, legends as written; ticks render
            for artist in self._dynamic:
                artist.set_animated(True)  # left out of full draws
            self.canvas.draw()
        self._background = self.canvas.copy_from_bbox(self.figure.bbox)

    def png(self, frame: Frame) -> bytes:
        from PIL import Image

        getattr(self, f"_{self.layout.mode}_update")(frame)
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
        held = d.get("held_out")
        if held is not None and len(held):
            low = d["ylim"][0] + 0.04 * (d["ylim"][1] - d["ylim"][0])
            ax.plot(held, np.full(len(held), low), "^", color="tab:orange", ms=6,
                    label="held out\n(test)")  # fmt: skip
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
            self._boundary = self._left.contour(a, b, out, levels=levels,
                                                colors=self._boundary_colour,
                                                linewidths=2.5)  # fmt: skip
            self._boundary.set_animated(True)

    def _plane_setup(self, d: dict[str, Any]) -> None:
        """One square map of the output, Playground's orange (0) to blue (1) through white;
        the legend right of it, drawn once."""
        from matplotlib.colors import LinearSegmentedColormap
        from matplotlib.lines import Line2D

        cmap = LinearSegmentedColormap.from_list("playground", [ORANGE, "white", BLUE])
        self.figure.subplots_adjust(left=0.07, right=0.6, bottom=0.12, top=0.9)
        ax = self._left = self.figure.add_subplot()
        self._boundary_colour = "black"
        extent = _centred(d["axes"])
        self._out_im = ax.imshow(np.full(d["shape"], 0.5), cmap=cmap, vmin=0.0, vmax=1.0,
                                 origin="lower", extent=extent, alpha=0.8)  # fmt: skip
        a, b = d["axes"]
        truth = d["truth"]
        handles: list[Artist] = []
        labels: list[str] = []
        if truth.min() < 0.5 < truth.max():
            ax.contour(a, b, truth, levels=[0.5], colors="0.3", linewidths=1.5, linestyles="--")
            handles.append(Line2D([], [], color="0.3", ls="--", lw=1.5))
            labels.append("the rule without noise")
        handles.append(Line2D([], [], color="black", lw=2.5))
        labels.append("net: output 0.5")
        points, label, test = d["points"], d["labels"] > 0.5, d["test"]
        colour = np.where(label, BLUE, ORANGE)
        for rows, what in ((~test, "training"), (test, "test")):
            if not rows.any():
                continue
            look: dict[str, Any] = (
                {"facecolors": "none", "edgecolors": colour[rows], "linewidths": 1.5}
                if what == "test"
                else {"c": colour[rows], "edgecolors": "white", "linewidths": 0.6}
            )
            ax.scatter(points[rows, 0], points[rows, 1], s=22, **look)
            for value, hue in ((1, BLUE), (0, ORANGE)):
                filled = {"mfc": "none", "mew": 1.5} if what == "test" else {"mec": "white"}
                handles.append(Line2D([], [], ls="none", marker="o", color=hue, ms=7, **filled))
                labels.append(f"{what}: label {value}")
        self._wrong_pts = ax.scatter(np.zeros(0), np.zeros(0), marker="x", color="black", s=30)
        handles.append(Line2D([], [], ls="none", marker="x", color="black", ms=7))
        labels.append("net: wrong")
        ax.set_xlim(*extent[:2])
        ax.set_ylim(*extent[2:])
        ax.set_xlabel(d["names"][0])
        ax.set_ylabel(d["names"][1])
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.04, 1.0), frameon=False)
        self._title = ax.set_title("", loc="left")
        self._dynamic = [self._out_im, self._wrong_pts, self._title]

    def _plane_update(self, frame: Frame) -> None:
        self._out_im.set_data(frame.data["out"])
        self._wrong_pts.set_offsets(frame.data["wrong"])
        self._title.set_text(frame.title)
        self._contour(frame.data["out"])

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
