"""Cluster sweeps against the bar in issue #13, side by side in one run.

    python bench/bench_cluster.py            100,000 is_even seeds x 500 epochs (long)
    python bench/bench_cluster.py --quick    10,000 seeds

1. Throughput: the same sweep (`sweep.run_sweep`, chunks stored, sweep.pt assembled) in this
   process on one thread, and on a local Dask cluster of 2 single-threaded worker
   processes; interleaved, repeated, medians. Bar: >= 1.5x. Beside them, for reading: this
   process on every CPU (what `tiny sweep` does without `--threads` on the kernel).
2. Per-chunk overhead of Dask at the default chunk size: a chunk's round trip from the client
   (submit, schedule, config text out, tensors back) minus the worker's own compute time for
   it. Bar: < 5% of the compute.

The cluster is started once (its start-up is shown, not counted: a sweep pays it once).
The machine is shared: run it when it is quiet, and read the spread, not only the median.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tiny_cli import config  # noqa: E402
from tiny_cli.app import cluster, sweep  # noqa: E402

RATIO_BAR = 1.5
OVERHEAD_BAR = 0.05


def timed_sweep(
    seeds: int, epochs: int, runner: sweep.Runner | None, threads: int | None = 1
) -> float:
    """Seed-epochs per second of a whole stored sweep."""
    cfg, _ = config.load("is_even", [("train.epochs", epochs, "bench")])
    points = [config.GridPoint({}, cfg)]
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        slots = runner.slots() if isinstance(runner, cluster.Cluster) else 1  # as tiny sweep
        sweep.run_sweep(
            cfg, points, [], range(seeds), runs_root=Path(root), runner=runner, slots=slots,
            threads=threads,
        )  # fmt: skip
        elapsed = time.perf_counter() - start
    return seeds * epochs / elapsed


def chunk_overhead(remote: cluster.Cluster, epochs: int, workers: int) -> list[float]:
    """(round trip - worker compute) / worker compute, for one default-size chunk per worker
    submitted together (each worker busy with its own)."""
    cfg, _ = config.load("is_even", [("train.epochs", epochs, "bench")])
    size = sweep.chunk_size(cfg, cfg.task.size())
    text = config.dump_yaml(cfg)
    start = time.perf_counter()
    futures = [
        remote.client.submit(
            cluster.train_remote, text, tuple(range(i * size, (i + 1) * size)), "cpu", pure=False
        )
        for i in range(workers)
    ]
    ratios = []
    from distributed import as_completed

    for future in as_completed(futures, loop=remote.client.loop):
        trip = time.perf_counter() - start
        compute = float(future.result()["seconds"])
        ratios.append((trip - compute) / compute)
        print(f"  chunk of {size} seeds: round trip {trip:.2f} s, compute {compute:.2f} s")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 seeds instead of 100,000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    seeds = 10_000 if args.quick else 100_000
    print(f"is_even, {seeds:,} seeds x {args.epochs} epochs; {args.repeats} repeats")

    start = time.perf_counter()
    with cluster.Cluster(None, args.workers) as remote:
        remote.client.wait_for_workers(args.workers, timeout=120)
        print(f"local cluster of {args.workers} workers up in {time.perf_counter() - start:.1f} s")
        rates: dict[str, list[float]] = {"local": [], "dask": [], "every CPU": []}
        for i in range(args.repeats):
            order = [("local", None, 1), ("dask", remote, 1), ("every CPU", None, None)]
            for name, runner, threads in order if i % 2 == 0 else order[::-1]:
                rate = timed_sweep(seeds, args.epochs, runner, threads)
                rates[name].append(rate)
                print(f"  repeat {i + 1}: {name:9s} {rate:12,.0f} seed-epochs/s")
        local, dask = rates["local"], rates["dask"]
        print("per-chunk overhead at the default chunk size:")
        overheads = chunk_overhead(remote, args.epochs, args.workers)

    ratio = statistics.median(d / s for d, s in zip(dask, local, strict=True))
    worst = max(overheads)
    print()
    print(f"in-process (1 thread): median {statistics.median(local):,.0f} seed-epochs/s")
    print(f"Dask, {args.workers} workers:      median {statistics.median(dask):,.0f} seed-epochs/s")
    every = statistics.median(rates["every CPU"])
    print(f"in-process, every CPU: median {every:,.0f} seed-epochs/s (tiny sweep's default)")
    print(f"ratio (median of pairs): {ratio:.2f}x   bar >= {RATIO_BAR}x  "
          f"{'PASS' if ratio >= RATIO_BAR else 'FAIL'}")  # fmt: skip
    print(f"per-chunk overhead: worst {worst:.2%}   bar < {OVERHEAD_BAR:.0%}  "
          f"{'PASS' if worst < OVERHEAD_BAR else 'FAIL'}")  # fmt: skip


if __name__ == "__main__":
    main()
