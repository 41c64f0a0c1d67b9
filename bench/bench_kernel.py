"""The compiled kernel against the torch engine, side by side in one run (issue 20's bars).

    python bench/bench_kernel.py             (from the repository root; a few minutes)
    python bench/bench_kernel.py --quick     (fewer epochs and rounds)

Each round trains the same 1000 seeds of a shipped config through `sweep.run_point` (inits,
training, the sweep's curves, evaluation: what `tiny sweep` does per grid point, without
writing files) once on each engine, alternating (`TINY_ENGINE=torch` picks the torch
engine), on the same torch thread count (`--threads`, default 2); medians over the rounds,
wall time with CPU time beside it (the project's machine is shared). Bars: is_even at least
10x the torch engine's seed-epochs per second, min (1000 samples, batches of 32) at least 5x.

For the distance to the machine's limit it prints the floating-point operations a seed-epoch
takes (counted from the net: forward, loss, backward, optimizer), the GFLOP/s each engine
achieves, and those as a fraction of one large `torch.mm` measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from tiny_cli import config  # noqa: E402
from tiny_cli.app import sweep  # noqa: E402
from tiny_cli.spec import activations  # noqa: E402
from tiny_cli.train import kernel  # noqa: E402

BARS = {"is_even": 10.0, "min": 5.0}
OPTIMIZER_FLOPS = {"sgd": 4, "adam": 13, "adamw": 14}  # per parameter per step


def flops(cfg: config.ExperimentConfig) -> int:
    """Floating-point operations of one seed-epoch: per sample, each unit's products and sums
    (2 per input, 1 bias), its activation, the loss (3 per output), and backward the
    activation's derivative (2), the bias and weight gradients (1 + 2 per input), the
    gradient passed back (2 per input from the layer before); per step the optimizer."""
    arch = cfg.arch
    per_sample = 3 * arch.layers[-1].width
    for i, (blocks, layer) in enumerate(zip(arch.blocks(), arch.layers, strict=True)):
        fan_in = blocks[0][1]
        back = 2 * (fan_in - arch.reads_inputs(i)) if i > 0 else 0
        smooth = 4 if activations.get(layer.activation).smooth else 1
        per_sample += layer.width * (2 * fan_in + 1 + smooth + 2 + 1 + 2 * fan_in + back)
    n = cfg.task.size()
    steps = 1 if cfg.train.batch_size is None else -(-n // cfg.train.batch_size)
    return n * per_sample + steps * arch.n_parameters * OPTIMIZER_FLOPS[cfg.train.optimizer]


def mm_gflops(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def one_round(cfg: config.ExperimentConfig, seeds: int, engine: str) -> tuple[float, float]:
    """Wall and CPU seconds of one grid point of `seeds` seeds on `engine`."""
    os.environ[kernel.SWITCH] = engine
    wall, cpu = time.perf_counter(), time.process_time()
    sweep.run_point(config.GridPoint({}, cfg), range(seeds))
    return time.perf_counter() - wall, time.process_time() - cpu


def compare(name: str, seeds: int, epochs: int | None, rounds: int, mm: float) -> bool:
    over = [] if epochs is None else [("train.epochs", epochs, "bench")]
    cfg, _ = config.load(name, over)
    assert kernel.problem(cfg, "cpu") is None
    short = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 2})})
    one_round(short, seeds, "kernel")  # loads the compiled kernel: not timed
    times: dict[str, list[tuple[float, float]]] = {"kernel": [], "torch": []}
    for _ in range(rounds):
        for engine in ("torch", "kernel"):
            times[engine].append(one_round(cfg, seeds, engine))
    work = seeds * cfg.train.epochs
    per = flops(cfg)
    rate = {}
    print(f"\n{name}: {seeds} seeds x {cfg.train.epochs} epochs, {per:,} FLOPs per seed-epoch "
          f"({cfg.task.size()} samples, batch {cfg.train.batch_size or 'full'})")  # fmt: skip
    for engine, ts in times.items():
        wall = statistics.median(t[0] for t in ts)
        cpu = statistics.median(t[1] for t in ts)
        rate[engine] = work / wall
        gflops = rate[engine] * per / 1e9
        print(f"  {engine:6}  {wall:7.2f} s wall ({cpu:6.2f} s CPU)  {rate[engine]:12,.0f} "
              f"seed-epochs/s  {gflops:6.2f} GFLOP/s = {gflops / mm:6.1%} of torch.mm")  # fmt: skip
    ratio = rate["kernel"] / rate["torch"]
    ok = ratio >= BARS[name]
    print(f"  kernel / torch: {ratio:.1f}x (bar {BARS[name]:.0f}x: {'met' if ok else 'NOT met'})")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and rounds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rounds = args.rounds or (1 if args.quick else 3)
    mm = mm_gflops()
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs; "
          f"one 2048x2048 torch.mm: {mm:.1f} GFLOP/s")  # fmt: skip
    ok = compare("is_even", 1000, 1000 if args.quick else None, rounds, mm)
    ok &= compare("min", 1000, 60 if args.quick else None, rounds, mm)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
