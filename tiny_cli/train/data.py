"""What a run trains on and is tested on: a task's inputs split in two, and label noise.

A config's `data:` section (`spec.sections.DataConfig`) splits the task's inputs (its
`data()` rows) into training and test inputs, and puts noise on the training targets:

- the split: a permutation of the n rows drawn from `split_seed` alone; its first
  round(train_fraction x n) rows (at least one) train, the others are the test set. Rows keep
  the task's order on both sides. It depends on the task and the data section only, never on
  the seed: every seed of a sweep, `tiny train --seed k`, `--resume` and `--from` see the
  same split;
- the noise, drawn from `noise_seed` (after the split): a regression target gets
  `noise x N(0, 1)` added; a classification label is flipped for round(noise x n_train)
  training inputs (0 <-> 1; another class, uniformly, for a many-class task).

The clean targets (`truth`) are what accuracy, the outcome and the read-out judge by; only
the loss is taken against the noisy targets, the ones the net is trained on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from tiny_cli.config import ExperimentConfig
    from tiny_cli.tasks import Task
    from tiny_cli.tasks.base import Predict


@dataclass(frozen=True)
class Data:
    """One run's inputs and targets, [n, inputs] and [n, outputs] float32."""

    x: Tensor  # the training inputs
    y: Tensor  # their targets as trained on (noisy)
    truth: Tensor  # their clean targets
    x_test: Tensor  # the held-out inputs ([0, inputs] without a split)
    y_test: Tensor  # their clean targets
    test_rows: Tensor | None  # [n_domain] bool: which of the task's rows are held out
    domain: Tensor  # every input of the task, in its order (what a picture draws)

    @property
    def has_test(self) -> bool:
        return len(self.x_test) > 0

    @property
    def noisy(self) -> bool:
        return self.y is not self.truth

    def domain_labels(self) -> Tensor:
        """Every input's target in the task's order: as trained on for a training input
        (noisy), clean for a held-out one (what a picture draws)."""
        if self.test_rows is None:
            return self.y
        out = torch.empty((len(self.domain), self.y.shape[1]), dtype=self.y.dtype)
        out[~self.test_rows], out[self.test_rows] = self.y, self.y_test
        return out

    def summary(self) -> dict[str, object]:
        """What run.json records of the split: sizes, and a hash of which rows are held out
        (the same config always gives the same one)."""
        rows = self.test_rows
        held = hashlib.sha256(rows.numpy().tobytes()).hexdigest()[:16] if rows is not None else ""
        flipped = int((self.y != self.truth).any(dim=1).sum()) if self.noisy else 0
        return {"train": len(self.x), "test": len(self.x_test), "test_rows": held,
                "noisy_targets": flipped}  # fmt: skip


def prepare(cfg: ExperimentConfig, domain: tuple[Tensor, Tensor] | None = None) -> Data:
    """The config's training and test data (`domain`: the task's `data()`, if made)."""
    x, y = domain if domain is not None else cfg.task.data()
    y = y.reshape(len(x), -1)
    section = cfg.data
    empty = x[:0]
    if section is None:
        return Data(x, y, y, empty, y[:0], None, x)
    n = len(x)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(section.split_seed))
    test_rows = torch.ones(n, dtype=torch.bool)
    test_rows[order[: section.train_count(n)]] = False
    x_train, truth = x[~test_rows], y[~test_rows]
    noisy = _noisy(cfg, truth) if section.noise > 0 else truth
    return Data(x_train, noisy, truth, x[test_rows], y[test_rows], test_rows, x)


def _noisy(cfg: ExperimentConfig, y: Tensor) -> Tensor:
    assert cfg.data is not None
    gen = torch.Generator().manual_seed(cfg.data.noise_seed)
    if cfg.task.kind == "regression":
        return y + cfg.data.noise * torch.randn(y.shape, generator=gen)
    flips = torch.randperm(len(y), generator=gen)[: round(cfg.data.noise * len(y))]
    out = y.clone()
    if y.shape[1] == 1:  # one 0/1 output
        out[flips] = 1 - y[flips]
        return out
    classes = y.shape[1]  # one-hot rows: another class, uniformly
    label = y[flips].argmax(dim=1)
    shift = torch.randint(1, classes, (len(flips),), generator=gen)
    out[flips] = torch.nn.functional.one_hot((label + shift) % classes, classes).float()
    return out


# The final metrics of a run with a test set, beside the training inputs' own.
TEST_METRICS = ("test_loss", "test_accuracy", "test_mae", "test_max_abs_error")


def test_metrics(cfg: ExperimentConfig, f: Predict, data: Data) -> dict[str, float]:
    """The loss and accuracy (classification) or mean and max absolute error (regression)
    on the held-out inputs, against their clean targets."""
    from tiny_cli.train.engine import LOSSES

    pred = f(data.x_test)
    y = data.y_test
    out = {"test_loss": LOSSES[cfg.loss](pred.reshape(y.shape), y).item()}
    side = _side(cfg.task, pred, y)
    if cfg.task.kind == "classification":
        out["test_accuracy"] = side["right"] / side["inputs"]
    else:
        out["test_mae"], out["test_max_abs_error"] = side["mae"], side["max_abs_error"]
    return out


def scores(task: Task, f: Predict, data: Data) -> dict[str, dict[str, float]]:
    """How right the net is on each side of the split, for the read-out: per side its
    number of inputs and how many it gets right (classification), or its mean and max
    absolute error (regression), against the clean targets."""
    return {
        "train": _side(task, f(data.x), data.truth),
        "test": _side(task, f(data.x_test), data.y_test),
    }


def _side(task: Task, pred: Tensor, y: Tensor) -> dict[str, float]:
    n = len(y)
    if task.kind == "classification":
        right = task.correct(pred.reshape(n, -1), y.reshape(n, -1), dim=1)
        return {"inputs": n, "right": int(right.reshape(n, -1).all(dim=1).sum())}
    err = (pred.reshape(n, -1) - y.reshape(n, -1)).abs()
    return {"inputs": n, "mae": err.mean().item(), "max_abs_error": err.max().item()}
