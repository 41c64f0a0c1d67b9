"""The optimizer update: torch.optim's SGD, Adam and AdamW, written out on one flat tensor.

Why not `torch.optim`: its fused kernels are not batch invariant (their vectorised body and
scalar tail round differently), and building any `torch.optim` optimizer imports
`torch._dynamo`, a large share of every run's start (bench/bench_claims.py). The rules
here are its single-tensor code path: the same operations in the same order, elementwise
on the engine's flat [P, S] buffer, so a seed's update never depends on the seeds beside it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from tiny_cli.config import ExperimentConfig

BETAS = (0.9, 0.999)  # torch.optim's Adam defaults
EPS = 1e-8
FLOAT_TINY = 1.1754943508222875e-38  # the smallest normal float32


class Update:
    """torch.optim's SGD / Adam / AdamW update of one flat parameter tensor, in place.

    `m`, `v` and `step` are the optimizer's whole state (a checkpoint's `m`, `v`, `step`)."""

    def __init__(self, cfg: ExperimentConfig, p: Tensor) -> None:
        t = cfg.train
        self.kind, self.lr, self.wd, self.momentum = t.optimizer, t.lr, t.weight_decay, t.momentum
        self.step = 0
        self.m = torch.zeros_like(p)  # SGD: momentum buffer; Adam: first moment
        self.v = torch.zeros_like(p)

    def __call__(self, p: Tensor, g: Tensor) -> None:
        self.step += 1
        if self.kind == "sgd":
            if self.wd:
                g = g.add(p, alpha=self.wd)
            if self.momentum:
                if self.step == 1:
                    self.m.copy_(g)
                else:
                    self.m.mul_(self.momentum).add_(g)
                g = self.m
            p.add_(g, alpha=-self.lr)
            return
        beta1, beta2 = BETAS
        if self.kind == "adamw":
            p.mul_(1 - self.lr * self.wd)
        elif self.wd:
            g = g.add(p, alpha=self.wd)
        self.m.lerp_(g, 1 - beta1)
        self.v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        bias1 = 1 - beta1**self.step
        bias2_sqrt = math.sqrt(1 - beta2**self.step)
        # sqrt of a subnormal v is several times slower than of a normal one (units that
        # stopped learning decay v into them; bench/bench_claims.py) and makes no difference
        # here: for any v <= FLOAT_TINY, sqrt(v) / bias2_sqrt < 3.5e-18 is under half an ulp
        # of EPS, so the denominator is EPS either way. Clamping first gives the same bits, fast.
        denom = (self.v.clamp_min(FLOAT_TINY).sqrt() / bias2_sqrt).add_(EPS)
        p.addcdiv_(self.m, denom, value=-self.lr / bias1)
