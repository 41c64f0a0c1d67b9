"""The engine's bars in issue #9, measured side by side in one run.

    python bench/bench_engine.py [--quick] [--repeats N]      (from anywhere; minutes)

1. `tiny train TASK` (whole process: shipped config, default logging and pictures) against
   the plain PyTorch loop a user writes for the same net (whole process, `python -c`: torch.optim
   Adam, the task's loss, no logging). Bar for is_even: at most 0.8x; lt10 and min reported.
2. `tiny hardwire lt10` (whole process) against `python -c "import torch"`: at most 1.3x.
3. A 1000-seed is_even sweep (`sweep.run_point`, shipped config, the faster of 1 and 2
   threads on a short trial: `tiny sweep --threads N`) against one-by-one training
   (`engine.fit` with one seed and no callbacks: the engine `tiny train` runs, without its
   logging, so the ratio is a conservative one), in rounds of one seed then the sweep (the
   median of the rounds' ratios): at least 200x.

Whole-process variants are interleaved (ABAB..., the order flipped every repeat) after one
untimed warm-up each, so a slow patch of a shared machine hits all of them; the figures are
medians. `--quick`: fewer repeats, 1000 epochs for the training pair and a 200-seed x 1000-
epoch sweep (a smoke test: its ratios are not the bars').
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BAR_TRAIN = 0.8  # tiny train is_even / hand-written loop, at most
BAR_START = 1.3  # tiny hardwire lt10 / import torch, at most
BAR_SWEEP = 200  # batched / one by one, at least

# The loops a user writes by hand, without logging. `{epochs}` is filled in.
HAND_COMMON = """
import torch
from torch import nn
torch.manual_seed(0)
"""
HAND: dict[str, str] = {
    "is_even": """
def create_sequential_model(layers_list):  # the article's
    layers = []
    for i in range(1, len(layers_list)):
        layers.append(nn.Linear(layers_list[i - 1], layers_list[i]))
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)

model = create_sequential_model([1, 2, 2, 2, 2, 2, 1])
x = torch.arange(16, dtype=torch.float32).unsqueeze(1)
y = x % 2
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
loss_fn = nn.MSELoss()
for epoch in range({epochs}):
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
print(loss.item())
""",
    "lt10": """
model = nn.Sequential(nn.Linear(1, 1), nn.Sigmoid())
x = torch.arange(-20, 40, dtype=torch.float32).unsqueeze(1)
y = (x < 10).float()
opt = torch.optim.Adam(model.parameters(), lr=0.1)
loss_fn = nn.BCELoss()
for epoch in range({epochs}):
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
print(loss.item())
""",
    "min": """
import random

class MinModel(nn.Module):  # the article's
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2, 1)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(2, 1)
        self.relu2 = nn.ReLU()
        self.output_layer = nn.Linear(4, 1)

    def forward(self, x):
        relu_output1 = self.relu1(self.fc1(x))
        relu_output2 = self.relu2(self.fc2(x))
        return self.output_layer(torch.cat((x, relu_output1, relu_output2), dim=-1))

random.seed(0)
pairs = [(random.randrange(-50, 50), random.randrange(-50, 50)) for _ in range(1000)]
x = torch.tensor(pairs, dtype=torch.float32)
y = x.min(dim=1, keepdim=True).values
model = MinModel()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
loss_fn = nn.MSELoss()
for epoch in range({epochs}):
    perm = torch.randperm(len(x))
    for i in range(0, len(x), 32):
        idx = perm[i : i + 32]
        opt.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
print(loss.item())
""",
}
EPOCHS = {"is_even": 5000, "lt10": 2000, "min": 300}  # the shipped configs'


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one command."""
    cpu, start = _children_cpu(), time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env, cwd=REPO)
    return time.perf_counter() - start, _children_cpu() - cpu


def interleaved(
    variants: dict[str, list[str]], repeats: int, env: dict[str, str]
) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of each command: one warm-up each, then `repeats` rounds,
    each running every variant once, the order flipped from one round to the next. The bars
    are on wall time; CPU time is shown beside it, as it barely moves with the machine's load."""
    names = list(variants)
    for name in names:
        timed(variants[name], env)
    walls: dict[str, list[float]] = {name: [] for name in names}
    cpus: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            w, c = timed(variants[name], env)
            walls[name].append(w)
            cpus[name].append(c)
    return {n: (statistics.median(walls[n]), statistics.median(cpus[n])) for n in names}


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def train_pairs(
    tasks: list[str], epochs: dict[str, int], repeats: int, env: dict[str, str]
) -> bool:
    py = sys.executable
    print(f"\n1. tiny train vs the hand-written loop (whole processes, median of {repeats})")
    print(
        f"{'task':8} {'epochs':>6} {'tiny train':>11} {'hand loop':>10} {'ratio':>6}"
        f"  {'cpu: tiny':>9} {'hand':>7} {'ratio':>6}  bar (on wall time)"
    )
    ok_all = True
    for task in tasks:
        n = epochs[task]
        hand = HAND_COMMON + HAND[task].format(epochs=n)
        tiny = [py, "-m", "tiny_cli", "train", task]
        if n != EPOCHS[task]:
            tiny += ["--epochs", str(n)]
        med = interleaved({"tiny": tiny, "hand": [py, "-c", hand]}, repeats, env)
        (t_wall, t_cpu), (h_wall, h_cpu) = med["tiny"], med["hand"]
        ratio = t_wall / h_wall
        bar = ""
        if task == "is_even":
            ok_all = ratio <= BAR_TRAIN
            bar = f"<= {BAR_TRAIN}x: {verdict(ok_all)}"
        print(
            f"{task:8} {n:>6} {t_wall:>10.2f}s {h_wall:>9.2f}s {ratio:>6.2f}"
            f"  {t_cpu:>8.2f}s {h_cpu:>6.2f}s {t_cpu / h_cpu:>6.2f}  {bar}"
        )
    return ok_all


def startup(repeats: int, env: dict[str, str]) -> bool:
    py = sys.executable
    med = interleaved(
        {
            "tiny hardwire lt10": [py, "-m", "tiny_cli", "hardwire", "lt10"],
            'python -c "import torch"': [py, "-c", "import torch"],
        },
        repeats,
        env,
    )
    (tiny, (t_wall, t_cpu)), (torch, (b_wall, b_cpu)) = med.items()
    ratio = t_wall / b_wall
    ok = ratio <= BAR_START
    print(f"\n2. start-up (whole processes, median of {repeats})")
    print(f"{tiny}: {t_wall:.2f}s   {torch}: {b_wall:.2f}s   ratio {ratio:.2f}  "
          f"bar <= {BAR_START}x: {verdict(ok)}")  # fmt: skip
    print(f"  cpu: {t_cpu:.2f}s against {b_cpu:.2f}s, ratio {t_cpu / b_cpu:.2f}")
    return ok


def sweep_ratio(n_seeds: int, epochs: int | None, rounds: int) -> bool:
    import torch

    from tiny_cli import config
    from tiny_cli.app import sweep
    from tiny_cli.train import engine

    over = [] if epochs is None else [("train.epochs", epochs, "bench")]
    cfg, _ = config.load("is_even", over)
    x, y = cfg.task.data()
    correct = cfg.task.correct
    n_epochs = cfg.train.epochs

    def single_rate(seed: int) -> float:
        one = cfg.model_copy(update={"seed": seed})
        start = time.perf_counter()
        engine.fit(one, [seed], x, y, correct=correct)
        return n_epochs / (time.perf_counter() - start)

    def sweep_seconds(seeds: int, threads: int, cfg: config.ExperimentConfig) -> float:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            start = time.perf_counter()
            sweep.run_point(config.GridPoint({}, cfg), range(seeds))
            return time.perf_counter() - start
        finally:
            torch.set_num_threads(previous)

    # `tiny sweep --threads N`: the faster of 1 and 2 here, on a short trial (twice each).
    short = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 500})})
    trial = {th: min(sweep_seconds(n_seeds, th, short) for _ in range(2)) for th in (1, 2)}
    threads = min(trial, key=lambda th: trial[th])
    print(f"\n3. is_even sweep vs one by one ({n_epochs} epochs, {rounds} rounds, each one seed "
          f"then {n_seeds} seeds, so a slow patch of the machine hits both)")  # fmt: skip
    ratios = []
    for r in range(rounds):
        single = single_rate(r)
        seconds = sweep_seconds(n_seeds, threads, cfg)
        batched = n_seeds * n_epochs / seconds
        ratios.append(batched / single)
        print(f"  round {r + 1}: one seed (engine.fit) {single:,.0f} seed-epochs/s, "
              f"{n_seeds} seeds (sweep.run_point, {threads} thread(s)) {batched:,.0f} "
              f"({seconds:.1f} s): {ratios[-1]:.0f}x")  # fmt: skip
    ratio = statistics.median(ratios)
    ok = bool(ratio >= BAR_SWEEP)
    print(f"median ratio {ratio:.0f}x  bar >= {BAR_SWEEP}x: {verdict(ok)}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller variant (smoke test)")
    parser.add_argument("--repeats", type=int, help="rounds per comparison (default 5; 3 quick)")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 5)

    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TINY_RUNS_DIR": tmp, "PYTHONPATH": str(REPO)}
        env.pop("COLUMNS", None)
        if args.quick:
            ok = train_pairs(["is_even"], {"is_even": 1000}, repeats, env)
            ok &= startup(repeats + 2, env)
            ok &= sweep_ratio(200, 1000, 2)
        else:
            ok = train_pairs(["is_even", "lt10", "min"], EPOCHS, repeats, env)
            ok &= startup(2 * repeats + 1, env)
            ok &= sweep_ratio(1000, None, 3)
    print("\nall bars met" if ok else "\nsome bar MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
