"""A sweep's solved seeds grouped by canonical form: `tiny inspect SWEEP --solutions`.

Per grid point, the seeds whose outcome is `solved` are put in canonical form
(`canonical.canonical_many`: dead units out, ReLU units rescaled to incoming max-abs 1, equal
units merged, units sorted), then taken to the grouping tolerance SOLUTION_TOL (5%) by
`mechanism`: hidden layer by hidden layer, on the domain,

- a unit whose every term in the next layer is under 5% of that next unit's largest term
  (|weight| x the unit's largest |activation|; other inputs alike, the bias as |bias|) is
  dropped, as a dead unit is: it changes the output by little;
- units whose pre-activations agree within 5% of their largest |pre-activation| are merged
  (outgoing weights summed): one unit's work split over two of nearly one direction;
- each remaining unit's **regions**: where its pre-activation is clearly positive (over 5%
  of its largest |pre-activation|), clearly negative, or in between (either). For a ReLU
  unit, where it is on and where it is off: the pieces of the piecewise-linear function.
  Identity units carve no regions (all "either").

Seeds are grouped greedily in seed order: a seed joins the first group whose representative
(the group's first seed) it **matches**, else it starts a group. Two seeds match when their
layers have the same number of units and, in every hidden layer, the units can be paired
(units in canonical order, else any pairing: a bipartite matching) so that no input of the
domain is clearly on for one unit of a pair and clearly off for the other. A group is shown
by its simplest member (fewest units in canonical form, then the lowest seed) and that seed's
`readout.read` formula, for the MAX_FORMULAS largest groups of a grid point only (sympy is
slow on a deep net; the others have their seeds, and no formula).

Why this rule, and not a distance between canonical parameters. Every seed grouped is solved,
so all compute the target on the domain; what can differ is how. Two solved nets whose units
carve the same regions compute the same function with the same pieces: one mechanism, even
where their coefficients differ. A parameter tolerance splits what gradient descent leaves
unsettled: min's alpha family is a continuum (any tolerance cuts it into arbitrary slices),
and a unit the net does not need points anywhere. On sweeps of many seeds, a 5% bound on
every canonical parameter (relative to its layer's largest) puts about every other solved
seed of min in a group of its own; regions make a handful of groups for min (its two-unit
mixtures, a - ReLU(a - b), b - ReLU(b - a)), with the alpha histogram showing where the
seeds sit in the family, and many for a noisy is_even, whose chains really do put their
breakpoints at different integers. The 5% band keeps inputs where a unit is nearly 0 (the
diagonal a = b for min's units) from splitting groups over rounding. The rule is not
transitive: the members of a group each match its first seed, not always each other.

Computed when first asked for and stored in the sweep directory: `solutions.json` (the same
data as `--json`) and a TensorBoard event file of its own (TEXT `solutions`, HISTOGRAMS
`solutions/alpha`, step = grid point). Both are made again when sweep.pt changes (its size
or mtime) or the rule does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tiny_cli import config
from tiny_cli.config.grid import grid_words
from tiny_cli.read import readout
from tiny_cli.read.arrays import Dense, Net, activate, domain, from_state
from tiny_cli.read.canonical import canonical_many
from tiny_cli.spec import activations
from tiny_cli.store import runs

SOLUTION_TOL = 0.05
MAX_FORMULAS = 5  # per grid point: formulas of the largest groups only
RULE = (
    f"v2, {MAX_FORMULAS} formulas: solved seeds in canonical form at tolerance "
    f"{SOLUTION_TOL:g} (units under it of "
    "the next layer dropped, units of pre-activations within it merged), grouped greedily in "
    "seed order: a seed matches a group's first seed when each layer has as many units and "
    "they pair up carving the same regions (no input clearly on for one, clearly off for "
    "the other; clearly: beyond the tolerance of the unit's largest |pre-activation|)"
)


@dataclass(frozen=True)
class Mechanism:
    """A canonical net at the grouping tolerance and its hidden units' regions: per hidden
    layer, int8 [units, inputs of the domain], 1 clearly on, -1 clearly off, 0 either."""

    net: Net
    regions: tuple[np.ndarray, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(la.width for la in self.net.layers)


def mechanism(net: Net, x: np.ndarray, tol: float = SOLUTION_TOL) -> Mechanism:
    """`net` (canonical) at tolerance `tol`: negligible units dropped, units of one
    pre-activation merged, the regions of the rest (module docstring)."""
    xt = np.ascontiguousarray(x.T, dtype=np.float64)
    reach_in = np.abs(xt).max(axis=1, initial=0.0)
    layers = list(net.layers)
    regions = []
    h = xt
    for i in range(len(layers) - 1):
        layer, nxt = layers[i], layers[i + 1]
        z = layer.weight @ h + layer.bias[:, None]
        top = np.abs(activate(layer.activation, z.copy())).max(axis=1, initial=0.0)
        off = net.reads_inputs(i + 1)
        terms = np.abs(nxt.weight) * np.concatenate((reach_in[:off], top))
        big = np.maximum(terms.max(axis=1, initial=0.0), np.abs(nxt.bias))
        keep = np.flatnonzero(~(terms[:, off:] <= tol * big[:, None]).all(axis=0))
        span = np.abs(z).max(axis=1, initial=0.0)
        merged: list[list[int]] = []
        for j in keep:
            for g in merged:
                if np.abs(z[g[0]] - z[j]).max(initial=0.0) <= tol * max(span[g[0]], span[j]):
                    g.append(int(j))
                    break
            else:
                merged.append([int(j)])
        first = [g[0] for g in merged]
        out = nxt.weight[:, off:]
        columns = (
            np.stack([out[:, g].sum(axis=1) for g in merged], axis=1) if merged else out[:, :0]
        )
        layers[i] = Dense(
            layer.weight[first], layer.bias[first], layer.activation, tuple((j,) for j in first)
        )
        layers[i + 1] = Dense(
            np.concatenate((nxt.weight[:, :off], columns), axis=1),
            nxt.bias,
            nxt.activation,
            nxt.origin,
        )
        z, band = z[first], tol * span[first][:, None]
        sign = np.where(z > band, 1, np.where(z < -band, -1, 0)).astype(np.int8)
        linear = activations.get(layer.activation).linear
        regions.append(np.zeros_like(sign) if linear else sign)
        h = activate(layer.activation, z)
    return Mechanism(Net(net.inputs, tuple(layers), net.skip), tuple(regions))


def _pairs_up(ok: np.ndarray) -> bool:
    """Whether the units of two layers pair up (`ok`[a, b]: unit a may pair with unit b):
    a perfect bipartite matching, by augmenting paths."""
    owner = [-1] * ok.shape[1]

    def place(a: int, seen: set[int]) -> bool:
        for b in np.flatnonzero(ok[a]):
            if b not in seen:
                seen.add(int(b))
                if owner[b] < 0 or place(owner[b], seen):
                    owner[b] = a
                    return True
        return False

    return all(place(a, set()) for a in range(len(ok)))


def matches(rep: Mechanism, other: Mechanism) -> bool:
    """The module docstring's match: same widths, units pairing up region by region."""
    if rep.shape != other.shape:
        return False
    for a, b in zip(rep.regions, other.regions, strict=True):
        clash = (a[:, None, :] * b[None, :, :] == -1).any(axis=2)  # [units of rep, of other]
        if clash.diagonal().any() and not _pairs_up(~clash):
            return False
    return True


@dataclass
class _Shape:
    """The groups whose representatives have one shape, their regions stacked so that a
    seed is checked against all of them at once in canonical order first."""

    groups: list[int] = field(default_factory=list)
    reps: list[Mechanism] = field(default_factory=list)
    stacked: np.ndarray | None = None

    def add(self, group: int, rep: Mechanism) -> None:
        self.groups.append(group)
        self.reps.append(rep)
        self.stacked = None

    def match(self, seed: Mechanism) -> int | None:
        if not self.groups:
            return None
        if self.stacked is None:
            self.stacked = np.stack([_all_units(r) for r in self.reps])
        same_order = ~(self.stacked * _all_units(seed) == -1).any(axis=(1, 2))
        if same_order.any():
            return self.groups[int(np.argmax(same_order))]
        for group, rep in zip(self.groups, self.reps, strict=True):
            if matches(rep, seed):
                return group
        return None


def _all_units(m: Mechanism) -> np.ndarray:
    """Every hidden unit's regions, layer after layer: [units, inputs of the domain]."""
    return np.concatenate(m.regions) if m.regions else np.zeros((0, 0), np.int8)


def group(mechanisms: Sequence[Mechanism]) -> list[list[int]]:
    """Indices of `mechanisms` grouped by the rule of the module docstring, each group in
    order, the groups in the order of their first member."""
    groups: list[list[int]] = []
    shapes: dict[tuple[int, ...], _Shape] = {}
    for k, m in enumerate(mechanisms):
        shape = shapes.setdefault(m.shape, _Shape())
        found = shape.match(m)
        if found is None:
            shape.add(len(groups), m)
            groups.append([k])
        else:
            groups[found].append(k)
    return groups


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def point(
    cfg: config.ExperimentConfig, label: str, grid: dict[str, Any], seeds: Sequence[int],
    params: dict[str, Any], solved: Sequence[int],
) -> runs.SolutionPoint:  # fmt: skip
    """One grid point: `params` [S, *shape] of every seed, `solved` the indices of the
    solved ones. Each group is shown by its simplest member (fewest units in canonical
    form, then the lowest seed); the formula (sympy: slow on a deep net) is made
    for the representatives of the MAX_FORMULAS largest groups only."""
    arch, task = cfg.arch, cfg.task
    x, y = domain(task)
    mine = {k: v.detach().cpu().double().numpy()[list(solved)] for k, v in params.items()}
    nets = canonical_many(arch, mine, x)
    found = sorted(group([mechanism(net, x) for net in nets]), key=lambda g: (-len(g), g[0]))
    alpha: list[float | None] | None = [] if solved else None
    for k in range(len(solved)):  # the task's alpha (min/max: where in the family), if any
        raw = from_state(arch, {name: v[k] for name, v in mine.items()})
        meaning = task.meaning(raw, x, y, {})
        if "alpha" not in meaning or alpha is None:
            alpha = None
            break
        alpha.append(_finite(meaning["alpha"]) if meaning.get("in_family", True) else None)
    groups = []
    for n, members in enumerate(found):
        rep = min(members, key=lambda k: (sum(la.width for la in nets[k].layers), k))
        read = (
            readout.read(arch, {name: v[rep] for name, v in mine.items()}, task)
            if n < MAX_FORMULAS
            else None
        )
        groups.append(
            runs.SolutionGroup(
                count=len(members),
                representative=seeds[solved[rep]],
                formula=read.formula if read else None,
                exact=read.exact if read else None,
                max_error=read.max_error if read else None,
                seeds=[seeds[solved[k]] for k in members],
                alpha=alpha[rep] if alpha is not None else None,
            )
        )
    return runs.SolutionPoint(
        grid=grid,
        label=label,
        seeds=len(seeds),
        solved_seeds=[seeds[i] for i in solved],
        groups=groups,
        alpha=alpha,
    )


def compute(run: runs.Run, arrays: runs.SweepArrays) -> runs.Solutions:
    """Every grid point of a sweep (its per-point configs rebuilt from config.yaml and the
    point's grid values, as `tiny sweep --resume` does)."""
    solved_code = arrays.outcomes.index("solved") if "solved" in arrays.outcomes else -1
    points = []
    for p in arrays.points:
        grid = p["grid"]
        overrides = [(k, v, f"--grid {k}={runs.show_value(v)}") for k, v in grid.items()]
        cfg, _ = config.load(str(run.path / runs.CONFIG), overrides)
        label = grid_words(grid) or "base config"
        solved = [i for i, code in enumerate(p["outcome"].tolist()) if code == solved_code]
        points.append(point(cfg, label, grid, arrays.seeds, p["params"], solved))
    return runs.Solutions(sweep=run.id, rule=RULE, tolerance=SOLUTION_TOL, source={}, points=points)
