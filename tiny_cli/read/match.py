"""Nets side by side: hidden units matched, distances, and `tiny compare`.

Two nets of one architecture can compute the same function with their hidden units in
another order: `align` matches one's units to the other's, layer by layer (exact search up to
7 units, greedy beyond), padding a narrower layer with zero units (a zero ReLU unit computes
nothing), so `parameter_distance` measures what differs, not the order. `compare` puts any
number of nets against the first, on the first net's domain (`Compared`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tiny_cli.read.arrays import (
    Dense,
    Net,
    domain,
    forward,
    from_state,
    replace_columns,
    tolerance_of,
)
from tiny_cli.read.canonical import canonical
from tiny_cli.read.diagnose import outcome
from tiny_cli.spec.models import Arch

if TYPE_CHECKING:
    from tiny_cli.tasks import Task


def _widen(net: Net, i: int, width: int) -> Net:
    """Hidden layer i padded with zero units (no weights in or out) to `width` units."""
    layers = list(net.layers)
    layer, nxt = layers[i], layers[i + 1]
    extra = width - layer.width
    layers[i] = Dense(
        np.concatenate((layer.weight, np.zeros((extra, layer.weight.shape[1])))),
        np.concatenate((layer.bias, np.zeros(extra))),
        layer.activation,
        layer.origin + ((),) * extra,
    )
    layers[i + 1] = replace_columns(nxt, nxt.weight.shape[1], np.zeros((nxt.width, extra)))
    return Net(net.inputs, tuple(layers), net.skip)


def _permute(net: Net, i: int, perm: np.ndarray) -> Net:
    """Hidden layer i's units reordered: unit k becomes unit perm[k]'s old self."""
    layers = list(net.layers)
    layer, nxt = layers[i], layers[i + 1]
    off = net.reads_inputs(i + 1)
    layers[i] = Dense(
        layer.weight[perm], layer.bias[perm], layer.activation,
        tuple(layer.origin[k] for k in perm),
    )  # fmt: skip
    layers[i + 1] = replace_columns(nxt, off, nxt.weight[:, off:][:, perm])
    return Net(net.inputs, tuple(layers), net.skip)


def align(a: Net, b: Net) -> Net | None:
    """`b` with each hidden layer padded with zero units to `a`'s width (or `a` is assumed
    as wide) and its units matched to `a`'s, layer by layer (exact search up to 7 units,
    greedy beyond). None when the two do not have the same layers."""
    if a.inputs != b.inputs or a.skip != b.skip or len(a.layers) != len(b.layers):
        return None
    if any(la.activation != lb.activation for la, lb in zip(a.layers, b.layers, strict=True)):
        return None
    if a.layers[-1].width != b.layers[-1].width:
        return None
    for i in range(len(a.layers) - 1):
        if b.layers[i].width < a.layers[i].width:
            b = _widen(b, i, a.layers[i].width)
        if b.layers[i].width != a.layers[i].width:
            return None
        va = np.concatenate((a.layers[i].weight, a.layers[i].bias[:, None]), axis=1)
        vb = np.concatenate((b.layers[i].weight, b.layers[i].bias[:, None]), axis=1)
        cost = ((va[:, None, :] - vb[None, :, :]) ** 2).sum(axis=2)
        b = _permute(b, i, _match(cost))
    return b


def parameter_distance(a: Net, b: Net) -> float | None:
    """L2 distance of two canonical nets' parameters, hidden units matched per layer and the
    narrower layer padded with zero units (a zero ReLU unit computes nothing). None when the
    layers do not line up."""
    for i in range(len(a.layers) - 1):
        if i < len(b.layers) - 1 and a.layers[i].width < b.layers[i].width:
            a = _widen(a, i, b.layers[i].width)
    matched = align(a, b)
    if matched is None:
        return None
    return float(np.linalg.norm(a.params() - matched.params()))


def _match(cost: np.ndarray) -> np.ndarray:
    """perm with row i of A matched to row perm[i] of B, minimising the total cost."""
    n = len(cost)
    if n <= 7:
        best = min(itertools.permutations(range(n)), key=lambda p: cost[range(n), p].sum())
        return np.array(best, dtype=int)
    perm = np.full(n, -1)
    free = set(range(n))
    for i in range(n):
        j = min(free, key=lambda k: cost[i, k])
        perm[i] = j
        free.discard(j)
    return perm


@dataclass(frozen=True)
class Compared:
    """One net of `tiny compare`, against the first. `net`: its canonical form, its hidden
    units matched to the first net's (`align`) when `aligned`, else as it is; the other
    fields are None where the comparison does not apply (no net, another number of inputs
    or outputs, or layers that do not line up)."""

    net: Net | None
    aligned: bool = False
    max_abs_difference: float | None = None  # on the first net's domain
    same_function: bool | None = None  # max_abs_difference <= tolerance
    tolerance: float | None = None  # TOL_REL * max(1, max |first net's output|)
    parameters: float | None = None  # canonical parameter distance (parameter_distance)
    solves_task: bool | None = None  # right on the first net's domain (its task's outcome rule)
    domain: str | None = None  # the first net's: which inputs (`Task.domain_text`)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for rendering and `tiny compare --json`."""
        layers = None
        if self.net is not None:
            layers = [
                {
                    "activation": la.activation,
                    "weight": la.weight.tolist(),
                    "bias": la.bias.tolist(),
                }
                for la in self.net.layers
            ]
        return {
            "layers": layers,
            "skip_input": self.net.skip if self.net is not None else None,
            "aligned": self.aligned,
            "max_abs_difference": self.max_abs_difference,
            "same_function": self.same_function,
            "tolerance": self.tolerance,
            "parameters": self.parameters,
            "solves_task": self.solves_task,
            "domain": self.domain,
        }


NetSpec = tuple[Arch, Mapping[str, Any], "Task"]


def _widen_to(a: Net, b: Net) -> Net:
    """`a` with each hidden layer narrower than `b`'s padded with zero units."""
    for i in range(min(len(a.layers), len(b.layers)) - 1):
        if a.layers[i].width < b.layers[i].width:
            a = _widen(a, i, b.layers[i].width)
    return a


def compare(nets: Sequence[NetSpec | None]) -> list[Compared]:
    """Every net against the first: canonical forms on the first net's domain (a net with
    another number of inputs or outputs: on its own, and not compared), hidden units matched
    to the first's, the canonical parameter distance (`parameter_distance`), and the max
    |difference| of the outputs on that domain, the same function when it is within TOL_REL
    of max(1, the first net's largest |output|) (`distance`'s rule), and whether each net
    solves the first's task there (the sweep's outcome rule): two nets that both do but are
    not the same function solve it by different mechanisms. None (a run without a readable
    net) compares as nothing."""

    def own(spec: NetSpec) -> Net:
        return canonical(from_state(spec[0], spec[1]), domain(spec[2])[0]).net

    first = nets[0] if nets else None
    if first is None:
        return [Compared(own(spec) if spec else None) for spec in nets]
    task = first[2]
    x, y = domain(task)
    ref = from_state(first[0], first[1])
    ref_run = forward(ref, x)
    ref_can = canonical(ref, x, ref_run).net
    tol = tolerance_of(ref_run.out)
    solved = outcome(task, ref_run, x, y, ref, False) == "solved"
    out = [Compared(ref_can, aligned=True, solves_task=solved, domain=task.domain_text())]
    for spec in nets[1:]:
        if spec is None:
            out.append(Compared(None))
            continue
        net = from_state(spec[0], spec[1])
        if net.inputs != ref.inputs or net.layers[-1].width != ref.layers[-1].width:
            out.append(Compared(own(spec)))
            continue
        run = forward(net, x)
        can = canonical(net, x, run).net
        wide = _widen_to(ref_can, can)
        matched = align(wide, can)
        diff = float(np.abs(run.out - ref_run.out).max(initial=0.0))
        out.append(
            Compared(
                can if matched is None else matched,
                aligned=matched is not None,
                max_abs_difference=diff,
                same_function=diff <= tol,
                tolerance=tol,
                parameters=None
                if matched is None
                else float(np.linalg.norm(wide.params() - matched.params())),
                solves_task=outcome(task, run, x, y, net, False) == "solved",
            )
        )
    return out
