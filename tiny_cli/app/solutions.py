"""A sweep's solutions, computed once and kept: `tiny inspect SWEEP --solutions`.

`read.solutions` groups the solved seeds; this stage stores the result beside sweep.pt
(solutions.json, and an event file for TensorBoard's TEXT and HISTOGRAMS tabs) and reuses it
while sweep.pt and the rule are unchanged.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from tiny_cli.read import solutions as grouping
from tiny_cli.show import render
from tiny_cli.store import runs

if TYPE_CHECKING:
    from torch import Tensor


def solutions(run: runs.Run, n_seeds: int | None = None) -> tuple[runs.Solutions, str | None]:
    """The sweep's solutions: from solutions.json when it is still that of sweep.pt and of
    this rule, else computed and stored (the event file first, then solutions.json, which
    names it). Returns them and, if they could not be stored, why (they are still right)."""
    source = _source(run)
    cached = _cached(run, source)
    if cached is not None:
        return cached, None
    from tiny_cli.store.events import write_solutions  # torch: only to compute them

    found = grouping.compute(run, runs.read_sweep_arrays(run, n_seeds))
    steps = [(render.solutions_markdown(p), _alphas(p)) for p in found.points]
    try:
        events = write_solutions(run.path, steps)
        found = found.model_copy(update={"source": source or {}, "events": events.name})
        run.write_json(runs.SOLUTIONS, found.model_dump(mode="json"))
    except OSError as exc:
        return found, f"{runs.SOLUTIONS} not stored in {run.path} ({exc.strerror or exc})"
    return found, None


def _source(run: runs.Run) -> dict[str, int] | None:
    """What the cached solutions were computed from: sweep.pt's size and mtime."""
    try:
        info = os.lstat(run.path / runs.SWEEP)
    except OSError:
        return None
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns}


def _cached(run: runs.Run, source: dict[str, int] | None) -> runs.Solutions | None:
    if source is None or not os.path.lexists(run.path / runs.SOLUTIONS):
        return None
    try:
        found = runs.read_solutions(run)
    except runs.RunProblem:
        return None  # a cache that cannot be read is made again
    fresh = found.source == source and found.rule == grouping.RULE and found.sweep == run.id
    if not fresh or found.events is None or not (run.path / found.events).is_file():
        return None
    return found


def _alphas(p: runs.SolutionPoint) -> Tensor | None:
    import torch

    if p.alpha is None:
        return None
    return torch.tensor([a for a in p.alpha if a is not None], dtype=torch.float64)
