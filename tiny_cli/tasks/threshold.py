"""x < t on the integers [low, high): the article's one sigmoid neuron (`lt10` is t = 10)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import model_validator

from tiny_cli.spec import models
from tiny_cli.spec.schema import Bound, Float
from tiny_cli.tasks.base import Construction, Kind, Metrics, Predict, StateDict, Task, tensor

if TYPE_CHECKING:
    from torch import Tensor

    from tiny_cli.spec.sections import InitConfig


def step_neuron(threshold: float = 10.0, scale: float = 1.0) -> StateDict:
    """x < t as one neuron: F(x) = Sigmoid(s * (t - x)) = Sigmoid(-s * x + s * t).

    The bias is the neuron's threshold. With s = 1, F(9.5) = Sigmoid(0.5) = 0.62; with
    s = 100, F(9.5) = Sigmoid(50) ~ 1. Any s > 0 classifies every x correctly (F(x) > 0.5
    exactly when x < t); a larger s only pushes the outputs towards 0 and 1.
    """
    return {"0.weight": tensor([[-scale]]), "0.bias": tensor([scale * threshold])}


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

    def data(self) -> tuple[Tensor, Tensor]:
        import torch

        x = torch.arange(self.low, self.high, dtype=torch.float32).unsqueeze(1)
        return x, self.truth(x)


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

    def correct(self, pred: Tensor, y: Tensor) -> Tensor:
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
