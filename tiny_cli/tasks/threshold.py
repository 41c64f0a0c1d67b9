"""x < t on the integers [low, high): the article's one sigmoid neuron (`lt10` is t = 10).

Its meaning is the neuron's threshold and steepness, read from its two weights: in the
read-out (`Lt.meaning`) and every epoch in TensorBoard (`Lt.derived`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import model_validator

from tiny_cli.spec import models
from tiny_cli.spec.models import Arch, Layer
from tiny_cli.spec.schema import Bound, Float
from tiny_cli.tasks.base import (
    Construction,
    Kind,
    Meaning,
    Metrics,
    NetArrays,
    Predict,
    StateDict,
    Task,
    brief,
    tensor,
    whole_box,
)

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor

    from tiny_cli.spec.sections import InitConfig


def step_neuron(threshold: float = 10.0, scale: float = 1.0) -> StateDict:
    """x < t as one neuron: F(x) = Sigmoid(s * (t - x)) = Sigmoid(-s * x + s * t).

    The bias is the neuron's threshold. With s = 1, F(9.5) = Sigmoid(0.5) = 0.62; with
    s = 100, F(9.5) = Sigmoid(50) ~ 1. Any s > 0 classifies every x correctly (F(x) > 0.5
    exactly when x < t); a larger s only pushes the outputs towards 0 and 1.
    """
    return {"0.weight": tensor([[-scale]]), "0.bias": tensor([scale * threshold])}


def is_threshold_neuron(arch: Arch) -> bool:
    """One input, one sigmoid unit: Sigmoid(w x + b), a soft step at -b/w."""
    return arch.inputs == 1 and arch.layers == (Layer(1, "sigmoid"),)


def threshold_meaning(w: float, b: float, x: np.ndarray, y: np.ndarray) -> Meaning:
    """Sigmoid(w x + b) = Sigmoid(M (t - x)) with t = -b/w, M = |w| (w < 0: "x < t").

    `threshold_between`: the last integer answered yes and the first answered no (F > 0.5 is
    yes, so an integer t itself is a no). `margin_midpoint`: halfway between the data's last
    positive and first negative, where a max-margin classifier puts t (lt10: 9.5).
    `x`, `y`: the domain's inputs and targets, flat.
    """
    if w == 0:
        return {"threshold": None, "steepness": 0.0}
    t = -b / w
    below = w < 0  # high output below t
    hi = math.ceil(t) if below else math.floor(t) + 1
    doc: Meaning = {
        "threshold": t,
        "steepness": abs(w),
        "direction": "x < t" if below else "x > t",
        "threshold_between": [hi - 1, hi],
    }
    pos, neg = x[y > 0.5], x[y <= 0.5]
    if len(pos) and len(neg):
        if pos.max() < neg.min():
            doc["margin_midpoint"] = float(pos.max() + neg.min()) / 2
        elif neg.max() < pos.min():
            doc["margin_midpoint"] = float(neg.max() + pos.min()) / 2
    return doc


def above_half_right(pred: Tensor, y: Tensor) -> Tensor:
    """F(x) > 0.5 means "x < threshold" (F = 0.5 exactly counts as "no")."""
    return (pred > 0.5) == (y > 0.5)


class IntegerRange(Task):
    """A task on the integers [low, high); subclasses set the name and the defaults."""

    low: Bound
    high: Bound  # exclusive, as in range(low, high)

    @model_validator(mode="after")
    def _nonempty(self) -> IntegerRange:
        if self.high <= self.low:
            raise ValueError(f"empty domain: high ({self.high}) must be above low ({self.low})")
        return self

    def size(self) -> int:
        return self.high - self.low

    def integer_ranges(self) -> list[tuple[int, int]] | None:
        return [(self.low, self.high)] * len(self.input_names())

    def data(self) -> tuple[Tensor, Tensor]:
        import torch

        x = torch.arange(self.low, self.high, dtype=torch.float32).unsqueeze(1)
        return x, self.truth(x)

    def domain_text(self) -> str:
        return whole_box(self.size(), f"integers in [{self.low}, {self.high})")


class Lt(IntegerRange):
    name: Literal["lt", "lt10"]
    threshold: Float = 10.0
    low: Bound = -20
    high: Bound = 40

    summary: ClassVar[str] = "x < threshold on the integers [low, high); one sigmoid neuron"
    kind: ClassVar[Kind] = "classification"
    default_loss: ClassVar[str] = "bce"
    summary_metrics: ClassVar[tuple[str, ...]] = (
        "accuracy",
        "accuracy_beyond",
        "threshold",
        "steepness",
    )
    construction_options: ClassVar[tuple[str, ...]] = ("scale",)

    def truth(self, x: Tensor) -> Tensor:
        return (x < self.threshold).float()

    def correct(self, pred: Tensor, y: Tensor, dim: int = 0) -> Tensor:
        return above_half_right(pred, y)

    def default_model(self) -> dict[str, Any]:
        return {"arch": "sigmoid_neuron"}

    def constructions(self, init: InitConfig) -> list[Construction]:
        t, s = self.threshold, init.scale
        return [
            Construction(
                "step neuron",
                f"Sigmoid({s:g} ({t:g} - x)) (init.scale = {s:g})",
                models.sigmoid_neuron(),
                lambda: step_neuron(t, s),
            )
        ]

    def metrics(self, f: Predict, x: Tensor, y: Tensor, pred: Tensor) -> Metrics:
        import torch

        wide = torch.arange(self.low - 1000, self.high + 1000, dtype=torch.float32).unsqueeze(1)
        probe = self.threshold - 0.5
        beyond = above_half_right(f(wide), self.truth(wide).reshape(-1))
        return {
            "accuracy": above_half_right(pred, y.reshape(-1)).float().mean().item(),
            # The article's yardstick for how sharp the step is: F(9.5) for threshold 10.
            f"F({probe:g})": f(torch.tensor([[probe]])).item(),
            "accuracy_beyond": beyond.float().mean().item(),
        }

    def meaning(
        self, net: NetArrays, x: np.ndarray, y: np.ndarray, metrics: Mapping[str, Any]
    ) -> Meaning:
        """The threshold neuron's t and M (`threshold_meaning`); nothing for another net."""
        common = super().meaning(net, x, y, metrics)
        if net.inputs != 1 or len(net.layers) != 1:
            return common
        layer = net.layers[0]
        if len(layer.bias) != 1 or layer.activation != "sigmoid":
            return common
        w, b = float(layer.weight[0, 0]), float(layer.bias[0])
        return {**threshold_meaning(w, b, x[:, 0], y[:, 0]), **common}

    @classmethod
    def meaning_lines(cls, meaning: Mapping[str, Any]) -> list[str]:
        common = super().meaning_lines(meaning)
        if meaning.get("threshold") is None:
            return common
        lo, hi = meaning.get("threshold_between") or ("?", "?")
        line = (
            f"threshold neuron: Sigmoid(M (t - x)), t = {brief(meaning['threshold'])}, "
            f"M = {brief(meaning.get('steepness'))}; t lies between {lo} and {hi}"
        )
        if meaning.get("margin_midpoint") is not None:
            line += f" (max-margin midpoint {brief(meaning['margin_midpoint'])})"
        return [line, *common]

    def derived(self, arch: Arch, flat: Sequence[float]) -> dict[str, float]:
        """A threshold neuron: Sigmoid(w x + b) = Sigmoid(|w| (-b/w - x)) when w < 0, so the
        learned threshold is -b/w and the steepness (the article's M) |w|."""
        if not is_threshold_neuron(arch):
            return {}
        w, b = flat
        return {"threshold": -b / w if w != 0 else float("nan"), "steepness": abs(w)}
