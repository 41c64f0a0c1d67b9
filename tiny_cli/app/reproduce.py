"""`tiny reproduce NAME`: every claim of a write-up, run and judged from the runs it made.

`REPRODUCTIONS` is the registry (`article` today; `grokking` once modular arithmetic exists):
a name to its claims. A claim is two steps: `make` starts ordinary runs and sweeps through
`app.launch` (what `tiny train`, `hardwire` and `sweep` start, so each is listed, inspected and
reported like any other), returning their ids; `judge` reads those runs back from the store
(metrics.json, summary.json, the read-out of model.pt) and gives the verdict. Nothing is
hard-coded but the article's own numbers: change a stored run and its verdict changes.

Verdicts: `holds` (the run measures what the article says), `differs` (it measures something
close, for a reason the row names), `refuted` (it does not).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tiny_cli.app import launch
from tiny_cli.errors import TinyError, did_you_mean
from tiny_cli.show.claims_view import ClaimRow, Verdict
from tiny_cli.store import runs
from tiny_cli.store.runs import RunRecord


@dataclass(frozen=True)
class Plan:
    """How big the runs are: `--quick` is fewer seeds (and so a rougher count)."""

    quick: bool
    runs_dir: Path | None
    device: str
    display: launch.Display

    def seeds(self, full: int, quick: int) -> str:
        return str(quick if self.quick else full)


@dataclass(frozen=True)
class Claim:
    key: str
    claim: str
    says: str
    make: Callable[[Plan], list[str]]  # the ids of the runs it made
    judge: Callable[[list[RunRecord]], tuple[str, Verdict, str]]  # measured, verdict, reason


@dataclass
class Reproduction:
    name: str
    title: str
    claims: list[Claim] = field(default_factory=list)


def _quiet(announce: str, link: str | None) -> None:
    """Where a sweep trains: always here (reproduce never uses a cluster)."""


def _train(plan: Plan, name: str, *sets: str) -> str:
    out = launch.train(
        name, from_run=None, resume=None, epochs=None, seed=None, lr=None, sets=list(sets),
        runs_dir=plan.runs_dir, device=plan.device, display=plan.display,
    )  # fmt: skip
    _check(out.run.id, out.result.status, out.result.reason)
    return out.run.id


def _hardwire(plan: Plan, name: str, bits: int | None = None, scale: float | None = None) -> str:
    out = launch.hardwire(
        name, bits=bits, scale=scale, sets=None, runs_dir=plan.runs_dir, device=plan.device,
        display=plan.display,
    )  # fmt: skip
    _check(out.run.id, out.result.status, out.result.reason)
    return out.run.id


def _sweep(plan: Plan, name: str, seeds: str, grid: Sequence[str] = ()) -> str:
    out = launch.sweep(
        name, seeds=seeds, resume=None, grid=list(grid), keep=0, epochs=None, lr=None,
        sets=None, runs_dir=plan.runs_dir, threads=1, chunk=None, cluster=None, workers=None,
        device="cpu", display=plan.display, announce=_quiet,
    )  # fmt: skip
    return out.run.id


def _check(run_id: str, status: str, reason: str) -> None:
    """An interrupted run stops the reproduction (a diverged one is a measurement)."""
    if status == "interrupted":
        from tiny_cli.errors import RunFailed

        raise RunFailed(f"reproduce: run {run_id} interrupted ({reason})", exit_code=130)


# --- the article's claims ----------------------------------------------------------------


def _number(record: RunRecord, key: str) -> float:
    value = record.metrics.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise runs.RunProblem(f"run {record.run.id}: metrics.json has no number {key}")
    return float(value)


def _readout(record: RunRecord) -> dict[str, Any]:
    from tiny_cli.read import stored

    read = stored.stored_readout(record.run, record)
    if read is None:
        raise runs.RunProblem(f"run {record.run.id}: its config no longer loads")
    return read[0].as_dict()


def _soft(records: list[RunRecord]) -> tuple[str, Verdict, str]:
    f = _number(records[0], "F(9.5)")
    if round(f, 2) == 0.62:
        return f"F(9.5) = {f:.4f}", "holds", "Sigmoid(10 - x) at 9.5 is 1/(1 + e^-0.5)"
    verdict: Verdict = "differs" if 0.5 < f < 1 else "refuted"
    return f"F(9.5) = {f:.4f}", verdict, "the stored net's step is not Sigmoid(10 - x)'s"


def _sharp(records: list[RunRecord]) -> tuple[str, Verdict, str]:
    f = _number(records[0], "F(9.5)")
    if f >= 0.99:
        return f"F(9.5) = {f:.4f}", "holds", "the step at scale 100 is sharp"
    verdict: Verdict = "differs" if f > 0.5 else "refuted"
    return f"F(9.5) = {f:.4f}", verdict, "at scale 100 the step should be near 1 at 9.5"


def _threshold(records: list[RunRecord]) -> tuple[str, Verdict, str]:
    record = records[0]
    t, accuracy = _number(record, "threshold"), _number(record, "accuracy")
    measured = f"threshold {t:.2f}, accuracy {accuracy:.2f}"
    if accuracy < 1 or not 9 < t <= 10.05:
        return measured, "refuted", "it does not separate the integers below 10 from the rest"
    if abs(t - 10) <= 0.05:
        return measured, "holds", "the learned threshold is 10"
    why = "any t in (9, 10) fits the integers; descent heads for the max-margin midpoint 9.5"
    return measured, "differs", why


def _alpha(records: list[RunRecord]) -> tuple[str, Verdict, str]:
    read = _readout(records[0])
    alpha, outcome = read.get("alpha"), read.get("outcome")
    if outcome != "solved":
        return f"{outcome}, no alpha", "refuted", "the trained net does not compute min"
    if not read.get("in_family") or not isinstance(alpha, int | float):
        return "solved, outside the family", "refuted", "min, but not as a member of the family"
    end = {0: ", the mirror b - ReLU(b - a)", 1: ", the article's a - ReLU(a - b)"}
    return (
        f"alpha = {alpha:.3g}",
        "holds",
        "min, in the family alpha (a - ReLU(a - b)) + (1 - alpha) (b - ReLU(b - a))"
        + end.get(round(alpha), ""),
    )


def _full_batch(records: list[RunRecord]) -> tuple[str, Verdict, str]:
    record = records[0]
    loss, worst = _number(record, "loss"), _number(record, "max_abs_error")
    measured = f"MSE {loss:.3g}, max error {worst:.3g}"
    if loss > 0.01:
        return measured, "holds", "not solved (MSE above 0.01) after 300 full-batch epochs"
    return measured, "refuted", "300 full-batch epochs reach MSE <= 0.01: solved"


def _interval(records: list[RunRecord]) -> tuple[str, Verdict, str]:
    record = records[0]
    accuracy, interval = _number(record, "accuracy"), record.metrics.get("correct_interval")
    if not isinstance(interval, list) or len(interval) != 2:
        raise runs.RunProblem(f"run {record.run.id}: metrics.json has no correct_interval")
    lo, hi = interval
    measured = f"accuracy {accuracy:.2f}, right on [{lo}, {hi}]"
    if accuracy == 1 and isinstance(lo, int) and isinstance(hi, int) and lo <= 0 and hi >= 15:
        return measured, "holds", f"exact on [0, 15], and on [{lo}, {hi}] around it"
    return measured, "refuted", "wrong somewhere on [0, 15]"


def _point(record: RunRecord, index: int = 0) -> Any:
    from tiny_cli.store import views

    summary = views.read_summary(record.run)
    if len(summary) <= index:
        raise runs.RunProblem(f"sweep {record.run.id}: summary.json has no point {index}")
    return summary[index]


def _random(records: list[RunRecord]) -> tuple[str, Verdict, str]:
    p = _point(records[0])
    counts = p.counts
    solved, seeds = counts.get("solved", 0), p.seeds
    measured = (
        f"{solved} of {seeds} solved; dead {counts.get('dead', 0)}, "
        f"stuck {counts.get('stuck at mean', 0)}"
    )
    if solved == 0:
        return measured, "holds", "no random init learns it: dead or stuck at the mean"
    if solved <= 0.1 * seeds:
        return measured, "differs", "a few random inits learn it"
    return measured, "refuted", "random inits learn it"


def _noise(records: list[RunRecord]) -> tuple[str, Verdict, str]:
    from tiny_cli.store import views

    summary = views.read_summary(records[0].run)
    fractions = [
        (p.grid.get("init.noise", p.label), p.fractions.get("solved", 0.0)) for p in summary
    ]
    measured = "solved at noise " + ", ".join(f"{noise}: {f:.0%}" for noise, f in fractions)
    solved = [f for _, f in fractions]
    if len(solved) < 2:
        return measured, "refuted", "no noise levels to compare"
    if solved[0] > 0 and solved[-1] < solved[0] and solved == sorted(solved, reverse=True):
        return measured, "holds", "solved at low noise, less often as the noise grows"
    return measured, "refuted", "the solved fraction does not fall with the noise"


NOISE_GRID = ("init.mode=hardwired+noise", "init.noise=0.1,0.5,1")

ARTICLE = Reproduction(
    "article",
    "How Tiny Neural Networks Represent Basic Functions: the claims, measured",
    [
        Claim("lt10-soft", "hardwired lt10 at scale 1", "F(9.5) = 0.62",
              lambda p: [_hardwire(p, "lt10")], _soft),
        Claim("lt10-sharp", "hardwired lt10 at scale 100", "F(9.5) about 1",
              lambda p: [_hardwire(p, "lt10", scale=100)], _sharp),
        Claim("lt10-threshold", "trained lt10's threshold", "10",
              lambda p: [_train(p, "lt10")], _threshold),
        Claim("min-alpha", "trained min (mini-batches)", "a MinModel like Equation 1",
              lambda p: [_train(p, "min")], _alpha),
        Claim("min-full-batch", "min, 300 full-batch epochs", "does not converge",
              lambda p: [_train(p, "min", "train.batch_size=null")], _full_batch),
        Claim("is_even-hardwired", "hardwired is_even, 4 bits", "right on [0, 15]",
              lambda p: [_hardwire(p, "is_even", bits=4)], _interval),
        Claim("is_even-random", "is_even from random inits", "not learned",
              lambda p: [_sweep(p, "is_even", p.seeds(1000, 40))], _random),
        Claim("is_even-noise", "is_even from the construction plus noise (tiny)",
              "solved up to a noise level",
              lambda p: [_sweep(p, "is_even", p.seeds(200, 20), NOISE_GRID)], _noise),
    ],
)  # fmt: skip

REPRODUCTIONS: dict[str, Reproduction] = {"article": ARTICLE}


def reproduction(name: str) -> Reproduction:
    """The registered reproduction, or one line naming the known ones."""
    if name not in REPRODUCTIONS:
        raise TinyError(
            f"reproduce {name}: unknown{did_you_mean(name, REPRODUCTIONS)}; "
            f"known: {', '.join(REPRODUCTIONS)}"
        )
    return REPRODUCTIONS[name]


def select(repro: Reproduction, only: Sequence[str] | None) -> list[Claim]:
    keys = [c.key for c in repro.claims]
    for key in only or []:
        if key not in keys:
            raise TinyError(
                f"--only {key}: not a claim of {repro.name}{did_you_mean(key, keys)}; "
                f"claims: {', '.join(keys)}"
            )
    return [c for c in repro.claims if not only or c.key in only]


def make(claims: Sequence[Claim], plan: Plan) -> dict[str, list[str]]:
    """Each claim's runs, made in order: claim key -> run ids."""
    return {claim.key: claim.make(plan) for claim in claims}


def judge(
    claims: Sequence[Claim], made: dict[str, list[str]], runs_dir: Path | None
) -> list[ClaimRow]:
    """Each claim's verdict, read from the runs it made as they are stored now."""
    from tiny_cli.show import report

    root = runs.root(runs_dir)
    rows = []
    for claim in claims:
        records = [runs.read(runs.find(root, run_id)) for run_id in made[claim.key]]
        try:
            measured, verdict, reason = claim.judge(records)
        except runs.RunProblem as exc:
            measured, verdict, reason = "unreadable", "refuted", str(exc)
        pictures = []
        for record in records:
            if (record.run.path / runs.PREDICTION).exists():
                try:
                    png = report.read_picture(record.run)
                except runs.RunProblem:
                    continue
                pictures.append((f"{claim.claim}: run {record.run.id}", png))
        rows.append(
            ClaimRow(claim.key, claim.claim, claim.says, measured, verdict, reason,
                     tuple(made[claim.key]), tuple(pictures))
        )  # fmt: skip
    return rows


def reproduce(
    name: str,
    *,
    quick: bool = False,
    only: Sequence[str] | None = None,
    runs_dir: Path | None = None,
    device: str = "cpu",
    display: launch.Display,
) -> tuple[Reproduction, list[ClaimRow]]:
    """`tiny reproduce NAME`: the claims' runs made, then judged from the store."""
    repro = reproduction(name)
    claims = select(repro, only)
    plan = Plan(quick, runs_dir, device, display)
    return repro, judge(claims, make(claims, plan), runs_dir)
