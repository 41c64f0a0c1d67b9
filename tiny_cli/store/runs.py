"""The runs directory: `runs/<run-id>/`, the only module that reads or writes it.

    <run-id>/
      config.yaml         resolved config (file + overrides): `tiny train config.yaml` repeats it
      run.json            kind, status, epochs, command line, versions, times
      metrics.json        final metrics
      model.pt            final state_dict (torch.load(..., weights_only=True))
      prediction.png      the final picture of the model against the truth
      events.out.tfevents.*   TensorBoard scalars, layout, pictures, hparams (tracking.py)

A sweep (`tiny sweep`) is a directory of the same kind, with `kind: sweep` in its run.json:

    <sweep-id>/
      config.yaml         the resolved base config (file + overrides, before the grid)
      run.json            kind sweep, status, seeds, grid, kept runs, command line, versions
      grid.json           the grid: key -> values, and the points it spans
      summary.json        per grid point: outcome counts and fractions, loss quantiles, time
      metrics.json        over all points: seeds, solved fraction, median final loss
      sweep.pt            per seed and point: final parameters, loss, outcome (one file)
      events.out.tfevents.*   outcome counts per grid point, final-loss histograms
      solutions.json      solved seeds grouped by canonical form (made by inspect --solutions,
                          with an events.out.tfevents.*.tiny-solutions file beside it)

Every file is written to a temporary name and renamed, so a crash never leaves half a file.
Run ids start with the local time, so they sort by time; `mkdir` is atomic, so two processes
never get the same directory (the second gets a `-002` suffix).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import socket
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    TypeAdapter,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from tiny_cli.errors import TinyError, did_you_mean

ENV_VAR = "TINY_RUNS_DIR"
CONFIG, META, METRICS, CHECKPOINT = "config.yaml", "run.json", "metrics.json", "model.pt"
SWEEP, SUMMARY, GRID = "sweep.pt", "summary.json", "grid.json"
SOLUTIONS = "solutions.json"  # `tiny inspect SWEEP --solutions`, computed on first use
PREDICTION = "prediction.png"
UNITS = "units.png"  # the hidden units' activations at the end (unitplot.py)
CHECKPOINT_STATE = "checkpoint.pt"  # the training state of a run that has not finished

# What is read back from a run directory is untrusted: another tool, a copy from elsewhere or
# a half-broken disk may have put anything there. These bounds are far above what tiny writes.
TEXT_CAP = 1 << 20  # run.json, metrics.json, summary.json, grid.json, config.yaml
TENSOR_CAP = 256 << 20  # model.pt, sweep.pt
MAX_DEPTH = 32  # nesting of JSON/YAML values (a 4-d parameter list is 5 deep)
MAX_NODES = 1_000_000  # values in one JSON/YAML document, YAML aliases counted each time used
STARTING = 10.0  # seconds: a run directory this young without run.json is being created
STALE = 3600.0  # seconds: a `running` run whose directory has not changed for this long

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


class RunProblem(TinyError):
    """A file of a run that cannot be used (missing, not a regular file, too large, corrupt,
    not what tiny writes); the message names the file. Not the user's typo: exit code 1."""

    exit_code = 1


def root(path: Path | None = None) -> Path:
    """`--runs-dir`, else $TINY_RUNS_DIR, else ./runs."""
    return path or Path(os.environ.get(ENV_VAR) or "runs")


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary name, then rename: a crash or a full disk never leaves half a
    file, and the temporary file goes whatever fails (the old file stays as it was)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


# --- reading untrusted files ------------------------------------------------------------


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n} bytes"


def read_file(directory: Path, name: str, cap: int) -> bytes:
    """The bytes of `directory/name`, only if it is a regular file (not a symlink, FIFO or
    device) of at most `cap` bytes. The check is made on the open descriptor (fstat), so the
    file cannot be swapped between check and read; O_NONBLOCK keeps a FIFO from hanging."""
    path = directory / name
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            raise RunProblem(f"{name} is a symbolic link (not followed)")
        if not stat.S_ISREG(info.st_mode):
            raise RunProblem(f"{name} is not a regular file")
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise RunProblem(f"{name} is missing") from None
    except OSError as exc:
        raise RunProblem(f"{name} is unreadable ({type(exc).__name__})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise RunProblem(f"{name} is not a regular file")
        if info.st_size > cap:
            raise RunProblem(f"{name} is too large ({_size(info.st_size)}, at most {_size(cap)})")
        try:
            data = f.read(cap + 1)
        except OSError as exc:
            raise RunProblem(f"{name} is unreadable ({type(exc).__name__})") from None
    if len(data) > cap:  # it grew after the check
        raise RunProblem(f"{name} is too large (more than {_size(cap)})")
    return data


def _check_tree(value: Any, name: str) -> None:
    """Bound the nesting and the number of values (without recursion: the point is to
    survive a hostile file). YAML aliases count each time they are used, so an alias bomb
    fails here instead of exploding when shown or dumped."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise RunProblem(f"{name} is nested too deeply (more than {MAX_DEPTH} levels)")
        if nodes > MAX_NODES:
            raise RunProblem(f"{name} has too many values (more than {MAX_NODES:,})")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def read_json(directory: Path, name: str) -> Any:
    data = read_file(directory, name, TEXT_CAP)
    try:
        value = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise RunProblem(f"{name} is nested too deeply") from None
    except ValueError as exc:
        raise RunProblem(f"{name} is unreadable ({type(exc).__name__})") from None
    _check_tree(value, name)
    return value


def read_json_object(directory: Path, name: str) -> dict[str, Any]:
    value = read_json(directory, name)
    if not isinstance(value, dict):
        raise RunProblem(f"{name} is not a JSON object")
    return value


def read_yaml_mapping(directory: Path, name: str) -> dict[str, Any]:
    import yaml

    data = read_file(directory, name, TEXT_CAP)
    try:
        value = yaml.safe_load(data)
    except RecursionError:
        raise RunProblem(f"{name} is nested too deeply") from None
    except (yaml.YAMLError, ValueError) as exc:
        raise RunProblem(f"{name} is unreadable ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise RunProblem(f"{name} is not a mapping")
    _check_tree(value, name)
    return value


def load_tensors(directory: Path, name: str) -> dict[str, Any]:
    """A torch file (weights_only: tensors and plain values, no code) of at most TENSOR_CAP."""
    import torch

    data = read_file(directory, name, TENSOR_CAP)
    try:
        value = torch.load(io.BytesIO(data), weights_only=True)
    except Exception as exc:  # corrupt or hostile: torch raises many kinds
        raise RunProblem(f"{name} is unreadable ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise RunProblem(f"{name} is not a dict")
    return value


def _invalid(name: str, exc: ValidationError) -> RunProblem:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return RunProblem(f"{name} is invalid ({where + ': ' if where else ''}{first['msg']})")


@dataclass
class Run:
    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    def write_json(self, name: str, data: Any) -> None:
        atomic_write(self.path / name, (json.dumps(data, indent=2) + "\n").encode())

    def read_json(self, name: str) -> Any:
        return read_json(self.path, name)

    def write_text(self, name: str, text: str) -> None:
        atomic_write(self.path / name, text.encode())

    def write_bytes(self, name: str, data: bytes) -> Path:
        atomic_write(self.path / name, data)
        return self.path / name

    def read_text(self, name: str) -> str:
        try:
            return read_file(self.path, name, TEXT_CAP).decode("utf-8")
        except UnicodeDecodeError:
            raise RunProblem(f"{name} is not UTF-8 text") from None

    def update_meta(self, **changes: Any) -> dict[str, Any]:
        meta = self.read_json(META) if (self.path / META).exists() else {}
        meta.update(changes)
        self.write_json(META, meta)
        return meta

    def overwrite_meta(self, **changes: Any) -> None:
        """`update_meta` in place, for when a new file cannot be written (a full disk): the
        old run.json's own blocks hold the new one. Not atomic: only the last resort."""
        try:
            meta = self.read_json(META)
        except (OSError, ValueError):
            meta = {}
        meta.update(changes)
        data = json.dumps(meta, indent=2).encode() + b"\n"
        with open(self.path / META, "r+b") as f:
            f.truncate(0)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def save_state(self, state: dict[str, Any]) -> None:
        import torch

        buf = io.BytesIO()
        torch.save({k: v.detach().cpu().clone() for k, v in state.items()}, buf)
        atomic_write(self.path / CHECKPOINT, buf.getvalue())

    def load_state(self) -> dict[str, Any]:
        return self.load_tensors(CHECKPOINT)

    def save_tensors(self, name: str, data: dict[str, Any]) -> None:
        """Any dict of tensors, lists and plain values; loadable with weights_only=True."""
        import torch

        buf = io.BytesIO()
        torch.save(data, buf)
        atomic_write(self.path / name, buf.getvalue())

    def load_tensors(self, name: str) -> dict[str, Any]:
        return load_tensors(self.path, name)


def new_id(task: str, now: float | None = None) -> str:
    """`20261121-203015-123-lt10`: local time to the millisecond, then the task."""
    now = time.time() if now is None else now
    stamp = datetime.fromtimestamp(now).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{int(now * 1000) % 1000:03d}-{task}"


def create(runs_root: Path, task: str) -> Run:
    """A fresh run directory; `mkdir` is atomic, so racing processes get distinct ones."""
    base = new_id(task)
    try:
        runs_root.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            path = runs_root / (base if n == 1 else f"{base}-{n:03d}")  # padded: sorts in order
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return Run(path)
    except OSError as exc:
        raise TinyError(f"runs directory {runs_root}: cannot create a run there ({exc})") from None
    raise RuntimeError(f"could not create a fresh run directory in {runs_root}")


# --- typed views of run.json, metrics.json, summary.json, grid.json ---------------------

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


class Kept(_View):
    """A seed of a sweep re-trained and stored as an ordinary run (`tiny sweep --keep`)."""

    point: int
    seed: int
    why: str
    run: str


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

    def to_json(self) -> dict[str, Any]:
        """For --json: times as ISO 8601 with their UTC offset."""
        return self.model_dump(mode="json")


class SweepPoint(_View):
    """One grid point of summary.json."""

    grid: dict[str, GridValue] = {}
    label: str | None = None
    seeds: int
    counts: dict[str, int]
    fractions: dict[str, float]
    loss: dict[str, float] = {}  # q0, q10, q50, q90, q100 of the finite final losses
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


_SUMMARY = TypeAdapter(list[SweepPoint])


def check_metrics(value: dict[str, Any], name: str = METRICS) -> dict[str, MetricValue]:
    """metrics.json, checked shallowly: each value a number, a string, null or a list."""
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, int | float | str | list | None):
            raise RunProblem(f"{name}: {key!r} is not a number, string, list or null")
    return value


def read_meta(run: Run) -> RunMeta:
    try:
        return RunMeta.model_validate(read_json_object(run.path, META))
    except ValidationError as exc:
        raise _invalid(META, exc) from None


def read_metrics(run: Run) -> dict[str, MetricValue]:
    return check_metrics(read_json_object(run.path, METRICS))


def read_summary(run: Run) -> list[SweepPoint]:
    try:
        return _SUMMARY.validate_python(read_json(run.path, SUMMARY))
    except ValidationError as exc:
        raise _invalid(SUMMARY, exc) from None


def read_grid(run: Run) -> Grid:
    try:
        return Grid.model_validate(read_json_object(run.path, GRID))
    except ValidationError as exc:
        raise _invalid(GRID, exc) from None


def read_solutions(run: Run) -> Solutions:
    try:
        return Solutions.model_validate(read_json_object(run.path, SOLUTIONS))
    except ValidationError as exc:
        raise _invalid(SOLUTIONS, exc) from None


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
class SweepArrays:
    """sweep.pt, checked: every per-seed tensor has the seeds count as its first dimension."""

    seeds: list[int]
    outcomes: list[str]
    points: list[dict[str, Any]]  # grid, params (name -> [S, *shape]), loss, epochs, outcome

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
        for key in ("loss", "epochs", "outcome", *(("accuracy",) if "accuracy" in point else ())):
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


# --- listing and finding runs -----------------------------------------------------------

_ID = re.compile(r"^\d{4}(\d{4})-(\d{6})-(\d{3})-.+?(-\d{3})?$")


def _short_forms(run_id: str) -> tuple[str, str, str] | None:
    """(second, key at the second, key at the millisecond) of a tiny id, else None."""
    m = _ID.match(run_id)
    if not m:
        return None
    date, hms, ms, suffix = m.group(1), m.group(2), m.group(3), m.group(4) or ""
    return f"{date}-{hms}", f"{date}-{hms}{suffix}", f"{date}-{hms}-{ms}{suffix}"


def short_ids(ids: Sequence[str]) -> dict[str, str]:
    """Each id's short form: `MMDD-HHMMSS` of its start (plus the `-NNN` of a run created in
    the same millisecond); `MMDD-HHMMSS-mmm` when another run started in the same second;
    the full id when even that is shared, or for an id not made by tiny. `resolve` takes
    them all."""
    forms = {i: _short_forms(i) for i in ids}
    per_second: dict[str, int] = {}
    for f in forms.values():
        if f:
            per_second[f[0]] = per_second.get(f[0], 0) + 1
    chosen = {i: (f[1] if per_second[f[0]] == 1 else f[2]) if f else i for i, f in forms.items()}
    counts: dict[str, int] = {}
    for s in chosen.values():
        counts[s] = counts.get(s, 0) + 1
    return {i: s if counts[s] == 1 else i for i, s in chosen.items()}


def all_ids(runs_root: Path) -> list[str]:
    """Run directories, sorted; symlinks are skipped (a run is never read through one)."""
    try:
        entries = list(os.scandir(runs_root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise TinyError(f"runs directory {runs_root}: cannot be listed ({exc.strerror})") from None
    return sorted(
        e.name for e in entries if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
    )


def resolve(runs_root: Path, ref: str) -> Run:
    """A run id, its short id, a unique prefix of either, or `latest` (the newest by its
    recorded start) -> the Run. Never leaves `runs_root`, never follows a symlink."""
    if not ref or ref in (".", "..") or "/" in ref or "\\" in ref or ref.startswith("."):
        raise TinyError(f"run '{ref}': not a run id (expected an id, a prefix of one, or latest)")
    if ref != "latest" and os.path.islink(runs_root / ref):
        raise TinyError(f"run '{ref}': a symbolic link, not followed (copy the run instead)")
    ids = all_ids(runs_root)
    if not ids:
        raise TinyError(f"run '{ref}': no runs in {runs_root}")
    if ref == "latest":
        return latest([read(Run(runs_root / i)) for i in ids]).run
    if ref in ids:
        return Run(runs_root / ref)
    shorts = short_ids(ids)
    exact = [i for i in ids if shorts[i] == ref]
    long_forms = {i: (f[2] if (f := _short_forms(i)) else i) for i in ids}
    exact = exact or [i for i in ids if long_forms[i] == ref]
    if len(exact) == 1:
        return Run(runs_root / exact[0])
    matches = [i for i in ids if i.startswith(ref) or long_forms[i].startswith(ref)]
    if len(matches) == 1:
        return Run(runs_root / matches[0])
    if matches:
        shown = ", ".join(matches[:3]) + (", ..." if len(matches) > 3 else "")
        raise TinyError(f"run '{ref}': ambiguous prefix, matches {len(matches)} runs: {shown}")
    raise TinyError(f"run '{ref}': no such run in {runs_root}{did_you_mean(ref, ids)}")


@dataclass
class RunRecord:
    """What `tiny runs` and `tiny inspect` show of a run; `problem` says what could not be
    read, `status` what to show: run.json's status, or `starting` (a directory younger than
    STARTING without run.json yet), `stale` (`running`, but nothing in the directory changed
    for STALE seconds: the process is gone) or `broken`."""

    run: Run
    meta: RunMeta = field(default_factory=RunMeta)
    metrics: dict[str, MetricValue] = field(default_factory=dict)
    problem: str = ""
    status: str = "?"
    modified: float = 0.0  # the directory's mtime

    @property
    def started(self) -> float:
        """When the run started (Unix seconds); the directory's mtime if run.json lacks it."""
        return self.meta.started.timestamp() if self.meta.started else self.modified


HEARTBEAT_EVERY = 30.0  # seconds between a running run's heartbeats in run.json
HEARTBEAT_STALE = 5 * HEARTBEAT_EVERY  # no heartbeat for this long: the process is gone


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), where /proc is."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot), to tell a reused pid from the
    run's own process; None where /proc does not say."""
    fields = _proc_stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (ValueError, IndexError):
        return None


def process_identity() -> dict[str, Any]:
    """What run.json records of the process that runs it (for `stale`)."""
    pid = os.getpid()
    return {"pid": pid, "pid_start": _start_ticks(pid), "host": socket.gethostname()}


def _alive(pid: int, start: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process with that pid: can't tell, assume alive
    fields = _proc_stat(pid)
    if fields and fields[0] in ("Z", "X"):
        return False  # exited, not yet reaped by its parent
    return start is None or _start_ticks(pid) in (None, start)


def _gone(meta: RunMeta, path: Path, now: float) -> bool:
    """A `running` run whose process is gone: on this host, its pid is dead (or reused);
    elsewhere, its heartbeat is older than HEARTBEAT_STALE; with neither recorded, nothing
    in its directory changed for STALE seconds."""
    if meta.pid is not None and meta.host == socket.gethostname():
        return not _alive(meta.pid, meta.pid_start)
    if meta.heartbeat is not None:
        return now - meta.heartbeat.timestamp() > HEARTBEAT_STALE
    return now - _newest_change(path) > STALE


class Heartbeat:
    """Writes `heartbeat` (now) into a running run's run.json at most every HEARTBEAT_EVERY."""

    def __init__(self, run: Run, every: float = HEARTBEAT_EVERY) -> None:
        self.run, self.every = run, every
        self._next = time.monotonic() + every

    def __call__(self, epochs_done: int | None = None) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.every
            extra = {} if epochs_done is None else {"epochs_done": epochs_done}
            self.run.update_meta(heartbeat=time.time(), **extra)


def _newest_change(path: Path) -> float:
    newest = 0.0
    try:
        with os.scandir(path) as entries:
            for e in entries:
                newest = max(newest, e.stat(follow_symlinks=False).st_mtime)
        newest = max(newest, os.lstat(path).st_mtime)
    except OSError:
        pass
    return newest


def read(run: Run, now: float | None = None) -> RunRecord:
    now = time.time() if now is None else now
    record = RunRecord(run)
    problems: list[str] = []
    with contextlib.suppress(OSError):
        record.modified = os.lstat(run.path).st_mtime
    try:
        record.meta = read_meta(run)
    except RunProblem as exc:
        if (run.path / META).exists() or now - record.modified > STARTING:
            problems.append(str(exc))
        else:
            record.status = "starting"
            return record
    try:
        record.metrics = read_metrics(run)
    except RunProblem as exc:
        missing = not os.path.lexists(run.path / METRICS)
        if not missing or record.meta.status == "completed":
            problems.append(str(exc))  # a running or stopped run has no final metrics yet
    record.problem = "; ".join(problems)
    if record.problem:
        record.status = "broken"
    elif record.meta.status == "running" and _gone(record.meta, run.path, now):
        record.status = "stale"
    else:
        record.status = record.meta.status or "?"
    return record


def list_records(runs_root: Path) -> list[RunRecord]:
    return [read(Run(runs_root / i)) for i in all_ids(runs_root)]


def latest(records: Sequence[RunRecord]) -> RunRecord:
    """The newest by recorded start (not by id: ids are local time, clocks and zones move)."""
    return max(records, key=lambda r: (r.started, r.run.id))


@dataclass
class Details:
    """The rest of a run for `tiny inspect`: config, parameters (a run) or summary and grid
    (a sweep); `problems` lists what could not be read."""

    config: dict[str, Any] | None = None
    params: dict[str, Nested] | None = None
    summary: list[SweepPoint] | None = None
    grid: Grid | None = None
    problems: list[str] = field(default_factory=list)


def details(record: RunRecord) -> Details:
    run, meta = record.run, record.meta
    out = Details(problems=[record.problem] if record.problem else [])
    done = meta.status == "completed"

    def attempt(name: str, read_one: Any, needed: bool) -> Any:
        if not needed and not os.path.lexists(run.path / name):
            return None
        try:
            return read_one(run)
        except RunProblem as exc:
            out.problems.append(str(exc))
            return None

    out.config = attempt(CONFIG, read_config, needed=record.status != "starting")
    if meta.is_sweep:
        out.summary = attempt(SUMMARY, read_summary, needed=done)
        out.grid = attempt(GRID, read_grid, needed=False)
    else:
        out.params = attempt(CHECKPOINT, read_params, needed=done)
    return out
