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

Every file is written to a temporary name and renamed, so a crash never leaves half a file.
Run ids start with the local time, so they sort by time; `mkdir` is atomic, so two processes
never get the same directory (the second gets a `-002` suffix).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tiny_cli.errors import TinyError, did_you_mean

ENV_VAR = "TINY_RUNS_DIR"
CONFIG, META, METRICS, CHECKPOINT = "config.yaml", "run.json", "metrics.json", "model.pt"
SWEEP, SUMMARY, GRID = "sweep.pt", "summary.json", "grid.json"
PREDICTION = "prediction.png"


def root(path: Path | None = None) -> Path:
    """`--runs-dir`, else $TINY_RUNS_DIR, else ./runs."""
    return path or Path(os.environ.get(ENV_VAR) or "runs")


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class Run:
    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    def write_json(self, name: str, data: Any) -> None:
        atomic_write(self.path / name, (json.dumps(data, indent=2) + "\n").encode())

    def read_json(self, name: str) -> Any:
        return json.loads((self.path / name).read_text(encoding="utf-8"))

    def write_text(self, name: str, text: str) -> None:
        atomic_write(self.path / name, text.encode())

    def write_bytes(self, name: str, data: bytes) -> Path:
        atomic_write(self.path / name, data)
        return self.path / name

    def read_text(self, name: str) -> str:
        return (self.path / name).read_text(encoding="utf-8")

    def update_meta(self, **changes: Any) -> dict[str, Any]:
        meta = self.read_json(META) if (self.path / META).exists() else {}
        meta.update(changes)
        self.write_json(META, meta)
        return meta

    def save_state(self, state: dict[str, Any]) -> None:
        import io

        import torch

        buf = io.BytesIO()
        torch.save({k: v.detach().cpu().clone() for k, v in state.items()}, buf)
        atomic_write(self.path / CHECKPOINT, buf.getvalue())

    def load_state(self) -> dict[str, Any]:
        return self.load_tensors(CHECKPOINT)

    def save_tensors(self, name: str, data: dict[str, Any]) -> None:
        """Any dict of tensors, lists and plain values; loadable with weights_only=True."""
        import io

        import torch

        buf = io.BytesIO()
        torch.save(data, buf)
        atomic_write(self.path / name, buf.getvalue())

    def load_tensors(self, name: str) -> dict[str, Any]:
        import torch

        data: dict[str, Any] = torch.load(self.path / name, weights_only=True)
        return data


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


def all_ids(runs_root: Path) -> list[str]:
    if not runs_root.is_dir():
        return []
    return sorted(p.name for p in runs_root.iterdir() if p.is_dir() and not p.name.startswith("."))


def resolve(runs_root: Path, ref: str) -> Run:
    """A run id, a unique prefix of one, or `latest` -> the Run. Never leaves `runs_root`."""
    if not ref or ref in (".", "..") or "/" in ref or "\\" in ref or ref.startswith("."):
        raise TinyError(f"run '{ref}': not a run id (expected an id, a prefix of one, or latest)")
    ids = all_ids(runs_root)
    if not ids:
        raise TinyError(f"run '{ref}': no runs in {runs_root}")
    if ref == "latest":
        return Run(runs_root / ids[-1])
    if ref in ids:
        return Run(runs_root / ref)
    matches = [i for i in ids if i.startswith(ref)]
    if len(matches) == 1:
        return Run(runs_root / matches[0])
    if matches:
        shown = ", ".join(matches[:3]) + (", ..." if len(matches) > 3 else "")
        raise TinyError(f"run '{ref}': ambiguous prefix, matches {len(matches)} runs: {shown}")
    raise TinyError(f"run '{ref}': no such run in {runs_root}{did_you_mean(ref, ids)}")


@dataclass
class RunRecord:
    """What `tiny runs` and `tiny inspect` show; `problem` says what could not be read."""

    run: Run
    meta: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    problem: str = ""


def read(run: Run) -> RunRecord:
    record = RunRecord(run)
    for name, attr in ((META, "meta"), (METRICS, "metrics")):
        try:
            value = run.read_json(name)
        except FileNotFoundError:
            if name == METRICS and record.meta.get("status") != "completed":
                continue  # a running or stopped run has no final metrics yet
            record.problem = record.problem or f"{name} is missing"
            continue
        except (OSError, ValueError) as exc:
            record.problem = record.problem or f"{name} is unreadable ({type(exc).__name__})"
            continue
        if isinstance(value, dict):
            setattr(record, attr, value)
        else:
            record.problem = record.problem or f"{name} is not a JSON object"
    return record


def list_records(runs_root: Path) -> list[RunRecord]:
    return [read(Run(runs_root / i)) for i in all_ids(runs_root)]
