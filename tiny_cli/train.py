"""The training loop. It knows nothing about tasks, runs or TensorBoard: callbacks do.

Determinism: the caller seeds the model's init; the loop shuffles mini-batches with its own
generator seeded from `seed`, so the same config and seed give bit-identical weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mse": F.mse_loss,
    "bce": F.binary_cross_entropy,
    "l1": F.l1_loss,
}


def make_optimizer(
    name: str, params: Iterable[nn.Parameter], lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}")


@dataclass(frozen=True)
class EpochStats:
    epoch: int  # 1-based: parameters are those after this many epochs
    loss: float  # mean loss over the epoch's batches (each measured before its step)
    accuracy: float | None  # same, for tasks with a per-sample notion of "right"
    params: Tensor  # all parameters after the epoch, flat, in `model.parameters()` order


class Callback(Protocol):
    def on_epoch_end(self, stats: EpochStats, model: nn.Module) -> None: ...


@dataclass(frozen=True)
class FitResult:
    status: Literal["completed", "diverged", "interrupted"]
    epochs: int  # epochs completed with finite loss
    reason: str = ""


def fit(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    loss: str,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batch_size: int | None,
    seed: int,
    correct: Callable[[Tensor, Tensor], Tensor] | None = None,
    callbacks: list[Callback] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> FitResult:
    """Train `model` on (x, y).

    Stops early on NaN/inf, restoring the last finite parameters ("diverged"), and at the end
    of an epoch when `should_stop()` says so ("interrupted", e.g. after Ctrl-C).
    """
    loss_fn = LOSSES[loss]
    callbacks = callbacks or []
    n = len(x)
    full_batch = batch_size is None or batch_size >= n
    gen = torch.Generator().manual_seed(seed)
    params = list(model.parameters())
    with torch.no_grad():
        last_good = parameters_to_vector(params)
    for epoch in range(1, epochs + 1):
        if should_stop():
            return FitResult("interrupted", epoch - 1, f"stopped by a signal at epoch {epoch}")
        # Full batch needs no shuffling; mini-batches are a fresh permutation per epoch.
        batches = [None] if full_batch else torch.randperm(n, generator=gen).split(batch_size or n)
        total = torch.zeros(())
        hits = torch.zeros(())
        for idx in batches:
            xb, yb = (x, y) if idx is None else (x[idx], y[idx])
            pred = model(xb)
            batch_loss = loss_fn(pred, yb)
            optimizer.zero_grad(set_to_none=True)
            batch_loss.backward()
            optimizer.step()
            total += batch_loss.detach() * len(xb)
            if correct is not None:
                hits += correct(pred.detach(), yb).sum()
        epoch_loss = float(total) / n
        with torch.no_grad():
            now = parameters_to_vector(params)
        if not (math.isfinite(epoch_loss) and bool(now.isfinite().all())):
            vector_to_parameters(last_good, params)
            return FitResult("diverged", epoch - 1, f"loss became {epoch_loss} at epoch {epoch}")
        last_good = now
        stats = EpochStats(epoch, epoch_loss, float(hits) / n if correct is not None else None, now)
        for cb in callbacks:
            cb.on_epoch_end(stats, model)
    return FitResult("completed", epochs)
