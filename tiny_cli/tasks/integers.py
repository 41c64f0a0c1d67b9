"""Functions of one integer: is_even (the article's log-depth chain), x mod k, |x|."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, StrictInt

from tiny_cli.spec import models
from tiny_cli.spec.models import Arch, Layer
from tiny_cli.spec.schema import Bound
from tiny_cli.tasks.base import (
    Construction,
    Kind,
    Metrics,
    Predict,
    StateDict,
    Task,
    correct_interval,
    layers,
    tensor,
    whole_box,
)
from tiny_cli.tasks.threshold import IntegerRange

if TYPE_CHECKING:
    from torch import Tensor

    from tiny_cli.spec.sections import InitConfig

MAX_BITS = 24  # float32 holds every integer up to 2^24 exactly


def is_even_chain(bits: int) -> StateDict:
    """x mod 2 on [0, 2^n) as f_1 . f_1 . f_2 . f_4 ... f_(2^(n-1)) (x), with f_c(x) = |x - c|.

    Each |h - c| is two ReLU neurons, ReLU(-(h) + c) + ReLU(h - c); the next layer sums the
    pair, which is why every weight matrix after the first is [[-1, -1], [1, 1]] and the bias
    pair is [c, -c]. For x in [0, 2^k], |x - 2^(k-1)| lies in [0, 2^(k-1)], so after
    c = 2^(n-1), ..., 2, 1 the value is in [0, 1]; subtracting an even c keeps the parity, and
    the two f_1 together keep it too, so the result is x mod 2. The output layer adds the
    last pair: weight [[1, 1]], bias 0 (its ReLU is the identity on {0, 1}).

    The layers are `Linear` at even indices of an `nn.Sequential` with a ReLU after each,
    as in the article's `create_sequential_model([1, 2, 2, 2, 2, 2, 1])` for n = 4.
    """
    if bits < 1:
        raise ValueError("bits must be at least 1")
    centres = [2**k for k in range(bits - 1, -1, -1)] + [1]
    state: StateDict = {}
    for i, c in enumerate(centres):
        weight = [[-1.0], [1.0]] if i == 0 else [[-1.0, -1.0], [1.0, 1.0]]
        state[f"{2 * i}.weight"] = tensor(weight)
        state[f"{2 * i}.bias"] = tensor([float(c), -float(c)])
    out = 2 * len(centres)
    state[f"{out}.weight"] = tensor([[1.0, 1.0]])
    state[f"{out}.bias"] = tensor([0.0])
    return state


def is_even_widths(bits: int) -> list[int]:
    """The article's chain for 2^bits integers: bits + 1 two-neuron |x - c| layers, then 1."""
    return [1] + [2] * (bits + 1) + [1]


class _PowerOfTwo(Task):
    """The integers [0, 2^bits). The meaning: the interval where the net is right, which
    the final metrics measure (`correct_interval`) and `Task.meaning` reads from them."""

    bits: StrictInt = Field(4, ge=1, le=MAX_BITS)

    kind: ClassVar[Kind] = "classification"
    summary_metrics: ClassVar[tuple[str, ...]] = (
        "accuracy",
        "correct_interval[0]",
        "correct_interval[1]",
    )

    def size(self) -> int:
        return int(2**self.bits)

    def integer_ranges(self) -> list[tuple[int, int]] | None:
        return [(0, 2**self.bits)]

    def data(self) -> tuple[Tensor, Tensor]:
        import torch

        x = torch.arange(0, 2**self.bits, dtype=torch.float32).unsqueeze(1)
        return x, self.truth(x)

    def domain_text(self) -> str:
        return whole_box(self.size(), f"integers in [0, 2^{self.bits})")

    def metrics(self, f: Predict, x: Tensor, y: Tensor, pred: Tensor) -> Metrics:
        return {
            **super().metrics(f, x, y, pred),
            **correct_interval(self, f, 0, 2**self.bits - 1),
        }


class IsEven(_PowerOfTwo):
    name: Literal["is_even"]

    summary: ClassVar[str] = "x mod 2 on [0, 2^bits); log-depth ReLU chain of |x - 2^k| layers"

    def truth(self, x: Tensor) -> Tensor:
        import torch

        return torch.remainder(x, 2)  # defined on the integers

    def default_model(self) -> dict[str, Any]:
        return {"arch": "relu_chain", "widths": is_even_widths(self.bits)}

    def constructions(self, init: InitConfig) -> list[Construction]:
        bits = self.bits
        return [
            Construction(
                "|x - 2^k| chain",
                f"f_1 . f_1 . f_2 ... f_{2 ** (bits - 1)} (x), f_c(x) = |x - c|: "
                f"{bits + 1} layers of 2 units",
                models.relu_chain(is_even_widths(bits)),
                lambda: is_even_chain(bits),
            )
        ]


class Mod(_PowerOfTwo):
    name: Literal["mod"]
    k: StrictInt = Field(3, ge=2, le=2**MAX_BITS)

    summary: ClassVar[str] = "x mod k on [0, 2^bits); right when the output rounds to it"

    def truth(self, x: Tensor) -> Tensor:
        import torch

        return torch.remainder(x, self.k)

    def default_model(self) -> dict[str, Any]:
        return layers((16, "relu"), (16, "relu"), (1, "identity"))


class Mod3(_PowerOfTwo):
    """x mod 3 as three classes: a read-out of three units, the largest one the class, trained
    by softmax cross-entropy on one-hot targets. From x as a number a ReLU net must bend at
    every class boundary (2^bits - 1 of them); with `encoding: one_hot` one linear layer
    does it (the weight of unit `x=v` to class v mod 3 is the largest)."""

    name: Literal["mod3"]

    summary: ClassVar[str] = "x mod 3 on [0, 2^bits) as 3 classes: argmax of 3 outputs, ce"
    classes: ClassVar[int] = 3
    default_loss: ClassVar[str] = "ce"

    def truth(self, x: Tensor) -> Tensor:
        import torch

        label = torch.remainder(x[:, 0], self.classes).long()
        return torch.nn.functional.one_hot(label, self.classes).to(x.dtype)

    def default_model(self) -> dict[str, Any]:
        return layers((32, "relu"), (32, "relu"), (self.classes, "identity"))


def abs_net() -> StateDict:
    """|x| = ReLU(x) + ReLU(-x): two units with weights [1, -1], read out with [1, 1].
    Exact for all reals."""
    return {
        "0.weight": tensor([[1.0], [-1.0]]),
        "0.bias": tensor([0.0, 0.0]),
        "2.weight": tensor([[1.0, 1.0]]),
        "2.bias": tensor([0.0]),
    }


class Abs(IntegerRange):
    name: Literal["abs"]
    low: Bound = -8
    high: Bound = 8

    summary: ClassVar[str] = "|x| on the integers [low, high); two ReLUs"
    kind: ClassVar[Kind] = "regression"
    summary_metrics: ClassVar[tuple[str, ...]] = ("mae", "max_abs_error", "max_abs_error_beyond")

    def truth(self, x: Tensor) -> Tensor:
        return x.abs()

    def default_model(self) -> dict[str, Any]:
        return layers((2, "relu"), (1, "identity"))

    def constructions(self, init: InitConfig) -> list[Construction]:
        arch = Arch(1, (Layer(2, "relu"), Layer(1, "identity")))
        return [Construction("two ReLUs", "ReLU(x) + ReLU(-x)", arch, abs_net)]

    def metrics(self, f: Predict, x: Tensor, y: Tensor, pred: Tensor) -> Metrics:
        import torch

        err = (pred - y.reshape(-1)).abs()
        span = self.high - self.low
        far = torch.arange(self.low - 10 * span, self.high + 10 * span, dtype=torch.float32)
        err_far = (f(far.unsqueeze(1)) - far.abs()).abs()
        return {
            "mae": err.mean().item(),
            "max_abs_error": err.max().item(),
            "max_abs_error_beyond": err_far.max().item(),
        }
