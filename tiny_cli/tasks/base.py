"""What a task is: its config section, which owns everything about it.

A task is a pydantic config section (`task:` in YAML) whose class carries the rest: its data
(domain and truth), its kind and rule for a right answer, its metrics, its default
architecture and loss, its constructions, and its meaning: what a net's weights say about
the task (`meaning`, shown by `meaning_lines`: lt's threshold, min's alpha), and the
scalars TensorBoard logs for it every epoch (`derived`). Adding a task is one such class,
registered in `tiny_cli.tasks` or through the `tiny.tasks` entry-point group from any
package.

Methods import torch when they run, so validating a config never imports it; `meaning`,
`meaning_lines` and `derived` never import it (the read-out runs where torch is not).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from tiny_cli.errors import TinyError, echo
from tiny_cli.spec.models import Arch
from tiny_cli.spec.schema import Section

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor

    from tiny_cli.spec.sections import InitConfig

Kind = Literal["classification", "regression"]
Encoding = Literal["number", "one_hot"]
MAX_ONE_HOT_UNITS = 4096  # input units of a one-hot encoding, all inputs together
Metrics = dict[str, Any]
Meaning = dict[str, Any]  # plain data (JSON): keys the read-out adds to its own
Predict = Callable[["Tensor"], "Tensor"]  # inputs [n, in] -> outputs, flat [n]
StateDict = dict[str, "Tensor"]


class LayerArrays(Protocol):
    """One layer of a net as a meaning reads it (`read.arrays.Dense`, float64)."""

    @property
    def weight(self) -> np.ndarray: ...  # [units, fan_in]

    @property
    def bias(self) -> np.ndarray: ...  # [units]

    @property
    def activation(self) -> str: ...  # a name of the table, `spec.activations`


class NetArrays(Protocol):
    """A net as a meaning reads it (`read.arrays.Net`): its layers in order, the read-out
    last; with `skip`, the read-out reads `[inputs, last hidden layer]`
    (`spec.models.skip_columns`)."""

    @property
    def inputs(self) -> int: ...

    @property
    def skip(self) -> bool: ...

    @property
    def layers(self) -> Sequence[LayerArrays]: ...


@dataclass(frozen=True)
class Construction:
    """A hand-made net for a task: the architecture it needs and its weights."""

    name: str
    summary: str
    arch: Arch
    weights: Callable[[], StateDict]


@dataclass(frozen=True)
class HeatPanel:
    """One panel of a task's picture: a heat map of `values` [rows, columns] (numpy)."""

    title: str
    values: np.ndarray


@dataclass(frozen=True)
class TaskPicture:
    """A picture a task makes of its nets (`Task.pictures`): heat maps side by side, one
    per panel, on one colour scale, drawn by `show.taskplot`. Plain data (numpy, strings),
    so it is drawn in the sidecar. `name` is its file in the run directory, one of the
    task's `picture_files`; TensorBoard shows it as the image `task/<its stem>`."""

    name: str
    title: str
    xlabel: str
    ylabel: str
    scale: str  # what the colours measure (the colour bar's label)
    panels: tuple[HeatPanel, ...]
    vmin: float = 0.0
    vmax: float = 1.0

    def __post_init__(self) -> None:
        stem, dot, ext = self.name.rpartition(".")
        if not (dot and ext == "png" and stem.replace("_", "").isalnum()):
            raise ValueError(f"a task picture's name is a plain word.png, not {self.name!r}")


class Task(Section):
    """Base of every task section. Subclasses set `name: Literal[...]` (the first value is the
    task's name, others are aliases), their parameters with defaults, and the methods."""

    name: str
    # How the net sees an integer input: as the number itself, or one unit per value
    # (`one_hot`: a, b in [0, p) feed 2p units, named `a=0`, ..., `b=p-1`).
    encoding: Encoding = "number"

    summary: ClassVar[str] = ""
    kind: ClassVar[Kind]  # set by every task (expr makes it a config key)
    # A classification's classes: 2 is one output (0/1, as every task of the article);
    # C > 2 is a read-out of C units, one-hot targets [n, C], right where the argmax is.
    classes: ClassVar[int] = 2
    default_loss: ClassVar[str] = "mse"
    # Final metrics worth a column in TensorBoard's HPARAMS table (list entries as `k[i]`).
    summary_metrics: ClassVar[tuple[str, ...]] = ()
    # `tiny hardwire` options that set `init.<option>` for this task's constructions.
    construction_options: ClassVar[tuple[str, ...]] = ()
    # The files `pictures` may make, each with its section's heading and caption in the
    # report: file name -> (heading, caption).
    picture_files: ClassVar[dict[str, tuple[str, str]]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Every task's `data`, a plugin's included, is checked as it returns (`checked`)."""
        super().__pydantic_init_subclass__(**kwargs)
        own = cls.__dict__.get("data")
        if own is not None and not getattr(own, "_checked", False):
            cls.data = _checked_data(own)  # type: ignore[method-assign]

    def input_names(self) -> tuple[str, ...]:
        return ("x",)

    def integer_ranges(self) -> list[tuple[int, int]] | None:
        """Each input's integers, half-open [lo, hi), when every input is an integer in a
        range: what `encoding: one_hot` needs. None: not integer inputs."""
        return None

    def outputs(self) -> int:
        """The net's read-out width: one, or one per class of a many-class task."""
        return self.classes if self.kind == "classification" and self.classes > 2 else 1

    @property
    def many_classes(self) -> bool:
        return self.outputs() > 1 and self.kind == "classification"

    def unit_names(self) -> tuple[str, ...]:
        """The net's input units: the inputs, or with `one_hot` each input's values (`a=3`)."""
        ranges = self.integer_ranges() if self.encoding == "one_hot" else None
        if ranges is None:
            return self.input_names()
        return tuple(
            f"{name}={v}"
            for name, (lo, hi) in zip(self.input_names(), ranges, strict=True)
            for v in range(lo, hi)
        )

    def net_inputs(self) -> int:
        """How many input units the net has (`unit_names`)."""
        ranges = self.integer_ranges() if self.encoding == "one_hot" else None
        if ranges is None:
            return len(self.input_names())
        return sum(hi - lo for lo, hi in ranges)

    def encode(self, x: Tensor) -> Tensor:
        """The task's inputs [n, inputs] as the net sees them: themselves, or one-hot
        ([n, sum of the ranges' sizes]; a value outside its range sets no unit)."""
        ranges = self.integer_ranges() if self.encoding == "one_hot" else None
        if ranges is None:
            return x
        import torch

        parts = []
        for i, (lo, hi) in enumerate(ranges):
            values = torch.arange(lo, hi, dtype=x.dtype, device=x.device)
            parts.append((x[:, i : i + 1] == values).to(x.dtype))
        return torch.cat(parts, dim=1)

    def decode(self, x: Tensor) -> Tensor:
        """`encode` undone: the net's inputs back as the task's [n, inputs]."""
        ranges = self.integer_ranges() if self.encoding == "one_hot" else None
        if ranges is None or x.shape[1] == len(ranges):
            return x
        import torch

        cols, first = [], 0
        for lo, hi in ranges:
            cols.append(x[:, first : first + hi - lo].argmax(dim=1).to(x.dtype) + lo)
            first += hi - lo
        return torch.stack(cols, dim=1)

    def net_fn(self, model: Any, should_stop: Callable[[], bool] | None = None) -> Predict:
        """`predict_fn` of a net of this task, taking the task's inputs [n, inputs] (encoded
        here, `encode`) or the net's own [n, net_inputs] (the domain, `data`)."""
        f = predict_fn(model, should_stop=should_stop)
        if self.net_inputs() == len(self.input_names()):
            return f

        def encoded(x: Tensor) -> Tensor:
            return f(self.encode(x) if x.shape[1] == len(self.input_names()) else x)

        return encoded

    def label(self, y: Tensor) -> Tensor:
        """Targets or outputs [n, outputs] as one number per sample [n]: a many-class
        task's class (the argmax), else the output itself."""
        return y.argmax(dim=-1).to(y.dtype) if self.many_classes else y.reshape(-1)

    def picture_title(self) -> str:
        """What a picture of this task calls it: its name (expr: its expression)."""
        return self.name

    def plane(self) -> tuple[float, float, float, float] | None:
        """For a task of two continuous inputs: the part of the plane its pictures show,
        (x1 lo, x1 hi, x2 lo, x2 hi) (the prediction picture's decision region, units.png's
        heat maps). Default None: a picture spans the domain's own box."""
        return None

    def size(self) -> int:
        """Size of the training set, known without building it."""
        raise NotImplementedError

    def data(self) -> tuple[Tensor, Tensor]:
        """Training inputs [n, inputs] and targets [n, 1], float32. Whatever a subclass
        returns is checked (`check_data`): a target that float32 cannot hold (NaN, inf, beyond
        about 3.4e38) is one line naming the task and the first input where it happens."""
        raise NotImplementedError

    def domain_text(self) -> str:
        """Which inputs `data` holds, in words: what a read-out's errors and "same function"
        hold on. Default: "the N training inputs"; a task whose data is every input of its
        box says so (`whole_box`)."""
        return f"the {self.size():,} training inputs"

    def truth(self, x: Tensor) -> Tensor:
        """The target for any inputs [n, inputs] -> [n, 1] (pictures, beyond the domain)."""
        raise NotImplementedError

    def correct(self, pred: Tensor, y: Tensor, dim: int = 0) -> Tensor:
        """Per sample: is the output right? (classification; any matching shapes). The one
        rule behind training accuracy, final accuracy and a sweep's "solved". Default: the
        output rounds to the target (within 0.5); with many classes, the argmax over `dim`
        (the outputs' axis, kept with size 1; 0 in the engine's [outputs, n, S]) is the
        target's."""
        if self.many_classes:
            return argmax_right(pred, y, dim)
        return rounds_right(pred, y)

    def default_model(self) -> dict[str, Any]:
        """The `model:` section used when a config gives none (a preset or `layers`)."""
        raise NotImplementedError

    def constructions(self, init: InitConfig) -> list[Construction]:
        """Hand-made nets for this task (the first is what `tiny hardwire` builds)."""
        return []

    def construction_for(self, init: InitConfig, arch: Arch) -> Construction | None:
        """The first construction of `arch`: what a hardwired init of it loads, and what a
        net of it is measured against."""
        return next((c for c in self.constructions(init) if c.arch == arch), None)

    def metrics(self, f: Predict, x: Tensor, y: Tensor, pred: Tensor) -> Metrics:
        """Final metrics beyond the loss, given the predictions on the domain (flat) and the
        net as a function, for looking beyond the domain. Default: accuracy (classification)
        or mean and max absolute error (regression)."""
        if self.kind == "classification":
            right = self.correct(pred, y.reshape(pred.shape), dim=-1)
            return {"accuracy": right.float().mean().item()}
        err = (pred - y.reshape(-1)).abs()
        return {"mae": err.mean().item(), "max_abs_error": err.max().item()}

    def meaning(
        self, net: NetArrays, x: np.ndarray, y: np.ndarray, metrics: Mapping[str, Any]
    ) -> Meaning:
        """What `net` means for this task, read from its weights: plain data that the
        read-out adds to its own keys (`tiny inspect --json`'s `readout`), so a key must not
        be one of the read-out's (`formula`, `exact`, `outcome`, ...). `x` [n, inputs] and
        `y` [n, outputs] are the domain as numpy (`read.arrays.domain`); `metrics` the run's
        final metrics, {} when there are none (a sweep's seed). A sweep's solutions
        histogram the meaning's `alpha` (a number; `in_family` false: counted apart).
        Default: the interval where the net is right, when the metrics measured one
        (`correct_interval`); else nothing. A task that adds its own keys puts them first:
        `{**mine, **super().meaning(net, x, y, metrics)}`."""
        return {k: metrics[k] for k in ("correct_interval", "wrong_at") if k in metrics}

    @classmethod
    def meaning_lines(cls, meaning: Mapping[str, Any]) -> list[str]:
        """How a meaning is shown: one line of text each, in the read-out of `tiny inspect`,
        `tiny train` and `tiny report`. `meaning` may be a whole read-out as stored (plain
        data from disk: anything), so read only this task's keys, and check them. Default:
        the correct interval's line; a task's own lines go before it:
        `[*mine, *super().meaning_lines(meaning)]`. A classmethod: a read-out as plain data
        is shown without its task (`tiny_cli.tasks.meaning_lines`)."""
        interval = meaning.get("correct_interval")
        if not interval:
            return []
        lo, hi = interval
        wrong = meaning.get("wrong_at")
        wrong = wrong if isinstance(wrong, list) else []  # (from disk: anything)
        where = " and ".join(str(w) for w in wrong if w is not None)
        return [
            f"right on every integer in [{lo}, {hi}]" + (f", wrong at {where}" if where else "")
        ]

    def derived(self, arch: Arch, flat: Sequence[float]) -> dict[str, float]:
        """Scalars that explain the mechanism, from a net's flat parameters (plain floats,
        in `parameters()` order): TensorBoard logs them every logged epoch as `mechanism/*`
        and the final metrics keep them, so they must be cheap, and have the same keys for
        every parameter vector of `arch`. Default: none."""
        return {}

    def progress(self, arch: Arch, params: Tensor) -> dict[str, Tensor]:
        """Task-specific progress measures over training, per seed (Nanda et al. 2023): from
        the engine's flat parameters `params` [S, P] (S seeds, `parameters()` order), each
        measure's name -> its value per seed [S]. TensorBoard logs them at every logged
        epoch as `progress/<name>` beside the weight norm and the training and test
        accuracy, and a sweep records their median over the seeds (binned as fractions in
        [0, 1]: a share, such as the Fourier concentration of a layer). The names must be
        the same for every parameter vector of `arch`. Default: none."""
        return {}

    def pictures(self, nets: Sequence[tuple[str, NetArrays]]) -> list[TaskPicture]:
        """Pictures of a run's nets that only this task knows how to read, written beside
        prediction.png (each `TaskPicture.name`, one of `picture_files`), into TensorBoard
        and into the report. `nets`: (when, net) in epoch order, each `when` a panel's
        title ("epoch 0", "epoch 5000", "hardwired"): a trained run's first logged epoch
        and its last, a hardwired run's one net. Numpy only, no drawing (`show.taskplot`
        draws). Default: none."""
        return []

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The values `name` accepts: the task's name, then its aliases."""
        return tuple(cls.model_fields["name"].annotation.__args__)  # type: ignore[union-attr]

    @classmethod
    def parameters(cls) -> dict[str, Any]:
        """Parameter -> default (REQUIRED where there is none), for `tiny tasks`."""
        return {
            k: (REQUIRED if f.is_required() else f.get_default(call_default_factory=True))
            for k, f in cls.model_fields.items()
            if k != "name"
        }


REQUIRED = "(required)"


# --- shared pieces ----------------------------------------------------------------------


def _checked_data(data: Callable[[Any], tuple[Tensor, Tensor]]) -> Any:
    @functools.wraps(data)
    def checked(self: Task) -> tuple[Tensor, Tensor]:
        x, y = data(self)
        check_data(self, x, y)
        return self.encode(x), y

    checked._checked = True  # type: ignore[attr-defined]
    return checked


def check_data(task: Task, x: Tensor, y: Tensor) -> None:
    """Refuse a domain a net cannot train on: an input or a target that is not a finite
    float32 (NaN, inf, or a float64 beyond float32's about 3.4e38), named by the first input
    where it happens, before anything is stored."""
    import torch

    for what, values in (("input", x), ("target", y)):
        rows = values.reshape(len(values), -1) if len(values) else values.reshape(0, 1)
        bad = (~torch.isfinite(rows.float())).any(dim=1).nonzero()
        if len(bad):
            i = int(bad[0])
            value = rows[i].tolist()
            shown = value[0] if len(value) == 1 else value
            raise TinyError(
                f"task {task.name}: the {what} at {_point(task, x[i])} is {shown!r}, which "
                f"float32 cannot hold (not a finite number, or beyond ±3.4e38): a net cannot "
                f"learn it ({len(bad):,} of {len(rows):,} {what}s like it)"
            )


def _point(task: Task, row: Tensor) -> str:
    """An input as `a=3, b=-2`, each value as a whole number when it is one."""
    values = [int(v) if float(v).is_integer() else v for v in row.reshape(-1).tolist()]
    names = list(task.input_names())
    if len(names) != len(values):
        names = [f"x{k}" for k in range(len(values))]
    return ", ".join(f"{n}={echo(v)}" for n, v in zip(names, values, strict=True))


def brief(value: Any, digits: int = 4) -> str:
    """A number of a meaning line to `digits` significant digits; anything else as "-"."""
    return f"{value:.{digits}g}" if isinstance(value, int | float) else "-"


def rounds_right(pred: Tensor, y: Tensor) -> Tensor:
    """The output rounds to the target: within 0.5 of it."""
    return (pred - y).abs() < 0.5


def argmax_right(pred: Tensor, y: Tensor, dim: int) -> Tensor:
    """The largest output is the target's class (one-hot along `dim`, kept as size 1)."""
    return pred.argmax(dim=dim, keepdim=True) == y.argmax(dim=dim, keepdim=True)


def builtin_rule(correct: Callable[..., Tensor]) -> Literal["rounds", "argmax"] | None:
    """Which built-in rule `correct` is: "rounds" (`rounds_right`), "argmax" (`argmax_right`
    over the outputs), as `Task.correct` does when a task keeps it; None for any other rule
    (a task's own, a plugin's). What the compiled engine counts itself; anything else it
    hands back as predictions for `correct` to judge."""
    if correct is rounds_right:
        return "rounds"
    task = getattr(correct, "__self__", None)
    if isinstance(task, Task) and getattr(correct, "__func__", None) is Task.correct:
        return "argmax" if task.many_classes else "rounds"
    return None


def predict_fn(
    model: Any, chunk: int = 1 << 20, should_stop: Callable[[], bool] | None = None
) -> Predict:
    """A module as a function of its inputs: flat outputs [n] (one output) or [n, outputs],
    in chunks for huge domains.
    `should_stop` is asked before each chunk; when it says so, `Stopped` is raised."""
    import torch

    from tiny_cli.errors import Stopped

    @torch.no_grad()
    def f(x: Tensor) -> Tensor:
        parts = []
        for i in range(0, len(x), chunk):
            if should_stop is not None and should_stop():
                raise Stopped("stopped by a signal while evaluating the net")
            out = model(x[i : i + chunk])
            parts.append(out.reshape(-1) if out.shape[-1] == 1 else out)
        return torch.cat(parts)

    return f


def whole_box(points: int, what: str) -> str:
    """`Task.domain_text` of a task trained on every input of its box: "the whole input
    box (the 60 integers in [-20, 40))"."""
    return f"the whole input box (the {points:,} {what})"


def integer_grid(*ranges: tuple[int, int]) -> Tensor:
    """Every integer point of a box, `ranges` half-open [lo, hi), as float32 [n, len(ranges)],
    the first coordinate varying slowest."""
    import torch

    axes = [torch.arange(lo, hi, dtype=torch.float32) for lo, hi in ranges]
    if len(axes) == 1:
        return axes[0].unsqueeze(1)
    return torch.cartesian_prod(*axes)


def right_on(task: Task, f: Predict, lo: int, hi: int) -> Tensor:
    """Per integer in [lo, hi]: is the net right there? (a one-input classification task).
    The truth is taken at the integer itself (float64), the net sees it as float32 does:
    past 2^24, where float32 no longer holds every integer, that is where it goes wrong."""
    import torch

    x = torch.arange(lo, hi + 1, dtype=torch.float64).unsqueeze(1)
    pred = f(x.float()).double()
    truth = task.truth(x).double().reshape(pred.shape)
    return task.correct(pred, truth, dim=-1).reshape(-1)


def correct_interval(task: Task, f: Predict, lo: int, hi: int, chunk: int = 4096) -> Metrics:
    """Where the net is right: the widest integer interval around [lo, hi] with no mistake.

    The domain is checked whole; the interval then grows on each side, in chunks that
    double (so a 2^24 domain takes a few dozen forwards), up to the first wrong integer,
    looking at most one domain's width further (`wrong_at` is None on a side where no
    mistake was found that far).
    """
    if not bool(right_on(task, f, lo, hi).all()):
        return {"correct_interval": None, "wrong_at": None}
    if task.encoding == "one_hot":  # an integer beyond the range sets no input unit
        return {"correct_interval": [lo, hi], "wrong_at": [None, None]}
    limit = hi - lo + 1
    left, right = lo, hi
    wrong_left: int | None = None
    wrong_right: int | None = None
    step = chunk
    while wrong_left is None and left > lo - limit:
        wrong = (~right_on(task, f, left - step, left - 1)).nonzero()
        if len(wrong):
            wrong_left = left - step + int(wrong[-1])
            left = wrong_left + 1
        else:
            left -= step
            step = min(2 * step, 1 << 22)
    step = chunk
    while wrong_right is None and right < hi + limit:
        wrong = (~right_on(task, f, right + 1, right + step)).nonzero()
        if len(wrong):
            wrong_right = right + 1 + int(wrong[0])
            right = wrong_right - 1
        else:
            right += step
            step = min(2 * step, 1 << 22)
    return {"correct_interval": [left, right], "wrong_at": [wrong_left, wrong_right]}


def tensor(values: Any) -> Tensor:
    import torch

    return torch.tensor(values, dtype=torch.float32)


def layers(*spec: tuple[int, str]) -> dict[str, Any]:
    """A `model:` section of layers: `layers((2, "relu"), (1, "identity"))`."""
    return {"layers": [{"width": w, "activation": a} for w, a in spec]}
