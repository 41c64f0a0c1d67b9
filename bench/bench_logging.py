"""What logging every parameter every epoch costs: training with and without TensorBoard.

    python bench/bench_logging.py [--repeats 3] [--quick | --full]

For lt10, min and is_even (the shipped configs, fewer epochs so it all takes about a minute)
it times the training `tiny train` does (`engine.fit` with one seed, the same data and
config), interleaving the variants and repeating them to beat noise, and prints the median
wall times and their ratios to training with no tracking callback at all:

- scalars:  our Tracker, every scalar every epoch (loss, accuracy, every parameter element,
            threshold/steepness, gradient norm per layer): the 1.3x target applies here;
- +images:  the same plus the prediction pictures at their default cadence (the start, eight
            steps, the end: 9 pictures); a picture costs milliseconds whatever the epochs,
            so with the shortened runs here this ratio overstates what a full run pays;
- add_scalar: the naive way, one `SummaryWriter.add_scalar` call per value (one repeat).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from tiny_cli import config
from tiny_cli.app import experiment
from tiny_cli.show import plots
from tiny_cli.spec import models
from tiny_cli.store import events, tracking
from tiny_cli.store.tracking import EpochStats
from tiny_cli.train import engine, inits

TARGET = 1.3
EPOCHS = {"lt10": 1000, "min": 40, "is_even": 1000}


class NaiveLogger:
    """One SummaryWriter.add_scalar per value: what the issue measured at ~57 us a value."""

    def __init__(self, log_dir: Path, model: nn.Module) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir))
        self.tags = models.parameter_tags(model)

    def on_epoch_end(self, stats: EpochStats) -> None:
        self.writer.add_scalar("metrics/loss", stats.loss, stats.epoch)
        for tag, value in zip(self.tags, stats.params.tolist(), strict=True):
            self.writer.add_scalar(tag, value, stats.epoch)

    def close(self) -> None:
        self.writer.close()


def train_once(name: str, variant: str) -> float:
    """One training run as `tiny train` does it; returns its wall time in seconds."""
    cfg, _ = config.load(name, [("train.epochs", EPOCHS[name], "bench")])
    task = cfg.task
    x, y = task.data()
    model = inits.build(cfg)
    correct = task.correct if task.kind == "classification" else None
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        logger: tracking.Tracker | NaiveLogger | None = None
        if variant in ("scalars", "+images"):
            picture = plots.PredictionPlot(cfg.task, x) if variant == "+images" else None
            tracker = tracking.Tracker(
                events.EventWriter(Path(tmp)),
                model,
                cfg.arch,
                every=1,
                task=cfg.task,
                picture=picture,
                images_every=cfg.log.image_interval(cfg.train.epochs),
            )
            tracker.begin(config.flatten(cfg), config.flat_keys(), [], group="bench")
            logger = tracker
        elif variant == "add_scalar":
            logger = NaiveLogger(Path(tmp), model)
        callbacks: list[engine.Callback] = []
        if logger is not None:
            on_epoch_end = logger.on_epoch_end
            callbacks = [lambda e: on_epoch_end(experiment.epoch_stats(e))]
        result = engine.fit(cfg, [cfg.seed], x, y, correct=correct, callbacks=callbacks)
        if isinstance(logger, tracking.Tracker):
            logger.close("completed", {"epochs": int(result.epochs[0])})
        elif logger is not None:
            logger.close()
        return time.perf_counter() - start


def median_times(name: str, variants: list[str], repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(repeats):
        for v in variants:  # interleaved, so a slow patch of the machine hits all of them
            times[v].append(train_once(name, v))
    return {v: statistics.median(ts) for v, ts in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a tenth of the epochs (smoke test)")
    size.add_argument("--full", action="store_true", help="the shipped configs' epochs (minutes)")
    args = parser.parse_args()
    for k in EPOCHS:
        if args.quick:
            EPOCHS[k] = max(4, EPOCHS[k] // 10)
        elif args.full:
            EPOCHS[k] = config.load(k)[0].train.epochs
    # warm up imports, allocators and matplotlib's font cache outside the timings
    for v in ("none", "+images"):
        train_once("lt10", v)

    rows = []
    for name in EPOCHS:
        med = median_times(name, ["none", "scalars", "+images"], args.repeats)
        naive = median_times(name, ["add_scalar"], 1)["add_scalar"]
        rows.append((name, med, naive))

    line = (
        f"{'task':8} {'epochs':>6} {'no tracking':>12} {'scalars':>9} {'ratio':>6} {'ok':>4}"
        f" {'+images':>9} {'ratio':>6} {'add_scalar':>11} {'ratio':>6}"
    )
    print(f"wall time of training, median of {args.repeats} interleaved repeats (add_scalar: 1)")
    print(line)
    print("-" * len(line))
    ok_all = True
    for name, med, naive in rows:
        base = med["none"]
        ratio = med["scalars"] / base
        ok = ratio <= TARGET
        ok_all &= ok
        print(
            f"{name:8} {EPOCHS[name]:>6} {base:>11.2f}s {med['scalars']:>8.2f}s {ratio:>6.2f}"
            f" {'yes' if ok else 'NO':>4} {med['+images']:>8.2f}s {med['+images'] / base:>6.2f}"
            f" {naive:>10.2f}s {naive / base:>6.2f}"
        )
    print(
        f"target: scalars every epoch <= {TARGET}x training without tracking: "
        + ("met for every task" if ok_all else "NOT met")
    )
    print("+images: the same plus the prediction pictures at the default cadence (9 a run)")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
