"""Any arithmetic expression of integer inputs, written in the config: no Python needed.

```yaml
task: {name: expr, expr: "abs(a - b) % 3", inputs: {a: [-8, 8], b: [-8, 8]}, kind: regression}
```

Each input ranges over the integers [lo, hi] (both ends included); the data are every
point of that grid, or `samples` points drawn from it with `data_seed`. The expression is
parsed with a whitelist (`tiny_cli.expression`), never evaluated as Python.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, StrictInt, ValidationInfo, field_validator, model_validator

from tiny_cli.errors import TinyError
from tiny_cli.spec.schema import Bound
from tiny_cli.tasks import expression
from tiny_cli.tasks.base import Task, layers, whole_box

if TYPE_CHECKING:
    from torch import Tensor

MAX_INPUTS = 16
MAX_POINTS = 2**24
TITLE_CHARS = 60  # of an expression in a picture's title


class Expr(Task):
    name: Literal["expr"]
    inputs: dict[str, tuple[Bound, Bound]] = Field(min_length=1, max_length=MAX_INPUTS)
    expr: str = Field(min_length=1, max_length=expression.MAX_LENGTH)
    kind: Literal["regression", "classification"] = "regression"  # type: ignore[misc]
    samples: StrictInt | None = Field(None, ge=1, le=10**7)  # None: the whole grid
    data_seed: StrictInt = Field(0, ge=0)

    summary: ClassVar[str] = "an expression of integer inputs, e.g. abs(a - b) % 3 (no Python)"

    @field_validator("inputs")
    @classmethod
    def _ranges(cls, inputs: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        for name, (lo, hi) in inputs.items():
            if hi < lo:
                raise ValueError(f"{name}: empty range [{lo}, {hi}] (give [lo, hi], lo <= hi)")
        expression.parse("0", list(inputs))  # the names are checked on their own
        return inputs

    @field_validator("expr")
    @classmethod
    def _parse(cls, source: str, info: ValidationInfo) -> str:
        inputs = info.data.get("inputs")
        if inputs is not None:  # else `inputs` has its own error
            expression.parse(source, list(inputs))
        return source

    @model_validator(mode="after")
    def _bounded(self) -> Expr:
        points = math.prod(hi - lo + 1 for lo, hi in self.inputs.values())
        if self.samples is None and points > MAX_POINTS:
            raise ValueError(
                f"the grid of inputs has {points:,} points, more than {MAX_POINTS:,}: "
                "narrow the ranges or draw `samples` from it"
            )
        return self

    def input_names(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    def integer_ranges(self) -> list[tuple[int, int]] | None:
        return [(lo, hi + 1) for lo, hi in self.inputs.values()]  # (inputs are inclusive)

    def picture_title(self) -> str:
        """The expression itself, cut to one title line."""
        text = " ".join(self.expr.split())
        return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1] + "…"

    def size(self) -> int:
        if self.samples is not None:
            return self.samples
        return math.prod(hi - lo + 1 for lo, hi in self.inputs.values())

    def domain_text(self) -> str:
        box = " x ".join(f"[{lo}, {hi}]" for lo, hi in self.inputs.values())
        if self.samples is None:
            return whole_box(self.size(), f"integer points of {box}")
        return f"the {self.samples:,} training samples (integer points of {box})"

    def data(self) -> tuple[Tensor, Tensor]:
        import torch

        ranges = list(self.inputs.values())
        if self.samples is None:
            axes = [torch.arange(lo, hi + 1, dtype=torch.float64) for lo, hi in ranges]
            x = torch.cartesian_prod(*axes) if len(axes) > 1 else axes[0].unsqueeze(1)
        else:
            gen = torch.Generator().manual_seed(self.data_seed)
            cols = [torch.randint(lo, hi + 1, (self.samples,), generator=gen) for lo, hi in ranges]
            x = torch.stack(cols, dim=1).double()
        y = self._evaluate(x)
        bad = (~y.isfinite()).nonzero()
        if len(bad):
            at = ", ".join(
                f"{k}={int(v)}" for k, v in zip(self.inputs, x[int(bad[0])].tolist(), strict=True)
            )
            raise TinyError(
                f"task.expr {self.expr[:60]!r}: not a finite number at {at} "
                "(a division by zero or an overflow): change the expression or the inputs"
            )
        return x.float(), y.float().unsqueeze(1)

    def _evaluate(self, x: Tensor) -> Tensor:
        parsed = expression.parse(self.expr, list(self.inputs))
        return parsed.evaluate({k: x[:, i].double() for i, k in enumerate(self.inputs)})

    def truth(self, x: Tensor) -> Tensor:
        return self._evaluate(x.double()).float().unsqueeze(1)

    def default_model(self) -> dict[str, Any]:
        return layers((16, "relu"), (16, "relu"), (1, "identity"))
