"""Boolean functions of bits: xor of two, parity of n."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, StrictInt

from tiny_cli.spec.models import Arch, Layer
from tiny_cli.tasks.base import (
    Construction,
    Kind,
    StateDict,
    Task,
    integer_grid,
    layers,
    tensor,
    whole_box,
)

if TYPE_CHECKING:
    from torch import Tensor

    from tiny_cli.spec.sections import InitConfig

MAX_PARITY_BITS = 20


def xor_net() -> StateDict:
    """a xor b = s - 2 ReLU(s - 1) with s = a + b, for bits a, b.

    s is 0, 1 or 2; s - 2 ReLU(s - 1) is 0, 1, 0. Hidden units ReLU(a + b) (= s, as s >= 0)
    and ReLU(a + b - 1), read out with [1, -2]. Exact on {0, 1}^2.
    """
    return {
        "0.weight": tensor([[1.0, 1.0], [1.0, 1.0]]),
        "0.bias": tensor([0.0, -1.0]),
        "2.weight": tensor([[1.0, -2.0]]),
        "2.bias": tensor([0.0]),
    }


def parity_net(n: int) -> StateDict:
    """x1 xor ... xor xn = s - 2 ReLU(s - 1) + 2 ReLU(s - 2) - ... with s = x1 + ... + xn.

    The parity of s in 0..n is the zigzag through (0, 0), (1, 1), (2, 0), (3, 1), ...: slope
    +1 up to s = 1, then alternately -1 and +1, each change of slope 2 being a ReLU(s - j)
    with weight -2 or +2. Hidden unit j is ReLU(s - j), j = 0..n-1 (unit 0 is s itself);
    read-out weights [1, -2, 2, -2, ...]. Exact on {0, 1}^n with n hidden units.
    """
    return {
        "0.weight": tensor([[1.0] * n for _ in range(n)]),
        "0.bias": tensor([-float(j) for j in range(n)]),
        "2.weight": tensor([[1.0] + [2.0 * (-1) ** j for j in range(1, n)]]),
        "2.bias": tensor([0.0]),
    }


class _Bits(Task):
    kind: ClassVar[Kind] = "classification"
    summary_metrics: ClassVar[tuple[str, ...]] = ("accuracy",)

    def width(self) -> int:
        raise NotImplementedError

    def input_names(self) -> tuple[str, ...]:
        return tuple(f"x{i + 1}" for i in range(self.width()))

    def size(self) -> int:
        return int(2 ** self.width())

    def data(self) -> tuple[Tensor, Tensor]:
        x = integer_grid(*[(0, 2)] * self.width())
        return x, self.truth(x)

    def domain_text(self) -> str:
        return whole_box(self.size(), f"patterns of {self.width()} bits")

    def truth(self, x: Tensor) -> Tensor:
        import torch

        return torch.remainder(x.sum(dim=1, keepdim=True), 2)

    def integer_ranges(self) -> list[tuple[int, int]] | None:
        return [(0, 2)] * self.width()


class Xor(_Bits):
    name: Literal["xor"]

    summary: ClassVar[str] = "a xor b on the four pairs of bits"

    def width(self) -> int:
        return 2

    def input_names(self) -> tuple[str, ...]:
        return ("a", "b")

    def default_model(self) -> dict[str, Any]:
        return layers((2, "relu"), (1, "identity"))

    def constructions(self, init: InitConfig) -> list[Construction]:
        arch = Arch(2, (Layer(2, "relu"), Layer(1, "identity")))
        return [Construction("two ReLUs", "s - 2 ReLU(s - 1), s = a + b", arch, xor_net)]


class Parity(_Bits):
    name: Literal["parity"]
    bits: StrictInt = Field(4, ge=1, le=MAX_PARITY_BITS)

    summary: ClassVar[str] = "parity of n input bits (bits), on all 2^n of them"

    def width(self) -> int:
        return self.bits

    def default_model(self) -> dict[str, Any]:
        return layers((self.bits, "relu"), (1, "identity"))

    def constructions(self, init: InitConfig) -> list[Construction]:
        n = self.bits
        arch = Arch(n, (Layer(n, "relu"), Layer(1, "identity")))
        return [
            Construction(
                "zigzag", f"sum of ±2 ReLU(s - j), s = x1 + ... + x{n}", arch, lambda: parity_net(n)
            )
        ]
