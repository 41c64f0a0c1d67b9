"""A sweep over time: per logged epoch, each metric's median and 10th/90th percentiles over
the seeds, and each seed's first solved epoch (the solved fraction so far follows from it).

Memory stays bounded whatever the number of seeds: a metric at a recorded epoch is a
`Sketch`, a fixed histogram (per bin, its count and the sum of its values; `BINS` bins,
log-spaced for losses, even for fractions), which chunks and cluster workers merge by adding
(counts are integers, and the sums are float64: the same to far below a bin in any order). At
most `MAX_POINTS` epochs are recorded (every `log.every`, strided further when there would
be more; the last epoch always). A quantile read from a sketch is the mean of the values in
the bin it falls in: within a bin of the truth (0.075 decades for a loss, 1/100 for a
fraction), exact when the seeds there share one value (every seed at accuracy 1: the
median is 1; a sweep stuck at the mean: 0.25).

`METRICS` is the table of what is recorded, one entry per metric, read off `engine.Epoch`
by name; a metric the engine does not measure in a run (accuracy of a regression, the test
metrics without a split) is left out. With a test set, or a task with progress measures
of its own (`Task.progress`), the weight norm (`weight_norm`) and those measures are
recorded too: the progress measures of Nanda et al.

"Solved by epoch e" is `outcomes.solved`, the rule the final outcome uses, applied to what
the engine measured at each epoch (the run's own `metrics/accuracy` and `metrics/loss`):
every training input right, or MSE at most 0.01; on the test inputs (`FirstSolved.test`),
`outcomes.test_solved` (99% of them right, or the same MSE) at the epochs they are
measured. The two give a seed's held-out outcome (`outcomes.held_out`: generalised,
grokked, memorised, not learned).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

from tiny_cli.tasks import Task
from tiny_cli.train import outcomes
from tiny_cli.train.engine import Epoch, Span

if TYPE_CHECKING:
    from tiny_cli.config import ExperimentConfig

Scale = Literal["log", "fraction"]
# what a sweep records per epoch: Epoch's attribute -> how its values are binned
METRICS: dict[str, Scale] = {
    "loss": "log",
    "accuracy": "fraction",
    "test_loss": "log",
    "test_accuracy": "fraction",
}
QUANTILES = {"q10": 0.1, "q50": 0.5, "q90": 0.9}
MAX_POINTS = 1000  # recorded epochs per grid point
BINS = {"log": 200, "fraction": 100}
LOG_RANGE = (-10.0, 5.0)  # log10 of the losses the log bins span; beyond: the end bins


def curve_epochs(epochs: int, every: int) -> list[int]:
    """The epochs recorded: 0, every `every` (strided to at most MAX_POINTS), and the last."""
    logged = len(range(0, epochs + 1, every))
    stride = every * max(1, math.ceil((logged - 1) / (MAX_POINTS - 1)))
    out = list(range(0, epochs + 1, stride))
    if out[-1] != epochs:  # the last epoch always, in place of the last stride if need be
        if len(out) >= MAX_POINTS:
            out[-1] = epochs
        else:
            out.append(epochs)
    return out


def _position(scale: Scale, values: Tensor) -> Tensor:
    """Values -> their place on the bins' axis, in bins (float)."""
    v = values.double()
    if scale == "log":
        lo, hi = LOG_RANGE
        t = (v.clamp_min(1e-300).log10() - lo) / (hi - lo)
    else:
        t = v
    return t * BINS[scale]


@dataclass
class Sketch:
    """One metric at each recorded epoch: per bin, how many values and their sum [E, bins]."""

    scale: Scale
    counts: Tensor  # int32 [E, bins]
    sums: Tensor  # float64 [E, bins]

    @classmethod
    def empty(cls, scale: Scale, points: int) -> Sketch:
        shape = (points, BINS[scale])
        return cls(
            scale, torch.zeros(shape, dtype=torch.int32), torch.zeros(shape, dtype=torch.float64)
        )

    def add(self, row: int, values: Tensor) -> None:
        """The finite `values` (one per seed) at recorded epoch `row`."""
        v = values[values.isfinite()].double()
        if not len(v):
            return
        bins = BINS[self.scale]
        index = _position(self.scale, v).floor().clamp(0, bins - 1).long()
        self.counts[row] += torch.bincount(index, minlength=bins).int()
        self.sums[row].index_add_(0, index, v)

    def add_rows(self, rows: Tensor, values: Tensor, keep: Tensor) -> None:
        """`add(rows[i], values[i][keep[i]])` for every i at once (values, keep [R, S])."""
        take = keep & values.isfinite()
        v = values[take].double()
        if not len(v):
            return
        bins = BINS[self.scale]
        index = _position(self.scale, v).floor().clamp(0, bins - 1).long()
        flat = rows.long().unsqueeze(1).expand_as(take)[take] * bins + index
        self.counts.view(-1).index_add_(0, flat, torch.ones_like(flat, dtype=torch.int32))
        self.sums.view(-1).index_add_(0, flat, v)

    def merge(self, other: Sketch) -> None:
        self.counts += other.counts
        self.sums += other.sums

    def quantile(self, q: float) -> Tensor:
        """[E] the q-quantile at each recorded epoch, the mean of the values in its bin (the
        bin holding the value of rank ceil(q * n) of n); nan where none was recorded."""
        counts = self.counts.long()
        total = counts.sum(dim=1)
        cum = counts.cumsum(dim=1)
        rank = (q * total.double()).ceil().long().clamp_min(1).unsqueeze(1)
        j = torch.searchsorted(cum.contiguous(), rank.contiguous()).clamp(max=cum.shape[1] - 1)
        mean = self.sums.gather(1, j) / counts.gather(1, j).clamp_min(1)
        return torch.where(total > 0, mean.squeeze(1), math.nan)

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "counts": self.counts, "sums": self.sums}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sketch:
        return cls(d["scale"], d["counts"], d["sums"])


class FirstSolved:
    """An `engine.fit` callback: each seed's first epoch solved (`outcomes.solved`) on its
    training inputs, judged every epoch, and on its test inputs (`outcomes.test_solved`),
    judged at the epochs the engine measures them (`log.every`); -1: not solved by the
    epochs it ran. `judged` is False when the rule cannot be applied per epoch (a
    regression not trained on MSE)."""

    def __init__(self, cfg: ExperimentConfig, seeds: int) -> None:
        self.kind = cfg.task.kind
        # a regression is judged on its MSE: per epoch only when MSE is what it trains on
        self.judged = self.kind == "classification" or cfg.loss == "mse"
        self.train = torch.full((seeds,), -1, dtype=torch.int32)
        self.test = torch.full((seeds,), -1, dtype=torch.int32)

    def __call__(self, e: Epoch) -> None:
        if not self.judged:
            return
        now = outcomes.solved(self.kind, e.loss, e.accuracy) & e.alive
        self.train[now & (self.train < 0)] = e.epoch
        self._test(e)

    def span(self, s: Span) -> None:
        """Epochs at once (the kernel's stretches): as `__call__` for each of them (the
        test inputs are measured at a stretch's last epoch only: a stretch ends at each)."""
        if not self.judged:
            return
        now = outcomes.solved(self.kind, s.loss, s.accuracy) & s.alive  # [E, S]
        first = now.int().argmax(dim=0)  # the first True of each seed's column
        new = now.any(dim=0) & (self.train < 0)
        self.train[new] = (s.first + first[new]).int()
        self._test(s.last)

    def _test(self, e: Epoch) -> None:
        if e.test_loss is not None:
            tested = outcomes.test_solved(self.kind, e.test_loss, e.test_accuracy) & e.alive
            self.test[tested & (self.test < 0)] = e.epoch


class Recorder:
    """An `engine.fit` callback for a chunk of seeds: the sketches at the recorded epochs and
    each seed's first solved epoch on its training and test inputs (`FirstSolved`)."""

    def __init__(self, cfg: ExperimentConfig, seeds: int, has_test: bool = False) -> None:
        # progress measures with a test set, or when the task has some of its own
        self.progress = has_test or type(cfg.task).progress is not Task.progress
        self.epochs = curve_epochs(cfg.train.epochs, cfg.log.every)
        self.rows = {e: i for i, e in enumerate(self.epochs)}
        self.solved = FirstSolved(cfg, seeds)
        self.judged = self.solved.judged
        self.first_solved = self.solved.train
        self.test_first_solved = self.solved.test
        self.arch, self.task = cfg.arch, cfg.task
        self.sketches: dict[str, Sketch] = {}

    def __call__(self, e: Epoch) -> None:
        self.solved(e)
        self._record(e.epoch, self._measured(e), e.alive)

    def span(self, s: Span) -> None:
        """Epochs at once (the kernel's stretches): as `__call__` for each of them. Loss and
        accuracy are the stretch's every epoch; the rest (test metrics, progress measures)
        its last epoch's, where a stretch ends whenever the test inputs are measured."""
        self.solved.span(s)
        at = [i for i in range(len(s.loss)) if s.first + i in self.rows]
        if at:
            rows = torch.tensor([self.rows[s.first + i] for i in at])
            for name, values in (("loss", s.loss), ("accuracy", s.accuracy)):
                if values is None:
                    continue
                if name not in self.sketches:
                    self.sketches[name] = Sketch.empty(METRICS[name], len(self.epochs))
                self.sketches[name].add_rows(rows, values[at], s.alive[at])
        rest = (m for m in self._measured(s.last) if m[0] not in ("loss", "accuracy"))
        self._record(s.last.epoch, rest, s.alive[-1])

    def _record(
        self, epoch: int, measured: Iterable[tuple[str, Scale, Tensor]], alive: Tensor
    ) -> None:
        row = self.rows.get(epoch)
        if row is None:
            return
        for name, scale, v in measured:
            if name not in self.sketches:
                self.sketches[name] = Sketch.empty(scale, len(self.epochs))
            self.sketches[name].add(row, v[alive])

    def _measured(self, e: Epoch) -> Iterator[tuple[str, Scale, Tensor]]:
        """What is recorded at a recorded epoch: METRICS; with a test set or progress
        measures of the task's own (`Task.progress`, binned as fractions), those and the
        weight norm (`weight_norm`)."""
        for name, scale in METRICS.items():
            values = getattr(e, name)
            if values is not None:
                yield name, scale, values
        if not self.progress:
            return
        yield "weight_norm", "log", e.params.norm(dim=1)
        for name, values in self.task.progress(self.arch, e.params).items():
            yield name, "fraction", values

    def part(self) -> dict[str, Any]:
        """What a chunk stores of its curves (plain tensors: a chunk file's)."""
        return {
            "epochs": torch.tensor(self.epochs),
            "judged": self.judged,
            "sketches": {k: s.to_dict() for k, s in self.sketches.items()},
        }


@dataclass
class Curves:
    """A grid point's curves: its chunks' sketches merged, and every seed's first solved
    epoch (-1: never; None when the rule cannot be applied per epoch)."""

    epochs: list[int]
    sketches: dict[str, Sketch]
    first_solved: Tensor | None  # int32 [S]
    test_first_solved: Tensor | None = None  # int32 [S], with a test set

    @classmethod
    def merge(
        cls,
        parts: Sequence[dict[str, Any]],
        first: Sequence[Tensor],
        test_first: Sequence[Tensor] | None = None,
    ) -> Curves:
        epochs = [int(e) for e in parts[0]["epochs"].tolist()]
        sketches: dict[str, Sketch] = {}
        for part in parts:
            for name, d in part["sketches"].items():
                s = Sketch.from_dict(d)
                if name in sketches:
                    sketches[name].merge(s)
                else:
                    sketches[name] = Sketch(s.scale, s.counts.clone(), s.sums.clone())
        judged = all(bool(p["judged"]) for p in parts)
        tested = torch.cat(list(test_first)) if judged and test_first else None
        return cls(epochs, sketches, torch.cat(list(first)) if judged else None, tested)

    def part(self) -> dict[str, Any]:
        """What a chunk stores of these curves (`Recorder.part`): chunks merged as one."""
        return {
            "epochs": torch.tensor(self.epochs),
            "judged": self.first_solved is not None,
            "sketches": {k: s.to_dict() for k, s in self.sketches.items()},
        }

    def held_out(self) -> tuple[Tensor, Tensor] | None:
        """Each seed's held-out outcome and delay (`outcomes.held_out`); None without a
        test set or where the rule cannot be applied per epoch."""
        if self.first_solved is None or self.test_first_solved is None:
            return None
        return outcomes.held_out(self.first_solved, self.test_first_solved)

    def solved(self) -> list[float] | None:
        """The fraction of seeds solved by each recorded epoch."""
        if self.first_solved is None or not len(self.first_solved):
            return None
        f = self.first_solved
        at = torch.tensor(self.epochs, dtype=torch.int32)
        hit = (f.unsqueeze(0) >= 0) & (f.unsqueeze(0) <= at.unsqueeze(1))
        return hit.double().mean(dim=1).tolist()

    def to_json(self) -> dict[str, Any]:
        """{"epochs", "metrics": {name: {"q10", "q50", "q90"}}, "solved", "never_solved"}."""
        metrics = {
            name: {k: [_round(v) for v in s.quantile(q).tolist()] for k, q in QUANTILES.items()}
            for name, s in self.sketches.items()
        }
        solved = self.solved()
        never = int((self.first_solved < 0).sum()) if self.first_solved is not None else None
        return {
            "epochs": self.epochs,
            "metrics": metrics,
            "solved": [_round(v) for v in solved] if solved is not None else None,
            "never_solved": never,
        }


def _round(value: float) -> float | None:
    """Six significant digits (the sketch is not finer); None for nan."""
    return None if math.isnan(value) else float(f"{value:.6g}")
