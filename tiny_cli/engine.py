"""The one training engine: S seeds of one config trained at once. `tiny train` is S = 1.

Every parameter of the net gets a leading seed dimension (`[S, *shape]`, the model's own
state_dict names) and `models.batched_forward` runs all seeds together. The loss is the sum
over seeds of each seed's own mean loss, so seed k's gradient is exactly its own.

Batch invariance, bit for bit: a seed's whole trajectory depends only on its config and
seed, never on which other seeds train beside it, how many, or the thread count:

- seed k starts from `models.build(config with seed=k)` and shuffles its mini-batches with
  its own `Generator().manual_seed(k)`;
- the products are per-seed `baddbmm`s, whose result for one seed does not depend on the
  batch, except that a batch of ONE takes another BLAS path (matrix-vector) for some shapes:
  so one seed trains beside a twin copy of itself, which costs nothing measurable here;
- the optimizer update is elementwise, on one flat tensor of all seeds' parameters, written
  out below with single-rounding ops. torch's fused optimizer kernels are not batch
  invariant (their vectorised body and scalar tail round differently: measured), and
  building any `torch.optim` optimizer imports `torch._dynamo`, 1.5 s of every run's start
  (measured, torch 2.13). The update rules are torch.optim's SGD, Adam and AdamW (its
  single-tensor code path, the same operations in the same order).

A seed whose loss or parameters stop being finite keeps its last finite parameters and the
epochs it completed; its loss is masked out of the sum, so it cannot touch the others.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from tiny_cli import models

if TYPE_CHECKING:
    from tiny_cli.config import ExperimentConfig

Params = models.Params  # state_dict names -> [S, *shape]

LOSSES: dict[str, Callable[..., Tensor]] = {
    "mse": F.mse_loss,
    "bce": F.binary_cross_entropy,
    "l1": F.l1_loss,
}
BETAS = (0.9, 0.999)  # torch.optim's Adam defaults
EPS = 1e-8


@dataclass(frozen=True)
class Epoch:
    """What a callback sees after each epoch (epoch 0: the initial parameters)."""

    epoch: int  # parameters are those after this many epochs
    loss: Tensor  # [S] mean loss over the epoch's batches, each measured before its step
    accuracy: Tensor | None  # [S], classification only
    params: Tensor  # [S, P] flat, in `model.parameters()` order
    grads: Tensor | None  # [S, P] the gradient of the epoch's last batch (None at epoch 0)
    alive: Tensor  # [S] bool: not diverged


Callback = Callable[[Epoch], None]
State = dict[str, Any]  # the whole training state at the end of an epoch (tensors, ints)


@dataclass
class Result:
    status: Literal["completed", "interrupted"]
    params: Params  # final parameters [S, *shape]; a diverged seed keeps its last finite ones
    epochs: Tensor  # [S] epochs completed with finite loss
    diverged: Tensor  # [S] bool
    diverged_at: Tensor  # [S] loss at the epoch that diverged (nan where none did)
    state: dict[str, Tensor] = field(default_factory=dict)  # optimizer state, flat [S, P]


def initial_params(cfg: ExperimentConfig, seeds: Sequence[int]) -> Params:
    """Seed k's parameters exactly as `models.build(cfg with seed=k)` makes them, stacked."""
    states = [models.build(cfg.model_copy(update={"seed": s})).state_dict() for s in seeds]
    return {k: torch.stack([st[k] for st in states]) for k in states[0]}


class _Update:
    """torch.optim's SGD / Adam / AdamW update of one flat parameter tensor, in place."""

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
        denom = (self.v.sqrt() / bias2_sqrt).add_(EPS)
        p.addcdiv_(self.m, denom, value=-self.lr / bias1)


def fit(
    cfg: ExperimentConfig,
    seeds: Sequence[int],
    x: Tensor,
    y: Tensor,
    *,
    params: Params | None = None,
    correct: Callable[[Tensor, Tensor], Tensor] | None = None,
    callbacks: Sequence[Callback] = (),
    should_stop: Callable[[], bool] = lambda: False,
    device: str = "cpu",
    checkpoint: Callable[[int, Callable[[], State], bool], None] | None = None,
    resume: State | None = None,
) -> Result:
    """Train `cfg` for every seed in `seeds` on (x, y) [n, inputs], [n, 1].

    Callbacks get every epoch, the initial parameters as epoch 0 included. `should_stop` is
    asked before each mini-batch: when it says so, training ends ("interrupted") with the
    parameters of the last completed epoch. `checkpoint(epoch, snapshot, force)` is called
    after every epoch (force: the last one, or a stop between epochs); `snapshot()` is the
    whole training state (parameters, optimizer moments,
    the batch-order generators), from which `resume=` continues exactly where it was: the
    resumed run ends bit-identical to one that never stopped.
    """
    s_real = len(seeds)
    # See the module docstring: one seed trains beside a copy of itself (not needed when
    # nothing trains: a hardwired net's one forward, on 2^24 inputs at most).
    twin = s_real == 1 and cfg.train.epochs > 0
    seeds = list(seeds) * 2 if twin else list(seeds)
    start = initial_params(cfg, seeds) if params is None else params
    if twin and params is not None:
        start = {k: v.expand(2, *v.shape[1:]) for k, v in start.items()}
    dev = torch.device(device)
    arch = cfg.arch
    loss_fn = LOSSES[cfg.loss]
    t = cfg.train
    n, s = len(x), len(seeds)
    full_batch = t.batch_size is None or t.batch_size >= n

    # All parameters in one flat buffer, parameter-major ([param][seed][element]), so each
    # parameter is a contiguous [S, *shape] view and the update is one pass over it.
    names = list(start)
    sizes = [start[k][0].numel() for k in names]
    flat = torch.cat([start[k].reshape(-1) for k in names]).to(dev, torch.float32)
    views: Params = {}
    offset = 0
    for k, size in zip(names, sizes, strict=True):
        views[k] = flat[offset : offset + s * size].view(s, *start[k].shape[1:]).requires_grad_()
        offset += s * size
    update = _Update(cfg, flat)

    # Seed-major order of the flat buffer: flat[order].view(S, P) is each seed's parameters
    # in `parameters()` order; seed_of[i] is the seed of flat[i].
    starts = [0, *itertools.accumulate(s * size for size in sizes)]
    order = torch.cat(
        [
            torch.arange(size, device=dev) + start + seed * size
            for seed in range(s)
            for start, size in zip(starts, sizes, strict=False)
        ]
    )
    seed_of = torch.cat([torch.arange(s, device=dev).repeat_interleave(size) for size in sizes])

    def per_seed(buffer: Tensor) -> Tensor:
        """[S, P]: each seed's parameters (or gradients) in `parameters()` order."""
        return buffer[order].view(s, -1)

    xt, yt = x.to(dev).T.unsqueeze(0), y.to(dev).T.unsqueeze(0)  # [1, in, n], [1, 1, n]
    xd, yd = x.to(dev), y.to(dev)
    gens = [] if full_batch else [torch.Generator().manual_seed(k) for k in seeds]

    with torch.no_grad():
        last_good = flat.clone()
        pred0, _ = models.batched_forward(arch, views, xt)
        loss0 = loss_fn(pred0, yt.expand_as(pred0), reduction="none").mean(dim=(1, 2))
        acc0 = correct(pred0, yt).float().mean(dim=(1, 2)) if correct is not None else None
    alive = torch.ones(s, dtype=torch.bool, device=dev)
    epochs_done = torch.zeros(s, dtype=torch.long)
    diverged_at = torch.full((s,), math.nan)
    first = 1
    if resume is not None:
        if list(resume["seeds"]) != seeds or int(resume["size"]) != flat.numel():
            raise ValueError("the checkpoint is of other seeds or another architecture")
        with torch.no_grad():
            flat.copy_(resume["flat"])
            last_good = resume["last_good"].to(dev).clone()
            update.m.copy_(resume["m"])
            update.v.copy_(resume["v"])
        update.step = int(resume["step"])
        for g, state in zip(gens, resume["gens"], strict=True):
            g.set_state(state)
        alive = resume["alive"].to(dev).clone()
        epochs_done = resume["epochs_done"].clone()
        diverged_at = resume["diverged_at"].clone()
        first = int(resume["epoch"]) + 1

    def snapshot(epoch: int) -> State:
        return {
            "epoch": epoch,
            "seeds": list(seeds),
            "size": flat.numel(),
            "flat": flat.detach().cpu().clone(),
            "last_good": last_good.cpu().clone(),
            "m": update.m.cpu().clone(),
            "v": update.v.cpu().clone(),
            "step": update.step,
            "gens": [g.get_state() for g in gens],
            "alive": alive.cpu().clone(),
            "epochs_done": epochs_done.clone(),
            "diverged_at": diverged_at.clone(),
        }

    def emit(epoch: int, loss: Tensor, acc: Tensor | None, grads: Tensor | None) -> None:
        if not callbacks:
            return
        keep = slice(0, s_real)
        info = Epoch(
            epoch,
            loss[keep].cpu(),
            acc[keep].cpu() if acc is not None else None,
            per_seed(last_good)[keep].cpu(),
            grads[keep].cpu() if grads is not None else None,
            alive[keep].cpu(),
        )
        for cb in callbacks:
            cb(info)

    if resume is None:
        emit(0, loss0, acc0, None)
    status: Literal["completed", "interrupted"] = "completed"
    for epoch in range(first, t.epochs + 1):
        if should_stop():
            status = "interrupted"
            if checkpoint is not None:  # stopped between epochs: an exact point to resume
                checkpoint(epoch - 1, functools.partial(snapshot, epoch - 1), True)
            break
        if full_batch:
            batches: list[tuple[Tensor, Tensor, int]] = [(xt, yt, n)]
        else:
            perm = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(dev)
            batches = [
                (xd[idx].transpose(1, 2), yd[idx].transpose(1, 2), idx.shape[1])
                for idx in perm.split(t.batch_size or n, dim=1)
            ]
        total = torch.zeros(s, device=dev)
        hits = torch.zeros(s, device=dev) if correct is not None else None
        stopped = False
        for i, (xb, yb, size) in enumerate(batches):
            if i and should_stop():
                stopped = True
                break
            pred, _ = models.batched_forward(arch, views, xb)
            losses = loss_fn(pred, yb.expand_as(pred), reduction="none").mean(dim=(1, 2))
            for v in views.values():
                v.grad = None
            losses.where(alive, 0.0).sum().backward()
            with torch.no_grad():
                grad = torch.cat([_grad(v).reshape(-1) for v in views.values()])
                update(flat, grad)
            detached = losses.detach()
            total = detached if size == n else total + detached * size
            if hits is not None and correct is not None:
                hits += correct(pred.detach(), yb).sum(dim=(1, 2))
        if stopped:
            status = "interrupted"
            break
        epoch_loss = total if full_batch else total / n
        with torch.no_grad():
            ok = alive & epoch_loss.isfinite()
            if not bool(flat.isfinite().all()):  # rare: find whose parameters broke
                # finite * 0 is 0, inf * 0 and nan * 0 are nan: one reduction per seed
                ok &= per_seed(flat).mul(0.0).sum(dim=1).eq(0.0)
            if bool(ok.all()):
                last_good.copy_(flat)
            else:
                newly = alive & ~ok
                diverged_at[newly.cpu()] = epoch_loss[newly].cpu()
                last_good = torch.where(ok[seed_of], flat, last_good)
            epochs_done += ok.cpu()
            alive = ok
        if not bool(alive[:s_real].any()):
            break  # every seed diverged: nothing left to train or to report
        grads = per_seed(grad) if callbacks else None
        emit(epoch, epoch_loss, hits / n if hits is not None else None, grads)
        if checkpoint is not None:
            checkpoint(epoch, functools.partial(snapshot, epoch), False)

    final: Params = {}
    for k, size, begin in zip(names, sizes, starts, strict=False):
        block = last_good[begin : begin + s * size].view(s, *start[k].shape[1:])
        final[k] = block[:s_real].cpu().clone()
    return Result(
        status,
        final,
        epochs_done[:s_real],
        ~alive[:s_real].cpu(),
        diverged_at[:s_real],
    )


def _grad(v: Tensor) -> Tensor:
    assert v.grad is not None, "every parameter takes part in the loss"
    return v.grad
