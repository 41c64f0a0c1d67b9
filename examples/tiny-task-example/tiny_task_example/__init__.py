"""A task plugin for `tiny`: clamp(x, lo, hi) on the integers [low, high), with two ReLUs.

Installed, this package adds the task `clamp` to every `tiny` command through one entry
point in its pyproject.toml, which names the class below:

    [project.entry-points."tiny.tasks"]
    clamp = "tiny_task_example:Clamp"

A task is one pydantic class, a subclass of `tiny_cli.tasks.Task`. Its fields are the
`task:` section of a config (`name` is a Literal of the task's name, then its parameters,
with defaults), and the class owns the rest: the data (`size`, `data`, `truth`), the
`kind`, the rule for a right answer (`correct`, classification only), the final `metrics`,
the `default_model` and the hand-made nets (`constructions`). Methods import torch inside,
so reading a config never imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import model_validator

from tiny_cli.tasks import (
    Arch,
    Bound,
    Construction,
    Kind,
    Layer,
    Meaning,
    Metrics,
    NetArrays,
    Predict,
    Task,
)
from tiny_cli.tasks.base import StateDict, brief, layers, tensor

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor

    from tiny_cli.tasks import InitConfig

__all__ = ["Clamp", "clamp_net", "kinks"]


def clamp_net(lo: int, hi: int) -> StateDict:
    """clamp(x, lo, hi) = ReLU(x - lo) - ReLU(x - hi) + lo, for lo <= hi.

    Take the three pieces of the line in turn:
    - x <= lo: x - lo <= 0 and x - hi <= 0, both units are 0, the output is lo;
    - lo <= x <= hi: the first unit is x - lo, the second 0, the output is x - lo + lo = x;
    - x >= hi: both units are on, (x - lo) - (x - hi) + lo = hi.
    So the first unit switches the slope on at lo and the second switches it off at hi.

    As weights of `nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 1))`: hidden
    weights [[1], [1]] with biases [-lo, -hi], read-out [[1, -1]] with bias lo. Exact on
    every real x (in float32: every integer up to 2^24). lo = 0, hi = 6 is ReLU6.
    """
    return {
        "0.weight": tensor([[1.0], [1.0]]),
        "0.bias": tensor([-float(lo), -float(hi)]),
        "2.weight": tensor([[1.0, -1.0]]),
        "2.bias": tensor([float(lo)]),
    }


def kinks(net: NetArrays) -> list[float] | None:
    """Where a one-input net of one hidden ReLU layer bends: unit j, ReLU(w_j x + b_j),
    turns on or off at x = -b_j / w_j, and bends the output there when its read-out weight
    is not 0. Sorted; None for another net. clamp_net's are lo and hi."""
    if net.inputs != 1 or net.skip or len(net.layers) != 2 or net.layers[0].activation != "relu":
        return None
    hidden, out = net.layers
    return sorted(
        -float(b) / float(w[0])
        for w, b, v in zip(hidden.weight, hidden.bias, out.weight[0], strict=True)
        if w[0] != 0 and v != 0
    )


def _plus(c: int) -> str:
    """` + 3`, ` - 3` or nothing: a constant term as written by hand."""
    return f" + {c}" if c > 0 else f" - {-c}" if c < 0 else ""


class Clamp(Task):
    name: Literal["clamp"]
    lo: Bound = -3  # the output's floor
    hi: Bound = 4  # the output's ceiling
    low: Bound = -8  # the domain: the integers in range(low, high)
    high: Bound = 8

    summary: ClassVar[str] = "clamp(x, lo, hi) on the integers [low, high); two ReLUs"
    kind: ClassVar[Kind] = "regression"
    # Columns of TensorBoard's HPARAMS table.
    summary_metrics: ClassVar[tuple[str, ...]] = ("mae", "max_abs_error", "max_abs_error_beyond")

    @model_validator(mode="after")
    def _check(self) -> Clamp:  # a ValueError here is a one-line config error naming the key
        if self.hi < self.lo:
            raise ValueError(f"hi ({self.hi}) must not be below lo ({self.lo})")
        if self.high <= self.low:
            raise ValueError(f"empty domain: high ({self.high}) must be above low ({self.low})")
        return self

    def size(self) -> int:
        return self.high - self.low

    def data(self) -> tuple[Tensor, Tensor]:
        import torch

        x = torch.arange(self.low, self.high, dtype=torch.float32).unsqueeze(1)
        return x, self.truth(x)

    def truth(self, x: Tensor) -> Tensor:
        return x.clamp(self.lo, self.hi)

    def default_model(self) -> dict[str, Any]:
        return layers((2, "relu"), (1, "identity"))

    def constructions(self, init: InitConfig) -> list[Construction]:
        lo, hi = self.lo, self.hi
        arch = Arch(1, (Layer(2, "relu"), Layer(1, "identity")))
        formula = f"ReLU(x{_plus(-lo)}) - ReLU(x{_plus(-hi)}){_plus(lo)}"
        return [Construction("two ReLUs", formula, arch, lambda: clamp_net(lo, hi))]

    def metrics(self, f: Predict, x: Tensor, y: Tensor, pred: Tensor) -> Metrics:
        """The errors on the domain, and up to ten domains' widths beyond it: did the net
        learn the two kinks, or only fit the points it saw?"""
        import torch

        err = (pred - y.reshape(-1)).abs()
        span = self.high - self.low
        far = torch.arange(self.low - 10 * span, self.high + 10 * span, dtype=torch.float32)
        far = far.unsqueeze(1)
        err_far = (f(far) - self.truth(far).reshape(-1)).abs()
        return {
            "mae": err.mean().item(),
            "max_abs_error": err.max().item(),
            "max_abs_error_beyond": err_far.max().item(),
        }

    def meaning(
        self, net: NetArrays, x: np.ndarray, y: np.ndarray, metrics: Mapping[str, Any]
    ) -> Meaning:
        """Where the net bends (`kinks`), beside where clamp does (lo and hi): plain data,
        added to the read-out (`tiny inspect`, and its `--json`)."""
        found = kinks(net)
        if found is None:
            return super().meaning(net, x, y, metrics)
        return {
            "kinks": found,
            "clamp_kinks": [self.lo, self.hi],
            **super().meaning(net, x, y, metrics),
        }

    @classmethod
    def meaning_lines(cls, meaning: Mapping[str, Any]) -> list[str]:
        """The read-out's line for the kinks (read only our own keys: `meaning` is plain
        data, maybe from disk)."""
        found, want = meaning.get("kinks"), meaning.get("clamp_kinks")
        if not isinstance(found, list) or not isinstance(want, list):
            return super().meaning_lines(meaning)
        where = ", ".join(brief(k) for k in found) or "nowhere"
        line = f"kinks at x = {where} (clamp bends at {', '.join(brief(k) for k in want)})"
        return [line, *super().meaning_lines(meaning)]
