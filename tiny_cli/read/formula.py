"""A canonical net as a formula: sympy expressions of the named inputs, rounded and folded.

The canonical net (`read.canonical`) with every coefficient rounded (`round_coefficient`:
snapped to a dyadic number m / 2^k with a 4-bit mantissa, such as 1, 1/2, 3/8, 8, 2^-23,
when that is within SNAP_REL relative; otherwise 3 significant digits) and every term
pruned whose largest contribution on the domain, |coefficient| * max |input|, is under
PRUNE_REL of the largest term of its unit. Each activation is its table's sympy form
(`spec.activations`): ReLU `Max(0, z)`, sigmoid `1/(1 + exp(-z))`, tanh `tanh(z)`, leaky ReLU
`Max(z, 0.01 z)`. Rewrites, each an identity:
c Max(0, u) + c Max(0, -u) = c Abs(u) (the article's |x - c| pairs), c Max(0, u) - c Max(0, -u)
= c u, positive factors pulled out of Max and Abs, and at the top level
R + k Abs(w) = Min(R + k w, R - k w) (k < 0) or R + c Max(0, u) = Min(R, R + c u) (c < 0) and
their Max twins, kept only when they make the expression shorter (Equation 1 becomes
`Min(a, b)`). No general `simplify`: on nested Max it can take minutes. Which rounding is
kept (the coarsest that is exact) is the read-out's choice (`read.readout`).

sympy is imported inside the functions: a run's own process never imports it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tiny_cli.read.arrays import Dense, Net, replace_columns
from tiny_cli.read.canonical import Canonical
from tiny_cli.spec import activations

if TYPE_CHECKING:
    import sympy

SNAP_REL = 5e-3  # snap a coefficient to a dyadic m / 2^k within 0.5% of it (3 digits)
DIGITS = (3, 4, 5, 6)  # otherwise this many significant digits: the first that is exact
PRUNE_REL = 1e-3  # drop a term under 0.1% of its unit's largest term on the domain
# The formula's bound: past either, building and printing it takes minutes (a 3 x 16 net's
# nested sums have some 10,000 terms: 76 s; a 2 x 1024 one's coefficients alone, a minute),
# and nobody reads it; the read-out says it skipped it and why (`too_big`).
FORMULA_PARAMS = 20_000  # parameters of the canonical net
FORMULA_TERMS = 4_000  # terms of its expression written out (each unit's inputs expanded)
FOLD_TERMS = 8  # sums of more terms are not folded into Min/Max (nor pairs past twice as many)


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
        if not layer.homogeneous or not layer.width:
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
        layers[i + 1] = replace_columns(nxt, off, nxt.weight[:, off:] * scales)
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


def as_net(can: Canonical, coeffs: list[list[list[sympy.Expr]]]) -> Net:
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
        # costs seconds on a wide layer
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


def too_big(net: Net) -> str:
    """Why the formula of `net` (a canonical net) is not built ("" when it is): its
    parameters or the terms of its expression past FORMULA_PARAMS or FORMULA_TERMS."""
    params = int(net.params().size)
    if params > FORMULA_PARAMS:
        return f"the canonical net has {params:,} parameters (bound {FORMULA_PARAMS:,})"
    sizes = np.ones(net.inputs)
    h = sizes
    for i, layer in enumerate(net.layers):
        inp = np.concatenate((sizes, h)) if net.reads_inputs(i) else h
        h = 1.0 + (layer.weight != 0).astype(float) @ inp
        if h.sum() > FORMULA_TERMS:
            return (
                f"its expression would have {h.sum():,.0f} terms or more (bound {FORMULA_TERMS:,})"
            )
    return ""


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
