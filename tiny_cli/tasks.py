"""Task registry: name -> data set, plain-Python target, default model and loss, metrics.

The data follow the article exactly: lt10 on the integers -20..39, min on 1000 seeded random
pairs in [-50, 50), is_even on the 2^n integers [0, 2^n) with target x mod 2.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from tiny_cli.config import IsEvenTask, Lt10Task, MinTask, TaskConfig

Metrics = dict[str, Any]


@dataclass(frozen=True)
class Task:
    name: str
    summary: str
    in_features: int
    default_arch: str
    default_loss: str
    data: Callable[[Any], tuple[Tensor, Tensor]]
    target: Callable[..., float]
    # The target on a batch of inputs (n, in_features) -> (n, 1), for pictures of the task.
    truth: Callable[[Any, Tensor], Tensor]
    # Metrics beyond the loss, on the training domain and outside it, given the model's
    # predictions on the domain (flat), so they are not computed twice.
    metrics: Callable[[nn.Module, Any, Tensor, Tensor, Tensor], Metrics]
    # Per-sample "right" (outputs, targets of the same shape -> bool), for classification;
    # the one rule behind training accuracy, final accuracy and a sweep's "solved".
    correct: Callable[[Tensor, Tensor], Tensor] | None = None
    # The final metrics worth a column in TensorBoard's HPARAMS table (list entries as `k[i]`).
    summary_metrics: tuple[str, ...] = ()

    @property
    def kind(self) -> Literal["classification", "regression"]:
        return "classification" if self.correct is not None else "regression"


def above_half_right(pred: Tensor, y: Tensor) -> Tensor:
    """lt10: F(x) > 0.5 means "x < threshold" (F = 0.5 exactly counts as "no")."""
    return (pred > 0.5) == (y > 0.5)


def rounds_right(pred: Tensor, y: Tensor) -> Tensor:
    """is_even: the output rounds to the target (within 0.5 of x mod 2)."""
    return (pred - y).abs() < 0.5


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, chunk: int = 1 << 20) -> Tensor:
    """The model's output as a flat tensor, in chunks so huge domains stay in memory."""
    return torch.cat([model(x[i : i + chunk]).reshape(-1) for i in range(0, len(x), chunk)])


# --- lt10 -------------------------------------------------------------------------------


def lt10_truth(cfg: Lt10Task, x: Tensor) -> Tensor:
    return (x < cfg.threshold).float()


def lt10_data(cfg: Lt10Task) -> tuple[Tensor, Tensor]:
    x = torch.arange(cfg.low, cfg.high, dtype=torch.float32).unsqueeze(1)
    return x, lt10_truth(cfg, x)


def lt10_metrics(model: nn.Module, cfg: Lt10Task, x: Tensor, y: Tensor, pred: Tensor) -> Metrics:
    wide = torch.arange(cfg.low - 1000, cfg.high + 1000, dtype=torch.float32).unsqueeze(1)
    probe = cfg.threshold - 0.5
    beyond = above_half_right(predict(model, wide), lt10_truth(cfg, wide).reshape(-1))
    return {
        "accuracy": above_half_right(pred, y.reshape(-1)).float().mean().item(),
        # The article's yardstick for how sharp the step is: F(9.5) for threshold 10.
        f"F({probe:g})": predict(model, torch.tensor([[probe]])).item(),
        "accuracy_beyond": beyond.float().mean().item(),
    }


# --- min --------------------------------------------------------------------------------


def min_pairs(low: int, high: int, n: int, seed: int) -> list[list[int]]:
    """The article's data: `[random.randrange(-50, 50), random.randrange(-50, 50)]`, seeded."""
    rng = random.Random(seed)
    return [[rng.randrange(low, high), rng.randrange(low, high)] for _ in range(n)]


def min_truth(cfg: MinTask, x: Tensor) -> Tensor:
    return x.min(dim=1, keepdim=True).values


def min_data(cfg: MinTask) -> tuple[Tensor, Tensor]:
    pairs = min_pairs(cfg.low, cfg.high, cfg.n_samples, cfg.data_seed)
    x = torch.tensor(pairs, dtype=torch.float32)
    return x, min_truth(cfg, x)


def min_metrics(model: nn.Module, cfg: MinTask, x: Tensor, y: Tensor, pred: Tensor) -> Metrics:
    err = (pred - y.reshape(-1)).abs()
    # Ten times the training range on each side, fixed seed: does the formula generalise?
    span = cfg.high - cfg.low
    far = torch.tensor(
        min_pairs(cfg.low - 10 * span, cfg.high + 10 * span, 10_000, seed=12345),
        dtype=torch.float32,
    )
    err_far = (predict(model, far) - min_truth(cfg, far).reshape(-1)).abs()
    return {
        "mae": err.mean().item(),
        "max_abs_error": err.max().item(),
        "max_abs_error_beyond": err_far.max().item(),
    }


# --- is_even ----------------------------------------------------------------------------


def is_even_truth(cfg: IsEvenTask, x: Tensor) -> Tensor:
    return torch.remainder(x, 2)  # defined on the integers


def is_even_data(cfg: IsEvenTask) -> tuple[Tensor, Tensor]:
    x = torch.arange(0, 2**cfg.bits, dtype=torch.float32).unsqueeze(1)
    return x, is_even_truth(cfg, x)


def parity_correct(model: nn.Module, lo: int, hi: int) -> Tensor:
    """Per integer in [lo, hi]: does round(model(x)) == x mod 2? (within 0.5 of the target)."""
    x = torch.arange(lo, hi + 1, dtype=torch.float64)
    pred = predict(model, x.float().unsqueeze(1)).double()
    return rounds_right(pred, torch.remainder(x, 2))


def correct_interval(model: nn.Module, lo: int, hi: int, chunk: int = 4096) -> Metrics:
    """Where the net is right: the widest integer interval around [lo, hi] with no mistake.

    The domain is checked whole; the interval then grows a chunk at a time on each side up to
    the first wrong integer, looking at most one domain's width further (`wrong_at` is None
    on a side where no mistake was found that far).
    """
    if not bool(parity_correct(model, lo, hi).all()):
        return {"correct_interval": None, "wrong_at": None}
    limit = hi - lo + 1
    left, right = lo, hi
    wrong_left: int | None = None
    wrong_right: int | None = None
    while wrong_left is None and left > lo - limit:
        wrong = (~parity_correct(model, left - chunk, left - 1)).nonzero()
        if len(wrong):
            wrong_left = left - chunk + int(wrong[-1])
            left = wrong_left + 1
        else:
            left -= chunk
    while wrong_right is None and right < hi + limit:
        wrong = (~parity_correct(model, right + 1, right + chunk)).nonzero()
        if len(wrong):
            wrong_right = right + 1 + int(wrong[0])
            right = wrong_right - 1
        else:
            right += chunk
    return {"correct_interval": [left, right], "wrong_at": [wrong_left, wrong_right]}


def is_even_metrics(
    model: nn.Module, cfg: IsEvenTask, x: Tensor, y: Tensor, pred: Tensor
) -> Metrics:
    return {
        "accuracy": rounds_right(pred, y.reshape(-1)).float().mean().item(),
        **correct_interval(model, 0, 2**cfg.bits - 1),
    }


TASKS: dict[str, Task] = {
    "lt10": Task(
        name="lt10",
        summary="x < threshold on the integers [low, high); one sigmoid neuron",
        in_features=1,
        default_arch="sigmoid_neuron",
        default_loss="bce",
        data=lt10_data,
        target=lambda x, threshold=10: float(x < threshold),
        truth=lt10_truth,
        metrics=lt10_metrics,
        correct=above_half_right,
        summary_metrics=("accuracy", "accuracy_beyond", "threshold", "steepness"),
    ),
    "min": Task(
        name="min",
        summary="min(a, b) on seeded random integer pairs; the article's MinModel",
        in_features=2,
        default_arch="min_model",
        default_loss="mse",
        data=min_data,
        target=lambda a, b: float(min(a, b)),
        truth=min_truth,
        metrics=min_metrics,
        summary_metrics=("mae", "max_abs_error", "max_abs_error_beyond"),
    ),
    "is_even": Task(
        name="is_even",
        summary="x mod 2 on [0, 2^bits); log-depth ReLU chain of |x - 2^k| layers",
        in_features=1,
        default_arch="relu_chain",
        default_loss="mse",
        data=is_even_data,
        target=lambda x: float(x % 2),
        truth=is_even_truth,
        metrics=is_even_metrics,
        correct=rounds_right,
        summary_metrics=("accuracy", "correct_interval[0]", "correct_interval[1]"),
    ),
}


def get(cfg: TaskConfig) -> Task:
    return TASKS[cfg.name]
