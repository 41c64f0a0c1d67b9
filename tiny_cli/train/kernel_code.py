"""The kernel itself, compiled by numba (imported only through `kernel.compiled`).

`blocks` trains blocks of LANES seeds for a stretch of epochs (threads take blocks side by
side: it runs without the GIL), each block copied into local [rows, LANES] arrays, then
per epoch, per batch, per sample the forward, the loss and the backward (gradients summed
over the batch's samples in order), then the optimizer step, then the epoch's settling
(a seed whose loss or parameters stop being finite is no longer alive and keeps its last
finite parameters). Every loop over lanes has the constant trip count LANES: each seed runs
the same instructions wherever it sits. All arithmetic is float32 with float32 constants
(a Python float would promote it); numpy's error model (IEEE division, no Python exception
checks: 1.5x faster) and no fast math (no reassociation, no fused multiply-adds: a lane's
rounding is fixed by the code).

The operations follow the torch engine's (`backprop`, `optim`) one for one: torch.optim's
single-tensor SGD, Adam and AdamW (lerp, addcmul, addcdiv), torch's BCE (logs clamped at
-100), the stable softmax cross-entropy.
"""

from __future__ import annotations

import math

import numba
import numpy as np

LANES = 128  # seeds per block: 64 ran 1.3x slower, 32 4x (loop overheads)
F = np.float32
ZERO, HALF, ONE, TWO = F(0.0), F(0.5), F(1.0), F(2.0)
MINUS_100 = F(-100.0)
BETA1, BETA2 = 0.9, 0.999
# activation codes (kernel.ACTIVATIONS), loss codes (kernel.LOSSES), optimizers
IDENTITY, RELU, SIGMOID, TANH, LEAKY, SQUARE = 0, 1, 2, 3, 4, 5
MSE, BCE, L1, CE = 0, 1, 2, 3
SGD, ADAM, ADAMW = 0, 1, 2
# accuracy (kernel.RULES): none; each prediction stored for the caller's rule; counted here
# as `tasks.base.rounds_right` or `argmax_right` count it
NO_ACCURACY, STORED, ROUNDS, ARGMAX = 0, 1, 2, 3


@numba.njit(cache=True, inline="always", error_model="numpy")
def _row(li: int, c: int, skip: int, prev: int) -> int:
    """The row of `a` that column c of layer li reads: an input, or the layer before's unit
    (arithmetic, not a table: a table's loads in the loops cost more than they save)."""
    return c if (li == 0 or c < skip) else prev + c - skip


@numba.njit(cache=True, inline="always", error_model="numpy")
def _dot(
    z: np.ndarray, p: np.ndarray, a: np.ndarray, u: int, wr: int, br: int,
    li: int, fan: int, skip: int, prev: int,
) -> None:  # fmt: skip
    """z[u] = p[wr] a[row 0] + p[wr + 1] a[row 1] + ... + p[br], summed in column order as
    one product a pass would (the same roundings), two columns per pass over the lanes."""
    r0 = _row(li, 0, skip, prev)
    if fan == 1:
        for k in range(LANES):
            z[u, k] = p[wr, k] * a[r0, k] + p[br, k]
        return
    r1 = _row(li, 1, skip, prev)
    if fan == 2:
        for k in range(LANES):
            z[u, k] = p[wr, k] * a[r0, k] + p[wr + 1, k] * a[r1, k] + p[br, k]
        return
    for k in range(LANES):
        z[u, k] = p[wr, k] * a[r0, k] + p[wr + 1, k] * a[r1, k]
    c = 2
    while fan - c > 2:
        ra, rb, wa = _row(li, c, skip, prev), _row(li, c + 1, skip, prev), wr + c
        for k in range(LANES):
            z[u, k] = z[u, k] + p[wa, k] * a[ra, k] + p[wa + 1, k] * a[rb, k]
        c += 2
    ra, wa = _row(li, c, skip, prev), wr + c
    if fan - c == 2:
        rb = _row(li, c + 1, skip, prev)
        for k in range(LANES):
            z[u, k] = z[u, k] + p[wa, k] * a[ra, k] + p[wa + 1, k] * a[rb, k] + p[br, k]
    else:
        for k in range(LANES):
            z[u, k] = z[u, k] + p[wa, k] * a[ra, k] + p[br, k]


@numba.njit(cache=True, inline="always", error_model="numpy")
def _relu_dot(
    a: np.ndarray, p: np.ndarray, h: int, wr: int, br: int, li: int, fan: int, skip: int,
    prev: int,
) -> None:  # fmt: skip
    """`_dot` then the ReLU for one or two columns in one pass, into a[h] only."""
    r0 = _row(li, 0, skip, prev)
    if fan == 1:
        for k in range(LANES):
            zz = p[wr, k] * a[r0, k] + p[br, k]
            a[h, k] = ZERO if zz < ZERO else zz
    else:
        r1 = _row(li, 1, skip, prev)
        for k in range(LANES):
            zz = p[wr, k] * a[r0, k] + p[wr + 1, k] * a[r1, k] + p[br, k]
            a[h, k] = ZERO if zz < ZERO else zz


@numba.njit(cache=True, inline="always", error_model="numpy")
def _activate(act: int, z: np.ndarray, h: np.ndarray, u: int, r: int, slope: F) -> None:
    if act == RELU:
        for k in range(LANES):
            zz = z[u, k]
            h[r, k] = ZERO if zz < ZERO else zz
    elif act == SIGMOID:
        for k in range(LANES):
            h[r, k] = ONE / (ONE + math.exp(-z[u, k]))
    elif act == TANH:
        for k in range(LANES):
            h[r, k] = math.tanh(z[u, k])
    elif act == LEAKY:
        for k in range(LANES):
            zz = z[u, k]
            h[r, k] = zz if zz > ZERO else zz * slope
    elif act == SQUARE:
        for k in range(LANES):
            h[r, k] = z[u, k] * z[u, k]
    else:
        for k in range(LANES):
            h[r, k] = z[u, k]


@numba.njit(cache=True, inline="always", error_model="numpy")
def _activation_grad(
    act: int, d: np.ndarray, h: np.ndarray, z: np.ndarray, u: int, r: int, slope: F
) -> None:
    """d (dL/dh) -> dL/dz in place, as the activation table's `grad` computes it."""
    if act == RELU:
        for k in range(LANES):
            d[r, k] = d[r, k] if h[r, k] > ZERO else ZERO
    elif act == SIGMOID:
        for k in range(LANES):
            hh = h[r, k]
            d[r, k] = d[r, k] * (hh * (ONE - hh))
    elif act == TANH:
        for k in range(LANES):
            hh = h[r, k]
            d[r, k] = d[r, k] * (ONE - hh * hh)
    elif act == LEAKY:
        for k in range(LANES):
            d[r, k] = d[r, k] if h[r, k] > ZERO else d[r, k] * slope
    elif act == SQUARE:
        for k in range(LANES):
            d[r, k] = d[r, k] * (TWO * z[u, k])


@numba.njit(cache=True, error_model="numpy", inline="always")
def _loss(
    kind: int,
    a: np.ndarray,
    d: np.ndarray,
    yv: np.ndarray,
    ex: np.ndarray,
    bl: np.ndarray,
    r0: int,
    nb: int,
    bce_eps: F,
) -> None:
    """Each output's loss added to bl, d (mean loss) / d output into d's output rows."""
    outputs = yv.shape[0]
    count = F(outputs * nb)
    if kind == MSE:
        scale = F(2.0 / (outputs * nb))
        for o in range(outputs):
            for k in range(LANES):
                err = a[r0 + o, k] - yv[o, k]
                bl[k] += err * err
                d[r0 + o, k] = err * scale
    elif kind == L1:
        for o in range(outputs):
            for k in range(LANES):
                err = a[r0 + o, k] - yv[o, k]
                bl[k] += abs(err)
                sign = ONE if err > ZERO else (-ONE if err < ZERO else err)
                d[r0 + o, k] = sign / count
    elif kind == BCE:
        for o in range(outputs):
            for k in range(LANES):
                p, t = a[r0 + o, k], yv[o, k]
                bl[k] += (t - ONE) * max(math.log1p(-p), MINUS_100) - t * max(
                    math.log(p), MINUS_100
                )
                d[r0 + o, k] = (p - t) / max((ONE - p) * p, bce_eps) / count
    else:  # softmax cross-entropy over the outputs (the classes)
        classes = F(outputs)
        per = F(nb)
        for k in range(LANES):
            top = a[r0, k]
            for o in range(1, outputs):
                top = max(top, a[r0 + o, k])
            total = ZERO
            sum_y = ZERO
            for o in range(outputs):
                ex[o, k] = math.exp(a[r0 + o, k] - top)
                total += ex[o, k]
                sum_y += yv[o, k]
            log_total = math.log(total)
            for o in range(outputs):
                logp = (a[r0 + o, k] - top) - log_total
                bl[k] += (yv[o, k] * logp) * -classes
                d[r0 + o, k] = ((ex[o, k] / total) * sum_y - yv[o, k]) / per


@numba.njit(cache=True, error_model="numpy")
def _block(
    blk: int,
    flat: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    last_good: np.ndarray,
    alive: np.ndarray,
    epochs_done: np.ndarray,
    diverged_at: np.ndarray,
    grad_out: np.ndarray,
    loss_out: np.ndarray,
    alive_out: np.ndarray,
    pred_out: np.ndarray,
    hits_out: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    truth: np.ndarray,
    classes: np.ndarray,
    perms: np.ndarray,
    layers: np.ndarray,
    units: np.ndarray,
    fc: np.ndarray,
    ic: np.ndarray,
) -> None:
    n_params, s_all = flat.shape
    inputs, n = x.shape
    outputs = y.shape[0]
    n_layers, n_units = layers.shape[0], units.shape[0]
    # fc: float64 as Python holds them; each becomes a float32 where torch casts it
    lr64 = fc[0]
    wd, momentum, w1, beta2, c2 = F(fc[1]), F(fc[2]), F(fc[3]), F(fc[4]), F(fc[5])
    eps, tiny, decay, slope, bce_eps = F(fc[6]), F(fc[7]), F(fc[8]), F(fc[9]), F(fc[10])
    minus_lr = F(-fc[0])
    loss_kind, opt, epochs, batch_size, step0, rule = ic[0], ic[1], ic[2], ic[3], ic[4], ic[5]
    full = perms.shape[2] == 0
    lo = blk * LANES
    cnt = min(LANES, s_all - lo)
    col = np.empty(LANES, np.int64)
    ix = np.empty(LANES, np.int64)  # each lane's sample (mini-batches)
    for k in range(LANES):
        col[k] = lo + k if k < cnt else lo
    p = np.empty((n_params, LANES), F)
    mm = np.empty((n_params, LANES), F)
    vv = np.empty((n_params, LANES), F)
    lg = np.empty((n_params, LANES), F)
    g = np.zeros((n_params, LANES), F)
    for r in range(n_params):
        for k in range(LANES):
            c = col[k]
            p[r, k] = flat[r, c]
            mm[r, k] = m[r, c]
            vv[r, k] = v[r, c]
            lg[r, k] = last_good[r, c]
    al = np.empty(LANES, np.bool_)
    done = np.empty(LANES, np.int64)
    div = np.empty(LANES, F)
    for k in range(LANES):
        al[k] = alive[col[k]] != 0
        done[k] = epochs_done[col[k]]
        div[k] = diverged_at[col[k]]
    a = np.empty((inputs + n_units, LANES), F)  # inputs, then every unit's activation
    z = np.empty((n_units, LANES), F)
    d = np.empty((inputs + n_units, LANES), F)
    yv = np.empty((outputs, LANES), F)
    ex = np.empty((outputs, LANES), F)
    bl = np.empty(LANES, F)
    hit = np.empty(LANES, np.int64)  # outputs right (ROUNDS) or samples right (ARGMAX)
    el = np.empty(LANES, F)
    fin = np.empty(LANES, F)
    ok = np.empty(LANES, np.bool_)
    out0 = inputs + layers[n_layers - 1, 4]
    batches = 1 if full else (n + batch_size - 1) // batch_size
    step = step0
    for e in range(epochs):
        for k in range(LANES):
            el[k] = ZERO
            hit[k] = 0
        for bi in range(batches):
            start = 0 if full else bi * batch_size
            nb = n if full else min(batch_size, n - start)
            for r in range(n_params):
                for k in range(LANES):
                    g[r, k] = ZERO
            for k in range(LANES):
                bl[k] = ZERO
            for s in range(nb):
                if full:
                    for i in range(inputs):
                        for k in range(LANES):
                            a[i, k] = x[i, s]
                    for o in range(outputs):
                        for k in range(LANES):
                            yv[o, k] = y[o, s]
                else:
                    for k in range(LANES):
                        ix[k] = perms[e, col[k], start + s]
                    for i in range(inputs):
                        xi = x[i]
                        for k in range(LANES):
                            a[i, k] = xi[ix[k]]
                    for o in range(outputs):
                        yo = y[o]
                        for k in range(LANES):
                            yv[o, k] = yo[ix[k]]
                # forward
                for li in range(n_layers):
                    fan, width, act, skip, u0 = (
                        layers[li, 0],
                        layers[li, 1],
                        layers[li, 2],
                        layers[li, 3],
                        layers[li, 4],
                    )
                    prev = inputs + layers[li - 1, 4] if li > 0 else 0
                    for j in range(width):
                        u = u0 + j
                        wr, br = units[u, 0], units[u, 1]
                        if act == RELU and fan <= 2:  # (z unstored: only SQUARE reads it)
                            _relu_dot(a, p, inputs + u, wr, br, li, fan, skip, prev)
                            continue
                        _dot(z, p, a, u, wr, br, li, fan, skip, prev)
                        _activate(act, z, a, u, inputs + u, slope)
                _loss(loss_kind, a, d, yv, ex, bl, out0, nb, bce_eps)
                if rule == STORED:
                    for o in range(outputs):
                        for k in range(cnt):
                            pred_out[o, start + s, e, lo + k] = a[out0 + o, k]
                elif rule == ROUNDS:  # (pred - truth).abs() < 0.5, in float32
                    for o in range(outputs):
                        if full:
                            to = truth[o, s]
                            for k in range(LANES):
                                hit[k] += abs(a[out0 + o, k] - to) < HALF
                        else:
                            tr = truth[o]
                            for k in range(LANES):
                                hit[k] += abs(a[out0 + o, k] - tr[ix[k]]) < HALF
                elif rule == ARGMAX:  # torch's argmax: the first largest, a NaN above all
                    for k in range(LANES):
                        best, top = a[out0, k], 0
                        for o in range(1, outputs):
                            val = a[out0 + o, k]
                            if not math.isnan(best) and (val > best or math.isnan(val)):
                                best, top = val, o
                        hit[k] += top == (classes[s] if full else classes[ix[k]])
                # backward
                for li in range(n_layers - 1, -1, -1):
                    fan, width, act, skip, u0 = (
                        layers[li, 0],
                        layers[li, 1],
                        layers[li, 2],
                        layers[li, 3],
                        layers[li, 4],
                    )
                    prev = inputs + layers[li - 1, 4] if li > 0 else 0
                    for j in range(width):
                        u = u0 + j
                        r = inputs + u
                        _activation_grad(act, d, a, z, u, r, slope)
                        wr, br = units[u, 0], units[u, 1]
                        for k in range(LANES):
                            g[br, k] += d[r, k]
                        for c in range(fan):
                            row = _row(li, c, skip, prev)
                            for k in range(LANES):
                                g[wr + c, k] += d[r, k] * a[row, k]
                    if li == 0:
                        break
                    # the first unit's share stored, not added to a zeroed row: only a
                    # zero's sign can differ (0 + -0 is +0), and these rows reach g only
                    # through products and sums from +0: the same gradients, to the bit
                    for j in range(width):
                        u = u0 + j
                        r = inputs + u
                        wr = units[u, 0]
                        for c in range(skip, fan):
                            row = prev + c - skip
                            if j == 0:
                                for k in range(LANES):
                                    d[row, k] = p[wr + c, k] * d[r, k]
                            else:
                                for k in range(LANES):
                                    d[row, k] += p[wr + c, k] * d[r, k]
            # the step
            step += 1
            count = F(outputs * nb)
            for k in range(LANES):
                mean = bl[k] / count
                el[k] = mean if full else el[k] + mean * F(nb)
            if opt == SGD:
                first = step == 1
                for r in range(n_params):
                    for k in range(LANES):
                        gg = g[r, k] if al[k] else ZERO
                        g[r, k] = gg
                        if wd != ZERO:
                            gg = gg + wd * p[r, k]
                        if momentum != ZERO:
                            gg = gg if first else mm[r, k] * momentum + gg
                            mm[r, k] = gg
                        p[r, k] = p[r, k] + minus_lr * gg
            else:
                step_size = F(-lr64 / (1.0 - BETA1**step))
                bias2 = F(math.sqrt(1.0 - BETA2**step))
                for r in range(n_params):
                    for k in range(LANES):
                        gg = g[r, k] if al[k] else ZERO
                        g[r, k] = gg
                        if opt == ADAMW:
                            p[r, k] = p[r, k] * decay
                        elif wd != ZERO:
                            gg = gg + wd * p[r, k]
                        mk = mm[r, k] + w1 * (gg - mm[r, k])
                        mm[r, k] = mk
                        vk = vv[r, k] * beta2 + c2 * gg * gg
                        vv[r, k] = vk
                        denom = math.sqrt(max(vk, tiny)) / bias2 + eps
                        p[r, k] = p[r, k] + step_size * (mk / denom)
        # the epoch's end: who is still alive
        for k in range(LANES):
            fin[k] = ZERO
            if not full:
                el[k] = el[k] / F(n)
        for r in range(n_params):
            for k in range(LANES):
                fin[k] += p[r, k] * ZERO
        for k in range(LANES):
            good = al[k] and math.isfinite(el[k]) and fin[k] == ZERO
            if good:
                done[k] += 1
            elif al[k]:
                div[k] = el[k]
            al[k] = good
            ok[k] = good
        for r in range(n_params):
            for k in range(LANES):
                if ok[k]:
                    lg[r, k] = p[r, k]
        for k in range(cnt):
            loss_out[e, lo + k] = el[k]
            alive_out[e, lo + k] = al[k]
        if rule >= ROUNDS:
            for k in range(cnt):
                hits_out[e, lo + k] = hit[k]
    for r in range(n_params):
        for k in range(cnt):
            flat[r, lo + k] = p[r, k]
            m[r, lo + k] = mm[r, k]
            v[r, lo + k] = vv[r, k]
            last_good[r, lo + k] = lg[r, k]
            grad_out[r, lo + k] = g[r, k]
    for k in range(cnt):
        alive[lo + k] = al[k]
        epochs_done[lo + k] = done[k]
        diverged_at[lo + k] = div[k]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def blocks(
    first: int,
    last: int,
    flat: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    last_good: np.ndarray,
    alive: np.ndarray,
    epochs_done: np.ndarray,
    diverged_at: np.ndarray,
    grad_out: np.ndarray,
    loss_out: np.ndarray,
    alive_out: np.ndarray,
    pred_out: np.ndarray,
    hits_out: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    truth: np.ndarray,
    classes: np.ndarray,
    perms: np.ndarray,
    layers: np.ndarray,
    units: np.ndarray,
    fc: np.ndarray,
    ic: np.ndarray,
) -> None:
    """Train the seeds of blocks first .. last - 1 (columns of flat [P, S]) for ic[2] epochs,
    in place; without the GIL, so that threads take blocks side by side."""
    for blk in range(first, last):
        _block(
            blk, flat, m, v, last_good, alive, epochs_done, diverged_at, grad_out, loss_out,
            alive_out, pred_out, hits_out, x, y, truth, classes, perms, layers, units, fc, ic,
        )  # fmt: skip


# --- batch orders: torch.randperm on each seed's own generator, bit for bit --------------
MT_N, MT_M = 624, 397
MATRIX_A, UPPER, LOWER = 0x9908B0DF, 0x80000000, 0x7FFFFFFF


@numba.njit(cache=True, error_model="numpy")
def _twist(u: np.int64, v: np.int64) -> np.int64:
    return (((u & UPPER) | (v & LOWER)) >> 1) ^ (MATRIX_A if v & 1 else 0)


@numba.njit(cache=True, error_model="numpy")
def _next_state(st: np.ndarray) -> None:
    """at::mt19937's next_state: the 624 words regenerated."""
    k = 0
    for _ in range(MT_N - MT_M):
        st[k] = np.int64(st[k + MT_M]) ^ _twist(np.int64(st[k]), np.int64(st[k + 1]))
        k += 1
    for _ in range(MT_M - 1):
        st[k] = np.int64(st[k + MT_M - MT_N]) ^ _twist(np.int64(st[k]), np.int64(st[k + 1]))
        k += 1
    st[k] = np.int64(st[k + MT_M - MT_N]) ^ _twist(np.int64(st[k]), np.int64(st[0]))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def shuffles(
    first: int, last: int, state: np.ndarray, left: np.ndarray, nxt: np.ndarray, out: np.ndarray
) -> None:
    """out[e, j] = what `torch.randperm(n, generator=g_j)` returns on its e-th call, for
    each seed j, advancing the generators' states (mt19937 words [S, 624] uint32, `left`,
    `next`, as `Generator.get_state` holds them): ATen's CPU randperm for n < 2^32 / 20 (a
    Fisher-Yates shuffle, `random() % (n - i)`) on at::mt19937, written out. Seeds first ..
    last - 1 (threads take ranges side by side)."""
    epochs, _, n = out.shape
    perm = np.empty(n, np.int64)
    # y % m as y - m floor(y / m) with y / m from a float64 reciprocal: exact after one
    # correction (y, m < 2^32), and 3x faster than the integer division
    inverse = np.empty(n, np.float64)
    for i in range(n):
        inverse[i] = 1.0 / (n - i)
    for j in range(first, last):
        st = state[j]
        lf, nx = left[j], nxt[j]
        for e in range(epochs):
            for i in range(n):
                perm[i] = i
            for i in range(n - 1):
                lf -= 1
                if lf == 0:
                    _next_state(st)
                    lf, nx = MT_N, 0
                y = np.int64(st[nx])
                nx += 1
                y ^= y >> 11
                y ^= (y << 7) & 0x9D2C5680
                y ^= (y << 15) & 0xEFC60000
                y ^= y >> 18
                m = n - i
                r = y - m * np.int64(y * inverse[i])
                if r >= m:
                    r -= m
                elif r < 0:
                    r += m
                z = i + r
                perm[i], perm[z] = perm[z], perm[i]
            for i in range(n):
                out[e, j, i] = perm[i]
        left[j], nxt[j] = lf, nx
