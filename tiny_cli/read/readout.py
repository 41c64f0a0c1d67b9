"""Read a net back: its canonical form, a formula, what it means for the task, a diagnosis.

Pure functions of an `Arch`, a state_dict and a `Task` (no files). The domain is always the
task's training inputs, `task.data()`; every claim below ("dead", "exact", "same function")
is checked on all of it, in float64.

**Canonical form** (`canonical`), hidden layers in order, the read-out left as it is:

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
has the same canonical form (up to float rounding).

**Formula** (`formula`): the canonical net with every coefficient rounded (`round_coefficient`:
snapped to a dyadic number m / 2^k with a 4-bit mantissa, such as 1, 1/2, 3/8, 8, 2^-23,
when that is within SNAP_REL relative; otherwise 3 significant digits) and every term
pruned whose largest contribution on the domain, |coefficient| * max |input|, is under
PRUNE_REL of the largest term of its unit. ReLU is `Max(0, z)`, sigmoid `1/(1 + exp(-z))`,
tanh `tanh(z)`, leaky ReLU `Max(z, 0.01 z)`. Rewrites, each an identity:
c Max(0, u) + c Max(0, -u) = c Abs(u) (the article's |x - c| pairs), c Max(0, u) - c Max(0, -u)
= c u, positive factors pulled out of Max and Abs, and at the top level
R + k Abs(w) = Min(R + k w, R - k w) (k < 0) or R + c Max(0, u) = Min(R, R + c u) (c < 0) and
their Max twins, kept only when they make the expression shorter (Equation 1 becomes
`Min(a, b)`). No general `simplify`: on nested Max it can take minutes.
The formula is labelled **exact** when it agrees with the net on the whole domain within
`tolerance` = TOL_REL * max(1, max |net output|). When 3 digits are not exact, 4, 5 and 6
are tried (each with a 10x stricter snap) and the first exact one is kept; if none is, the
formula is approximate, at 6 digits, with its max error.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tiny_cli.spec import activations, models
from tiny_cli.spec.models import Arch, skip_columns

if TYPE_CHECKING:
    import sympy

    from tiny_cli.tasks import Task

# The stated tolerances.
MERGE_TOL = 1e-3  # canonical incoming vectors this close (max-abs) are one unit
SORT_DECIMALS = 6  # the sort key rounds incoming vectors to this many decimals
SNAP_REL = 5e-3  # snap a coefficient to a dyadic m / 2^k within 0.5% of it (3 digits)
DIGITS = (3, 4, 5, 6)  # otherwise this many significant digits: the first that is exact
PRUNE_REL = 1e-3  # drop a term under 0.1% of its unit's largest term on the domain
TOL_REL = 1e-3  # exact: max error <= 0.1% of max(1, max |output|)
FAMILY_TOL = 0.05  # min/max: in the family when the residual is under 5% of std(target)
CONVERGED_DROP = 0.01  # not converged: loss fell by more than 1% over the last tenth
CHUNK = 1 << 15  # samples per chunk of the forward pass (fits in cache)
BIG_DOMAIN = 1 << 20  # domains larger than this are run in float32
FOLD_TERMS = 8  # sums of more terms are not folded into Min/Max (nor pairs past twice as many)


# --- a net as plain arrays --------------------------------------------------------------


@dataclass(frozen=True)
class Dense:
    """One layer: `weight` [units, fan_in], `bias` [units], the activation; `origin` names,
    per unit, the original units (indices in this layer) it stands for."""

    weight: np.ndarray
    bias: np.ndarray
    activation: str
    origin: tuple[tuple[int, ...], ...]

    @property
    def width(self) -> int:
        return len(self.bias)


@dataclass(frozen=True)
class Net:
    """Layers in order; with `skip`, the last layer reads `[inputs, last hidden layer]`."""

    inputs: int
    layers: tuple[Dense, ...]
    skip: bool = False

    def reads_inputs(self, i: int) -> int:
        """How many leading columns of layer i are the net's inputs (skip read-out)."""
        return skip_columns(self.inputs, len(self.layers), i, self.skip)

    def params(self) -> np.ndarray:
        return np.concatenate([np.concatenate([la.weight.ravel(), la.bias]) for la in self.layers])


def _array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def from_state(arch: Arch, state: Mapping[str, Any]) -> Net:
    """The net of a state_dict: each layer's Linear blocks concatenated, as float64."""
    layers = []
    for blocks, spec in zip(arch.blocks(), arch.layers, strict=True):
        weight = np.concatenate([_array(state[f"{n}.weight"]) for n, _, _ in blocks])
        bias = np.concatenate([_array(state[f"{n}.bias"]).reshape(-1) for n, _, _ in blocks])
        origin = tuple((j,) for j in range(len(bias)))
        layers.append(Dense(weight, bias, spec.activation, origin))
    return Net(arch.inputs, tuple(layers), arch.skip_input)


def _activate(name: str, z: np.ndarray, zeros: np.ndarray | float = 0.0) -> np.ndarray:
    """The activation (the table's numpy function), in place where it can be; `zeros`: an
    array of zeros as long as a row of z (faster than the scalar, see `forward`)."""
    return activations.get(name).numpy(z, zeros)


def activate(name: str, z: np.ndarray) -> np.ndarray:
    """The activation `name` of pre-activations `z` (numpy; may write into z)."""
    return _activate(name, z)


@dataclass
class Pass:
    """A forward pass over the domain: outputs [n, outs]; per hidden layer and unit, the
    largest activation and the largest |activation|."""

    out: np.ndarray
    top: list[np.ndarray]
    top_abs: list[np.ndarray]


def _affine(weight: np.ndarray, bias: np.ndarray, inp: np.ndarray, z: np.ndarray) -> None:
    """z = weight @ inp + bias, into z. One input: a broadcast multiply (numpy's matmul
    with an inner dimension of 1 is ten times slower than that); otherwise matmul (in float32
    on [2, 2^15] samples ~3x faster than a multiply-add per unit and input)."""
    if weight.shape[1] == 1:
        np.multiply(weight, inp, out=z)
    else:
        np.matmul(weight, inp, out=z)
    z += bias[:, None]


def forward(net: Net, x: np.ndarray) -> Pass:
    """The net on inputs [n, inputs], in chunks that stay in cache. Up to BIG_DOMAIN
    samples in float64; beyond, in float32, the precision the net was trained in (integers
    up to 2^24 are exact in it)."""
    n = len(x)
    dtype = np.float64 if n <= BIG_DOMAIN else np.float32
    hidden = net.layers[:-1]
    top = [np.full(la.width, -np.inf) for la in hidden]
    top_abs = [np.zeros(la.width) for la in hidden]
    out = np.empty((n, net.layers[-1].width), dtype=dtype)
    params = [(la.weight.astype(dtype), la.bias.astype(dtype)) for la in net.layers]
    # ReLU against an array of zeros: numpy's maximum with a scalar 0 takes a slow path,
    # five to eight times slower than with an array (numpy 2.4)
    zeros = np.zeros(min(max(n, 1), CHUNK), dtype=dtype)
    for start in range(0, max(n, 1), CHUNK):
        xc = np.ascontiguousarray(x[start : start + CHUNK].T, dtype=dtype)  # [inputs, chunk]
        h = xc
        for i, (layer, (weight, bias)) in enumerate(zip(net.layers, params, strict=True)):
            inp = np.concatenate((xc, h)) if net.reads_inputs(i) else h
            z = np.empty((layer.width, xc.shape[1]), dtype=dtype)
            _affine(weight, bias, inp, z)
            h = _activate(layer.activation, z, zeros[: z.shape[1]])
            if i < len(hidden) and h.shape[1]:
                np.maximum(top[i], h.max(axis=1), out=top[i])
                if not activations.get(layer.activation).rectifier:  # outputs >= 0
                    np.maximum(top_abs[i], np.abs(h).max(axis=1), out=top_abs[i])
        out[start : start + CHUNK] = h.T
    for i, layer in enumerate(hidden):
        if activations.get(layer.activation).rectifier:
            top_abs[i] = np.maximum(top[i], 0.0)
    return Pass(out, top, top_abs)


def _max_abs(a: np.ndarray, axis: int | None = None) -> np.ndarray:
    """max |a| (0 for an empty array) without |a| in memory: 2^24 outputs are 64 MB."""
    if not a.size:
        return np.zeros(a.shape[1:]) if axis == 0 else np.zeros(())
    top: np.ndarray = np.maximum(a.max(axis=axis), -a.min(axis=axis))
    return top


def hidden_activations(net: Net, x: np.ndarray) -> list[np.ndarray]:
    """Each hidden layer's activations [n, units] on inputs [n, inputs], in float64, all in
    memory: for the few points a picture draws, not for a whole big domain (`forward`)."""
    h = np.asarray(x, dtype=np.float64)
    out = []
    for layer in net.layers[:-1]:  # only the read-out reads the inputs beside a layer
        h = _activate(layer.activation, h @ layer.weight.T + layer.bias)
        out.append(h)
    return out


# --- canonical form ---------------------------------------------------------------------


@dataclass(frozen=True)
class Canonical:
    net: Net
    dead: list[list[int]]  # per hidden layer: original indices of its dead ReLU units
    ranges: list[np.ndarray]  # per layer: max |input| on the domain per column (bias: 1)
    loose_merge: bool = False  # some merged units' vectors were close, not equal


def _rectifier(layer: Dense) -> bool:
    return activations.get(layer.activation).rectifier


def dead_units(net: Net, run: Pass) -> list[list[int]]:
    """Per hidden layer, the ReLU units never > 0 on the domain (original indices)."""
    return [
        [int(j) for j in np.flatnonzero(top <= 0)] if _rectifier(layer) else []
        for layer, top in zip(net.layers[:-1], run.top, strict=True)
    ]


def _replace_columns(layer: Dense, offset: int, columns: np.ndarray) -> Dense:
    weight = np.concatenate((layer.weight[:, :offset], columns), axis=1)
    return Dense(weight, layer.bias, layer.activation, layer.origin)


def canonical(net: Net, x: np.ndarray, run: Pass | None = None) -> Canonical:
    """The canonical form (module docstring), given the domain inputs [n, inputs]."""
    run = run or forward(net, x)
    dead = dead_units(net, run)
    layers = list(net.layers)
    ranges: list[np.ndarray] = [_max_abs(x, axis=0) if len(x) else np.zeros(net.inputs)]
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
        if activations.get(layer.activation).homogeneous:
            keep &= ~zero
        w, b, out, span = w[keep], b[keep], out[:, keep], span[keep]
        origin = [o for o, k in zip(origin, keep, strict=True) if k]
        # 2. rescale: incoming max-abs 1, the scale moved to the outgoing weights
        if activations.get(layer.activation).homogeneous and len(b):
            scale = np.abs(np.concatenate((w, b[:, None]), axis=1)).max(axis=1)
            w, b, out, span = w / scale[:, None], b / scale, out * scale, span / scale
        # 3. merge units with the same incoming vector; 4. sort
        vec = np.concatenate((w, b[:, None]), axis=1)
        keys = [tuple(np.round(v, SORT_DECIMALS) + 0.0) for v in vec]  # + 0.0: no -0.0
        order = sorted(range(len(b)), key=lambda j: keys[j])
        groups: list[list[int]] = []
        for j in order:
            for g in groups:
                if np.abs(vec[g[0]] - vec[j]).max() <= MERGE_TOL:
                    g.append(j)
                    break
            else:
                groups.append([j])
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
        layers[i + 1] = _replace_columns(nxt, off, new_out)
        unit_span = np.array([span[g].max() for g in groups])
        ranges.append(np.concatenate((ranges[0], unit_span)) if off else unit_span)
    return Canonical(Net(net.inputs, tuple(layers), net.skip), dead, ranges, loose)


MANY_FLOATS = 1 << 22  # canonical_many: activations per chunk of seeds


def _tops(
    weights: list[np.ndarray], biases: list[np.ndarray], acts: Sequence[str], x: np.ndarray
) -> list[np.ndarray]:
    """Per hidden layer, each seed's largest activation per unit on the domain [S, units]:
    the forward pass of `forward`, over stacked seeds (weights [S, units, fan_in])."""
    h = np.ascontiguousarray(x.T, dtype=np.float64)[None]  # [1, inputs, n]
    tops = []
    for w, b, act in zip(weights[:-1], biases[:-1], acts, strict=False):
        h = _activate(act, np.matmul(w, h) + b[:, :, None])
        tops.append(h.max(axis=2, initial=-np.inf))
    return tops


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
    weights = [
        np.concatenate([_array(params[f"{n}.weight"]) for n, _, _ in blocks], axis=1)
        for blocks in arch.blocks()
    ]
    biases = [
        np.concatenate([_array(params[f"{n}.bias"]).reshape(count, -1) for n, _, _ in blocks], 1)
        for blocks in arch.blocks()
    ]
    acts = [la.activation for la in arch.layers]
    n, widest = len(x), max(la.width for la in arch.layers)

    def alone(s: int) -> Net:
        state = {k: _array(v)[s] for k, v in params.items()}
        return canonical(from_state(arch, state), x).net

    if n * widest > MANY_FLOATS:
        return [alone(s) for s in range(count)]
    step = max(1, MANY_FLOATS // max(1, n * widest))
    chunks = [
        _tops([w[c : c + step] for w in weights], [b[c : c + step] for b in biases], acts, x)
        for c in range(0, count, step)
    ]
    tops = [
        np.concatenate([chunk[i] for chunk in chunks]) if chunks else np.zeros((0, la.width))
        for i, la in enumerate(arch.layers[:-1])
    ]
    merges = np.zeros(count, dtype=bool)
    kept: list[np.ndarray] = []
    orders: list[np.ndarray] = []
    for i in range(len(weights) - 1):
        act = acts[i]
        off = arch.reads_inputs(i + 1)
        vec = np.concatenate((weights[i], biases[i][:, :, None]), axis=2)  # [S, u, fan_in + 1]
        out = weights[i + 1][:, :, off:]  # [S, next, u]
        keep = tops[i] > 0 if activations.get(act).rectifier else np.ones(vec.shape[:2], bool)
        if activations.get(act).homogeneous:
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
    nets = []
    for s in range(count):
        if merges[s]:
            nets.append(alone(s))
            continue
        layers = []
        for i, act in enumerate(acts):
            rows = int(kept[i][s]) if i < len(kept) else weights[i].shape[1]
            off = arch.reads_inputs(i)
            cols = off + int(kept[i - 1][s]) if i > 0 else weights[i].shape[2]
            origin = (
                tuple((int(j),) for j in orders[i][s, :rows])
                if i < len(orders)
                else tuple((j,) for j in range(rows))
            )
            w, b = weights[i][s, :rows, :cols], biases[i][s, :rows]
            layers.append(Dense(w, b, act, origin))
        nets.append(Net(arch.inputs, tuple(layers), arch.skip_input))
    return nets


# --- the formula ------------------------------------------------------------------------


@functools.cache
def _dyadics() -> np.ndarray:
    """Mantissas m in [1, 2) with 4 bits: 1, 1.125, ..., 1.875."""
    return np.arange(8, 16) / 8


def round_coefficient(c: float, digits: int = DIGITS[0]) -> sympy.Expr:
    """A dyadic number (m / 2^k, 4-bit mantissa) within SNAP_REL of c as an exact sympy
    Rational, else c to `digits` significant digits (an Integer when that is whole). Each
    digit beyond DIGITS[0] makes the snap ten times stricter."""
    import sympy

    if c == 0 or not math.isfinite(c):
        return sympy.Integer(0) if c == 0 else sympy.Float(c)
    exp = math.floor(math.log2(abs(c)))
    mant = abs(c) / 2.0**exp
    best = min(np.append(_dyadics(), 2.0), key=lambda m: abs(m - mant))
    if abs(best - mant) <= SNAP_REL * 10.0 ** (DIGITS[0] - digits) * mant:
        num = round(best * 8)
        value = sympy.Rational(num, 8) * sympy.Rational(2) ** exp
        return value if c > 0 else -value
    rounded = float(f"{c:.{digits}g}")
    return sympy.Integer(int(rounded)) if rounded.is_integer() else sympy.Float(rounded)


def _rounding_error(vec: np.ndarray) -> float:
    big = np.abs(vec).max(initial=0.0) or 1.0
    return max((abs(float(round_coefficient(float(v))) - v) / big for v in vec), default=0.0)


def display_scaled(can: Canonical) -> Canonical:
    """The canonical net with each homogeneous unit rescaled for reading: by whichever of
    its largest |weight|, its largest |coefficient| (the canonical scale) or its smallest
    nonzero |weight| rounds best, so s - 3 reads as `x1 + ... + x4 - 3`, not
    `0.333 x1 + ... - 1`. Exact, as the canonical rescaling is."""
    layers = list(can.net.layers)
    ranges = list(can.ranges)
    for i in range(len(layers) - 1):
        layer, nxt = layers[i], layers[i + 1]
        if not activations.get(layer.activation).homogeneous or not layer.width:
            continue
        off = can.net.reads_inputs(i + 1)
        scales = np.ones(layer.width)
        for j, (w, b) in enumerate(zip(layer.weight, layer.bias, strict=True)):
            nonzero = np.abs(w[w != 0])
            options = [1.0] + ([float(nonzero.max()), float(nonzero.min())] if len(nonzero) else [])
            vec = np.append(w, b)
            scales[j] = min(options, key=lambda s: _rounding_error(vec / s))
        layers[i] = Dense(
            layer.weight / scales[:, None], layer.bias / scales, layer.activation, layer.origin
        )
        layers[i + 1] = _replace_columns(nxt, off, nxt.weight[:, off:] * scales)
        span = ranges[i + 1].copy()
        span[off:] = span[off:] / scales
        ranges[i + 1] = span
    return Canonical(
        Net(can.net.inputs, tuple(layers), can.net.skip), can.dead, ranges, can.loose_merge
    )


def rounded(can: Canonical, digits: int = DIGITS[0]) -> list[list[list[sympy.Expr]]]:
    """Per layer and unit, its rounded incoming coefficients (columns, then the bias), terms
    under PRUNE_REL of the unit's largest contribution on the domain set to 0."""
    import sympy

    layers = []
    for layer, span in zip(can.net.layers, can.ranges, strict=True):
        reach = np.append(span, 1.0)
        rows = []
        for w, b in zip(layer.weight, layer.bias, strict=True):
            vec = np.append(w, b)
            contrib = np.abs(vec) * reach
            floor = PRUNE_REL * contrib.max(initial=0.0)
            rows.append(
                [
                    round_coefficient(float(v), digits)
                    if c >= floor and c > 0
                    else sympy.Integer(0)
                    for v, c in zip(vec, contrib, strict=True)
                ]
            )
        layers.append(rows)
    return layers


def _as_net(can: Canonical, coeffs: list[list[list[sympy.Expr]]]) -> Net:
    layers = []
    for layer, rows in zip(can.net.layers, coeffs, strict=True):
        fan_in = layer.weight.shape[1] + 1
        vec = np.array([[float(c) for c in row] for row in rows]).reshape(layer.width, fan_in)
        layers.append(Dense(vec[:, :-1], vec[:, -1], layer.activation, layer.origin))
    return Net(can.net.inputs, tuple(layers), can.net.skip)


def _terms(expr: sympy.Expr) -> list[tuple[sympy.Expr, sympy.Expr, type]]:
    """An Add's terms as (coefficient, argument, kind): c Max(0, u) -> (c, u, Max),
    c Abs(w) -> (c, w, Abs), anything else -> (1, term, None)."""
    import sympy

    out = []
    for term in sympy.Add.make_args(expr):
        c, rest = term.as_coeff_Mul()
        if isinstance(rest, sympy.Max) and len(rest.args) == 2 and sympy.S.Zero in rest.args:
            u = rest.args[1] if rest.args[0] == 0 else rest.args[0]  # evaluate=False keeps order
            out.append((c, u, sympy.Max))
        elif isinstance(rest, sympy.Abs):
            out.append((c, rest.args[0], sympy.Abs))
        else:
            out.append((sympy.Integer(1), term, type(None)))
    return out


_relu = activations.get("relu").sympy  # Max(0, z), a positive factor of z pulled out


def fold_pairs(expr: sympy.Expr) -> sympy.Expr:
    """In a sum, c1 Max(0, u) + c2 Max(0, -u) -> Abs and Max terms, or a linear term."""
    import sympy

    terms = _terms(expr)
    if len(terms) > FOLD_TERMS * 2:  # pairs of opposite units: each pair tried, in sympy
        return expr
    used: set[int] = set()
    out: list[sympy.Expr] = []
    for i, (c1, u, kind) in enumerate(terms):
        if i in used or kind is not sympy.Max:
            continue
        for j in range(i + 1, len(terms)):
            c2, v, kind2 = terms[j]
            if j in used or kind2 is not sympy.Max or (u + v) != 0:
                continue
            used |= {i, j}
            if (c1 > 0) == (c2 > 0):  # c1 M(u) + c2 M(-u) = c Abs(u) + (rest) M(bigger)
                small, big, big_arg = (c1, c2, v) if abs(c1) <= abs(c2) else (c2, c1, u)
                out.append(small * sympy.Abs(u) + (big - small) * _relu(big_arg))
            else:  # M(-u) = M(u) - u
                out.append((c1 + c2) * _relu(u) - c2 * u)
            break
    rest = [c * (_relu(a) if k is sympy.Max else sympy.Abs(a) if k is sympy.Abs else a)
            for n, (c, a, k) in enumerate(terms) if n not in used]  # fmt: skip
    return sympy.Add(*out, *rest)


def fold_min_max(expr: sympy.Expr) -> sympy.Expr:
    """R + k Abs(w) as Min/Max(R + k w, R - k w); R + c Max(0, u) as Min/Max(R, R + c u);
    the shortest of these (by count_ops) or the expression itself."""
    import sympy

    terms = sympy.Add.make_args(expr)
    if len(terms) == 1 or len(terms) > FOLD_TERMS:
        # c Max(0, u) or c Abs(w) alone: no fold is shorter (Max(0, c u) counts as many
        # operations, Min(w, -w) more), and building one costs seconds on a deep nest; a
        # sum of many units reads no better as a Min/Max of two such sums, and trying each
        # costs seconds (8 s for a 32-unit layer, measured)
        return expr
    best, cost = expr, sympy.count_ops(expr)
    for n, (c, a, kind) in enumerate(_terms(expr)):
        rest = sympy.Add(*(t for m, t in enumerate(terms) if m != n))
        if kind is sympy.Abs:
            pair = (rest + c * a, rest - c * a)
        elif kind is sympy.Max:
            pair = (rest, rest + c * a)
        else:
            continue
        new = sympy.Min(*pair) if c < 0 else sympy.Max(*pair)
        if sympy.count_ops(new) < cost:
            best, cost = new, sympy.count_ops(new)
    return best


def _unit(activation: str, z: sympy.Expr) -> sympy.Expr:
    return activations.get(activation).sympy(z)


def symbols(names: Sequence[str]) -> list[sympy.Symbol]:
    import sympy

    return [sympy.Symbol(n, real=True) for n in names]


def expressions(
    net: Net, coeffs: list[list[list[sympy.Expr]]], names: Sequence[str]
) -> list[sympy.Expr]:
    """The net's outputs as sympy expressions of the named (real) inputs."""
    import sympy

    xs = symbols(names)
    h: list[sympy.Expr] = list(xs)
    for i, (layer, rows) in enumerate(zip(net.layers, coeffs, strict=True)):
        inp = xs + h if net.reads_inputs(i) else h
        h = []
        for row in rows:
            z = sympy.Add(*(c * v for c, v in zip(row[:-1], inp, strict=True)), row[-1])
            h.append(_unit(layer.activation, fold_pairs(z)))
    return [_tidy(fold_min_max(fold_pairs(e))) for e in h]


def _tidy(expr: sympy.Expr) -> sympy.Expr:
    """Floats that float arithmetic left a hair off an eighth (0.99999999 a) become exact."""
    import sympy

    swap = {}
    for f in expr.atoms(sympy.Float):
        k = round(float(f) * 8)
        if abs(float(f) - k / 8) <= 1e-9 * max(1.0, abs(float(f))):
            swap[f] = sympy.Rational(k, 8)
    return expr.xreplace(swap) if swap else expr


def formula_text(exprs: Sequence[sympy.Expr]) -> str:
    """What `sympify` parses back: one expression, or a tuple of them."""
    import sympy

    texts = [sympy.sstr(e, full_prec=False) for e in exprs]
    return texts[0] if len(texts) == 1 else "(" + ", ".join(texts) + ",)"


def latex(exprs: Sequence[sympy.Expr]) -> str:
    import sympy

    return ", ".join(sympy.latex(e, full_prec=False) for e in exprs)


# --- task-level meaning -----------------------------------------------------------------


def threshold_meaning(arch: Arch, net: Net, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Sigmoid(w x + b) = Sigmoid(M (t - x)) with t = -b/w, M = |w| (w < 0: "x < t").

    `threshold_between`: the last integer answered yes and the first answered no (F > 0.5 is
    yes, so an integer t itself is a no). `margin_midpoint`: halfway between the data's last
    positive and first negative, where a max-margin classifier puts t (lt10: 9.5).
    """
    if not models.is_threshold_neuron(arch):
        return {}
    w, b = float(net.layers[0].weight[0, 0]), float(net.layers[0].bias[0])
    if w == 0:
        return {"threshold": None, "steepness": 0.0}
    t = -b / w
    below = w < 0  # high output below t
    hi = math.ceil(t) if below else math.floor(t) + 1
    doc: dict[str, Any] = {
        "threshold": t,
        "steepness": abs(w),
        "direction": "x < t" if below else "x > t",
        "threshold_between": [hi - 1, hi],
    }
    pos, neg = x[y > 0.5], x[y <= 0.5]
    if len(pos) and len(neg):
        if pos.max() < neg.min():
            doc["margin_midpoint"] = float(pos.max() + neg.min()) / 2
        elif neg.max() < pos.min():
            doc["margin_midpoint"] = float(neg.max() + pos.min()) / 2
    return doc


def family_meaning(net: Net, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """min / max with the MinModel shape: where the net sits in the family
        alpha (a - ReLU(a - b)) + (1 - alpha) (b - ReLU(b - a))
    (max: alpha (a + ReLU(b - a)) + (1 - alpha) (b + ReLU(a - b))). Every member computes
    min (max), so alpha is read from the net's parts: the read-out's linear part (skip
    weights and bias) should be b + alpha (a - b), its ReLU part -ReLU(b - a) - alpha (a - b)
    (max: ReLU(a - b) - alpha (a - b)). One least-squares alpha over both parts on the
    domain; "not in the family" when the residual RMS is over FAMILY_TOL of std(target)."""
    if not (net.skip and net.inputs == 2 and len(net.layers) == 2 and net.layers[-1].width == 1):
        return {}
    a, b = x[:, 0], x[:, 1]
    if np.array_equal(y, np.minimum(a, b)):
        base = -np.maximum(b - a, 0)
    elif np.array_equal(y, np.maximum(a, b)):
        base = np.maximum(a - b, 0)
    else:
        return {}
    first, out = net.layers
    h = _activate(first.activation, x @ first.weight.T + first.bias)
    lin = x @ out.weight[0, :2] + out.bias[0]
    relu = h @ out.weight[0, 2:]
    d = a - b
    p, q = lin - b, relu - base  # want p = alpha d and q = -alpha d
    alpha = float(d @ (p - q) / (2 * d @ d)) if d @ d > 0 else float("nan")
    residual = math.sqrt(float(np.mean((p - alpha * d) ** 2 + (q + alpha * d) ** 2)))
    scale = float(np.std(y)) or 1.0
    return {
        "alpha": alpha,
        "family_residual": residual / scale,
        "in_family": residual <= FAMILY_TOL * scale,
    }


# --- diagnosis --------------------------------------------------------------------------


def not_converged(losses: Sequence[float]) -> bool | None:
    """The loss still falls by more than CONVERGED_DROP (relative) over the last tenth of the
    epochs (None: too short a history to say)."""
    if len(losses) < 10:
        return None
    window = [v for v in losses[-max(2, len(losses) // 10) :] if math.isfinite(v)]
    if len(window) < 2:
        return None
    first, last = window[0], window[-1]
    return bool(first - last > CONVERGED_DROP * abs(first) and first - last > 1e-12)


def outcome(task: Task, run: Pass, x: np.ndarray, y: np.ndarray, net: Net, diverged: bool) -> str:
    """The sweep's outcome rule for this one net (S = 1)."""
    import torch

    from tiny_cli.train.outcomes import OUTCOMES, classify

    pred = torch.from_numpy(run.out[:, 0]).unsqueeze(0)
    target = torch.from_numpy(y.reshape(-1))
    # classify asks only whether a ReLU layer has a unit > 0 somewhere: the per-unit maxima
    # say that without every activation of a 2^24 domain in memory.
    hidden = [
        torch.from_numpy(top).reshape(1, -1, 1)
        for top, layer in zip(run.top, net.layers[:-1], strict=True)
        if _rectifier(layer)
    ]
    right = task.correct(pred, target.reshape(1, -1)) if task.kind == "classification" else None
    index = classify(task.kind, pred, target, hidden, torch.tensor([diverged]), right)
    return OUTCOMES[int(index[0])]


# --- distance to a construction ---------------------------------------------------------


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
    layers[i + 1] = _replace_columns(nxt, nxt.weight.shape[1], np.zeros((nxt.width, extra)))
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
    layers[i + 1] = _replace_columns(nxt, off, nxt.weight[:, off:][:, perm])
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


# --- many nets: tiny compare ------------------------------------------------------------


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
    of max(1, the first net's largest |output|) (`distance`'s rule). None (a run without a
    readable net) compares as nothing."""

    def own(spec: NetSpec) -> Net:
        return canonical(from_state(spec[0], spec[1]), domain(spec[2])[0]).net

    first = nets[0] if nets else None
    if first is None:
        return [Compared(own(spec) if spec else None) for spec in nets]
    x = domain(first[2])[0]
    ref = from_state(first[0], first[1])
    ref_run = forward(ref, x)
    ref_can = canonical(ref, x, ref_run).net
    tol = TOL_REL * max(1.0, float(np.abs(ref_run.out).max(initial=0.0)))
    out = [Compared(ref_can, aligned=True)]
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
            )
        )
    return out


# --- everything about one net -----------------------------------------------------------


@dataclass
class Readout:
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
    meaning: dict[str, Any] = field(default_factory=dict)
    diagnosis: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON of `tiny inspect --json`'s `readout`."""
        return {
            "formula": self.formula,
            "latex": self.latex,
            "exact": self.exact,
            "max_error": self.max_error,
            "tolerance": self.tolerance,
            "digits": self.digits,
            **({"approximation": self.approximation} if self.approximation else {}),
            "dead_units": self.canonical.dead,
            **self.meaning,
            **self.diagnosis,
        }


def domain(task: Task) -> tuple[np.ndarray, np.ndarray]:
    """The training inputs [n, inputs] and targets [n, 1], as numpy (float32 as given)."""
    x, y = task.data()
    return x.detach().cpu().numpy(), y.detach().cpu().numpy().reshape(len(x), -1)


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
) -> Readout:
    """Canonical form, formula (exact or approximate), meaning and diagnosis of one net.

    `metrics`: the run's final metrics (for the correct interval of integer tasks);
    `init_state`: its initial weights (dead units at init); `losses`: its loss per logged
    epoch (not converged?); `construction`: a hand-made net to measure the distance to.
    Without torch (in the sidecar): `data`, the task's (x, y) as `domain` gives them, and
    `verdict`, the net's `outcome`, computed where torch is.
    """
    x, y = data if data is not None else domain(task)
    net = from_state(arch, state)
    run = forward(net, x)
    can = canonical(net, x, run)
    shown = display_scaled(can)
    tol = TOL_REL * max(1.0, float(_max_abs(run.out)))
    approximation = None
    for digits in DIGITS:  # the coarsest rounding that is exact, else the finest
        coeffs = rounded(shown, digits)
        formula_net = _as_net(shown, coeffs)
        if not can.loose_merge and np.array_equal(formula_net.params(), shown.net.params()):
            # Rounding changed no coefficient: the formula is the canonical net, which is
            # the net on the domain (dead units are 0 there, rescaling and merging exact).
            error = 0.0
        else:
            out = forward(formula_net, x).out
            error = float(np.abs(out - run.out).max(initial=0.0))
        if error <= tol:
            break
        if digits == DIGITS[0]:
            first = formula_text(expressions(shown.net, coeffs, task.input_names()))
            approximation = {"formula": first, "max_error": error, "digits": digits}
    exprs = expressions(shown.net, coeffs, task.input_names())
    meaning = threshold_meaning(arch, net, x[:, 0], y[:, 0]) if arch.inputs == 1 else {}
    meaning |= family_meaning(net, x, y[:, 0])
    for key in ("correct_interval", "wrong_at"):
        if metrics and key in metrics:
            meaning[key] = metrics[key]
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
        formula_text(exprs),
        latex(exprs),
        error <= tol,
        error,
        tol,
        digits,
        approximation,
        meaning,
        diagnosis,
    )


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
    tol = TOL_REL * max(1.0, float(np.abs(theirs.out).max(initial=0.0)))
    dist = parameter_distance(canonical(net, x, run).net, canonical(other, x, theirs).net)
    return {"parameters": dist, "max_abs_difference": diff, "same_function": diff <= tol}


def export(readout: Readout, names: Sequence[str]) -> dict[str, Any]:
    """The canonical net as JSON: layers, their units' merged origins, the rule."""
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
        "max_error": readout.max_error,
        "tolerance": readout.tolerance,
        "rule": "ReLU/leaky/identity units rescaled to incoming max-abs 1, dead units removed, "
        f"equal directions (within {MERGE_TOL:g}) merged, units sorted by incoming vector",
    }
