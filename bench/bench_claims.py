"""The figures behind the "why" comments of the engine and the event writer, measured here.

    python bench/bench_claims.py [--only NAME ...] [--seeds 8192]     (a minute or two)

The code says why it does something ("building a torch.optim optimizer imports
torch._dynamo"); how much that costs changes with torch, the CPU and the machine's load, so the
numbers live here, each beside the measurement that gives it, with what it measured before.
Start-up costs are whole processes (median of a few, after a warm-up); the rest run in this
process on one thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _process_seconds(code: str, repeats: int = 5, env: dict[str, str] | None = None) -> float:
    """Median wall time of `python -c code` (one untimed warm-up)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO)
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _best(fn: Callable[[], object], repeats: int = 5) -> float:
    """The fastest of `repeats` calls, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def optim_import() -> None:
    """optim.py: building any torch.optim optimizer imports torch._dynamo at a run's start.
    Measured before: 1.5 s of every run's start (torch 2.13)."""
    base = _process_seconds("import torch")
    adam = _process_seconds(
        "import torch; torch.optim.Adam([torch.zeros(1, requires_grad=True)])\n"
        "import sys; assert 'torch._dynamo' in sys.modules"
    )
    print(f"torch.optim.Adam at start-up: +{adam - base:.2f} s ({base:.2f} s -> {adam:.2f} s)")


def broadcast_shapes_import() -> None:
    """backprop.uniform: torch.broadcast_shapes imports sympy; broadcast_tensors does not.
    Measured before: 0.6 s."""
    base = _process_seconds("import torch; torch.broadcast_tensors(torch.zeros(1), torch.zeros(2))")
    shapes = _process_seconds(
        "import torch; torch.broadcast_shapes((1,), (2,))\n"
        "import sys; assert 'sympy' in sys.modules"
    )
    print(f"torch.broadcast_shapes: +{shapes - base:.2f} s ({base:.2f} s -> {shapes:.2f} s)")


def tensor_util_import() -> None:
    """events.py / hparams.py: TensorBoard's tensor_util (behind its summary helpers) imports
    its TensorFlow stub and absl. Measured before: a tenth of a second or more."""
    base = _process_seconds("import tensorboard.compat.proto.summary_pb2")
    util = _process_seconds("from tensorboard.util import tensor_util")
    print(f"tensorboard tensor_util: +{util - base:.2f} s ({base:.2f} s -> {util:.2f} s)")


def sigmoid_tails() -> None:
    """backprop.uniform: ATen's vectorised loop and its scalar tail round some functions
    differently. Measured before: torch.sigmoid, 3.5% of elements differ (torch 2.13,
    AVX-512)."""
    import torch

    torch.manual_seed(0)
    x = torch.randn(4096) * 8
    whole = torch.sigmoid(x)  # the bulk: vectorised
    alone = torch.cat([torch.sigmoid(x[i : i + 1]) for i in range(len(x))])  # scalar loop
    differ = float((whole != alone).float().mean())
    print(f"torch.sigmoid, vectorised against scalar: {differ:.1%} of elements differ")


def subnormal_sqrt() -> None:
    """optim.Update: sqrt of a subnormal float is slower than of a normal one (v decays into
    them); clamping to FLOAT_TINY first gives the same bits. Measured before: ~30x."""
    import torch

    from tiny_cli.train import optim

    normal = torch.full((1 << 20,), 1e-3)
    subnormal = torch.full((1 << 20,), optim.FLOAT_TINY / 64)
    t_normal = _best(lambda: normal.sqrt())
    t_sub = _best(lambda: subnormal.sqrt())
    t_clamped = _best(lambda: subnormal.clamp_min(optim.FLOAT_TINY).sqrt())
    print(
        f"sqrt of 2^20 floats: normal {t_normal * 1e3:.2f} ms, subnormal {t_sub * 1e3:.2f} ms "
        f"({t_sub / t_normal:.0f}x), clamped first {t_clamped * 1e3:.2f} ms"
    )


def scalar_event() -> None:
    """events.ScalarEvent: the Summary of a run's fixed tags built once, its values set in
    place each epoch, against building it afresh. Measured before: ~0.8 us a value afresh
    (25 us an epoch for is_even's 31 tags) against 4 us an epoch in place. (A
    `SummaryWriter.add_scalar` per value: bench/bench_logging.py.)"""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary

    from tiny_cli.store import events

    tags = [f"tag/{i}" for i in range(31)]
    values = [float(i) for i in range(31)]
    reused = events.ScalarEvent(tags)

    def afresh() -> None:
        for _ in range(1000):
            value = [
                Summary.Value(tag=t, simple_value=v) for t, v in zip(tags, values, strict=True)
            ]
            Event(step=1, summary=Summary(value=value)).SerializeToString()

    def in_place() -> None:
        for _ in range(1000):
            reused.fill(1, values).SerializeToString()

    a, b = _best(afresh) / 1000, _best(in_place) / 1000
    print(f"an epoch of 31 scalars: afresh {a * 1e6:.1f} us, in place {b * 1e6:.1f} us")


def autograd_epoch() -> None:
    """backprop.py: a 1000-seed is_even epoch by autograd (a baddbmm per layer, per-seed BLAS
    calls forward and backward) against backprop.SeedNets written out. Measured before: the
    BLAS calls were 60% of the autograd epoch (torch 2.13, one thread)."""
    import torch

    from tiny_cli import config
    from tiny_cli.train import backprop, engine

    torch.set_num_threads(1)
    cfg, _ = config.load("is_even")
    x, y = cfg.task.data()
    seeds = list(range(1000))
    start = engine.initial_params(cfg, seeds)  # [S, *shape]
    names = list(start)
    leaves = [start[k].clone().requires_grad_(True) for k in names]
    xs = x.T.unsqueeze(0).expand(len(seeds), -1, -1)  # [S, in, n]

    def by_autograd() -> None:
        h = xs
        for w, b in zip(leaves[0::2], leaves[1::2], strict=True):
            h = torch.relu(torch.baddbmm(b.unsqueeze(-1), w, h))
        loss = ((h.squeeze(1) - y.T) ** 2).mean(dim=1).sum()
        loss.backward()

    net = backprop.SeedNets(cfg.arch, {k: v.movedim(0, -1).contiguous() for k, v in start.items()})
    xt, yt = x.T.unsqueeze(-1), y.T.unsqueeze(-1)
    alive = torch.ones(len(seeds), dtype=torch.bool)
    a = _best(by_autograd, 20)
    b = _best(lambda: net.step(xt, yt, alive), 20)
    print(f"a 1000-seed is_even epoch: autograd {a * 1e3:.2f} ms, SeedNets {b * 1e3:.2f} ms "
          f"({a / b:.1f}x)")  # fmt: skip


MALLOC_CHILD = """
import resource, sys, time
from tiny_cli import config
from tiny_cli.train import engine
if sys.argv[1] == "off":
    engine.keep_freed_memory = lambda: False
cfg, _ = config.load("is_even", [("train.epochs", int(sys.argv[3]), "bench")])
x, y = cfg.task.data()
start = time.perf_counter()
engine.fit(cfg, list(range(int(sys.argv[2]))), x, y)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(time.perf_counter() - start, faults)
"""


def freed_memory(seeds: int, epochs: int = 60) -> None:
    """engine.keep_freed_memory: with glibc told to trim freed memory at once (as Dask's
    workers set MALLOC_TRIM_THRESHOLD_=65536), each step faults its temporaries back in.
    Measured before: 2.3x slower for 8192 seeds (855,000 page faults against 10,000, for 60
    epochs)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "MALLOC_TRIM_THRESHOLD_": "65536"}
    out = {}
    for mode in ("on", "off"):
        cmd = [sys.executable, "-c", MALLOC_CHILD, mode, str(seeds), str(epochs)]
        done = subprocess.run(cmd, check=True, env=env, cwd=REPO, capture_output=True, text=True)
        seconds, faults = done.stdout.split()
        out[mode] = (float(seconds), int(faults))
    (on, f_on), (off, f_off) = out["on"], out["off"]
    print(f"{seeds} seeds x {epochs} epochs, MALLOC_TRIM_THRESHOLD_=65536: kept {on:.1f} s "
          f"({f_on:,} page faults), trimmed {off:.1f} s ({f_off:,}): {off / on:.1f}x")  # fmt: skip


def main() -> None:
    claims: dict[str, Callable[[], None]] = {
        "optim": optim_import,
        "broadcast": broadcast_shapes_import,
        "tensor_util": tensor_util_import,
        "sigmoid": sigmoid_tails,
        "subnormal": subnormal_sqrt,
        "scalar_event": scalar_event,
        "autograd": autograd_epoch,
    }
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=[*claims, "malloc"])
    parser.add_argument("--seeds", type=int, default=8192, help="for malloc (default 8192)")
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    for name, claim in claims.items():
        if args.only is None or name in args.only:
            claim()
    if args.only is None or "malloc" in args.only:
        freed_memory(args.seeds)


if __name__ == "__main__":
    main()
