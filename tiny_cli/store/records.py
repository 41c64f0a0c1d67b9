"""Records: what `tiny runs` and `tiny inspect` know of one run, and whether it is still alive.

`read` gathers a run's run.json and metrics.json into a `RunRecord` with the status to show
(a run whose process is gone shows `stale`, one still being created `starting`); `details`
adds what `tiny inspect` shows. Neither raises for a broken run: what could not be read is
kept as a problem beside what could. `Heartbeat` and `process_identity` are what a running
run writes so that others can tell it is alive. `to_json` gives their `--json` documents.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tiny_cli.store.files import (
    CHECKPOINT,
    CONFIG,
    CURVES,
    GRID,
    META,
    METRICS,
    SUMMARY,
    SWEEP,
    Run,
    RunProblem,
    load_tensors,
)
from tiny_cli.store.views import (
    CurvePoint,
    Grid,
    GridValue,
    MetricValue,
    Nested,
    RunMeta,
    SweepArrays,
    SweepPoint,
    read_config,
    read_curves,
    read_grid,
    read_meta,
    read_metrics,
    read_params,
    read_summary,
    read_sweep_arrays,
)

STARTING = 10.0  # seconds: a run directory this young without run.json is being created
STALE = 3600.0  # seconds: a `running` run whose directory has not changed for this long


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

    def to_json(self) -> dict[str, Any]:
        """`tiny runs --json`: one run's row."""
        return {
            "id": self.run.id,
            "status": self.status,
            "meta": self.meta.to_json(),
            "metrics": self.metrics,
            "problem": self.problem or None,
        }


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


def latest(records: Sequence[RunRecord]) -> RunRecord:
    """The newest by recorded start (not by id: ids are local time, clocks and zones move)."""
    return max(records, key=lambda r: (r.started, r.run.id))


CHUNKS = "chunks"  # a sweep's finished chunks, one file each, until it completes
MAX_CHUNK_FILES = 100_000  # chunk files of a sweep read to check them


@dataclass
class Details:
    """The rest of a run for `tiny inspect`: config, parameters (a run) or summary, grid and
    per-seed arrays (a sweep); `problems` lists what could not be read. A sweep that did not
    complete may have finished some grid points (stored as a completed sweep's are):
    `remaining` lists the others (None for a completed sweep, or one with none finished)."""

    config: dict[str, Any] | None = None
    params: dict[str, Nested] | None = None
    summary: list[SweepPoint] | None = None
    grid: Grid | None = None
    arrays: SweepArrays | None = None
    curves: list[CurvePoint] | None = None  # curves.json: per grid point, over the epochs
    remaining: list[dict[str, GridValue]] | None = None
    pictures: list[str] = field(default_factory=list)  # the run's pictures (*.png), by name
    problems: list[str] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        """Some grid points of a sweep that did not complete are shown, not all."""
        return self.remaining is not None

    def to_json(self, record: RunRecord, readout: dict[str, Any] | None = None) -> dict[str, Any]:
        """`tiny inspect RUN --json`, these details being `details(record)`: a run's document
        with its read-out (`readout`, made above the store: None where it has no net), or a
        sweep's (grid and summary in place of parameters and read-out)."""
        head = {
            "id": record.run.id,
            "path": str(record.run.path),
            "status": record.status,
            "meta": record.meta.to_json(),
            "config": self.config,
            "metrics": record.metrics,
            "pictures": [str(record.run.path / name) for name in self.pictures],
        }
        body: dict[str, Any]
        if record.meta.is_sweep:
            body = {
                "grid": self.grid.to_json() if self.grid is not None else None,
                "summary": [p.to_json() for p in self.summary or []] or None,
                "curves": [c.to_json() for c in self.curves] if self.curves else None,
                "first_solved": self.first_solved(),
                "partial": self.partial,
                "remaining": self.remaining,
            }
        else:
            body = {"parameters": self.params, "readout": readout}
        return {**head, **body, "problem": "; ".join(self.problems) or None}

    def first_solved(self) -> list[dict[str, Any]] | None:
        """Per grid point of sweep.pt: its grid and each seed's first solved epoch (-1: never),
        in the seeds' order; None where sweep.pt holds none."""
        if self.arrays is None or not any("first_solved" in p for p in self.arrays.points):
            return None
        return [
            {"grid": p["grid"], "seeds": self.arrays.seeds, "epochs": p["first_solved"].tolist()}
            for p in self.arrays.points
            if "first_solved" in p
        ]


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
        arrays = attempt(SWEEP, lambda r: read_sweep_arrays(r, meta.n_seeds), needed=done)
        out.arrays = arrays
        out.curves = attempt(CURVES, read_curves, needed=False)
        if not done:
            out.problems.extend(_chunk_problems(run))
            out.remaining = _remaining(out.grid, out.summary)
    else:
        out.params = attempt(CHECKPOINT, read_params, needed=done)
    out.pictures = pictures(run)
    return out


def pictures(run: Run) -> list[str]:
    """The names of the run's pictures: its regular *.png files (prediction.png, units.png,
    a task's own such as spectrum.png), sorted; links and anything else are not listed."""
    try:
        entries = list(os.scandir(run.path))
    except OSError:
        return []
    return sorted(
        e.name for e in entries if e.name.endswith(".png") and e.is_file(follow_symlinks=False)
    )


def _chunk_problems(run: Run) -> list[str]:
    """The finished chunks of a sweep that did not complete, each read whole (as `--resume`
    reads them): one problem per chunk that cannot be."""
    folder = run.path / CHUNKS
    try:
        names = sorted(e.name for e in os.scandir(folder) if e.name.endswith(".pt"))
    except OSError:
        return []
    problems = []
    for name in names[:MAX_CHUNK_FILES]:
        try:
            load_tensors(run.path, f"{CHUNKS}/{name}")
        except RunProblem as exc:
            problems.append(str(exc))
    return problems


def _remaining(
    grid: Grid | None, summary: list[SweepPoint] | None
) -> list[dict[str, GridValue]] | None:
    """The grid points a sweep has not finished, where it has finished some."""
    if grid is None or not summary:
        return None
    finished = [p.grid for p in summary]
    return [p for p in grid.points if p not in finished]
