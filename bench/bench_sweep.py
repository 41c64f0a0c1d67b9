"""Sweep speed and memory against the bar in issue #5, measured side by side in one run.

    python bench/bench_sweep.py            (from the repository root; takes a few minutes)

1. One by one: `engine.fit` with one seed (the engine `tiny train` runs, with its accuracy
   rule, without its logging) on a sample of seeds, scaled to seed-epochs per second.
2. Batched: 1000 is_even seeds x 5000 epochs through `sweep.run_point` (init, training,
   evaluation), with the torch thread count that is fastest here.
3. The whole `tiny sweep is_even --seeds 1000` command in a subprocess: wall time including
   start-up and writing the sweep directory.
4. min's shipped config: 1000 seeds batched against min one by one.
5. Peak RSS of `tiny sweep is_even --seeds 10000` in a subprocess (fewer epochs: memory does
   not grow with epochs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from tiny_cli import config  # noqa: E402
from tiny_cli.app import sweep  # noqa: E402
from tiny_cli.train import engine  # noqa: E402

BAR = {"is_even batched": 200, "is_even command": 180, "min batched": 25}
GIB = 1024**3


def one_by_one(name: str, seeds: list[int], epochs: int | None = None) -> float:
    """Seed-epochs per second of tiny train's engine, one seed after another."""
    over = [] if epochs is None else [("train.epochs", epochs, "bench")]
    cfg, _ = config.load(name, over)
    task = cfg.task
    x, y = task.data()
    right = task.correct if task.kind == "classification" else None
    elapsed = 0.0
    for seed in seeds:
        c = cfg.model_copy(update={"seed": seed})
        start = time.perf_counter()
        engine.fit(c, [seed], x, y, correct=right)
        elapsed += time.perf_counter() - start
    return len(seeds) * cfg.train.epochs / elapsed


def batched(name: str, n_seeds: int, threads: int, epochs: int | None = None) -> float:
    over = [] if epochs is None else [("train.epochs", epochs, "bench")]
    cfg, _ = config.load(name, over)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        sweep.run_point(config.GridPoint({}, cfg), range(n_seeds))
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous)
    return n_seeds * cfg.train.epochs / elapsed


def command(args: list[str], runs_dir: str) -> tuple[float, int]:
    """Wall time of `tiny ARGS` in a fresh process, and that process's peak RSS in bytes."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    env = {**os.environ, "TINY_RUNS_DIR": runs_dir, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", probe, sys.executable, "-m", "tiny_cli", *args],
        check=True, capture_output=True, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    seconds, max_rss_kib = out.stdout.split()
    return float(seconds), int(max_rss_kib) * 1024


def verdict(ok: bool) -> str:
    return "ok" if ok else "BELOW THE BAR"


def main() -> None:
    threads0 = torch.get_num_threads()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, default threads {threads0}")
    # 1. is_even one by one, on a sample of seeds.
    single = one_by_one("is_even", [0, 1, 2])
    print(f"is_even one by one (3 seeds x 5000 epochs, engine.fit): {single:,.0f} seed-epochs/s")
    print(f"  -> 1000 seeds one by one would take {1000 * 5000 / single / 60:.1f} min")

    # 2. Batched, after picking the thread count.
    trial = {th: batched("is_even", 1000, th, epochs=300) for th in (1, 2)}
    threads = max(trial, key=lambda th: trial[th])
    print("thread trial (1000 seeds x 300 epochs): " + ", ".join(
        f"{th} thread(s) {v:,.0f} seed-epochs/s" for th, v in trial.items()
    ) + f"; using {threads}")  # fmt: skip
    fast = batched("is_even", 1000, threads)
    ratio = fast / single
    print(
        f"is_even batched (1000 seeds x 5000 epochs): {fast:,.0f} seed-epochs/s "
        f"({1000 * 5000 / fast:.1f} s), {ratio:.0f}x one by one "
        f"[bar >= {BAR['is_even batched']}x: {verdict(ratio >= BAR['is_even batched'])}]"
    )

    with tempfile.TemporaryDirectory() as tmp:
        # 3. The whole command.
        args = ["sweep", "is_even", "--seeds", "1000", "--threads", str(threads)]
        seconds, _ = command(args, tmp)
        whole = 1000 * 5000 / seconds
        ratio = whole / single
        print(
            f"`tiny {' '.join(args)}`: {seconds:.1f} s wall, {whole:,.0f} seed-epochs/s, "
            f"{ratio:.0f}x one by one "
            f"[bar >= {BAR['is_even command']}x: {verdict(ratio >= BAR['is_even command'])}]"
        )

        # 4. min, shipped config (300 epochs, mini-batches of 32).
        min_single = one_by_one("min", [0, 1], epochs=100)
        min_fast = batched("min", 1000, threads)
        ratio = min_fast / min_single
        print(
            f"min one by one (2 seeds x 100 epochs): {min_single:,.1f} seed-epochs/s; "
            f"batched (1000 seeds x 300 epochs): {min_fast:,.0f} seed-epochs/s, {ratio:.0f}x "
            f"[bar >= {BAR['min batched']}x: {verdict(ratio >= BAR['min batched'])}]"
        )

        # 5. Peak memory, 10,000 seeds.
        args = ["sweep", "is_even", "--seeds", "10000", "--epochs", "500"]
        seconds, rss = command(args, tmp)
        print(
            f"`tiny {' '.join(args)}`: peak RSS {rss / GIB:.2f} GiB ({seconds:.1f} s) "
            f"[bar < 2 GiB: {verdict(rss < 2 * GIB)}]"
        )


if __name__ == "__main__":
    main()
