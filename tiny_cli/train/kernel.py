"""The compiled engine: a seed's whole training step (forward, loss, backward, update) in one
numba loop, many seeds at once, for the small nets of `backprop` (every layer "small").

Why. The torch engine runs about 60 small ops over [.., S] tensors per epoch: each a pass
through memory plus dispatch. Here a block of `LANES` seeds stays in a few KB of local
arrays for a whole stretch of epochs; every inner loop runs over the block's lanes
(seeds innermost: SIMD), and each thread takes whole blocks (the kernel runs without the
GIL; plain threads, not numba's parallel target, which doubled the compile time).

Bit for bit. A seed's lane is computed by the same instructions whatever block, position
or thread it lands in: every inner loop has the constant trip count `LANES` (a block is
padded with copies of its first seed), no lane reads another, and no sum runs across
seeds. So `tiny train --seed k` and seed k of any sweep, chunk or thread count agree
exactly. Against the torch engine it agrees to float rounding (float32 throughout, the
same update rules in the same order; sums over samples run in sample order, not in
`backprop.tree_sum`'s tree), tested in tests/test_kernel.py.

numba is imported only when a net is trained here (`compiled`), after pointing its
cache at a per-user directory (`NUMBA_CACHE_DIR`, default ~/.cache/tiny/numba; numba
writes each cache file whole, so two processes compiling at once are safe). The first
compile after install takes seconds and says so once on stderr; later runs load it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tiny_cli.spec.activations import LEAKY_SLOPE

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from tiny_cli.config import ExperimentConfig
    from tiny_cli.spec.models import Arch

STRETCH_WORK = 1 << 27  # seed-sample-rows of a stretch (~0.1 s): how often stops are asked
STRETCH_EPOCHS = 64  # and at most this many epochs
STRETCH_FLOATS = 1 << 23  # outputs or batch orders a stretch keeps (32 or 64 MiB)

MAX_UNITS = 256  # inputs + units of a net the kernel takes (local arrays per block)
MAX_PARAMETERS = 4096
# the codes kernel_code.py dispatches on; an activation missing here trains on torch
ACTIVATIONS = {"identity": 0, "relu": 1, "sigmoid": 2, "tanh": 3, "leaky_relu": 4, "quadratic": 5}
LOSSES = {"mse": 0, "bce": 1, "l1": 2, "ce": 3}
OPTIMIZERS = {"sgd": 0, "adam": 1, "adamw": 2}
# how an epoch's accuracy is had (kernel_code's codes): the built-in rules
# (`tasks.base.builtin_rule`) counted in the kernel, any other judged on stored predictions
RULES = {None: 0, "stored": 1, "rounds": 2, "argmax": 3}
SWITCH = "TINY_ENGINE"  # "torch": never the kernel; "auto" (or unset), "kernel": where it covers


def switch() -> str:
    """TINY_ENGINE's value: auto (unset), kernel (the same: the kernel where it covers a
    config) or torch; anything else is a one-line error, before a run is made."""
    from tiny_cli.errors import TinyError, echo

    value = os.environ.get(SWITCH, "").strip().lower() or "auto"
    if value not in ("auto", "kernel", "torch"):
        raise TinyError(f"{SWITCH}={echo(value)}: expected auto, kernel or torch")
    return value


def problem(cfg: ExperimentConfig, device: str) -> str | None:
    """Why the kernel does not train this config (the torch engine does); None if it does."""
    from tiny_cli.train import backprop

    if switch() == "torch":
        return f"{SWITCH}=torch"
    if device != "cpu":
        return f"--device {device}"
    if cfg.train.epochs == 0:
        return "nothing trains"
    arch = cfg.arch
    if backprop.has_wide_layer(arch):
        return "a layer wider than the kernel covers"
    if arch.inputs + arch.units > MAX_UNITS or arch.n_parameters > MAX_PARAMETERS:
        return "a net larger than the kernel covers"
    if any(la.activation not in ACTIVATIONS for la in arch.layers):
        return "an activation the kernel does not know"
    if cfg.loss not in LOSSES or cfg.train.optimizer not in OPTIMIZERS:
        return "a loss or optimizer the kernel does not know"
    return None


def layout(arch: Arch) -> tuple[np.ndarray, np.ndarray]:
    """The net as integers: per layer (fan_in, width, activation, skip columns, first unit)
    and per unit (row of its first weight, row of its bias) in the flat [P, S] buffer."""
    layers: list[tuple[int, ...]] = []
    units: list[tuple[int, int]] = []
    offset, unit = 0, 0
    for i, (blocks, spec) in enumerate(zip(arch.blocks(), arch.layers, strict=True)):
        fan_in = blocks[0][1]
        layers.append(
            (fan_in, spec.width, ACTIVATIONS[spec.activation], arch.reads_inputs(i), unit)
        )
        for _, block_in, per in blocks:
            w0 = offset
            b0 = offset + per * block_in
            units.extend((w0 + j * block_in, b0 + j) for j in range(per))
            offset = b0 + per
        unit += spec.width
    return np.array(layers, dtype=np.int64), np.array(units, dtype=np.int64)


_lock = threading.Lock()  # one kernel call at a time per process (numba's thread pool)
_loaded: dict[str, Any] = {}


def available() -> bool:
    """Whether numba is installed (looked up, not imported)."""
    import importlib.util

    return importlib.util.find_spec("numba") is not None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tiny" / "numba"


RANDPERM_SMALL = (1 << 32) // 20  # ATen's randperm shuffles with 32-bit draws below this
_LEFT, _NEXT, _WORDS = 8, 16, 24  # byte offsets in a CPU Generator's state (int32, u64, u64)


def shuffle(gens: list[torch.Generator], out: np.ndarray, threads: int = 1) -> None:
    """out[e, j] = `torch.randperm(n, generator=gens[j])` for each of E calls in turn,
    bit for bit, the generators advanced as those calls would (compiled: torch's randperm
    was 15 us per seed-epoch of min, the kernel's whole step a fraction of it)."""
    import torch

    compiled()  # (numba's cache directory first)
    from tiny_cli.train import kernel_code

    raw = np.stack([g.get_state().numpy() for g in gens])  # [S, bytes]
    words = np.ascontiguousarray(raw[:, _WORDS : _WORDS + 8 * 624].view(np.uint64))
    state = words.astype(np.uint32)
    left = raw[:, _LEFT : _LEFT + 4].view(np.int32)[:, 0].astype(np.int64)
    nxt = raw[:, _NEXT : _NEXT + 8].view(np.uint64)[:, 0].astype(np.int64)
    _in_threads(kernel_code.shuffles, len(gens), threads, state, left, nxt, out)
    raw[:, _WORDS : _WORDS + 8 * 624] = state.astype(np.uint64).view(np.uint8)
    raw[:, _LEFT : _LEFT + 4] = left.astype(np.int32)[:, None].view(np.uint8)
    raw[:, _NEXT : _NEXT + 8] = nxt.astype(np.uint64)[:, None].view(np.uint8)
    for g, row in zip(gens, torch.from_numpy(raw), strict=True):
        g.set_state(row.clone())


def compiled() -> Callable[..., None]:
    """The compiled kernel (numba imported; compiled, or loaded from the cache, on first call)."""
    if "fn" not in _loaded:
        _point_the_cache()
        from tiny_cli.train import kernel_code

        _loaded["fn"] = kernel_code.blocks
        _loaded["lanes"] = kernel_code.LANES
    fn: Callable[..., None] = _loaded["fn"]
    return fn


def _point_the_cache() -> None:
    """NUMBA_CACHE_DIR, before numba is imported: the user's, else ~/.cache/tiny/numba. Where
    that cannot be written (a read-only home, a file in the way), the kernel is cached in
    the system's temporary directory instead (tiny-numba-<uid>), said once: the kernel, and
    so every seed's bits, stay the same."""
    where = Path(os.environ.get("NUMBA_CACHE_DIR") or cache_dir())
    problem = _unwritable(where)
    if problem is not None:
        import tempfile

        from tiny_cli.errors import echo_path

        uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
        fallback = Path(tempfile.gettempdir()) / f"tiny-numba-{uid}"
        print(f"tiny: cannot write the kernel's cache in {echo_path(where)} ({problem}); "
              f"caching it in {fallback} (set NUMBA_CACHE_DIR to choose)",
              file=sys.stderr)  # fmt: skip
        where = fallback
    os.environ["NUMBA_CACHE_DIR"] = str(where)


def _unwritable(where: Path) -> str | None:
    try:
        where.mkdir(parents=True, exist_ok=True)
        with open(where / "tiny-compile.lock", "a"):
            return None
    except OSError as e:
        return e.strerror or type(e).__name__


def _in_threads(fn: Callable[..., None], n: int, threads: int, *args: Any) -> None:
    """fn(first, last, *args) over 0 .. n - 1 in `threads` ranges side by side (fn releases
    the GIL)."""
    threads = max(1, min(threads, n))
    if threads == 1:
        fn(0, n, *args)
        return
    if _loaded.get("pool_size") != threads:
        from concurrent.futures import ThreadPoolExecutor

        _loaded["pool"] = ThreadPoolExecutor(threads, thread_name_prefix="tiny-kernel")
        _loaded["pool_size"] = threads
    bounds = [n * i // threads for i in range(threads + 1)]
    jobs = [_loaded["pool"].submit(fn, lo, hi, *args) for lo, hi in itertools.pairwise(bounds)]
    for job in jobs:
        job.result()


@contextlib.contextmanager
def _first_call() -> Iterator[None]:
    """Around a process's first call (which compiles, or loads the cache): one process at a
    time per cache, so that processes starting together compile once, not each."""
    if "timed" in _loaded:
        yield
        return
    try:
        import fcntl
    except ImportError:  # (Windows: each process may compile; numba's cache stays whole)
        yield
        return
    where = Path(os.environ["NUMBA_CACHE_DIR"])  # made writable by `compiled` first
    with open(where / "tiny-compile.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run(fn: Callable[..., None], seeds: int, threads: int, *args: Any) -> None:
    """The kernel over every block of `seeds` seeds, on up to `threads` threads; the first
    call of a process that compiles says how long it took."""
    with _lock, _first_call():
        start = time.perf_counter()
        _in_threads(fn, -(-seeds // _loaded["lanes"]), threads, *args)
        if "timed" in _loaded:
            return
        _loaded["timed"] = True
        stats = getattr(fn, "stats", None)
        if stats is not None and sum(stats.cache_misses.values()):
            took = time.perf_counter() - start
            where = os.environ.get("NUMBA_CACHE_DIR", "")
            print(f"tiny: compiled the training kernel in {took:.1f} s (cached in {where})",
                  file=sys.stderr)  # fmt: skip


class Stretches:
    """Trains one `fit`'s seeds on the kernel, a stretch of epochs per call, in place on the
    torch engine's own buffers (flat [P, S], the optimizer's m and v, last_good, alive,
    epochs_done, diverged_at: numpy views of the same memory), so a checkpoint, a resume
    and the result read them as they do after torch epochs."""

    def __init__(self, cfg: ExperimentConfig, x: Tensor, y: Tensor, truth: Tensor) -> None:
        import torch

        from tiny_cli.train import optim

        t = cfg.train
        self.fn = compiled()
        self.layers, self.units = layout(cfg.arch)
        self.x = np.ascontiguousarray(x.T.float().numpy())  # [inputs, n]
        self.y = np.ascontiguousarray(y.T.float().numpy())  # [outputs, n]
        self.truth = truth.T  # [outputs, n]
        # the built-in rules' truth for the kernel: as float32 (torch's `pred - truth`) and
        # each sample's class (torch's argmax of the one-hot truth)
        self.truth32 = np.ascontiguousarray(self.truth.float().numpy())
        self.classes = np.ascontiguousarray(self.truth.argmax(dim=0).numpy().astype(np.int64))
        self.exact_truth = truth.dtype == torch.float32
        self.n = len(x)
        self.full = t.batch_size is None or t.batch_size >= self.n
        self.batch = self.n if self.full else int(t.batch_size or self.n)
        self.batches = 1 if self.full else -(-self.n // self.batch)
        beta1, beta2 = optim.BETAS
        self.fc = np.array(
            [t.lr, t.weight_decay, t.momentum, 1 - beta1, beta2, 1 - beta2, optim.EPS,
             optim.FLOAT_TINY, 1 - t.lr * t.weight_decay, LEAKY_SLOPE, 1e-12],
            dtype=np.float64,
        )  # fmt: skip
        self.loss, self.opt = LOSSES[cfg.loss], OPTIMIZERS[t.optimizer]
        self.rows = cfg.arch.n_parameters + cfg.arch.units

    def rule(self, correct: Callable[[Tensor, Tensor], Tensor] | None) -> str | None:
        """How `train` has the accuracy of `correct` (`RULES`): None without one, "rounds" or
        "argmax" counted in the kernel, "stored": judged by `correct` on the predictions."""
        from tiny_cli.tasks.base import builtin_rule

        if correct is None:
            return None
        builtin = builtin_rule(correct) if self.exact_truth else None
        return builtin or "stored"

    def most(self, seeds: int, correct: Callable[[Tensor, Tensor], Tensor] | None) -> int:
        """The most epochs one stretch takes (time between stop checks, memory)."""
        per_epoch = max(1, seeds * self.n)
        most = min(STRETCH_EPOCHS, STRETCH_WORK // (per_epoch * self.rows))
        if self.rule(correct) == "stored" or not self.full:
            most = min(most, STRETCH_FLOATS // (per_epoch * max(1, self.y.shape[0])))
        return max(1, most)

    def train(
        self,
        epochs: int,
        step: int,
        bufs: dict[str, Tensor],
        gens: list[torch.Generator],
        correct: Callable[[Tensor, Tensor], Tensor] | None,
        threads: int = 1,
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
        """`epochs` epochs from optimizer step `step`: each epoch's loss [E, S], who is alive
        after it [E, S], its accuracy [E, S] (with `correct`) and the last batch's gradient
        [P * S]."""
        import torch

        s = len(bufs["alive"])
        flat = bufs["flat"].view(-1, s).numpy()
        grad = np.empty_like(flat)
        loss = np.empty((epochs, s), np.float32)
        alive = np.empty((epochs, s), np.bool_)
        outputs = self.y.shape[0]
        rule = self.rule(correct)
        stored = (outputs, self.n, epochs, s) if rule == "stored" else (0, 0, 0, 0)
        pred = np.empty(stored, np.float32)
        hits = np.empty((epochs, s) if rule in ("rounds", "argmax") else (0, 0), np.int64)
        # each epoch's batch order per seed [E, S, n]: seed j's batches are its row's slices
        if self.full:
            order = torch.zeros((0, 0, 0), dtype=torch.long)
        elif self.n < RANDPERM_SMALL:
            order = torch.empty((epochs, len(gens), self.n), dtype=torch.long)
            with _lock:
                shuffle(gens, order.numpy(), threads)
        else:
            order = torch.stack(
                [torch.stack([torch.randperm(self.n, generator=g) for g in gens])
                 for _ in range(epochs)]
            )  # fmt: skip
        ic = np.array([self.loss, self.opt, epochs, self.batch, step, RULES[rule]], np.int64)
        run(
            self.fn, s, threads, flat, bufs["m"].view(-1, s).numpy(), bufs["v"].view(-1, s).numpy(),
            bufs["last_good"].view(-1, s).numpy(), bufs["alive"].numpy(),
            bufs["epochs_done"].numpy(), bufs["diverged_at"].numpy(), grad, loss, alive, pred,
            hits, self.x, self.y, self.truth32, self.classes, order.numpy(), self.layers,
            self.units, self.fc, ic,
        )  # fmt: skip
        accuracy: Tensor | None = None
        if rule in ("rounds", "argmax"):
            accuracy = torch.from_numpy(hits).float() / self.n
        elif correct is not None:
            preds = torch.from_numpy(pred).view(outputs, self.n, epochs * s)
            if self.full:
                truth = self.truth.unsqueeze(-1)
            else:
                truth = self.truth[:, order.permute(2, 0, 1)].reshape(outputs, self.n, -1)
            judged = correct(preds, truth).sum(dim=(0, 1)).float().view(epochs, s)
            accuracy = judged / self.n
        return torch.from_numpy(loss), torch.from_numpy(alive), accuracy, torch.from_numpy(grad)
