"""The one training engine: S seeds of one config trained at once. `tiny train` is S = 1.

All seeds' parameters live in one flat buffer, seeds last ([P, S]: each parameter a
[*shape, S] view, the model's own state_dict names). `backprop.SeedNets` computes every seed's
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
  products are per-seed `bmm`s on aligned copies of each seed's matrices, one MKL thread
  per product (`backprop.per_seed_product`): the same bits alone, at any place in a batch
  and on any thread count;
- the optimizer update (`optim.Update`) is elementwise, on the flat buffer (`buffer.Layout`):
  torch.optim's SGD, Adam and AdamW written out (its fused kernels are not batch invariant,
  and building one imports `torch._dynamo`).

A seed whose loss or parameters stop being finite keeps its last finite parameters and the
epochs it completed; its gradient is masked to zero, so it cannot touch the others.

Two ways to run those epochs, chosen per `fit` by `kernel.problem`: the compiled kernel
(`kernel.py`, numba: a small net on the CPU, stretches of epochs per call) or torch ops
(`backprop`, `optim`: every other case, and the kernel's oracle). Both keep the same state
in the same buffers; `Result.engine` says which ran.
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
from tiny_cli.spec.sections import HARDWIRED
from tiny_cli.train import backprop, buffer, inits, kernel, optim

if TYPE_CHECKING:
    from tiny_cli.config import ExperimentConfig

Params = models.Params  # state_dict names -> [S, *shape]

LOSSES: dict[str, Callable[..., Tensor]] = {
    "mse": F.mse_loss,
    "bce": F.binary_cross_entropy,
    "l1": F.l1_loss,
    "ce": F.cross_entropy,  # one-hot targets (probabilities), classes on dim 1
}
# The version of the training arithmetic (1: autograd and bmm; 2: backprop.py, seeds last;
# 3: the compiled kernel for small nets, backprop.py for the rest; 4: nets of wide layers
# only, seeds first), in run.json and in checkpoints: a run or sweep stopped under another
# one cannot resume.
ENGINE = 4
# Ops under this many floats run on one torch thread whatever the thread count: more
# only wait on each other (measured: tiny train modadd, 123k floats an op, 4.4 s on one
# thread, 5.3 s on two); a seed's bits are the same on any count.
ONE_THREAD_FLOATS = 1 << 20
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
        # on the held-out inputs (`fit(test=...)`), at the epochs it measures them; else None
        self.test_loss: Tensor | None = None  # [S]
        self.test_accuracy: Tensor | None = None  # [S], classification only

    @functools.cached_property
    def params(self) -> Tensor:
        """[S, P] flat, in `model.parameters()` order."""
        return self._params()

    @functools.cached_property
    def grads(self) -> Tensor | None:
        """[S, P] the gradient of the epoch's last batch (None at epoch 0)."""
        return self._grads()


Callback = Callable[[Epoch], None]


@dataclass
class Span:
    """Epochs `first` .. `first + E - 1` at once, for a callback with a `span(Span)` method
    (what `__call__` would get for each of them): the kernel trains long stretches only when
    every callback takes spans. Parameters, gradients and test metrics are the last epoch's
    (`last`, an `Epoch`; a stretch ends at each epoch the test set is measured)."""

    first: int
    loss: Tensor  # [E, S]
    accuracy: Tensor | None  # [E, S]
    alive: Tensor  # [E, S] after each epoch
    last: Epoch


State = dict[str, Any]  # the whole training state at the end of an epoch (tensors, ints)
Checkpoint = Callable[[int, Callable[[], State], bool], None]  # (epoch, snapshot, force)


@dataclass
class Result:
    status: Literal["completed", "interrupted"]
    params: Params  # final parameters [S, *shape]; a diverged seed keeps its last finite ones
    epochs: Tensor  # [S] epochs completed with finite loss
    diverged: Tensor  # [S] bool
    diverged_at: Tensor  # [S] loss at the epoch that diverged (nan where none did)
    state: dict[str, Tensor] = field(default_factory=dict)  # optimizer state, flat [S, P]
    engine: str = "torch"  # which engine trained: "kernel" or "torch"


def initial_params(cfg: ExperimentConfig, seeds: Sequence[int]) -> Params:
    """Seed k's parameters exactly as `inits.build(cfg with seed=k)` makes them, stacked."""
    if cfg.init.mode not in HARDWIRED:
        return inits.random_inits(cfg.arch, seeds, cfg.init)
    states = [inits.build(cfg.model_copy(update={"seed": s})).state_dict() for s in seeds]
    return {k: torch.stack([st[k] for st in states]) for k in states[0]}


@functools.cache
def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse rather than hand it back to the OS at once.

    A training step makes and frees a few MB of temporaries; when glibc returns freed
    memory straight away (Dask sets MALLOC_TRIM_THRESHOLD_=65536 in its workers), every
    step faults it back in page by page, which slows a big chunk of seeds severalfold
    (bench/bench_claims.py). Once per process; False where there is no glibc `mallopt`
    (macOS, musl): nothing changes there."""
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


def untwinned(state: Any) -> Any:
    """A training state as this version keeps it. Before `backprop.per_seed_product`, a
    lone seed with a wide layer trained beside a twin copy of itself (seeds [k, k]) with
    the bits it now has alone, so such a checkpoint resumes as the seed alone. Anything
    else is returned as it is."""
    if not isinstance(state, dict):
        return state
    seeds, flat = state.get("seeds"), state.get("flat")
    if not (isinstance(seeds, list) and len(seeds) == 2 and seeds[0] == seeds[1]):
        return state
    if not isinstance(flat, Tensor) or flat.dim() != 1 or len(flat) % 2:
        return state
    one = dict(state, seeds=seeds[:1], size=len(flat) // 2)
    for key in ("flat", "last_good", "m", "v"):
        if isinstance(value := state.get(key), Tensor) and value.shape == flat.shape:
            one[key] = value.view(-1, 2)[:, 0].contiguous()
    for key in ("alive", "epochs_done", "diverged_at"):
        if isinstance(value := state.get(key), Tensor) and value.shape == (2,):
            one[key] = value[:1].clone()
    if isinstance(gens := state.get("gens"), list) and len(gens) == 2:
        one["gens"] = gens[:1]
    return one


def which(cfg: ExperimentConfig, device: str = "cpu") -> str:
    """The engine `fit` trains `cfg` on: "kernel" or "torch"."""
    return (
        "torch" if kernel.problem(cfg, device) is not None or not kernel.available() else "kernel"
    )


def state_problem(
    cfg: ExperimentConfig, seeds: Sequence[int], state: Any, device: str = "cpu"
) -> str | None:
    """Why a training state (a checkpoint's) cannot resume `fit(cfg, seeds)`; None if it can.
    Checked whole before anything is touched: a stale or hostile file gets one line."""
    if not isinstance(state, dict):
        return "not a training state"
    if state.get("engine") != ENGINE:
        return (
            "written by another version of tiny's training engine; it cannot continue bit "
            "for bit (tiny train --from RUN starts the run anew)"
        )
    if (made := state.get("trainer", "torch")) != (now := which(cfg, device)):
        return (
            f"trained on the {made} engine, which would continue on the {now} engine here; "
            "it cannot continue bit for bit (tiny train --from RUN starts the run anew)"
        )
    s = len(seeds)
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
    if state.get("seeds") != list(seeds) or state.get("size") != size:
        return "of other seeds or another architecture"
    # what training keeps finite: every seed's last finite weights, a live seed's weights
    live = state["flat"].view(-1, s)[:, state["alive"]]
    if not (bool(state["last_good"].isfinite().all()) and bool(live.isfinite().all())):
        return "its weights hold NaN or infinite values"
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
    checkpoint: Checkpoint | None = None,
    resume: State | None = None,
    truth: Tensor | None = None,
    test: tuple[Tensor, Tensor] | None = None,
    test_every: int = 1,
) -> Result:
    """Train `cfg` for every seed in `seeds` on (x, y) [n, inputs], [n, outputs].

    Accuracy is judged against `truth` (the clean targets, when `y` is noisy; default y).
    With `test` (inputs, clean targets), every `test_every` epochs and at the last one the
    callbacks also get each seed's loss and accuracy on those inputs (`Epoch.test_loss`).

    Callbacks get every epoch, the initial parameters as epoch 0 included. `should_stop` is
    asked before each mini-batch: when it says so, training ends ("interrupted") with the
    parameters of the last completed epoch. `checkpoint(epoch, snapshot, force)` is called
    after every epoch (force: the last one, or a stop between epochs); `snapshot()` is the
    whole training state (parameters, optimizer moments, the batch-order generators), from
    which `resume=` continues exactly where it was: the
    resumed run ends bit-identical to one that never stopped.
    """
    if resume is not None and len(seeds) == 1:
        resume = untwinned(resume)
    if resume is not None and (problem := state_problem(cfg, seeds, resume, device)) is not None:
        raise ValueError(f"the training state is unusable: {problem}")
    keep_freed_memory()
    hooks = _Hooks(correct, callbacks, should_stop, checkpoint, test_every)
    data = (x, y, y if truth is None else truth)
    training = _Training(cfg, seeds, data, test, params, torch.device(device), hooks)
    start = training.initial_forward()
    first = 1 if resume is None else training.state.restore(resume)
    if start is None:  # a net that does not train, stopped during its forward
        return training.result("interrupted")
    if resume is None:
        training.report_start(start)
    return training.result(training.run_epochs(first))


@dataclass(frozen=True)
class _Hooks:
    """What `fit` is given to call: the accuracy rule, the callbacks, the stop request and
    the checkpoint."""

    correct: Callable[[Tensor, Tensor], Tensor] | None
    callbacks: Sequence[Callback]
    should_stop: Callable[[], bool]
    checkpoint: Checkpoint | None
    test_every: int = 1


class _Progress:
    """What changes from one epoch to the next, all of it in a checkpoint (`snapshot`,
    `restore`): the parameters and their last finite copy, the optimizer's state, the
    batch-order generators, which seeds are alive, their epochs and divergence losses."""

    def __init__(
        self, cfg: ExperimentConfig, seeds: list[int], flat: Tensor, gens: list[torch.Generator]
    ) -> None:
        s, dev = len(seeds), flat.device
        self.seeds, self.flat, self.gens = seeds, flat, gens
        self.trainer = "torch"  # or "kernel": which engine steps this state
        self.update = optim.Update(cfg, flat)
        self.last_good = flat.clone()
        self.alive = torch.ones(s, dtype=torch.bool, device=dev)
        self.epochs_done = torch.zeros(s, dtype=torch.long)
        self.diverged_at = torch.full((s,), math.nan)

    def snapshot(self, epoch: int) -> State:
        """The whole training state after `epoch` epochs, on the CPU (what `state_problem`
        checks)."""
        return {
            "engine": ENGINE,
            "trainer": self.trainer,
            "epoch": epoch,
            "seeds": list(self.seeds),
            "size": self.flat.numel(),
            "flat": self.flat.detach().cpu().clone(),
            "last_good": self.last_good.cpu().clone(),
            "m": self.update.m.cpu().clone(),
            "v": self.update.v.cpu().clone(),
            "step": self.update.step,
            "gens": [g.get_state() for g in self.gens],
            "alive": self.alive.cpu().clone(),
            "epochs_done": self.epochs_done.clone(),
            "diverged_at": self.diverged_at.clone(),
        }

    def restore(self, state: State) -> int:
        """Continue from a `snapshot` (checked by `state_problem`); the next epoch."""
        dev = self.flat.device
        self.flat.copy_(state["flat"])
        self.last_good = state["last_good"].to(dev).clone()
        self.update.m.copy_(state["m"])
        self.update.v.copy_(state["v"])
        self.update.step = int(state["step"])
        for g, gen_state in zip(self.gens, state["gens"], strict=True):
            g.set_state(gen_state)
        self.alive = state["alive"].to(dev).clone()
        self.epochs_done = state["epochs_done"].clone()
        self.diverged_at = state["diverged_at"].clone()
        return int(state["epoch"]) + 1

    def settle(self, epoch_loss: Tensor) -> None:
        """After an epoch: a seed whose loss or parameters stopped being finite is no longer
        alive, keeps its last finite parameters and records the loss it diverged at."""
        s = len(self.seeds)
        ok = self.alive & epoch_loss.isfinite()
        # A finite sum: every parameter is finite (cheaper than isfinite over all of them).
        if not bool(self.flat.sum().isfinite()):  # rare: find whose parameters broke
            # finite * 0 is 0, inf * 0 and nan * 0 are nan: one reduction per seed
            ok &= self.flat.view(-1, s).mul(0.0).sum(dim=0).eq(0.0)
        if bool(ok.all()):
            self.last_good.copy_(self.flat)
        else:
            newly = self.alive & ~ok
            self.diverged_at[newly.cpu()] = epoch_loss[newly].cpu()
            good = torch.where(ok, self.flat.view(-1, s), self.last_good.view(-1, s))
            self.last_good = good.view(-1)
        self.epochs_done += ok.cpu()
        self.alive = ok


# x [inputs, size, S or 1], y and its clean truth [outputs, size, S or 1], size
Batch = tuple[Tensor, Tensor, Tensor, int]


class _Training:
    """One `fit`: set up in `__init__` (the seeds' line-up, the flat buffer, the net, the
    data, the progress), then its stages in order: `initial_forward`, `report_start`,
    `run_epochs` (each epoch `train_epoch`, then `_Progress.settle`, the callbacks and the
    checkpoint), `result`."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        seeds: Sequence[int],
        data: tuple[Tensor, Tensor, Tensor],
        test: tuple[Tensor, Tensor] | None,
        params: Params | None,
        dev: torch.device,
        hooks: _Hooks,
    ) -> None:
        x, y, truth = data
        self.cfg, self.hooks, self.dev = cfg, hooks, dev
        start = initial_params(cfg, seeds) if params is None else params
        self.n, self.s = len(x), len(seeds)
        self.full_batch = _full_batch(cfg, self.n)
        self.layout = buffer.Layout(start, self.s)
        flat = self.layout.pack(start).to(dev, torch.float32)
        self.params = self.layout.views(flat)  # seeds last, [*shape, S]
        self.net = backprop.SeedNets(cfg.arch, self.params, cfg.loss)
        self.xd, self.yd, self.td = x.to(dev), y.to(dev), truth.to(dev)
        self.xt, self.yt = self.xd.T.unsqueeze(-1), self.yd.T.unsqueeze(-1)  # [features, n, 1]
        self.tt = self.yt if truth is y else self.td.T.unsqueeze(-1)
        self.test = (
            None
            if test is None or not len(test[0])
            else tuple(t.to(dev).T.unsqueeze(-1) for t in test)
        )
        gens = [] if self.full_batch else [torch.Generator().manual_seed(k) for k in seeds]
        self.state = _Progress(cfg, list(seeds), flat, gens)
        self.kernel = None
        if which(cfg, dev.type) == "kernel":
            self.kernel = kernel.Stretches(cfg, self.xd, self.yd, self.td)
            self.state.trainer = "kernel"

    def initial_forward(self) -> Tensor | None:
        """The initial parameters' outputs [outputs, n, S]; None if asked to stop first.

        A net that does not train (a hardwired one) has only this forward, maybe over 2^24
        inputs: on bmm, in chunks, each after asking should_stop (seconds at 2^24)."""
        if self.cfg.train.epochs > 0:
            return self.net.forward(self.xt)[0]
        seed_first = {k: v.movedim(-1, 0) for k, v in self.params.items()}  # [S, *shape]
        parts = []
        for lo in range(0, self.n, FORWARD_CHUNK):
            if self.hooks.should_stop():
                return None
            part = self.xd[lo : lo + FORWARD_CHUNK].T.unsqueeze(0)
            parts.append(models.batched_forward(self.cfg.arch, seed_first, part)[0])
        return torch.cat(parts, dim=2).permute(1, 2, 0) if parts else self.xt

    def report_start(self, pred: Tensor) -> None:
        """Epoch 0 for the callbacks: the initial parameters' loss and accuracy."""
        loss, _ = backprop.loss_and_grad(self.cfg.loss, pred.contiguous(), self.yt)
        correct = self.hooks.correct
        accuracy = correct(pred, self.tt).float().mean(dim=(0, 1)) if correct is not None else None
        self.report(0, loss, accuracy, None)

    def measure_test(self, epoch: int) -> tuple[Tensor, Tensor | None] | None:
        """Each seed's loss and accuracy on the held-out inputs, at the epochs they are
        measured (every `test_every` and the last); None at others, or without a test set."""
        every, last = self.hooks.test_every, self.cfg.train.epochs
        if self.test is None or not (epoch % every == 0 or epoch == last):
            return None
        x, y = self.test
        pred = self.net.forward(x)[0]
        loss, _ = backprop.loss_and_grad(self.cfg.loss, pred.contiguous(), y)
        correct = self.hooks.correct
        return loss, correct(pred, y).float().mean(dim=(0, 1)) if correct is not None else None

    def run_epochs(self, first: int) -> Literal["completed", "interrupted"]:
        """Epochs `first`, ... to the config's last, unless asked to stop or every seed
        diverged."""
        if self.kernel is not None:
            return self.run_stretches(self.kernel, first)
        threads = torch.get_num_threads()
        if self.dev.type == "cpu" and self.op_floats() < ONE_THREAD_FLOATS:
            torch.set_num_threads(1)
        try:
            return self._epochs(first)
        finally:
            torch.set_num_threads(threads)

    def op_floats(self) -> int:
        """About the most floats one op of a step touches: a batch through the widest layer
        (inputs included), for every seed."""
        arch = self.cfg.arch
        widest = max([arch.inputs, *(la.width for la in arch.layers)])
        batch = self.n if self.full_batch else min(self.n, self.cfg.train.batch_size or self.n)
        return batch * widest * self.s

    def _epochs(self, first: int) -> Literal["completed", "interrupted"]:
        state, checkpoint = self.state, self.hooks.checkpoint
        for epoch in range(first, self.cfg.train.epochs + 1):
            if self.hooks.should_stop():
                if checkpoint is not None:  # stopped between epochs: an exact point to resume
                    checkpoint(epoch - 1, functools.partial(state.snapshot, epoch - 1), True)
                return "interrupted"
            trained = self.train_epoch()
            if trained is None:
                return "interrupted"
            loss, hits, grad = trained
            state.settle(loss)
            if not bool(state.alive.any()):
                break  # every seed diverged: nothing left to train or to report
            self.report(epoch, loss, hits / self.n if hits is not None else None, grad)
            if checkpoint is not None:
                checkpoint(epoch, functools.partial(state.snapshot, epoch), False)
        return "completed"

    def run_stretches(
        self, kern: kernel.Stretches, first: int
    ) -> Literal["completed", "interrupted"]:
        """`run_epochs` on the kernel: a stretch of epochs per call, one epoch at a time when a
        callback or the checkpoint needs every epoch's parameters (no `span`)."""
        hooks = self.hooks
        spans = hooks.checkpoint is None and all(
            callable(getattr(cb, "span", None)) for cb in hooks.callbacks
        )
        most = kern.most(self.s, hooks.correct) if spans else 1
        # The kernel's threads are its own; the small torch ops between stretches (the
        # callbacks, the accuracy) run on one: torch's idle threads spinning beside the
        # kernel's cost more than those ops (measured: the whole sweep 3x slower on 2 cores)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._stretches(kern, first, spans, most, threads)
        finally:
            torch.set_num_threads(threads)

    def _stretches(
        self, kern: kernel.Stretches, first: int, spans: bool, most: int, threads: int
    ) -> Literal["completed", "interrupted"]:
        state, hooks, last = self.state, self.hooks, self.cfg.train.epochs
        epoch = first
        while epoch <= last:
            if hooks.should_stop():
                if hooks.checkpoint is not None:
                    snap = functools.partial(state.snapshot, epoch - 1)
                    hooks.checkpoint(epoch - 1, snap, True)
                return "interrupted"
            count = min(most, last - epoch + 1, self.next_test(epoch) - epoch + 1)
            bufs = {
                "flat": state.flat, "m": state.update.m, "v": state.update.v,
                "last_good": state.last_good, "alive": state.alive,
                "epochs_done": state.epochs_done, "diverged_at": state.diverged_at,
            }  # fmt: skip
            loss, alive, accuracy, grad = kern.train(
                count, state.update.step, bufs, state.gens, hooks.correct, threads
            )
            state.update.step += count * kern.batches
            live = alive.any(dim=1)
            ends = count if bool(live.all()) else int(live.int().argmin())
            if ends:
                end = epoch + ends - 1
                acc = accuracy[:ends] if accuracy is not None else None
                if spans:
                    info = self.epoch_info(
                        end, loss[ends - 1], acc[-1] if acc is not None else None, grad
                    )
                    span = Span(epoch, loss[:ends], acc, alive[:ends], info)
                    for cb in hooks.callbacks:
                        cb.span(span)  # type: ignore[attr-defined]
                else:
                    self.report(end, loss[0], acc[0] if acc is not None else None, grad)
            if ends < count:
                break  # every seed diverged
            if hooks.checkpoint is not None:
                hooks.checkpoint(epoch, functools.partial(state.snapshot, epoch), False)
            epoch += count
        return "completed"

    def next_test(self, epoch: int) -> int:
        """The first epoch from `epoch` on at which the test set is measured (a stretch ends
        there); past the last epoch without a test set."""
        every, last = self.hooks.test_every, self.cfg.train.epochs
        if self.test is None:
            return last + 1
        return min(last, -(-epoch // every) * every)

    def batches(self) -> list[Batch]:
        """One epoch's batches: the whole data, or each seed's own shuffled mini-batches."""
        if self.full_batch:
            return [(self.xt, self.yt, self.tt, self.n)]
        gens = self.state.gens  # [n, S]: each seed's own order
        perm = torch.stack([torch.randperm(self.n, generator=g) for g in gens], dim=1)
        clean = self.td is not self.yd
        return [
            (
                self.xd.T[:, idx].contiguous(),
                yb := self.yd.T[:, idx].contiguous(),
                self.td.T[:, idx].contiguous() if clean else yb,
                len(idx),
            )
            for idx in perm.to(self.dev).split(self.cfg.train.batch_size or self.n)
        ]

    def train_epoch(self) -> tuple[Tensor, Tensor | None, Tensor | None] | None:
        """A step of every seed on each batch: the epoch's mean loss [S], correct outputs
        [S] (classification) and the last batch's gradient [P * S]; None if asked to stop
        between batches (the epoch then does not count)."""
        state, correct = self.state, self.hooks.correct
        total = torch.zeros(self.s, device=self.dev)
        hits = torch.zeros(self.s, device=self.dev) if correct is not None else None
        grad = None
        for i, (xb, yb, tb, size) in enumerate(self.batches()):
            if i and self.hooks.should_stop():
                return None
            pred, losses, grad_ps = self.net.step(xb, yb, state.alive)
            grad = grad_ps.reshape(-1)
            state.update(state.flat, grad)
            total = losses if size == self.n else total + losses * size
            if hits is not None and correct is not None:
                hits += correct(pred, tb).sum(dim=(0, 1))
        return (total if self.full_batch else total / self.n), hits, grad

    def report(
        self, epoch: int, loss: Tensor, accuracy: Tensor | None, grads: Tensor | None
    ) -> None:
        """The epoch for the callbacks."""
        if not self.hooks.callbacks:
            return
        info = self.epoch_info(epoch, loss, accuracy, grads)
        for cb in self.hooks.callbacks:
            cb(info)

    def epoch_info(
        self, epoch: int, loss: Tensor, accuracy: Tensor | None, grads: Tensor | None
    ) -> Epoch:
        """What the callbacks see of an epoch just trained (the test set measured if due)."""
        state, layout = self.state, self.layout
        info = Epoch(
            epoch,
            loss.cpu(),
            accuracy.cpu() if accuracy is not None else None,
            state.alive.cpu(),
            lambda: layout.per_seed(state.last_good).cpu(),
            lambda: layout.per_seed(grads).cpu() if grads is not None else None,
        )
        tested = self.measure_test(epoch)
        if tested is not None:
            info.test_loss = tested[0].cpu()
            info.test_accuracy = tested[1].cpu() if tested[1] is not None else None
        return info

    def result(self, status: Literal["completed", "interrupted"]) -> Result:
        state = self.state
        return Result(
            status,
            self.layout.seeds_first(state.last_good),
            state.epochs_done.clone(),
            ~state.alive.cpu(),
            state.diverged_at.clone(),
            engine=state.trainer,
        )
