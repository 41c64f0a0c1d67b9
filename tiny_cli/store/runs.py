"""The runs directory: `runs/<run-id>/`, made (`create`), listed and found (`find`) here.

    <run-id>/
      config.yaml         resolved config (file + overrides): `tiny train config.yaml` repeats it
      run.json            kind, status, epochs, command line, versions, times
      metrics.json        final metrics
      model.pt            final state_dict (torch.load(..., weights_only=True))
      prediction.png      the final picture of the model against the truth
      units.png           the hidden units' activations at the end (none without hidden units)
      spectrum.png        a task's own picture (`Task.pictures`: modular's units by frequency)
      events.out.tfevents.*   TensorBoard scalars, layout, pictures, hparams (events.py, hparams.py)
      .lock               locked while a process trains or resumes it (locks.py)

A sweep (`tiny sweep`) is a directory of the same kind, with `kind: sweep` in its run.json:

    <sweep-id>/
      config.yaml         the resolved base config (file + overrides, before the grid)
      run.json            kind sweep, status, seeds, grid, kept runs, command line, versions
      grid.json           the grid: key -> values, and the points it spans
      summary.json        per grid point: outcome counts and fractions, loss quantiles, time
      metrics.json        over all points: seeds, solved fraction, median final loss
      sweep.pt            per seed and point: final parameters, loss, outcome, first solved
                          epoch (one file)
      curves.json         per grid point and recorded epoch: metric quantiles over the
                          seeds, fraction solved so far (train/curves.py)
      events.out.tfevents.*   outcome counts per grid point, final-loss histograms, the
                          curves as scalars with their margin charts (CUSTOM SCALARS)
      solutions.json      solved seeds grouped by canonical form (made by inspect --solutions,
                          with an events.out.tfevents.*.tiny-solutions file beside it)

Every file is written to a temporary name and renamed, so a crash never leaves half a file.
Run ids start with the local time, so they sort by time; `mkdir` is atomic, so two processes
never get the same directory (the second gets a `-002` suffix).

Only the store reads or writes these directories, one job per module: files.py (the names
above, atomic writes, bounded reads, `Run`), views.py (typed views of the files and their
JSON), records.py (a run's record and liveness, `details`), this module (ids, creating,
listing, finding), events.py (the event files). This module re-exports the names of the
first three, so callers write `runs.NAME` whichever module holds it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from tiny_cli.errors import TinyError, did_you_mean, echo_path
from tiny_cli.store.files import (
    CHECKPOINT,
    CHECKPOINT_STATE,
    CONFIG,
    CURVES,
    GRID,
    MAX_DEPTH,
    MAX_NODES,
    META,
    METRICS,
    PREDICTION,
    SOLUTIONS,
    SUMMARY,
    SWEEP,
    TENSOR_CAP,
    TEXT_CAP,
    UNITS,
    Run,
    RunProblem,
    atomic_write,
    load_tensors,
    read_file,
    read_json,
    read_json_object,
    read_yaml_mapping,
)
from tiny_cli.store.records import (
    CHUNKS,
    HEARTBEAT_EVERY,
    HEARTBEAT_STALE,
    STALE,
    STARTING,
    Details,
    Heartbeat,
    RunRecord,
    details,
    latest,
    process_identity,
    read,
)
from tiny_cli.store.views import (
    CurvePoint,
    Grid,
    GridValue,
    Kept,
    MetricValue,
    Nested,
    RunMeta,
    SeedResult,
    SolutionGroup,
    SolutionPoint,
    Solutions,
    SweepArrays,
    SweepPoint,
    check_metrics,
    read_config,
    read_curves,
    read_grid,
    read_meta,
    read_metrics,
    read_params,
    read_solutions,
    read_summary,
    read_sweep_arrays,
    show_value,
    to_datetime,
)

__all__ = [
    "CHECKPOINT",
    "CHECKPOINT_STATE",
    "CHUNKS",
    "CONFIG",
    "CURVES",
    "ENV_VAR",
    "GRID",
    "HEARTBEAT_EVERY",
    "HEARTBEAT_STALE",
    "MAX_DEPTH",
    "MAX_NODES",
    "META",
    "METRICS",
    "PREDICTION",
    "SOLUTIONS",
    "STALE",
    "STARTING",
    "SUMMARY",
    "SWEEP",
    "TENSOR_CAP",
    "TEXT_CAP",
    "UNITS",
    "CurvePoint",
    "Details",
    "Grid",
    "GridValue",
    "Heartbeat",
    "Kept",
    "MetricValue",
    "Nested",
    "Run",
    "RunMeta",
    "RunProblem",
    "RunRecord",
    "SeedResult",
    "SolutionGroup",
    "SolutionPoint",
    "Solutions",
    "SweepArrays",
    "SweepPoint",
    "all_ids",
    "atomic_write",
    "check_metrics",
    "create",
    "details",
    "find",
    "latest",
    "list_records",
    "load_tensors",
    "new_id",
    "process_identity",
    "read",
    "read_config",
    "read_curves",
    "read_file",
    "read_grid",
    "read_json",
    "read_json_object",
    "read_meta",
    "read_metrics",
    "read_params",
    "read_solutions",
    "read_summary",
    "read_sweep_arrays",
    "read_yaml_mapping",
    "root",
    "short_ids",
    "show_value",
    "to_datetime",
]

ENV_VAR = "TINY_RUNS_DIR"


def root(path: Path | None = None) -> Path:
    """`--runs-dir`, else $TINY_RUNS_DIR, else ./runs."""
    return path or Path(os.environ.get(ENV_VAR) or "runs")


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
    the full id when even that is shared, or for an id not made by tiny. `find` takes
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
    except FileNotFoundError:
        return []
    except NotADirectoryError:  # a file is no runs directory, not an empty one
        raise TinyError(f"runs directory {echo_path(runs_root)}: not a directory") from None
    except OSError as exc:
        raise TinyError(f"runs directory {runs_root}: cannot be listed ({exc.strerror})") from None
    return sorted(
        e.name for e in entries if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
    )


def list_records(runs_root: Path) -> list[RunRecord]:
    return [read(Run(runs_root / i)) for i in all_ids(runs_root)]


def find(runs_root: Path, ref: str) -> Run:
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
