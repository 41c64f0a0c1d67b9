"""A diagnosis of one net: its outcome by the sweep's rule and whether training was done.

`outcome` applies `train.outcomes.classify` (the one rule a sweep applies to S seeds) to
one net's forward pass, so `tiny train` and `tiny sweep` call the same net the same thing;
it needs torch, and runs where torch is (the read-out in the sidecar is handed its verdict).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tiny_cli.read.arrays import Net, Pass

if TYPE_CHECKING:
    from tiny_cli.tasks import Task

CONVERGED_DROP = 0.01  # not converged: loss fell by more than 1% over the last tenth


def not_converged(losses: Sequence[float]) -> bool | None:
    """The loss still falls by more than CONVERGED_DROP (relative) over the last tenth of the
    epochs (None: too short a history to say)."""
    if len(losses) < 10:
        return None
    window = [v for v in losses[-max(2, len(losses) // 10) :] if math.isfinite(v)]
    if len(window) < 2:
        return None
    first, last = window[0], window[-1]
    return bool(first - last > CONVERGED_DROP * abs(first) and first - last > 1e-12)


def outcome(task: Task, run: Pass, x: np.ndarray, y: np.ndarray, net: Net, diverged: bool) -> str:
    """The sweep's outcome rule for this one net (S = 1)."""
    import torch

    from tiny_cli.train.outcomes import OUTCOMES, classify

    out = torch.from_numpy(run.out)  # [n, outputs]
    many = out.shape[1] > 1
    pred = out.T.unsqueeze(0) if many else out[:, 0].unsqueeze(0)  # [1, C, n] or [1, n]
    target = torch.from_numpy(y.reshape(len(out), -1).T if many else y.reshape(-1))
    # classify asks only whether a ReLU layer has a unit > 0 somewhere: the per-unit maxima
    # say that without every activation of a 2^24 domain in memory.
    hidden = [
        torch.from_numpy(top).reshape(1, -1, 1)
        for top, layer in zip(run.top, net.layers[:-1], strict=True)
        if layer.rectifier
    ]
    right = None
    if task.kind == "classification":
        right = task.correct(pred, target.unsqueeze(0) if many else target.reshape(1, -1), dim=1)
        right = right.reshape(1, -1)
    index = classify(task.kind, pred, target, hidden, torch.tensor([diverged]), right)
    return OUTCOMES[int(index[0])]
