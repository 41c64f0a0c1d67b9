"""The canonical form of a net: what stays when the symmetries that change nothing go.

Hidden layers in order, the read-out left as it is (the domain: the inputs given, always
the task's training inputs; every claim is checked on all of it, in float64):

1. dead units go: a ReLU unit never > 0 on the domain outputs 0 there, so removing it
   (and its outgoing weights) changes nothing on the domain. An identity or leaky unit with
   all-zero incoming weights outputs 0 everywhere and goes too;
2. rescaling: each ReLU, leaky ReLU or identity unit's incoming vector (weights and bias)
   is divided by its max-abs, and its outgoing weights multiplied by it. Exact, since
   ReLU(s z) = s ReLU(z) for s > 0. Sigmoid and tanh units are not positively homogeneous
   and stay unscaled;
3. merging: units whose incoming vectors agree within MERGE_TOL (max-abs difference) are
   one unit: their outgoing weights are summed (exact when the vectors are equal);
4. sorting: units ascending by their incoming vector rounded to SORT_DECIMALS decimals,
   lexicographically (weights in input order, then the bias).

So a net with its hidden units permuted and ReLU units rescaled by any positive factors
has the same canonical form (up to float rounding). `canonical` does one net,
`canonical_many` the seeds of a sweep at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tiny_cli.read.arrays import (
    Dense,
    Net,
    Pass,
    activate,
    as_array,
    forward,
    from_state,
    max_abs,
    replace_columns,
)
from tiny_cli.spec import activations
from tiny_cli.spec.models import Arch

MERGE_TOL = 1e-3  # canonical incoming vectors this close (max-abs) are one unit
SORT_DECIMALS = 6  # the sort key rounds incoming vectors to this many decimals
MANY_FLOATS = 1 << 22  # canonical_many: activations per chunk of seeds


@dataclass(frozen=True)
class Canonical:
    net: Net
    dead: list[list[int]]  # per hidden layer: original indices of its dead ReLU units
    ranges: list[np.ndarray]  # per layer: max |input| on the domain per column (bias: 1)
    loose_merge: bool = False  # some merged units' vectors were close, not equal


def dead_units(net: Net, run: Pass) -> list[list[int]]:
    """Per hidden layer, the ReLU units never > 0 on the domain (original indices)."""
    return [
        [int(j) for j in np.flatnonzero(top <= 0)] if layer.rectifier else []
        for layer, top in zip(net.layers[:-1], run.top, strict=True)
    ]


def canonical(net: Net, x: np.ndarray, run: Pass | None = None) -> Canonical:
    """The canonical form (module docstring), given the domain inputs [n, inputs]."""
    run = run or forward(net, x)
    dead = dead_units(net, run)
    layers = list(net.layers)
    ranges: list[np.ndarray] = [max_abs(x, axis=0) if len(x) else np.zeros(net.inputs)]
    loose = False
    for i in range(len(layers) - 1):
        layer, nxt = layers[i], layers[i + 1]
        off = net.reads_inputs(i + 1)
        w, b = layer.weight.copy(), layer.bias.copy()
        out = nxt.weight[:, off:].copy()  # [next units, this layer's units]
        span = run.top_abs[i].copy()
        origin = list(layer.origin)
        # 1. dead units (and constant-zero homogeneous ones) go
        vec = np.concatenate((w, b[:, None]), axis=1)
        zero = np.abs(vec).max(axis=1, initial=0.0) == 0
        keep = ~np.isin(np.arange(len(b)), dead[i])
        if layer.homogeneous:
            keep &= ~zero
        w, b, out, span = w[keep], b[keep], out[:, keep], span[keep]
        origin = [o for o, k in zip(origin, keep, strict=True) if k]
        # 2. rescale: incoming max-abs 1, the scale moved to the outgoing weights
        if layer.homogeneous and len(b):
            scale = np.abs(np.concatenate((w, b[:, None]), axis=1)).max(axis=1)
            w, b, out, span = w / scale[:, None], b / scale, out * scale, span / scale
        # 3. merge units with the same incoming vector; 4. sort
        vec = np.concatenate((w, b[:, None]), axis=1)
        keys = [tuple(np.round(v, SORT_DECIMALS) + 0.0) for v in vec]  # + 0.0: no -0.0
        order = sorted(range(len(b)), key=lambda j: keys[j])
        groups = _merge_groups(vec, order)
        weights = [np.abs(out[:, g]).sum(axis=0) + 1e-300 for g in groups]
        merged = np.array(
            [np.average(vec[g], axis=0, weights=wt) for g, wt in zip(groups, weights, strict=True)]
        ).reshape(len(groups), vec.shape[1])
        loose |= any(np.any(vec[g] != vec[g[0]]) for g in groups)
        layers[i] = Dense(
            merged[:, :-1],
            merged[:, -1],
            layer.activation,
            tuple(tuple(sorted(k for j in g for k in origin[j])) for g in groups),
        )
        new_out = (
            np.stack([out[:, g].sum(axis=1) for g in groups], axis=1) if groups else out[:, :0]
        )
        layers[i + 1] = replace_columns(nxt, off, new_out)
        unit_span = np.array([span[g].max() for g in groups])
        ranges.append(np.concatenate((ranges[0], unit_span)) if off else unit_span)
    return Canonical(Net(net.inputs, tuple(layers), net.skip), dead, ranges, loose)


def _merge_groups(vec: np.ndarray, order: Sequence[int]) -> list[list[int]]:
    """Units (rows of `vec`, taken in `order`) in groups: each joins the first group whose
    first unit is within MERGE_TOL of it in every column, else starts one. The first
    column sifts the candidates, so a layer of thousands of distinct units takes
    milliseconds, not minutes."""
    groups: list[list[int]] = []
    firsts = np.empty((len(order), vec.shape[1]))  # each group's first unit, in order
    for j in order:
        near = np.flatnonzero(np.abs(firsts[: len(groups), 0] - vec[j, 0]) <= MERGE_TOL)
        same = [g for g in near if np.abs(firsts[g] - vec[j]).max() <= MERGE_TOL]
        if same:
            groups[same[0]].append(j)
        else:
            firsts[len(groups)] = vec[j]
            groups.append([j])
    return groups


def _tops(
    weights: list[np.ndarray], biases: list[np.ndarray], acts: Sequence[str], x: np.ndarray
) -> list[np.ndarray]:
    """Per hidden layer, each seed's largest activation per unit on the domain [S, units]:
    the forward pass of `forward`, over stacked seeds (weights [S, units, fan_in])."""
    h = np.ascontiguousarray(x.T, dtype=np.float64)[None]  # [1, inputs, n]
    tops = []
    for w, b, act in zip(weights[:-1], biases[:-1], acts, strict=False):
        h = activate(act, np.matmul(w, h) + b[:, :, None])
        tops.append(h.max(axis=2, initial=-np.inf))
    return tops


Stacked = tuple[
    list[np.ndarray], list[np.ndarray]
]  # per layer: weights [S, u, fan_in], biases [S, u]


def canonical_many(arch: Arch, params: Mapping[str, Any], x: np.ndarray) -> list[Net]:
    """`canonical(from_state(arch, state of seed s), x).net` for every seed s of stacked
    parameters (name -> [S, *shape]), with numpy over the seeds instead of a Python loop
    per seed. Each seed's layers are kept at full width, its removed units zeroed and
    sorted last (their zero columns in the next layer sort every unit as `canonical` does,
    being zero for all of them); only at the end is each seed's net cut to its live units.
    A seed where two live units of a layer are within MERGE_TOL (they would merge, rare in
    trained nets) goes through `canonical` on its own, as does every seed when the domain
    is too large to hold one seed's activations at once."""
    first = next(iter(params.values()), None)
    count = 0 if first is None else len(first)
    if count == 0:
        return []

    def alone(s: int) -> Net:
        state = {k: as_array(v)[s] for k, v in params.items()}
        return canonical(from_state(arch, state), x).net

    if len(x) * max(la.width for la in arch.layers) > MANY_FLOATS:
        return [alone(s) for s in range(count)]
    weights, biases = _stacked(arch, params, count)
    tops = _all_tops(arch, weights, biases, x)
    merges, kept, orders = _sort_units(arch, weights, biases, tops)
    return [
        alone(s) if merges[s] else _cut(arch, weights, biases, kept, orders, s)
        for s in range(count)
    ]


def _stacked(arch: Arch, params: Mapping[str, Any], count: int) -> Stacked:
    """Per layer, every seed's Linear blocks concatenated: weights and biases."""
    weights = [
        np.concatenate([as_array(params[f"{n}.weight"]) for n, _, _ in blocks], axis=1)
        for blocks in arch.blocks()
    ]
    biases = [
        np.concatenate([as_array(params[f"{n}.bias"]).reshape(count, -1) for n, _, _ in blocks], 1)
        for blocks in arch.blocks()
    ]
    return weights, biases


def _all_tops(
    arch: Arch, weights: list[np.ndarray], biases: list[np.ndarray], x: np.ndarray
) -> list[np.ndarray]:
    """`_tops` of every seed, in chunks of seeds of at most MANY_FLOATS activations."""
    acts = [la.activation for la in arch.layers]
    count = len(weights[0])
    step = max(1, MANY_FLOATS // max(1, len(x) * max(la.width for la in arch.layers)))
    chunks = [
        _tops([w[c : c + step] for w in weights], [b[c : c + step] for b in biases], acts, x)
        for c in range(0, count, step)
    ]
    return [
        np.concatenate([chunk[i] for chunk in chunks]) if chunks else np.zeros((0, la.width))
        for i, la in enumerate(arch.layers[:-1])
    ]


def _sort_units(
    arch: Arch, weights: list[np.ndarray], biases: list[np.ndarray], tops: list[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Steps 1, 2 and 4 of the canonical form for every seed at once, in place in `weights`
    and `biases` (removed units zeroed, sorted last). Returns, per seed, whether two live
    units of a layer would merge (step 3); per hidden layer, each seed's live units and
    its units' original indices in their new order."""
    count = len(weights[0])
    merges = np.zeros(count, dtype=bool)
    kept: list[np.ndarray] = []
    orders: list[np.ndarray] = []
    for i in range(len(weights) - 1):
        act = activations.get(arch.layers[i].activation)
        off = arch.reads_inputs(i + 1)
        vec = np.concatenate((weights[i], biases[i][:, :, None]), axis=2)  # [S, u, fan_in + 1]
        out = weights[i + 1][:, :, off:]  # [S, next, u]
        keep = tops[i] > 0 if act.rectifier else np.ones(vec.shape[:2], bool)
        if act.homogeneous:
            keep &= np.abs(vec).max(axis=2) > 0
            scale = np.where(keep, np.abs(vec).max(axis=2), 1.0)
            vec, out = vec / scale[:, :, None], out * scale[:, None, :]
        vec = np.where(keep[:, :, None], vec, 0.0)
        out = np.where(keep[:, None, :], out, 0.0)
        # 4. sort: lexicographic on the rounded vector, stable, removed units last
        key = np.where(keep[:, :, None], np.round(vec, SORT_DECIMALS) + 0.0, np.inf)
        order = np.broadcast_to(np.arange(vec.shape[1]), vec.shape[:2]).copy()
        for c in reversed(range(vec.shape[2])):
            column = np.take_along_axis(key[:, :, c], order, axis=1)
            order = np.take_along_axis(order, np.argsort(column, axis=1, kind="stable"), axis=1)
        vec = np.take_along_axis(vec, order[:, :, None], axis=1)
        out = np.take_along_axis(out, order[:, None, :], axis=2)
        live = np.take_along_axis(keep, order, axis=1)
        # 3. would two live units merge?
        close = np.abs(vec[:, :, None, :] - vec[:, None, :, :]).max(axis=3) <= MERGE_TOL
        pair = live[:, :, None] & live[:, None, :] & ~np.eye(vec.shape[1], dtype=bool)
        merges |= (close & pair).any(axis=(1, 2))
        weights[i], biases[i] = vec[:, :, :-1], vec[:, :, -1]
        weights[i + 1] = np.concatenate((weights[i + 1][:, :, :off], out), axis=2)
        kept.append(live.sum(axis=1))
        orders.append(order)
    return merges, kept, orders


def _cut(
    arch: Arch,
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    kept: list[np.ndarray],
    orders: list[np.ndarray],
    s: int,
) -> Net:
    """Seed s's net cut to its live units (`_sort_units` put them first)."""
    layers = []
    for i, la in enumerate(arch.layers):
        rows = int(kept[i][s]) if i < len(kept) else weights[i].shape[1]
        off = arch.reads_inputs(i)
        cols = off + int(kept[i - 1][s]) if i > 0 else weights[i].shape[2]
        origin = (
            tuple((int(j),) for j in orders[i][s, :rows])
            if i < len(orders)
            else tuple((j,) for j in range(rows))
        )
        w, b = weights[i][s, :rows, :cols], biases[i][s, :rows]
        layers.append(Dense(w, b, la.activation, origin))
    return Net(arch.inputs, tuple(layers), arch.skip_input)
