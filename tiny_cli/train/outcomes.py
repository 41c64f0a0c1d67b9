"""What became of a net: solved, stuck at mean, dead, partial or diverged.

One rule (`classify`) for every seed of a sweep and every single run, judged on the full
training data; with held-out data, one more (`held_out`): generalised, grokked, memorised
or not learned, from the epochs the training and the test inputs were first solved;
`pick_seeds` chooses the seeds of a sweep worth keeping as full runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from tiny_cli.spec import activations, models
from tiny_cli.train.engine import LOSSES
from tiny_cli.train.held_out import GROK_EPOCHS, HELD_OUT, TEST_ACCURACY

if TYPE_CHECKING:
    from tiny_cli.config import ExperimentConfig

OUTCOMES = ("solved", "stuck at mean", "dead", "partial", "diverged")

# The outcome rule's tolerances (see `classify`).
REGRESSION_TOL = 0.01  # solved regression: MSE on the training data at most this
CONSTANT_EPS = 0.01  # near-constant output: std(output) <= CONSTANT_EPS * std(target)
MEAN_EPS = 0.05  # at the mean: |mean(output) - mean(target)| <= MEAN_EPS * std(target)

Params = models.Params


def forward(arch: models.Arch, params: Params, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Samples-first inputs [n, in] (shared) -> outputs [S, n] ([S, outputs, n] for a
    read-out of several) and ReLU layers [S, units, n]."""
    out, hidden = models.batched_forward(arch, params, x.T.unsqueeze(0))
    layers = zip(hidden, arch.layers, strict=False)
    relu = [h for h, layer in layers if activations.get(layer.activation).rectifier]
    return (out[:, 0, :] if out.shape[1] == 1 else out), relu


def classify(
    kind: str,
    pred: Tensor,
    y: Tensor,
    hidden: Sequence[Tensor] = (),
    diverged: Tensor | None = None,
    right: Tensor | None = None,
) -> Tensor:
    """Each seed's outcome on the full training data, as an index into OUTCOMES.

    `pred` is [S, n] (each seed's outputs; [S, C, n] for C outputs, each judged on its
    own, `y` then [n, C] or [C, n]), `y` the n targets, `hidden` the ReLU layers
    [S, units, n] before the output, `right` the right answers [S, n] of a classification
    (default: within 0.5 of the 0/1 target; the task's own rule is `tasks.Task.correct`).
    The first rule that holds wins:

    - diverged: the loss or the parameters stopped being finite (training kept the last
      finite parameters);
    - solved: accuracy 1.0 for classification (every training input answered right);
      for regression MSE <= REGRESSION_TOL (0.01);
    - stuck at mean: near-constant output, std(output) <= CONSTANT_EPS * std(target)
      (1%), at the target's mean, |mean(output) - mean(target)| <= MEAN_EPS * std(target)
      (5%): the article's "predicting the mean";
    - dead: near-constant output anywhere else, or a ReLU layer with no unit active
      (> 0) on any training input;
    - partial: anything else (learned something, not all of it).

    Std is the population std over the n training inputs.
    """
    s = len(pred)
    if pred.dim() == 3:  # C outputs: [S, C, n] against y [C, n]
        c = pred.shape[1]
        y = y.reshape(-1, c).T if y.shape[-1] == c and y.shape[0] != c else y.reshape(c, -1)
    else:
        pred, y = pred.unsqueeze(1), y.reshape(1, -1)
    y = y.unsqueeze(0)  # [1, C, n]
    target_std = (y.std(dim=2, correction=0) + (y.std(dim=2, correction=0) == 0))[0]
    if kind == "classification":
        hit = right if right is not None else (pred - y).abs() < 0.5
        done = solved(kind, None, hit.reshape(s, -1).all(dim=1).float())
    else:
        done = solved(kind, ((pred - y) ** 2).reshape(s, -1).mean(dim=1), None)
    constant = (pred.std(dim=2, correction=0) <= CONSTANT_EPS * target_std).all(dim=1)
    at_mean = ((pred.mean(dim=2) - y.mean(dim=2)).abs() <= MEAN_EPS * target_std).all(dim=1)
    layer_dead = torch.zeros(s, dtype=torch.bool)
    for h in hidden:
        layer_dead |= ~(h > 0).any(dim=2).any(dim=1)
    diverged = torch.zeros(s, dtype=torch.bool) if diverged is None else diverged
    finite = _all_finite(pred.reshape(s, -1))
    outcome = torch.full((s,), OUTCOMES.index("partial"), dtype=torch.int8)
    rules = [
        ("dead", constant | layer_dead),
        ("stuck at mean", constant & at_mean),
        ("solved", done),
        ("diverged", diverged | ~finite),
    ]
    for name, mask in rules:  # in reverse priority: later rules overwrite earlier ones
        outcome[mask] = OUTCOMES.index(name)
    return outcome


def solved(kind: str, mse: Tensor | None, accuracy: Tensor | None, share: float = 1.0) -> Tensor:
    """The rule for "solved", per seed: a classification answers every training input right
    (`accuracy` 1; `share` of them for `test_solved`), a regression has MSE <=
    REGRESSION_TOL on them. `classify` applies it to
    a final net; a sweep's curves (`curves.Recorder`) to what the engine measured each epoch."""
    if kind == "classification":
        assert accuracy is not None
        return accuracy >= share
    assert mse is not None
    return mse <= REGRESSION_TOL


def test_solved(kind: str, mse: Tensor | None, accuracy: Tensor | None) -> Tensor:
    """The held-out side of `solved`, per seed: a classification answers at least
    TEST_ACCURACY (99%) of its test inputs right (a held-out set is judged as the grokking
    papers do: one wrong point in a few hundred is not memorising), a regression has MSE <=
    REGRESSION_TOL on them."""
    return solved(kind, mse, accuracy, share=TEST_ACCURACY)


def held_out(
    train_solved: Tensor, test_solved: Tensor, g: int = GROK_EPOCHS
) -> tuple[Tensor, Tensor]:
    """Each seed's outcome on held-out data (an index into HELD_OUT) and its delay: from
    the epoch its training inputs were first solved (`solved`, -1: never) to the epoch its
    test inputs were (`test_solved`: 99% of them right, -1: never), in epochs (-1 unless both were;
    0 when the test inputs were solved first). The first rule that holds wins:

    - not learned: the training inputs never solved;
    - memorised: the training inputs solved, the test inputs never;
    - generalised: the test inputs solved at most G (`g`, GROK_EPOCHS = 100) epochs after;
    - grokked: the test inputs solved more than G epochs after the training inputs.

    The test inputs are measured at the logged epochs (`log.every`), so a delay is
    a multiple of that, give or take the training's own first epoch.
    """
    train, test = train_solved.long(), test_solved.long()
    both = (train >= 0) & (test >= 0)
    delay = torch.where(both, (test - train).clamp_min(0), -1)
    outcome = torch.full(train.shape, HELD_OUT.index("not learned"), dtype=torch.int8)
    outcome[train >= 0] = HELD_OUT.index("memorised")
    outcome[both] = HELD_OUT.index("generalised")
    outcome[both & (delay > g)] = HELD_OUT.index("grokked")
    return outcome, delay.int()


def _all_finite(pred: Tensor) -> Tensor:
    """Per seed: every output finite. From the minimum and maximum (NaN propagates to both,
    an infinity is one of them): one pass without a temporary, where `isfinite().all()`
    takes several over a 2^24 domain."""
    if pred.shape[1] == 0:
        return torch.ones(len(pred), dtype=torch.bool)
    low, high = torch.aminmax(pred, dim=1)
    return low.isfinite() & high.isfinite()


@dataclass
class Evaluation:
    loss: Tensor  # [S] the training loss on the full training data
    pred: Tensor  # [S, n] outputs
    hidden: list[Tensor]  # ReLU layers [S, units, n]
    right: Tensor | None  # [S, n] right answers, classification only
    accuracy: Tensor | None  # [S], classification only


@torch.no_grad()
def evaluate(
    cfg: ExperimentConfig, params: Params, x: Tensor, y: Tensor, truth: Tensor | None = None
) -> Evaluation:
    """Per-seed final loss (on the targets `y`), accuracy (classification, against the clean
    targets `truth`, default y), outputs and ReLU layers."""
    task = cfg.task
    pred, hidden = forward(cfg.arch, params, x)

    def lined(t: Tensor) -> Tensor:  # as the outputs are: [1, n], or [1, C, n]
        return t.reshape(1, -1) if pred.dim() == 2 else t.reshape(len(x), -1).T.unsqueeze(0)

    target = lined(y).expand_as(pred)
    loss = LOSSES[cfg.loss](pred, target, reduction="none").reshape(len(pred), -1).mean(dim=1)
    clean = lined(y if truth is None else truth)
    right = task.correct(pred, clean, dim=1) if task.kind == "classification" else None
    right = right.reshape(len(pred), -1) if right is not None else None  # [S, n]
    accuracy = right.float().mean(dim=1) if right is not None else None
    return Evaluation(loss, pred, hidden, right, accuracy)


def pick_seeds(
    loss: Tensor, outcome: Tensor, seeds: Sequence[int], keep: int
) -> list[tuple[int, str]]:
    """Up to `keep` seeds worth a full run: best, worst, one per outcome, then by loss."""
    order = torch.argsort(torch.nan_to_num(loss, nan=math.inf), stable=True).tolist()
    picks: list[tuple[int, str]] = []

    def add(index: int, why: str) -> None:
        if len(picks) < keep and all(index != i for i, _ in picks):
            picks.append((index, why))

    add(order[0], "best")
    add(order[-1], "worst")
    for code, name in enumerate(OUTCOMES):
        found = [i for i in order if int(outcome[i]) == code]
        if found:
            add(found[0], name)
    if len(picks) < keep:  # spread the rest evenly over the loss ranking, then fill
        step = len(order) / max(1, keep - len(picks) + 1)
        for j in range(1, len(order)):
            add(order[min(len(order) - 1, int(j * step))], "quantile")
        for i in order:
            add(i, "quantile")
    return [(seeds[i], why) for i, why in picks]
