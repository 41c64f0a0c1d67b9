"""Typed views of what a run directory holds: run.json, metrics.json, summary.json, grid.json,
solutions.json, model.pt and sweep.pt, each read through `files.py` and checked, and their
JSON documents (`to_json`) for `--json`.

A view is strict (a string is not a number) but ignores keys it does not know, so files of a
newer tiny still read; a file that does not fit its view is a `RunProblem` naming it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    TypeAdapter,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from tiny_cli.store.files import (
    CHECKPOINT,
    CONFIG,
    CURVES,
    CURVES_CAP,
    GRID,
    META,
    METRICS,
    SOLUTIONS,
    SUMMARY,
    SWEEP,
    Run,
    RunProblem,
    invalid,
    read_json,
    read_json_object,
    read_yaml_mapping,
)

GridValue = bool | int | float | str | list[Any] | dict[str, Any] | None
Nested = float | list["Nested"]  # a parameter as nested lists
MetricValue = float | int | str | None | list[Any]  # lists: intervals, per-class values


def to_datetime(value: Any) -> datetime | None:
    """A time on disk -> an aware datetime in local time. tiny writes Unix seconds; ISO 8601
    strings (with or without offset; none = local time) are read too."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError("not a finite time")
        try:
            return datetime.fromtimestamp(value, tz=timezone.utc).astimezone()
        except (OverflowError, OSError, ValueError):
            raise ValueError("time out of range") from None
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.astimezone()
    raise ValueError("expected Unix seconds or an ISO 8601 time")


class _View(BaseModel):
    """Strict (a string is not a number, a number not a bool); keys tiny does not know are
    ignored, so newer files still read."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    def to_json(self) -> dict[str, Any]:
        """For --json: plain JSON values; times as ISO 8601 with their UTC offset."""
        return self.model_dump(mode="json")


class Kept(_View):
    """A seed of a sweep re-trained and stored as an ordinary run (`tiny sweep --keep`)."""

    point: int
    seed: int
    why: str
    run: str


class HeldOut(_View):
    """A run with a test set: what became of its held-out inputs (`outcomes.held_out`), the
    delay from the training inputs' first solved epoch to the test inputs', and those epochs
    (None: never solved), under the G (`grok_epochs`) it was judged by."""

    outcome: str
    delay: int | None = None
    train_solved: int | None = None
    test_solved: int | None = None
    grok_epochs: int | None = None


class RunMeta(_View):
    """run.json, as written by experiment.py (runs) and sweep.py (sweeps). Older runs lack
    some keys, so all are optional."""

    id: str | None = None
    kind: str | None = None  # train | hardwire | sweep
    status: str | None = None  # running | completed | interrupted | failed
    task: str | None = None
    arch: str | None = None
    init: str | None = None  # a sweep: its init modes, comma-separated
    seed: int | None = None
    epochs: int | None = None
    epochs_done: int | None = None
    started: datetime | None = None
    finished: datetime | None = None
    reason: str | None = None
    device: str | None = None
    source: str | None = None
    from_run: str | None = None  # `tiny train --from`
    pid: int | None = None  # the process running it, on `host` (stale detection)
    pid_start: int | None = None
    host: str | None = None
    heartbeat: datetime | None = None  # last sign of life while running
    sweep: str | None = None  # a run kept by a sweep (--keep): the sweep's id
    command: list[str] | None = None
    versions: dict[str, Any] | None = None
    held_out: HeldOut | None = None  # a run with a test set
    # sweeps only
    seeds: list[int] | None = None  # [first, last], inclusive
    n_seeds: int | None = None
    grid: dict[str, list[GridValue]] | None = None
    kept: list[Kept] | None = None
    seconds: float | None = None

    @field_validator("started", "finished", "heartbeat", mode="before")
    @classmethod
    def _time(cls, value: Any) -> datetime | None:
        return to_datetime(value)

    @field_validator("seeds")
    @classmethod
    def _range(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (len(value) != 2 or value[0] > value[1]):
            raise ValueError("expected [first, last]")
        return value

    @field_serializer("started", "finished")
    def _iso(self, value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    @property
    def is_sweep(self) -> bool:
        return self.kind == "sweep"


class HeldOutCounts(_View):
    """A grid point's held-out outcomes (`outcomes.held_out`, the rule of a run): how many
    seeds had each, the majority (ties: the first of `HELD_OUT`), and the median delay
    of the seeds that solved both sides and of those that grokked (None: none did)."""

    counts: dict[str, int]
    majority: str
    delay: float | None = None
    grokked_delay: float | None = None
    grok_epochs: int | None = None


class SweepPoint(_View):
    """One grid point of summary.json."""

    grid: dict[str, GridValue] = {}
    label: str | None = None
    seeds: int
    counts: dict[str, int]
    fractions: dict[str, float]
    loss: dict[str, float] = {}  # q0, q10, q50, q90, q100 of the finite final losses
    # the same on the held-out inputs, for a sweep with a test set (a `data:` section)
    test_loss: dict[str, float] = {}
    test_accuracy: dict[str, float] = {}
    held_out: HeldOutCounts | None = None  # with a test set
    seconds: float | None = None
    seed_epochs_per_second: float | None = None

    @model_validator(mode="after")
    def _same_outcomes(self) -> SweepPoint:
        if list(self.counts) != list(self.fractions):
            raise ValueError("counts and fractions name different outcomes")
        return self


class Grid(_View):
    """grid.json: each grid key's values, and the points they span (in sweep.pt's order)."""

    axes: dict[str, list[GridValue]] = {}
    points: list[dict[str, GridValue]] = []


class SolutionGroup(_View):
    """Solved seeds of one canonical form (solutions.json): its seeds in order, the seed
    that shows it and that seed's formula (None beyond the largest groups of a point)."""

    count: int
    representative: int
    formula: str | None = None
    exact: bool | None = None
    max_error: float | None = None
    seeds: list[int]
    alpha: float | None = None  # min/max: the representative's alpha, if in the family


class SolutionPoint(_View):
    """One grid point of solutions.json: its solved seeds, their groups (largest first) and,
    for min/max, each solved seed's alpha (None: not in the family)."""

    grid: dict[str, GridValue] = {}
    label: str
    seeds: int
    solved_seeds: list[int]
    groups: list[SolutionGroup]
    alpha: list[float | None] | None = None  # per solved seed, in solved_seeds' order

    @model_validator(mode="after")
    def _partition(self) -> SolutionPoint:
        grouped = sorted(s for g in self.groups for s in g.seeds)
        if grouped != sorted(self.solved_seeds) or any(
            g.count != len(g.seeds) for g in self.groups
        ):
            raise ValueError("the groups do not partition the solved seeds")
        if self.alpha is not None and len(self.alpha) != len(self.solved_seeds):
            raise ValueError("one alpha per solved seed")
        return self


class Solutions(_View):
    """solutions.json: `tiny inspect SWEEP --solutions`, cached for the sweep.pt it was
    computed from (`source`: its size and mtime in ns) under the rule `rule` names."""

    sweep: str
    rule: str
    tolerance: float
    source: dict[str, int]
    events: str | None = None  # the event file of its TensorBoard text and alpha histogram
    points: list[SolutionPoint]


class CurvePoint(_View):
    """One grid point of curves.json (`train.curves.Curves.to_json`): per recorded epoch,
    each metric's quantiles over the seeds (None: no seed measured) and the fraction of seeds
    solved by then; empty for a point stored without curves."""

    grid: dict[str, GridValue] = {}
    label: str | None = None
    epochs: list[int] = []
    metrics: dict[str, dict[str, list[float | None]]] = {}
    solved: list[float | None] | None = None
    never_solved: int | None = None

    @model_validator(mode="after")
    def _aligned(self) -> CurvePoint:
        series = [s for m in self.metrics.values() for s in m.values()]
        series += [self.solved] if self.solved is not None else []
        if any(len(s) != len(self.epochs) for s in series):
            raise ValueError("a series does not have one value per epoch")
        return self


_SUMMARY = TypeAdapter(list[SweepPoint])
_CURVES = TypeAdapter(list[CurvePoint])


def check_metrics(value: dict[str, Any], name: str = METRICS) -> dict[str, MetricValue]:
    """metrics.json, checked shallowly: each value a number, a string, null or a list."""
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, int | float | str | list | None):
            raise RunProblem(f"{name}: {key!r} is not a number, string, list or null")
    return value


_V = TypeVar("_V", bound=BaseModel)


def _read_view(run: Run, name: str, view: type[_V]) -> _V:
    """A JSON object of the run directory, validated into its view (or one problem line)."""
    try:
        return view.model_validate(read_json_object(run.path, name))
    except ValidationError as exc:
        raise invalid(name, exc) from None


def read_meta(run: Run) -> RunMeta:
    return _read_view(run, META, RunMeta)


def read_metrics(run: Run) -> dict[str, MetricValue]:
    return check_metrics(read_json_object(run.path, METRICS))


def read_summary(run: Run) -> list[SweepPoint]:
    try:
        return _SUMMARY.validate_python(read_json(run.path, SUMMARY))
    except ValidationError as exc:
        raise invalid(SUMMARY, exc) from None


def read_curves(run: Run) -> list[CurvePoint]:
    try:
        return _CURVES.validate_python(read_json(run.path, CURVES, CURVES_CAP))
    except ValidationError as exc:
        raise invalid(CURVES, exc) from None


def read_grid(run: Run) -> Grid:
    return _read_view(run, GRID, Grid)


def read_solutions(run: Run) -> Solutions:
    return _read_view(run, SOLUTIONS, Solutions)


def read_config(run: Run) -> dict[str, Any]:
    return read_yaml_mapping(run.path, CONFIG)


def read_params(run: Run) -> dict[str, Nested]:
    """model.pt -> parameter name -> nested lists; anything but a state_dict is a problem."""
    import torch

    state = run.load_state()
    params: dict[str, Nested] = {}
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor) or value.is_complex():
            raise RunProblem(f"{CHECKPOINT} is not a state_dict of real tensors")
        params[key] = value.tolist()
    return params


# --- a sweep's per-seed arrays (sweep.pt) -----------------------------------------------


@dataclass(frozen=True)
class SeedResult:
    """One seed at one grid point of a sweep: how it ended and its final parameters."""

    grid: dict[str, GridValue]
    label: str
    outcome: str
    loss: float
    accuracy: float | None
    epochs_done: int
    parameters: dict[str, Nested]


@dataclass(frozen=True)
class SeedResults:
    """One seed of a sweep at every grid point (`tiny inspect SWEEP --seed N`)."""

    run_id: str
    seed: int
    points: list[SeedResult]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.run_id, "seed": self.seed, "points": [asdict(r) for r in self.points]}


@dataclass(frozen=True)
class SweepArrays:
    """sweep.pt, checked: every per-seed tensor has the seeds count as its first dimension."""

    seeds: list[int]
    outcomes: list[str]
    points: list[dict[str, Any]]  # grid, params (name -> [S, *shape]), loss, epochs, outcome

    def seed_json(self, run_id: str, seed: int) -> dict[str, Any]:
        """`tiny inspect SWEEP --seed N --json`: the seed at every grid point."""
        return SeedResults(run_id, seed, self.at(seed)).to_json()

    def at(self, seed: int) -> list[SeedResult]:
        i = self.seeds.index(seed)
        return [
            SeedResult(
                grid=p["grid"],
                label=" ".join(f"{k}={show_value(v)}" for k, v in p["grid"].items())
                or "base config",
                outcome=self.outcomes[int(p["outcome"][i])],
                loss=float(p["loss"][i]),
                accuracy=float(p["accuracy"][i]) if "accuracy" in p else None,
                epochs_done=int(p["epochs"][i]),
                parameters={k: v[i].tolist() for k, v in p["params"].items()},
            )
            for p in self.points
        ]


def _plain(value: Any, depth: int = 0) -> bool:
    """A grid value as YAML gives one: a scalar, or lists and string-keyed mappings of them
    (`--grid 'model.widths=[1,2,1];[1,4,1]'`), nested at most 8 deep."""
    if isinstance(value, bool | int | float | str | None):
        return True
    if depth >= 8:
        return False
    if isinstance(value, list):
        return all(_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    return False


def read_sweep_arrays(run: Run, n_seeds: int | None = None) -> SweepArrays:
    import torch

    data = run.load_tensors(SWEEP)

    def bad(why: str) -> RunProblem:
        return RunProblem(f"{SWEEP} is not a sweep's arrays ({why})")

    seeds, outcomes, points = data.get("seeds"), data.get("outcomes"), data.get("points")
    if not isinstance(seeds, torch.Tensor) or seeds.dim() != 1 or seeds.is_floating_point():
        raise bad("seeds is not a 1-d integer tensor")
    n = len(seeds)
    if n_seeds is not None and n != n_seeds:
        raise bad(f"{n} seeds, run.json says {n_seeds}")
    if not isinstance(outcomes, list) or not all(isinstance(o, str) for o in outcomes):
        raise bad("outcomes is not a list of names")
    if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
        raise bad("points is not a list")
    for k, point in enumerate(points):
        grid, params = point.get("grid"), point.get("params")
        if not isinstance(grid, dict) or not all(
            isinstance(key, str) and _plain(v) for key, v in grid.items()
        ):
            raise bad(f"point {k}: grid")
        if not isinstance(params, dict) or not all(
            isinstance(key, str) and isinstance(v, torch.Tensor) and v.dim() >= 1 and len(v) == n
            for key, v in params.items()
        ):
            raise bad(f"point {k}: parameters are not [{n} seeds, ...] tensors")
        optional = tuple(k for k in ("accuracy", "first_solved", "test_first_solved") if k in point)
        for key in ("loss", "epochs", "outcome", *optional):
            value = point.get(key)
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != (n,):
                raise bad(f"point {k}: {key} is not a tensor of {n} values")
        codes = point["outcome"]
        if n and (int(codes.min()) < 0 or int(codes.max()) >= len(outcomes)):
            raise bad(f"point {k}: an outcome index is out of range")
    return SweepArrays([int(s) for s in seeds.tolist()], outcomes, points)


def show_value(value: Any) -> str:
    """A grid or config value as YAML writes it: null, true, 0.01 (not None, True)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
