"""Modular arithmetic in the Fourier basis: the exact construction, Gromov's, the read-out.

Everything here is numpy (the read-out runs where torch is not); `tasks.modular` wraps it.

**Positions.** Each value v of a, b and the answer c sits at a position on the cycle Z_n,
so that the operation is addition of positions:

- add: n = p, pos(v) = v;  (a + b) mod p sits at pos(a) + pos(b);
- sub: n = p, a and c at v, b at -v mod p;  a - b = a + (-b);
- mul: n = p - 1, pos(v) = log_g(v) for v = 1 ... p - 1 (g the smallest primitive root of
  the prime p: every non-zero v is a power of g, and g^i g^j = g^(i + j mod p - 1)); 0 has
  no position (a product with 0 is 0, handled by one unit of its own).

**Frequencies.** A function of a position i is a sum of cos(2 pi k i / n) and sin(2 pi k i
/ n), k = 0 ... n // 2 (for an even n, k = n / 2 has only its cosine, (-1)^i). `basis` is
that orthonormal basis over the p values (a value without a position: its own row, in no
frequency), so the share of a weight row's squared norm at frequency k is the sum of its
squared coefficients there (Parseval), and its phase phi is that of A cos(2 pi k i / n + phi).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

Op = Literal["add", "sub", "mul"]
KEY_SHARE = 0.5  # a unit is of frequency k when k holds at least this share of its norm
TOP = 5  # `concentration`: the share of the first layer's norm in its TOP frequencies


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


def generator(p: int) -> int:
    """The smallest primitive root of the prime p: its powers are every non-zero residue."""
    phi = p - 1
    factors = {d for d in range(2, phi + 1) if phi % d == 0 and is_prime(d)}
    return next(g for g in range(1, p) if all(pow(g, phi // q, p) != 1 for q in factors))


def positions(op: Op, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(pos of a, pos of b, pos of c, n): each an int array over the values 0 ... p - 1,
    -1 where a value has no position (mul's 0)."""
    v = np.arange(p)
    if op == "add":
        return v, v, v, p
    if op == "sub":
        return v, (-v) % p, v, p
    log = np.full(p, -1)
    g, x = generator(p), 1
    for i in range(p - 1):
        log[x] = i
        x = x * g % p
    return log, log, log, p - 1


def frequencies(n: int) -> list[int]:
    """The non-constant frequencies on Z_n: 1 ... n // 2."""
    return list(range(1, n // 2 + 1))


def basis(pos: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An orthonormal basis of R^p (rows) adapted to the positions: per row its frequency
    (-1: a value without a position) and whether it is a sine. Rows: the constant, cos and
    sin of each k < n / 2, the cosine of k = n / 2 (even n), then one row per unplaced value."""
    placed = pos >= 0
    i = np.where(placed, pos, 0).astype(np.float64)
    rows, freq, sine = [placed / math.sqrt(n)], [0], [False]
    for k in frequencies(n):
        angle = 2 * math.pi * k * i / n
        if 2 * k == n:
            rows.append(np.cos(angle) * placed / math.sqrt(n))
            freq.append(k)
            sine.append(False)
            continue
        for is_sin, wave in ((False, np.cos(angle)), (True, np.sin(angle))):
            rows.append(wave * placed * math.sqrt(2 / n))
            freq.append(k)
            sine.append(is_sin)
    for v in np.flatnonzero(~placed):
        rows.append(np.eye(len(pos))[v])
        freq.append(-1)
        sine.append(False)
    return np.stack(rows), np.array(freq), np.array(sine)


def spectrum(w: np.ndarray, pos: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows w [units, p] over the values: their squared norm per frequency [units, n // 2 + 1]
    (column k: frequency k, 0 the constant) and per frequency the phase phi of
    A cos(2 pi k i / n + phi) [units, n // 2 + 1]."""
    b, freq, sine = basis(pos, n)
    coef = w @ b.T
    energy = np.zeros((len(w), n // 2 + 1))
    cos = np.zeros_like(energy)
    sin = np.zeros_like(energy)
    for r, (k, s) in enumerate(zip(freq, sine, strict=True)):
        if k < 0:
            continue
        energy[:, k] += coef[:, r] ** 2
        (sin if s else cos)[:, k] += coef[:, r]
    return energy, np.arctan2(-sin, cos)


# --- constructions ----------------------------------------------------------------------


def exact_weights(op: Op, p: int) -> tuple[np.ndarray, np.ndarray]:
    """A net right on every pair: first-layer weights [N, 2p] and read-out [p, N] (no biases,
    quadratic hidden units), N = 8 per frequency k < n / 2, 2 for k = n / 2, 1 more for mul.

    With i = pos(a), j = pos(b), l = pos(c) and theta = 2 pi k / n, the angle sum gives
    cos theta(i + j) = cos(theta i) cos(theta j) - sin(theta i) sin(theta j) and
    sin theta(i + j) = sin(theta i) cos(theta j) + cos(theta i) sin(theta j), and each product
    of two features is xy = ((x + y)^2 - (x - y)^2) / 4: two quadratic units, each reading
    x from the a-block (one-hot: unit weight at a is x(a)) and y from the b-block. The read-out
    of class c weighs cos theta(i + j) by cos(theta l) and sin theta(i + j) by sin(theta l), so
    class c gets cos theta(i + j - l), twice for k < n / 2 (k and n - k), once for k = n / 2:
    summed over k, sum_(k=1)^(n-1) cos(2 pi k m / n) = n [m = 0] - 1 with m = i + j - l. Scaled
    by 1 / n, class c's output is 1 - 1/n where c = a op b and -1/n elsewhere.

    mul: a value 0 has no position (its features are 0, so every product is 0 and every
    class c != 0 gets 0); one more unit ([a = 0] + [b = 0])^2, >= 1 exactly when a product
    is 0, read out by class 0 alone with weight 1, makes class 0 the largest there.
    """
    pa, pb, pc, n = positions(op, p)
    hidden: list[tuple[np.ndarray, np.ndarray]] = []
    out: list[np.ndarray] = []

    def feature(pos: np.ndarray, k: int, sine: bool) -> np.ndarray:
        angle = 2 * math.pi * k * np.where(pos >= 0, pos, 0) / n
        return np.where(pos >= 0, np.sin(angle) if sine else np.cos(angle), 0.0)

    for k in frequencies(n):
        weight = (1.0 if 2 * k == n else 2.0) / (4 * n)  # 1/4 of xy, 2 for k and n - k
        cos_c, sin_c = feature(pc, k, False), feature(pc, k, True)
        # (x feature of a, y feature of b, read-out row): cos(i + j) cos l + sin(i + j) sin l
        products = [(False, False, cos_c)]  # k = n / 2: sin(theta i) = 0, cos alone
        if 2 * k != n:
            products += [(True, True, -cos_c), (True, False, sin_c), (False, True, sin_c)]
        for sine_a, sine_b, row in products:
            xa, yb = feature(pa, k, sine_a), feature(pb, k, sine_b)
            for sign in (1.0, -1.0):
                hidden.append((xa, sign * yb))
                out.append(sign * weight * row)
    if op == "mul":
        zero = (np.arange(p) == 0).astype(np.float64)
        hidden.append((zero, zero))
        out.append(zero)
    w1 = np.stack([np.concatenate(pair) for pair in hidden])
    return w1, np.stack(out, axis=1)


def exact_width(op: Op, p: int) -> int:
    n = positions(op, p)[3]
    return 8 * ((n - 1) // 2) + (2 if n % 2 == 0 else 0) + (1 if op == "mul" else 0)


def gromov_weights(
    op: Op, p: int, width: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Gromov's analytic solution (arXiv 2301.02679): unit u has a frequency k_u (drawn
    uniformly from 1 ... n // 2) and two random phases phi_u, psi_u (uniform on [0, 2 pi)):
    first-layer weights cos(theta i + phi_u) over the a-block and cos(theta j + psi_u) over the
    b-block, read-out cos(theta l + phi_u + psi_u) (theta = 2 pi k_u / n; i, j, l the positions).

    A unit's square is (cos A + cos B)^2 = cos^2 A + cos^2 B + cos(A + B) + cos(A - B), with
    A = theta i + phi_u, B = theta j + psi_u. Times the read-out cos(theta l + phi_u + psi_u),
    cos(A + B) gives (1/2) cos theta(i + j - l) whatever the phases, while every other term
    carries a random phase: summed over the units, the wanted sum_k cos theta_k (i + j - l)
    grows like N and the rest like sqrt(N), so the accuracy rises with the width N
    (docs/config.md gives it measured). mul: the last unit is the zero unit of
    `exact_weights`, the others are as above on the discrete logs.
    """
    pa, pb, pc, n = positions(op, p)
    fourier = width - (1 if op == "mul" else 0)
    k = rng.integers(1, n // 2 + 1, size=fourier)
    phi, psi = rng.uniform(0, 2 * math.pi, size=(2, fourier))

    def wave(pos: np.ndarray, shift: np.ndarray) -> np.ndarray:  # [fourier, p]
        angle = 2 * math.pi * np.outer(k, np.where(pos >= 0, pos, 0)) / n + shift[:, None]
        return np.where(pos >= 0, np.cos(angle), 0.0)

    w1 = np.concatenate([wave(pa, phi), wave(pb, psi)], axis=1) / math.sqrt(n)
    w2 = wave(pc, phi + psi).T * (2.0 / fourier)
    if op == "mul":
        zero = (np.arange(p) == 0).astype(np.float64)
        w1 = np.concatenate([w1, np.concatenate([zero, zero])[None]])
        w2 = np.concatenate([w2, zero[:, None]], axis=1)
    return w1, w2


# --- the read-out -----------------------------------------------------------------------


def _dominant(energy: np.ndarray, phase: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: its largest non-constant frequency, that frequency's phase and its share of
    the row's whole squared norm."""
    k = energy[:, 1:].argmax(axis=1) + 1
    rows = np.arange(len(energy))
    total = energy.sum(axis=1)
    share = np.divide(energy[rows, k], total, out=np.zeros(len(k)), where=total > 0)
    return k, phase[rows, k], share


def unit_shares(op: Op, p: int, w1: np.ndarray) -> np.ndarray:
    """Per unit of a first layer w1 [units, 2p] over the one-hot a and b: the share of its
    squared weight norm at each frequency, the a-block and the b-block together [units,
    n // 2 + 1] (column k: frequency k, 0 the constant). A row sums to 1 but for what lies
    at no frequency (mul's 0), and is 0 for a unit of no weight."""
    pa, pb, _, n = positions(op, p)
    both = spectrum(w1[:, :p], pa, n)[0] + spectrum(w1[:, p:], pb, n)[0]
    norm = (w1**2).sum(axis=1, keepdims=True)
    shares: np.ndarray = np.zeros(both.shape)
    np.divide(both, norm, out=shares, where=norm > 0)
    return shares


def dominant_share(
    energy: np.ndarray, norm: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per unit: its dominant non-constant frequency in `energy` [units, frequencies] and
    that frequency's share of `norm` [units], the unit's whole squared norm (None: `energy`
    is shares already, `unit_shares`)."""
    k = energy[:, 1:].argmax(axis=1) + 1
    at = energy[np.arange(len(energy)), k]
    if norm is None:
        return k, at
    return k, np.divide(at, norm, out=np.zeros(len(k)), where=norm > 0)


def read(op: Op, p: int, w1: np.ndarray, w2: np.ndarray | None) -> dict[str, Any]:
    """The Fourier read-out of a net of one hidden layer over the one-hot a and b: per unit
    its dominant frequency and phase in the a-block, the b-block and (with `w2`, the read-out
    [p, units]) its read-out column; the key frequencies (each the dominant one of a unit
    holding at least KEY_SHARE of its first-layer norm), the share of the first layer's norm
    they hold, and the distance to the exact construction's spectrum (half the L1 distance of
    the two first layers' shares of norm per frequency: 0 the same, 1 disjoint)."""
    pa, pb, pc, n = positions(op, p)
    ea, fa = spectrum(w1[:, :p], pa, n)
    eb, fb = spectrum(w1[:, p:], pb, n)
    both = ea + eb
    unit_norm = (w1**2).sum(axis=1)
    k, share = dominant_share(both, unit_norm)
    ka, pha, sa = _dominant(ea, fa)
    kb, phb, sb = _dominant(eb, fb)
    units: list[dict[str, Any]] = []
    if w2 is not None:
        eo, fo = spectrum(w2.T, pc, n)
        ko, pho, so = _dominant(eo, fo)
    for u in range(len(w1)):
        unit: dict[str, Any] = {
            "unit": u,
            "k": int(k[u]),
            "share": float(share[u]),
            "a": [int(ka[u]), float(pha[u]), float(sa[u])],
            "b": [int(kb[u]), float(phb[u]), float(sb[u])],
        }
        if w2 is not None:
            unit["out"] = [int(ko[u]), float(pho[u]), float(so[u])]
        units.append(unit)
    total = float(unit_norm.sum())
    per_k = both.sum(axis=0) / total if total > 0 else np.zeros(n // 2 + 1)
    key = sorted({int(k[u]) for u in range(len(w1)) if share[u] >= KEY_SHARE})
    ref_a, _ = exact_weights(op, p)
    ref = spectrum(ref_a[:, :p], pa, n)[0] + spectrum(ref_a[:, p:], pb, n)[0]
    ref_k = ref.sum(axis=0) / (ref_a**2).sum()
    return {
        "basis": f"Z_{n}" if op != "mul" else f"Z_{n}, discrete log base {generator(p)}",
        "frequencies": n // 2,
        "key_frequencies": key,
        "key_share": float(per_k[key].sum()) if key else 0.0,
        "spectrum": [float(s) for s in per_k],
        "distance_to_construction": float(0.5 * np.abs(per_k - ref_k).sum()),
        "units": units,
    }


def lines(doc: Mapping[str, Any], most: int = 6) -> list[str]:
    """A Fourier read-out (`read`, maybe from disk: checked) as lines of text."""
    key, units = doc.get("key_frequencies"), doc.get("units")
    if not isinstance(key, list) or not isinstance(units, list):
        return []
    basis_ = doc.get("basis", "?")
    count = doc.get("frequencies", "?")
    shown = ", ".join(str(k) for k in key) if key else "none"
    if key and len(key) == count and len(key) > 8:
        shown = f"all, 1 ... {count}"
    share = doc.get("key_share")
    share_text = f"{share:.1%}" if isinstance(share, int | float) else "-"
    out = [
        f"Fourier ({basis_}, frequency k: angle 2 pi k i / n): key frequencies {shown} "
        f"({len(key)} of {count}), holding {share_text} of the first "
        f"layer's weight norm"
    ]
    pure = [u for u in units if isinstance(u, dict) and u.get("share", 0) >= KEY_SHARE]
    counts: dict[int, int] = {}
    for u in pure:
        counts[u["k"]] = counts.get(u["k"], 0) + 1
    per = ", ".join(f"k={k}: {c}" for k, c in sorted(counts.items()))
    if len(counts) > 8:
        lo, hi = min(counts.values()), max(counts.values())
        per = f"{len(counts)} frequencies, {lo}" + (f" to {hi}" if hi > lo else "") + " each"
    out.append(
        f"units of one frequency (>= {KEY_SHARE:.0%} of their norm): {len(pure)} of "
        f"{len(units)}" + (f" ({per})" if per else "")
    )
    d = doc.get("distance_to_construction")
    if isinstance(d, int | float):
        out.append(
            f"distance to the exact construction's spectrum: {d:.3f} (half the L1 distance of "
            "the first layers' norm shares per frequency; 0 the same)"
        )
    strongest = sorted(pure, key=lambda u: -float(u.get("share", 0)))[:most]
    for u in sorted(strongest, key=lambda u: (u["k"], u["unit"])):
        parts = [f"unit {u['unit']}: k={u['k']} ({u['share']:.0%})"]
        for side in ("a", "b", "out"):
            v = u.get(side)
            if isinstance(v, list) and len(v) == 3:
                parts.append(f"{side} k={v[0]} phase {v[1]:+.2f} ({v[2]:.0%})")
        out.append("  " + ", ".join(parts))
    return out


def concentration_of(energy: Sequence[float]) -> float:
    """The share of the total in the TOP largest non-constant frequencies."""
    e = np.asarray(energy, dtype=np.float64)
    total = e.sum()
    return float(np.sort(e[1:])[::-1][:TOP].sum() / total) if total > 0 else 0.0
