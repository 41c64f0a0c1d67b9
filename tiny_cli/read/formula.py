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

One style per formula: every coefficient a dyadic fraction when each one snaps to a dyadic
(`a/2 + b/2`), else every one a decimal to the digits asked (`0.5*a - 0.305*b`; whole
numbers stay whole), never fractions beside decimals. A unit whose input is a number is that
number (a dead net reads `0`), and products of coefficients lose float artifacts (0.044,
not 0.0439999999999999). `expressions(..., fold=False)` is the net as it computes, before
the rewrites (`b - ReLU(b - a)` where the formula reads `Min(a, b)`); `reading` prints it
with `ReLU` and a leading positive term.

sympy is imported inside the functions: a run's own process never imports it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

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


def round_coefficient(c: float, digits: int = DIGITS[0], dyadic: bool = True) -> sympy.Expr:
    """A dyadic number (m / 2^k, 4-bit mantissa) within SNAP_REL of c as an exact sympy
    Rational, else (or without `dyadic`) c to `digits` significant digits (an Integer when
    that is whole). Each digit beyond DIGITS[0] makes the snap ten times stricter."""
    import sympy

    if c == 0 or not math.isfinite(c):
        return sympy.Integer(0) if c == 0 else sympy.Float(c)
    exp = math.floor(math.log2(abs(c)))
    mant = abs(c) / 2.0**exp
    best = min(np.append(_dyadics(), 2.0), key=lambda m: abs(m - mant))
    if dyadic and abs(best - mant) <= SNAP_REL * 10.0 ** (DIGITS[0] - digits) * mant:
        num = round(best * 8)
        value = sympy.Rational(num, 8) * sympy.Rational(2) ** exp
        return value if c > 0 else -value
    return _decimal(float(f"{c:.{digits}g}"))


def _decimal(value: float) -> sympy.Expr:
    import sympy

    return sympy.Integer(int(value)) if value.is_integer() else sympy.Float(value)


def _mixed(numbers: Iterable[sympy.Expr]) -> bool:
    """Fractions beside decimals: some number a Rational that is not whole, another a Float."""
    import sympy

    kinds = {"float" if isinstance(c, sympy.Float) else c.is_Integer for c in numbers}
    return "float" in kinds and False in kinds


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
    under PRUNE_REL of the unit's largest contribution on the domain set to 0: dyadic
    fractions where they snap, unless that would put fractions beside decimals; then every
    coefficient a decimal (one style)."""
    layers = _rounded(can, digits, dyadic=True)
    if _mixed(c for rows in layers for row in rows for c in row):
        return _rounded(can, digits, dyadic=False)
    return layers


def _rounded(can: Canonical, digits: int, dyadic: bool) -> list[list[list[sympy.Expr]]]:
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
                    round_coefficient(float(v), digits, dyadic)
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
    h, shared = sizes, np.zeros(net.inputs, dtype=bool)
    for i, layer in enumerate(net.layers):
        inp = np.concatenate((sizes, h)) if net.reads_inputs(i) else h
        # a unit and its mirror (incoming vectors u and -u) are one Abs(u) when the next
        # layer reads them: their terms count once (the is_even chain stays linear)
        twin = (
            np.concatenate((np.zeros(net.inputs, dtype=bool), shared))
            if net.reads_inputs(i)
            else shared
        )
        h = 1.0 + (layer.weight != 0).astype(float) @ np.where(twin, inp / 2, inp)
        shared = _mirrored(layer.weight, layer.bias)
        if h.sum() > FORMULA_TERMS:
            return (
                f"its expression would have {h.sum():,.0f} terms or more (bound {FORMULA_TERMS:,})"
            )
    return ""


def _mirrored(weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Which units have a mirror in their layer: another whose incoming weights and bias
    are the negatives of theirs (to 6 decimals)."""
    rows = np.round(np.concatenate((weight, bias[:, None]), axis=1), 6)
    keys = {tuple(r) for r in rows.tolist()}
    return np.array([tuple((-r).tolist()) in keys and r.any() for r in rows], dtype=bool)


def _unit(activation: str, z: sympy.Expr) -> sympy.Expr:
    return activations.get(activation).sympy(z)


def symbols(names: Sequence[str]) -> list[sympy.Symbol]:
    import sympy

    return [sympy.Symbol(n, real=True) for n in names]


def expressions(
    net: Net, coeffs: list[list[list[sympy.Expr]]], names: Sequence[str], fold: bool = True
) -> list[sympy.Expr]:
    """The net's outputs as sympy expressions of the named (real) inputs: with `fold`, the
    Abs and Min/Max rewrites (the formula), else the units as they compute (the mechanism).
    A unit whose input is a number is a number (`_number`)."""
    import sympy

    xs = symbols(names)
    h: list[sympy.Expr] = list(xs)
    for i, (layer, rows) in enumerate(zip(net.layers, coeffs, strict=True)):
        inp = xs + h if net.reads_inputs(i) else h
        h = []
        for row in rows:
            z = sympy.Add(*(c * v for c, v in zip(row[:-1], inp, strict=True)), row[-1])
            unit = _unit(layer.activation, fold_pairs(z) if fold else z)
            h.append(unit if unit.free_symbols else _number(unit))
    if fold:
        h = [fold_min_max(fold_pairs(e)) for e in h]
    return [one_style(e) for e in h]


def _number(unit: sympy.Expr) -> sympy.Expr:
    """A unit of a number, as a number: exact where it is rational (ReLU of a Rational),
    else to DIGITS[-1] significant digits (a sigmoid of a number)."""
    import sympy

    value = unit.doit()
    if isinstance(value, sympy.Rational):
        return value
    return _decimal(float(f"{float(value.evalf()):.{DIGITS[-1]}g}"))


ARTIFACT_DIGITS = 12  # a product of rounded coefficients is exact to far fewer digits


def one_style(expr: sympy.Expr) -> sympy.Expr:
    """Float artifacts gone (a product of 0.11 and 0.4 is 0.044; 0.99999999 a is a) and,
    when decimals remain, the fractions as decimals too (a dyadic's decimal is exact)."""
    import sympy

    swap: dict[sympy.Expr, sympy.Expr] = {}
    for f in expr.atoms(sympy.Float):
        value = float(f)
        k = round(value * 8)
        if abs(value - k / 8) <= 1e-9 * max(1.0, abs(value)):
            value = k / 8
        new = _decimal(float(f"{value:.{ARTIFACT_DIGITS}g}"))
        if new != f or isinstance(new, sympy.Integer):
            swap[f] = new
    expr = _replace(expr, swap) if swap else expr
    if _mixed(expr.atoms(sympy.Number)):
        fractions = [q for q in expr.atoms(sympy.Rational) if not q.is_Integer]
        expr = _replace(expr, {q: sympy.Float(float(q)) for q in fractions})
    return expr


def _replace(expr: sympy.Expr, swap: dict[sympy.Expr, sympy.Expr]) -> sympy.Expr:
    """`expr.xreplace(swap)`, keeping exp, Max and Min unevaluated as they were built (an
    evaluated exp(2.369 x - 22.43) splits into 1.81457436385174e-10 exp(2.369 x); a deep
    nest of Max is seconds of comparisons)."""
    import sympy

    if expr in swap:
        return swap[expr]
    if not expr.args:
        return expr
    args = [_replace(a, swap) for a in expr.args]
    if all(a is b for a, b in zip(args, expr.args, strict=True)):
        return expr
    if isinstance(expr, sympy.exp | sympy.Max | sympy.Min):
        return expr.func(*args, evaluate=False)
    return expr.func(*args)


def formula_text(exprs: Sequence[sympy.Expr]) -> str:
    """What `sympify` parses back: one expression, or a tuple of them."""
    import sympy

    texts = [sympy.sstr(e, full_prec=False) for e in exprs]
    return texts[0] if len(texts) == 1 else "(" + ", ".join(texts) + ",)"


def reading(exprs: Sequence[sympy.Expr]) -> str:
    """Expressions as a person reads them: `Max(0, z)` as `ReLU(z)`, a positive term first
    (`b - ReLU(b - a)`, not `-Max(0, -a + b) + b`). Not for parsing back."""
    printer = _reading_printer()({"full_prec": False})
    return ", ".join(printer.doprint(e) for e in exprs)


def latex(exprs: Sequence[sympy.Expr]) -> str:
    import sympy

    return ", ".join(sympy.latex(e, full_prec=False) for e in exprs)


@functools.cache
def _reading_printer() -> Any:
    """`reading`'s printer class (made on first use: sympy is imported only then)."""
    import sympy
    from sympy.printing.str import StrPrinter

    class ReadingPrinter(StrPrinter):  # type: ignore[misc]
        def _print_Max(self, expr: sympy.Expr) -> str:
            if len(expr.args) == 2 and sympy.S.Zero in expr.args:
                (z,) = (a for a in expr.args if a != 0)
                return f"ReLU({self._print(z)})"
            return str(super()._print_Function(expr))

        def _as_ordered_terms(self, expr: sympy.Expr, order: Any = None) -> list[sympy.Expr]:
            terms = list(super()._as_ordered_terms(expr, order=order))
            positive = [t for t in terms if not t.could_extract_minus_sign()]
            if terms and positive and terms[0].could_extract_minus_sign():
                terms.remove(positive[0])
                terms.insert(0, positive[0])
            return terms

    return ReadingPrinter
