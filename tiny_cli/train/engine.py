"""The one training engine: S seeds of one config trained at once. `tiny train` is S = 1.

All seeds' parameters live in one flat buffer, seeds last ([P, S]: each parameter a
[*shape, S] view, the model's own state_dict names). `backprop.Net` computes every seed's
forward, mean loss and gradient by hand, all seeds in each elementwise op (no autograd, no
per-seed BLAS calls); the update is one pass over the buffer.

Batch invariance, bit for bit: a seed's whole trajectory depends only on its config and
seed, never on which other seeds train beside it, how many, or the thread count:

- seed k starts from `inits.build(config with seed=k)` (`models.random_inits` draws the
  same numbers for many seeds at once) and shuffles its mini-batches with its own
  `Generator().manual_seed(k)`;
- every op of the forward and backward is elementwise, or a per-seed sum in an order fixed
  by the shapes (`backprop.tree_sum`); functions whose vectorised and scalar code round
  differently run with every element on one path (`backprop.uniform`); a wide layer's
  products are per-seed `bmm`s, which give one seed the same bits in any batch but a batch
  of ONE (another BLAS path), so a lone seed trains beside a twin copy of itself;
- the optimizer update is elementwise, on the flat buffer, written out below. torch's
  fused optimizer kernels are not batch invariant (their vectorised body and scalar tail
  round differently: measured), and building any `torch.optim` optimizer imports
  `torch._dynamo`, 1.5 s of every run's start (measured, torch 2.13). The update rules are
  torch.optim's SGD, Adam and AdamW (its single-tensor code path, the same operations in
  the same order).

A seed whose loss or parameters stop being finite keeps its last finite parameters and the
epochs it completed; its gradient is masked to zero, so it cannot touch the others.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from tiny_cli.spec import models
from tiny_cli.train import backprop, inits

if TYPE_CHECKING:
    from tiny_cli.config import ExperimentConfig

Params = models.Params  # state_dict names -> [S, *shape]

LOSSES: dict[str, Callable[..., Tensor]] = {
    "mse": F.mse_loss,
    "bce": F.binary_cross_entropy,
    "l1": F.l1_loss,
}
# The version of the training arithmetic (1: autograd and bmm; 2: backprop.py, seeds last),
# in run.json and in checkpoints: a run or sweep stopped under another one cannot resume.
ENGINE = 2
BETAS = (0.9, 0.999)  # torch.optim's Adam defaults
EPS = 1e-8
FLOAT_TINY = 1.1754943508222875e-38  # the smallest normal float32
FORWARD_CHUNK = 1 << 20  # samples per forward of a net that does not train


class Epoch:
    """What a callback sees after each epoch (epoch 0: the initial parameters). `params` and
    `grads` are copied out of the engine's buffers when first read, during the callback (a
    sweep's progress counter never reads them)."""

    def __init__(
        self,
        epoch: int,
        loss: Tensor,
        accuracy: Tensor | None,
        alive: Tensor,
        params: Callable[[], Tensor],
        grads: Callable[[], Tensor | None],
    ) -> None:
        self.epoch = epoch  # parameters are those after this many epochs
        self.loss = loss  # [S] mean loss over the epoch's batches, each before its step
        self.accuracy = accuracy  # [S], classification only
        self.alive = alive  # [S] bool: not diverged
        self._params, self._grads = params, grads

    @functools.cached_property
    def params(self) -> Tensor:
        """[S, P] flat, in `model.parameters()` order."""
        return self._params()

    @functools.cached_property
    def grads(self) -> Tensor | None:
        """[S, P] the gradient of the epoch's last batch (None at epoch 0)."""
        return self._grads()


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
    """Seed k's parameters exactly as `inits.build(cfg with seed=k)` makes them, stacked."""
    if cfg.init.mode == "random":
        return inits.random_inits(cfg.arch, seeds)
    states = [inits.build(cfg.model_copy(update={"seed": s})).state_dict() for s in seeds]
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
        # sqrt of a subnormal v is ~30x slower than of a normal one (measured; units that
        # stopped learning decay v into them) and makes no difference here: for any
        # v <= FLOAT_TINY, sqrt(v) / bias2_sqrt < 3.5e-18 is under half an ulp of EPS, so
        # the denominator is EPS either way. Clamping first gives the same bits, fast.
        denom = (self.v.clamp_min(FLOAT_TINY).sqrt() / bias2_sqrt).add_(EPS)
        p.addcdiv_(self.m, denom, value=-self.lr / bias1)


@functools.cache
def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse rather than hand it back to the OS at once.

    A training step makes and frees a few MB of temporaries; when glibc returns freed
    memory straight away (Dask sets MALLOC_TRIM_THRESHOLD_=65536 in its workers), every
    step faults it back in page by page: 2.3x slower for 8192 seeds (855,000 page faults
    against 10,000 for 60 epochs, measured). Once per process; False where there is no
    glibc `mallopt` (macOS, musl): nothing changes there."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim, mmap = -1, -3  # M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
        return bool(libc.mallopt(trim, 256 << 20)) and bool(libc.mallopt(mmap, 32 << 20))
    except (OSError, AttributeError):
        return False


def _full_batch(cfg: ExperimentConfig, n: int) -> bool:
    """One batch per epoch: no batch size, or one as big as the data (no generators)."""
    return cfg.train.batch_size is None or cfg.train.batch_size >= n


def lineup(cfg: ExperimentConfig, seeds: Sequence[int]) -> list[int]:
    """The seeds `fit` trains side by side: a lone seed beside a copy of itself when the net
    has a wide layer (see the module docstring; not when nothing trains)."""
    twin = len(seeds) == 1 and cfg.train.epochs > 0 and backprop.needs_twin(cfg.arch)
    return list(seeds) * 2 if twin else list(seeds)


def state_problem(cfg: ExperimentConfig, seeds: Sequence[int], state: Any) -> str | None:
    """Why a training state (a checkpoint's) cannot resume `fit(cfg, seeds)`; None if it can.
    Checked whole before anything is touched: a stale or hostile file gets one line."""
    if not isinstance(state, dict):
        return "not a training state"
    if state.get("engine") != ENGINE:
        return (
            "written by another version of tiny's training engine; it cannot continue bit "
            "for bit (tiny train --from RUN starts the run anew)"
        )
    lined = lineup(cfg, seeds)
    s = len(lined)
    size = cfg.arch.n_parameters * s
    shapes: dict[str, tuple[tuple[int, ...], torch.dtype]] = {
        "flat": ((size,), torch.float32),
        "last_good": ((size,), torch.float32),
        "m": ((size,), torch.float32),
        "v": ((size,), torch.float32),
        "alive": ((s,), torch.bool),
        "epochs_done": ((s,), torch.long),
        "diverged_at": ((s,), torch.float32),
    }
    for key, (shape, dtype) in shapes.items():
        value = state.get(key)
        if not isinstance(value, Tensor) or value.shape != shape or value.dtype != dtype:
            return f"{key} is missing or not a {dtype} tensor of shape {list(shape)}"
    if state.get("seeds") != lined or state.get("size") != size:
        return "of other seeds or another architecture"
    epoch, step = state.get("epoch"), state.get("step")
    if not isinstance(epoch, int) or not 0 <= epoch <= cfg.train.epochs:
        return f"epoch is not an integer in [0, {cfg.train.epochs}]"
    if not isinstance(step, int) or step < 0:
        return "step is not a non-negative integer"
    gens = state.get("gens")
    if not isinstance(gens, list) or any(
        not isinstance(g, Tensor) or g.dtype != torch.uint8 for g in gens
    ):
        return "gens is not a list of generator states"
    if len(gens) != (0 if _full_batch(cfg, cfg.task.size()) else s):
        return "gens does not have one generator state per seed"
    return None


@torch.no_grad()
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
    if resume is not None and (problem := state_problem(cfg, seeds, resume)) is not None:
        raise ValueError(f"the training state is unusable: {problem}")
    keep_freed_memory()
    s_real = len(seeds)
    seeds = lineup(cfg, seeds)
    twin = len(seeds) > s_real
    start = initial_params(cfg, seeds) if params is None else params
    if twin and params is not None:
        start = {k: v.expand(2, *v.shape[1:]) for k, v in start.items()}
    dev = torch.device(device)
    arch = cfg.arch
    t = cfg.train
    n, s = len(x), len(seeds)
    full_batch = _full_batch(cfg, n)

    # All parameters in one flat buffer, seeds last: [P, S], each seed a column, its
    # parameters in `parameters()` order. Each parameter is a contiguous [*shape, S] view
    # (what backprop.Net computes with) and the update is one pass over the buffer.
    names = list(start)
    shapes = [start[k].shape[1:] for k in names]
    sizes = [shape.numel() for shape in shapes]
    flat = torch.cat([start[k].reshape(s, -1).T for k in names]).reshape(-1)
    flat = flat.to(dev, torch.float32)

    def by_name(buffer: Tensor) -> Params:
        """Each parameter's [*shape, S] view of a flat buffer."""
        views, offset = {}, 0
        for k, shape, size in zip(names, shapes, sizes, strict=True):
            views[k] = buffer[offset : offset + size * s].view(*shape, s)
            offset += size * s
        return views

    last = by_name(flat)  # seeds last, [*shape, S]
    update = _Update(cfg, flat)
    net = backprop.Net(arch, last, cfg.loss)

    def per_seed(buffer: Tensor) -> Tensor:
        """[S, P]: each seed's parameters (or gradients) in `parameters()` order, a copy."""
        return buffer.view(-1, s).T.clone(memory_format=torch.contiguous_format)

    xd, yd = x.to(dev), y.to(dev)
    xt, yt = xd.T.unsqueeze(-1), yd.T.unsqueeze(-1)  # [in, n, 1], [out, n, 1]
    gens = [] if full_batch else [torch.Generator().manual_seed(k) for k in seeds]

    last_good = flat.clone()
    status: Literal["completed", "interrupted"] = "completed"
    if t.epochs > 0:
        pred0, _ = net.forward(xt)
    else:  # a hardwired net's one forward, maybe over 2^24 inputs: on bmm, in chunks, each
        # after asking should_stop (seconds at 2^24)
        seed_first = {k: v.movedim(-1, 0) for k, v in last.items()}  # [S, *shape]
        parts = []
        for lo in range(0, n, FORWARD_CHUNK):
            if should_stop():
                status = "interrupted"
                break
            part = xd[lo : lo + FORWARD_CHUNK].T.unsqueeze(0)
            parts.append(models.batched_forward(arch, seed_first, part)[0])
        pred0 = torch.cat(parts, dim=2).permute(1, 2, 0) if parts else xt
    alive = torch.ones(s, dtype=torch.bool, device=dev)
    epochs_done = torch.zeros(s, dtype=torch.long)
    diverged_at = torch.full((s,), math.nan)
    first = 1
    if resume is not None:
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
            "engine": ENGINE,
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
            alive[keep].cpu(),
            lambda: per_seed(last_good)[keep].cpu(),
            lambda: per_seed(grads)[keep].cpu() if grads is not None else None,
        )
        for cb in callbacks:
            cb(info)

    if resume is None and status == "completed":
        loss0, _ = backprop.loss_and_grad(cfg.loss, pred0.contiguous(), yt)
        acc0 = correct(pred0, yt).float().mean(dim=(0, 1)) if correct is not None else None
        emit(0, loss0, acc0, None)
    for epoch in range(first, t.epochs + 1):
        if should_stop():
            status = "interrupted"
            if checkpoint is not None:  # stopped between epochs: an exact point to resume
                checkpoint(epoch - 1, functools.partial(snapshot, epoch - 1), True)
            break
        if full_batch:
            batches: list[tuple[Tensor, Tensor, int]] = [(xt, yt, n)]
        else:
            # [n, S]: each seed's own order; a batch is [features, size, S]
            perm = torch.stack([torch.randperm(n, generator=g) for g in gens], dim=1).to(dev)
            batches = [
                (xd.T[:, idx].contiguous(), yd.T[:, idx].contiguous(), len(idx))
                for idx in perm.split(t.batch_size or n)
            ]
        total = torch.zeros(s, device=dev)
        hits = torch.zeros(s, device=dev) if correct is not None else None
        stopped = False
        for i, (xb, yb, size) in enumerate(batches):
            if i and should_stop():
                stopped = True
                break
            pred, losses, grad_ps = net.step(xb, yb, alive)
            grad = grad_ps.reshape(-1)
            update(flat, grad)
            total = losses if size == n else total + losses * size
            if hits is not None and correct is not None:
                hits += correct(pred, yb).sum(dim=(0, 1))
        if stopped:
            status = "interrupted"
            break
        epoch_loss = total if full_batch else total / n
        ok = alive & epoch_loss.isfinite()
        # A finite sum: every parameter is finite (cheaper than isfinite over all of them).
        if not bool(flat.sum().isfinite()):  # rare: find whose parameters broke
            # finite * 0 is 0, inf * 0 and nan * 0 are nan: one reduction per seed
            ok &= flat.view(-1, s).mul(0.0).sum(dim=0).eq(0.0)
        if bool(ok.all()):
            last_good.copy_(flat)
        else:
            newly = alive & ~ok
            diverged_at[newly.cpu()] = epoch_loss[newly].cpu()
            last_good = torch.where(ok, flat.view(-1, s), last_good.view(-1, s)).view(-1)
        epochs_done += ok.cpu()
        alive = ok
        if not bool(alive[:s_real].any()):
            break  # every seed diverged: nothing left to train or to report
        emit(epoch, epoch_loss, hits / n if hits is not None else None, grad)
        if checkpoint is not None:
            checkpoint(epoch, functools.partial(snapshot, epoch), False)

    final = {
        k: v.movedim(-1, 0)[:s_real].cpu().clone(memory_format=torch.contiguous_format)
        for k, v in by_name(last_good).items()
    }
    return Result(
        status,
        final,
        epochs_done[:s_real],
        ~alive[:s_real].cpu(),
        diverged_at[:s_real],
    )
