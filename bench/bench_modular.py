"""`tiny train modadd` against a plain PyTorch loop, and a 10-seed sweep against its seeds
trained one by one: whole processes, side by side, with the ratios.

    python bench/bench_modular.py [--epochs 2500] [--sweep-epochs 500] [--seeds 10]
                                  [--only train|sweep] [--rounds 3]
    OMP_NUM_THREADS=1 python bench/bench_modular.py        (every process on one thread)

The plain loop is the one of issue 19: p = 31, one-hot a and b, 256 quadratic units (with
biases, as tiny's layers have), MSE on one-hot targets, AdamW lr 1e-3 and weight decay 1,
full batch on half the pairs (the same split as `data.split_seed: 0`), seed 0; it measures
training and test accuracy every 10 epochs, as `log.every: 10` makes tiny do. Each
figure is one process from start to exit: interpreter and imports, training, and for tiny
its read-out, pictures and files too. The training comparison runs `--rounds` times, the
two processes alternating, and prints each round and the median ratio; wall times on a
shared machine move with its load, printed beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = [sys.executable, "-m", "tiny_cli"]

PLAIN = """
import torch
torch.manual_seed(0)
p, epochs = 31, {epochs}
a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).T
x = torch.cat([torch.nn.functional.one_hot(a, p), torch.nn.functional.one_hot(b, p)], 1).float()
y = torch.nn.functional.one_hot((a + b) % p, p).float()
order = torch.randperm(p * p, generator=torch.Generator().manual_seed(0))
train, test = order[: round(0.5 * p * p)], order[round(0.5 * p * p) :]
class Square(torch.nn.Module):
    def forward(self, z):
        return z * z
model = torch.nn.Sequential(torch.nn.Linear(2 * p, 256), Square(), torch.nn.Linear(256, p))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0)
for epoch in range(1, epochs + 1):
    loss = ((model(x[train]) - y[train]) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if epoch % 10 == 0 or epoch == epochs:
        with torch.no_grad():
            right = [(model(x[s]).argmax(1) == y[s].argmax(1)).float().mean().item()
                     for s in (train, test)]
print("plain loop: final training accuracy", right[0], "test accuracy", right[1])
"""


def seconds(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2500)
    parser.add_argument("--sweep-epochs", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--only", choices=["train", "sweep"], help="one of the two comparisons")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the training one")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as runs:
        epochs = ["--epochs", str(args.epochs), "--runs-dir", runs]
        if args.only != "sweep":
            ratios = []
            for _ in range(args.rounds):
                plain = seconds([sys.executable, "-c", PLAIN.format(epochs=args.epochs)])
                tiny = seconds([*TINY, "train", "modadd", *epochs])
                ratios.append(tiny / plain)
                print(f"{args.epochs} epochs: plain PyTorch loop {plain:.1f} s, tiny train "
                      f"modadd {tiny:.1f} s: {tiny / plain:.2f}x the plain loop")  # fmt: skip
            print(f"median of {args.rounds}: tiny train modadd {statistics.median(ratios):.2f}x "
                  "the plain loop (bar: at most 1.0x)")  # fmt: skip
        if args.only == "train":
            return
        sweep_epochs = ["--epochs", str(args.sweep_epochs), "--runs-dir", runs]
        sweep = seconds([*TINY, "sweep", "modadd", "--seeds", str(args.seeds), *sweep_epochs])
        one_by_one = sum(
            seconds([*TINY, "train", "modadd", "--seed", str(k), *sweep_epochs])
            for k in range(args.seeds)
        )
        print(f"{args.seeds} seeds x {args.sweep_epochs} epochs: tiny sweep {sweep:.1f} s, "
              f"one by one (tiny train --seed k) {one_by_one:.1f} s: the sweep "
              f"{one_by_one / sweep:.1f}x faster (bar: at least 5x)")  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
