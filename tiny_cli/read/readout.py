"""The read-out of one net: its canonical form, formula, meaning for the task, diagnosis.

Pure functions of an `Arch`, a state_dict and a `Task` (no files). The domain is always the
task's training inputs, `task.data()`; every claim ("dead", "exact", "same function") is
checked on all of it, in float64. The stages are modules of their own: `read.arrays` (the
net as arrays, its forward pass), `read.canonical`, `read.formula`, `read.diagnose`,
`read.match` (distances); the meaning is the task's (`Task.meaning`).

The formula is labelled **exact** when it agrees with the net on the whole domain within
`tolerance` = TOL_REL * max(1, max |net output|). When 3 digits are not exact, 4, 5 and 6
are tried (each with a 10x stricter snap) and the first exact one is kept; if none is, the
formula is approximate, at 6 digits, with its max error. The claims hold on the task's
training inputs, which `Task.domain_text` names (the 1,000 training samples, or the whole
input box); the read-out keeps that text as `domain`.

The **mechanism** is the net as it computes, before the Abs and Min/Max rewrites
(`formula.expressions(..., fold=False)`, read with `ReLU`), kept when it reads otherwise
than the formula and is short (at most MECHANISM_UNITS hidden units, MECHANISM_CHARS
characters): min's `Min(a, b)` is `b - ReLU(b - a)` or `a - ReLU(a - b)`, which the formula
alone cannot tell apart.

A net whose formula would be too big to build or read (`formula.too_big`: FORMULA_PARAMS,
FORMULA_TERMS) has none: its read-out says so (`formula_skipped`) and has the rest
(canonical form, meaning, diagnosis).

`read_dict` is the sidecar's "readout" job (`tiny_cli.sidecar.JOBS`): it runs without torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tiny_cli.read.arrays import Net, Pass, domain, forward, from_state, tolerance_of
from tiny_cli.read.canonical import MERGE_TOL, Canonical, canonical, dead_units
from tiny_cli.read.diagnose import not_converged, outcome
from tiny_cli.read.formula import (
    DIGITS,
    as_net,
    display_scaled,
    expressions,
    formula_text,
    latex,
    reading,
    rounded,
    too_big,
)
from tiny_cli.read.match import parameter_distance
from tiny_cli.spec.models import Arch

if TYPE_CHECKING:
    from tiny_cli.tasks import Task

MECHANISM_UNITS = 16  # hidden units (canonical) of a net whose mechanism is shown
MECHANISM_CHARS = 200  # the longest mechanism shown


@dataclass
class Readout:
    """Everything about one net: canonical form, formula, diagnosis, meaning."""

    canonical: Canonical
    expressions: list[Any]  # sympy expressions, one per output
    formula: str
    latex: str
    exact: bool
    max_error: float
    tolerance: float
    digits: int  # significant digits of the rounding (DIGITS: the coarsest that is exact)
    # When more than DIGITS[0] digits were needed: the 3-digit formula and its max error,
    # the article's "a - 1.41 * 0.71 ReLU(a - b) ~ a - ReLU(a - b)".
    approximation: dict[str, Any] | None = None
    meaning: dict[str, Any] = field(default_factory=dict)  # the task's (`Task.meaning`)
    diagnosis: dict[str, Any] = field(default_factory=dict)
    task: Task | None = None  # whose meaning it is: it says how its lines read (not stored)
    mechanism: str | None = None  # the net before the rewrites, when that reads otherwise
    domain: str = "the domain"  # which inputs the claims hold on (`Task.domain_text`)
    skipped: str = ""  # why there is no formula (`formula.too_big`): "" when there is one
    # With a test set: how right the net is on the training and on the test inputs
    # (`train.data.scores`); the other claims hold on the training inputs.
    split: dict[str, Any] | None = None

    def to_json(self, names: Sequence[str]) -> dict[str, Any]:
        """`tiny export RUN`: the canonical net (`export`), its inputs named `names`."""
        return export(self, names)

    def as_dict(self) -> dict[str, Any]:
        """The JSON of `tiny inspect --json`'s `readout`."""
        return {
            "formula": self.formula,
            "latex": self.latex,
            "exact": self.exact,
            "max_error": self.max_error if not self.skipped else None,
            "tolerance": self.tolerance,
            "digits": self.digits if not self.skipped else None,
            "domain": self.domain,
            **({"mechanism": self.mechanism} if self.mechanism else {}),
            **({"formula_skipped": self.skipped} if self.skipped else {}),
            **({"approximation": self.approximation} if self.approximation else {}),
            "dead_units": self.canonical.dead,
            **self.meaning,
            **self.diagnosis,
            **({"split": self.split} if self.split else {}),
        }


@dataclass(frozen=True)
class _Rounding:
    """The formula's coefficients at the coarsest exact rounding (else the finest)."""

    coeffs: list[list[list[Any]]]  # sympy numbers, per layer, unit and column (`rounded`)
    digits: int
    error: float  # max |formula - net| on the domain
    approximation: dict[str, Any] | None  # the 3-digit formula, when it is not exact


def _round(
    shown: Canonical, run: Pass, x: np.ndarray, tol: float, names: Sequence[str]
) -> _Rounding:
    """DIGITS tried in turn: the first whose formula is within `tol` of the net is kept."""
    approximation = None
    for digits in DIGITS:
        coeffs = rounded(shown, digits)
        formula_net = as_net(shown, coeffs)
        if not shown.loose_merge and np.array_equal(formula_net.params(), shown.net.params()):
            # Rounding changed no coefficient: the formula is the canonical net, which is
            # the net on the domain (dead units are 0 there, rescaling and merging exact).
            error = 0.0
        else:
            out = forward(formula_net, x).out
            error = float(np.abs(out - run.out).max(initial=0.0))
        if error <= tol:
            break
        if digits == DIGITS[0]:
            first = formula_text(expressions(shown.net, coeffs, names))
            approximation = {"formula": first, "max_error": error, "digits": digits}
    return _Rounding(coeffs, digits, error, approximation)


def read(
    arch: Arch,
    state: Mapping[str, Any],
    task: Task,
    *,
    metrics: Mapping[str, Any] | None = None,
    init_state: Mapping[str, Any] | None = None,
    losses: Sequence[float] | None = None,
    diverged: bool = False,
    construction: tuple[Arch, Mapping[str, Any]] | None = None,
    data: tuple[np.ndarray, np.ndarray] | None = None,
    verdict: str | None = None,
    split: Mapping[str, Any] | None = None,
) -> Readout:
    """Canonical form, formula (exact or approximate), meaning and diagnosis of one net.

    `metrics`: the run's final metrics (the task's meaning may read them: the correct
    interval of integer tasks); `init_state`: its initial weights (dead units at init);
    `losses`: its loss per logged epoch (not converged?); `construction`: a hand-made net
    to measure the distance to. Without torch (in the sidecar): `data`, the task's (x, y)
    as `domain` gives them, and `verdict`, the net's `outcome`, computed where torch is.
    With a test set (a config's `data:` section), `data` is the training inputs and `split`
    says how right the net is on each side (`train.data.scores`).
    """
    x, y = data if data is not None else domain(task)
    net = from_state(arch, state)
    run = forward(net, x)
    can = canonical(net, x, run)
    tol = tolerance_of(run.out)
    skipped = too_big(can.net)
    mechanism = None
    if skipped:
        fit, exprs = _Rounding([], 0, math.inf, None), []
    else:
        shown = display_scaled(can)
        names = task.unit_names()
        fit = _round(shown, run, x, tol, names)
        exprs = expressions(shown.net, fit.coeffs, names)
        mechanism = _mechanism(shown, fit.coeffs, names, exprs)
    meaning = task.meaning(net, x, y, metrics or {})
    diagnosis: dict[str, Any] = {
        "outcome": verdict if verdict is not None else outcome(task, run, x, y, net, diverged)
    }
    if init_state is not None:
        init = from_state(arch, init_state)
        diagnosis["dead_units_at_init"] = dead_units(init, forward(init, x))
    if losses is not None:
        diagnosis["not_converged"] = not_converged(losses)
    if construction is not None and construction[0] == arch:
        diagnosis["distance_to_construction"] = distance(net, from_state(*construction), x, run)
    return Readout(
        can,
        exprs,
        formula_text(exprs) if exprs else "",
        latex(exprs) if exprs else "",
        fit.error <= tol,
        fit.error,
        tol,
        fit.digits,
        fit.approximation,
        meaning,
        diagnosis,
        task,
        mechanism,
        task.domain_text() if not split else f"the {len(x):,} training inputs",
        skipped,
        dict(split) if split else None,
    )


def _mechanism(
    shown: Canonical, coeffs: list[list[list[Any]]], names: Sequence[str], exprs: list[Any]
) -> str | None:
    """The net as it computes, when that reads otherwise than the formula (module
    docstring); None for a net too big or a mechanism too long to read in a line or two."""
    if sum(layer.width for layer in shown.net.layers[:-1]) > MECHANISM_UNITS:
        return None
    text = reading(expressions(shown.net, coeffs, names, fold=False))
    return text if text != reading(exprs) and len(text) <= MECHANISM_CHARS else None


def read_dict(
    arch: Arch, state: Mapping[str, Any], task: Task, options: Mapping[str, Any]
) -> dict[str, Any]:
    """`read(...).as_dict()`: the sidecar's "readout" job (plain data back)."""
    return read(arch, state, task, **options).as_dict()


def distance(net: Net, other: Net, x: np.ndarray, run: Pass | None = None) -> dict[str, Any]:
    """Canonical-form parameter distance and function-level max difference on the domain."""
    run = run or forward(net, x)
    theirs = forward(other, x)
    diff = float(np.abs(run.out - theirs.out).max(initial=0.0))
    tol = tolerance_of(theirs.out)
    dist = parameter_distance(canonical(net, x, run).net, canonical(other, x, theirs).net)
    return {"parameters": dist, "max_abs_difference": diff, "same_function": diff <= tol}


def export(readout: Readout, names: Sequence[str]) -> dict[str, Any]:
    """The canonical net as JSON: layers, their units' merged origins, the rule, and what
    the net means for its task (`Task.meaning`: lt's threshold, min's alpha, modular's
    frequencies, ...)."""
    net = readout.canonical.net
    return {
        "inputs": list(names),
        "skip_input": net.skip,
        "layers": [
            {
                "activation": layer.activation,
                "weight": layer.weight.tolist(),
                "bias": layer.bias.tolist(),
                "units_from": [list(o) for o in layer.origin],
            }
            for layer in net.layers
        ],
        "dead_units": readout.canonical.dead,
        "formula": readout.formula,
        "latex": readout.latex,
        "exact": readout.exact,
        "max_error": readout.max_error if not readout.skipped else None,
        **({"formula_skipped": readout.skipped} if readout.skipped else {}),
        "tolerance": readout.tolerance,
        "meaning": readout.meaning,
        "rule": "ReLU/leaky/identity units rescaled to incoming max-abs 1, dead units removed, "
        f"equal directions (within {MERGE_TOL:g}) merged, units sorted by incoming vector",
    }
