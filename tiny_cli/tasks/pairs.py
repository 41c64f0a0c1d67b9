"""min(a, b) and max(a, b) on seeded random integer pairs, with the article's MinModel.

Their meaning is where a MinModel-shaped net sits in the family of nets that compute them
(`family_meaning`: alpha, which a sweep's solutions histogram).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, StrictInt

from tiny_cli.spec import activations, models
from tiny_cli.spec.schema import Bound
from tiny_cli.tasks.base import (
    Construction,
    Kind,
    Meaning,
    Metrics,
    NetArrays,
    Predict,
    StateDict,
    brief,
    tensor,
)
from tiny_cli.tasks.threshold import IntegerRange

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor

    from tiny_cli.spec.sections import InitConfig


def random_pairs(low: int, high: int, n: int, seed: int) -> list[list[int]]:
    """The article's data: `[random.randrange(-50, 50), random.randrange(-50, 50)]`, seeded."""
    rng = random.Random(seed)
    return [[rng.randrange(low, high), rng.randrange(low, high)] for _ in range(n)]


def min_equation1() -> StateDict:
    """min(a, b) = 0.5 * (a + b - ReLU(b - a) - ReLU(a - b))   (the article's Equation 1).

    fc1 computes ReLU(a - b), fc2 computes ReLU(b - a); the output layer reads
    [a, b, ReLU(a - b), ReLU(b - a)] with weights [0.5, 0.5, -0.5, -0.5]. Exact for all reals.
    """
    return _pair_net(-0.5)


def max_equation1() -> StateDict:
    """max(a, b) = 0.5 * (a + b + ReLU(b - a) + ReLU(a - b)): Equation 1 with the ReLU terms'
    sign flipped, since max(a, b) + min(a, b) = a + b and max - min = |a - b| = ReLU(a - b) +
    ReLU(b - a). Same units as min's, read-out [0.5, 0.5, 0.5, 0.5]. Exact for all reals."""
    return _pair_net(0.5)


def _pair_net(relu_weight: float) -> StateDict:
    return {
        "fc1.weight": tensor([[1.0, -1.0]]),
        "fc1.bias": tensor([0.0]),
        "fc2.weight": tensor([[-1.0, 1.0]]),
        "fc2.bias": tensor([0.0]),
        "output_layer.weight": tensor([[0.5, 0.5, relu_weight, relu_weight]]),
        "output_layer.bias": tensor([0.0]),
    }


FAMILY_TOL = 0.05  # min/max: in the family when the residual is under 5% of std(target)
FAMILY = "alpha (a - ReLU(a - b)) + (1 - alpha) (b - ReLU(b - a))"  # min's (`family_of`)
ALPHA_TOL = 0.01  # alpha this close to 0, 1/2 or 1 is that member of the family


def alpha_line(alpha: float, members: tuple[str, str], article: str, halves: str) -> str:
    """Which member of the family alpha is, from the weights: alpha = 1 is `members[0]`
    (the article's, for min), 0 its mirror `members[1]`, 1/2 `halves` (Equation 1);
    anything else a blend of the two. `article`: "the article's " or ""."""
    one, zero = members
    for value, text in (
        (0, f"{zero}, the mirror of {article}{one}"),
        (1, f"{article}{one}"),
        (0.5, halves),
    ):
        if abs(alpha - value) <= ALPHA_TOL:
            return f"alpha = {value:g}: {text}"
    return (
        f"alpha = {alpha:.3g}: a blend of {article}{one} (alpha = 1) and its mirror {zero} "
        "(alpha = 0)"
    )


def family_meaning(
    net: NetArrays,
    x: np.ndarray,
    y: np.ndarray,
    base: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> Meaning:
    """min / max with the MinModel shape: where the net sits in the family
        alpha (a - ReLU(a - b)) + (1 - alpha) (b - ReLU(b - a))
    (max: alpha (a + ReLU(b - a)) + (1 - alpha) (b + ReLU(a - b))). Every member computes
    min (max), so alpha is read from the net's parts: the read-out's linear part (skip
    weights and bias) should be b + alpha (a - b), its ReLU part -ReLU(b - a) - alpha (a - b)
    (max: ReLU(a - b) - alpha (a - b)): `base(a, b)` is that part's alpha-free term,
    -ReLU(b - a) for min, ReLU(a - b) for max. One least-squares alpha over both parts on the
    domain (`x` [n, 2], `y` the targets, flat); "not in the family" when the residual RMS is
    over FAMILY_TOL of std(target)."""
    if not (
        net.skip and net.inputs == 2 and len(net.layers) == 2 and len(net.layers[-1].bias) == 1
    ):
        return {}
    import numpy as np

    a, b = x[:, 0], x[:, 1]
    first, out = net.layers
    h = activations.get(first.activation).numpy(x @ first.weight.T + first.bias, 0.0)
    lin = x @ out.weight[0, :2] + out.bias[0]
    relu = h @ out.weight[0, 2:]
    d = a - b
    p, q = lin - b, relu - base(a, b)  # want p = alpha d and q = -alpha d
    alpha = float(d @ (p - q) / (2 * d @ d)) if d @ d > 0 else float("nan")
    residual = math.sqrt(float(np.mean((p - alpha * d) ** 2 + (q + alpha * d) ** 2)))
    scale = float(np.std(y)) or 1.0
    return {
        "alpha": alpha,
        "family_residual": residual / scale,
        "in_family": residual <= FAMILY_TOL * scale,
    }


def family_of(members: tuple[str, str]) -> str:
    """The family of nets whose members at alpha = 1 and 0 are `members`."""
    return f"alpha ({members[0]}) + (1 - alpha) ({members[1]})"


def _min_base(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import numpy as np

    return -np.maximum(b - a, 0)  # type: ignore[no-any-return]


def _max_base(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.maximum(a - b, 0)  # type: ignore[no-any-return]


class _Pairs(IntegerRange):
    """A function of two integers, trained on `n_samples` seeded random pairs in [low, high)."""

    low: Bound = -50
    high: Bound = 50
    n_samples: StrictInt = Field(1000, ge=1, le=10**7)
    data_seed: StrictInt = Field(0, ge=0)

    kind: ClassVar[Kind] = "regression"
    summary_metrics: ClassVar[tuple[str, ...]] = ("mae", "max_abs_error", "max_abs_error_beyond")
    # The family's members at alpha = 1 and 0, whose is the first, and alpha = 1/2.
    members: ClassVar[tuple[str, str]] = ("a - ReLU(a - b)", "b - ReLU(b - a)")
    article: ClassVar[str] = "the article's "
    halves: ClassVar[str] = "Equation 1, 0.5 (a + b - ReLU(b - a) - ReLU(a - b))"

    def input_names(self) -> tuple[str, ...]:
        return ("a", "b")

    def size(self) -> int:
        return self.n_samples

    def data(self) -> tuple[Tensor, Tensor]:
        x = tensor(random_pairs(self.low, self.high, self.n_samples, self.data_seed))
        return x, self.truth(x)

    def domain_text(self) -> str:
        return f"the {self.n_samples:,} training samples"

    def default_model(self) -> dict[str, Any]:
        return {"arch": "min_model"}

    def metrics(self, f: Predict, x: Tensor, y: Tensor, pred: Tensor) -> Metrics:
        err = (pred - y.reshape(-1)).abs()
        # Ten times the training range on each side, fixed seed: does the formula generalise?
        span = self.high - self.low
        far = tensor(random_pairs(self.low - 10 * span, self.high + 10 * span, 10_000, 12345))
        err_far = (f(far) - self.truth(far).reshape(-1)).abs()
        return {
            "mae": err.mean().item(),
            "max_abs_error": err.max().item(),
            "max_abs_error_beyond": err_far.max().item(),
        }

    def _named(self, family: Meaning) -> Meaning:
        """Whose family a meaning is: a read-out read without its task shows only its own."""
        return {"family": family_of(self.members)} if family else {}

    @classmethod
    def meaning_lines(cls, meaning: Mapping[str, Any]) -> list[str]:
        common = super().meaning_lines(meaning)
        if "alpha" not in meaning:
            return common
        residual = f"(residual {brief(meaning.get('family_residual'), 2)} of std)"
        family = family_of(cls.members)
        if meaning.get("family", FAMILY) != family:  # max's, or min's (stored before it said)
            return common
        alpha = meaning["alpha"]
        if meaning.get("in_family") and isinstance(alpha, int | float):
            return [
                f"family {family}: alpha = {brief(alpha, 3)} {residual}",
                alpha_line(alpha, cls.members, cls.article, cls.halves),
                *common,
            ]
        return [f"not in the family {family} {residual}", *common]


class Min(_Pairs):
    name: Literal["min"]
    summary: ClassVar[str] = "min(a, b) on seeded random integer pairs; the article's MinModel"

    def truth(self, x: Tensor) -> Tensor:
        return x.min(dim=1, keepdim=True).values

    def meaning(
        self, net: NetArrays, x: np.ndarray, y: np.ndarray, metrics: Mapping[str, Any]
    ) -> Meaning:
        family = family_meaning(net, x, y[:, 0], _min_base)
        return {**family, **self._named(family), **super().meaning(net, x, y, metrics)}

    def constructions(self, init: InitConfig) -> list[Construction]:
        return [
            Construction(
                "equation 1",
                "0.5 (a + b - ReLU(b - a) - ReLU(a - b))",
                models.min_model(),
                min_equation1,
            )
        ]


class Max(_Pairs):
    name: Literal["max"]
    summary: ClassVar[str] = "max(a, b) on seeded random integer pairs; the MinModel shape"
    members: ClassVar[tuple[str, str]] = ("a + ReLU(b - a)", "b + ReLU(a - b)")
    article: ClassVar[str] = ""
    halves: ClassVar[str] = "Equation 1 mirrored, 0.5 (a + b + ReLU(b - a) + ReLU(a - b))"

    def truth(self, x: Tensor) -> Tensor:
        return x.max(dim=1, keepdim=True).values

    def meaning(
        self, net: NetArrays, x: np.ndarray, y: np.ndarray, metrics: Mapping[str, Any]
    ) -> Meaning:
        family = family_meaning(net, x, y[:, 0], _max_base)
        return {**family, **self._named(family), **super().meaning(net, x, y, metrics)}

    def constructions(self, init: InitConfig) -> list[Construction]:
        return [
            Construction(
                "equation 1, mirrored",
                "0.5 (a + b + ReLU(b - a) + ReLU(a - b))",
                models.min_model(),
                max_equation1,
            )
        ]
