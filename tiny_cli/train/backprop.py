"""S nets' forward and backward pass written out by hand: the engine's gradients, no autograd.

Why by hand. Our nets are tiny (2x2 weights) and a sweep trains a thousand of them at once.
With autograd every product is a `baddbmm` forward and two `bmm`s backward: a BLAS call per
seed per product, most of a 1000-seed epoch's time. Written out, a small layer is a few
elementwise ops over all seeds at once, and no graph is recorded: 1000-seed epochs run
several times faster (bench/bench_claims.py), and one seed's too.

Batch invariance, bit for bit (see engine.py): every op here is elementwise (one rounding per
element: mul, add, sub, div, compare) or a per-seed sum in a fixed order, so a seed's numbers
never depend on how many seeds run beside it or on the thread count:

- a small layer (fan_in x width at most SMALL) forms the products w_ji * h_i as one
  [width, fan_in, n, S] tensor and sums them, and the backward's sums over the data, by
  halving (`tree_sum`: first half + second half, again and again): additions whose order is
  fixed by the shapes alone;
- a wide layer is a per-seed `bmm` (`per_seed_product`) on copies of each seed's matrices
  that start on 64-byte boundaries (`matrices`), MKL on one thread, the seeds shared out
  between threads: MKL rounds by a matrix's alignment and splits one product between
  threads differently at each thread count, so a seed's bits would otherwise hang on its
  place in the batch and on the threads;
- a wide first layer over one-hot inputs (the same number of ones in every sample, zeros
  elsewhere: `one_hot_columns`) is a gather of weight columns, added in input order, and its
  backward a scatter-add (`index_add_`, sample by sample in order on the CPU): modadd's
  62 -> 256 layer adds 2 columns per sample instead of 62 products.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from tiny_cli.spec import activations

if TYPE_CHECKING:
    from tiny_cli.spec.models import Arch, Params

ALIGN = 64  # elements: a multiple of any CPU's vector-loop step (AVX-512 floats: 32)
BLOCK = 1 << 14  # elements per call: under ATen's GRAIN_SIZE (32768), never split in threads
COLLECT = 1 << 24  # floats of per-sample products gathered before summing (64 MiB)
SMALL = 128  # fan_in x width at most this: elementwise products (faster than bmm up to ~here)
BCE_EPS = 1e-12  # torch's binary_cross_entropy_backward: (p - y) / max(p (1 - p), eps)


def tree_sum(t: Tensor, dim: int) -> Tensor:
    """Sum over `dim` in an order fixed by its size alone: zeros appended up to a power of
    two, then first half + second half, again and again (elementwise adds), so a column's
    sum never depends on the columns beside it."""
    dim %= t.dim()
    m = t.shape[dim]
    if m <= 2:
        if m == 1:
            return t.squeeze(dim)
        first, second = t.unbind(dim)
        return first + second
    levels = (m - 1).bit_length()
    if m < 1 << levels:
        t = F.pad(t, (0, 0) * (t.dim() - 1 - dim) + (0, (1 << levels) - m))
    t = t.reshape(*t.shape[:dim], *([2] * levels), *t.shape[dim + 1 :])
    for _ in range(levels):
        first, second = t.unbind(dim)
        t = first + second
    return t


def uniform(fn: Callable[..., Tensor], *args: Tensor) -> Tensor:
    """`fn(*args, out=...)`, elementwise, with every element computed by the same code path.

    ATen runs an elementwise op's vectorised loop over the bulk of a tensor and a scalar
    loop over the last few elements (and over the last few of each thread's share). For
    arithmetic both give the same bits; for some functions they do not (torch.sigmoid, on
    some CPUs: bench/bench_claims.py). Which elements of a seed land
    in a tail depends on the seeds beside it and the thread count. So: the seeds dimension
    is padded to a multiple of ALIGN and fn runs on blocks of at most BLOCK elements (never
    split between threads): every element goes through the vectorised loop."""
    # (torch.broadcast_tensors, not torch.broadcast_shapes: that one imports sympy)
    expanded = torch.broadcast_tensors(*args)
    shape = expanded[0].shape
    seeds = shape[-1]
    width = -(-seeds // ALIGN) * ALIGN
    padded = [F.pad(a, (0, width - seeds)).view(-1, width) for a in expanded]
    out = padded[0].new_empty(padded[0].shape)
    step = max(1, BLOCK // width)
    if step >= len(out):
        fn(*padded, out=out)
    else:
        for r in range(0, len(out), step):
            fn(*(t[r : r + step] for t in padded), out=out[r : r + step])
    return out.view(*shape[:-1], width)[..., :seeds]


def small(fan_in: int, width: int) -> bool:
    """Whether a layer runs on elementwise products (else on bmm)."""
    return fan_in * width <= SMALL


def _wide(arch: Arch) -> list[bool]:
    """Per layer, whether it runs on bmm (wider than SMALL)."""
    layers = zip(arch.blocks(), arch.layers, strict=True)
    return [not small(blocks[0][1], spec.width) for blocks, spec in layers]


def has_wide_layer(arch: Arch) -> bool:
    """Whether a layer of the net runs on bmm (wider than SMALL)."""
    return any(_wide(arch))


def seeds_first(arch: Arch) -> bool:
    """Whether the net runs seeds first (`SeedNets` docstring): every layer wide, none
    reading the inputs beside the previous layer."""
    return all(_wide(arch)) and not any(arch.reads_inputs(i) for i in range(len(arch.layers)))


SEEN_INPUTS = 2  # the inputs whose one-hot columns a net keeps (`SeedNets._one_hot`)
MATRIX_ALIGN = 16  # floats: 64 bytes, a cache line and an AVX-512 register


def matrices(t: Tensor, order: tuple[int, int, int], seeds: int) -> Tensor:
    """t [a, b, S] (or [a, b, 1], every seed's) permuted by `order` to [S, r, c]: a copy in
    which each seed's matrix is row-major and starts on a 64-byte boundary of its own."""
    view = t.permute(*order).expand(seeds, -1, -1)
    return _empty_matrices(t, *view.shape).copy_(view)


def _empty_matrices(like: Tensor, s: int, r: int, c: int) -> Tensor:
    size = -(-r * c // MATRIX_ALIGN) * MATRIX_ALIGN
    return like.new_empty(s * size).as_strided((s, r, c), (size, c, 1))


def aligned(t: Tensor) -> Tensor:
    """t [S, r, c] laid out as `matrices` lays it out (each seed's matrix row-major, on a
    64-byte boundary of its own): t itself when it already is, else such a copy."""
    s, r, c = t.shape
    size = -(-r * c // MATRIX_ALIGN) * MATRIX_ALIGN
    strides = (size, c, 1)
    laid = zip(t.shape, t.stride(), strides, strict=True)
    on_boundary = t.data_ptr() % (MATRIX_ALIGN * t.element_size()) == 0
    if on_boundary and all(n == 1 or have == want for n, have, want in laid):
        return t
    return _empty_matrices(t, s, r, c).copy_(t)


def per_seed_product(a: Tensor, b: Tensor, bias: Tensor | None = None) -> Tensor:
    """a [S, m, k] @ b [S, k, n] (+ bias [S, m, 1]) for each seed (operands from `matrices`),
    into matrices aligned alike: each seed's on one MKL thread, whatever the batch, its
    place in it or the thread count; on the CPU the seeds are shared out between
    torch's threads (each product whole on one)."""
    s, m, n = a.shape[0], a.shape[1], b.shape[2]
    out = _empty_matrices(a, s, m, n)
    if bias is not None:
        out.copy_(bias.expand(s, m, n))

    def part(lo: int, hi: int) -> None:
        if bias is None:
            torch.bmm(a[lo:hi], b[lo:hi], out=out[lo:hi])
        else:
            torch.baddbmm(out[lo:hi], a[lo:hi], b[lo:hi], out=out[lo:hi])

    if a.device.type != "cpu":
        part(0, s)
        return out
    before = torch.get_num_threads()
    threads = min(before, s)
    torch.set_num_threads(1)
    try:
        if threads == 1:
            part(0, s)
        else:
            bounds = [s * i // threads for i in range(threads + 1)]
            list(_pool(threads).map(part, bounds[:-1], bounds[1:]))
    finally:
        torch.set_num_threads(before)
    return out


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    """Threads for `per_seed_product`, each on one OpenMP thread (a thread's own setting:
    a new thread would start with OpenMP's default and MKL would split its products)."""
    return ThreadPoolExecutor(
        threads, thread_name_prefix="tiny-bmm", initializer=torch.set_num_threads, initargs=(1,)
    )


def _activate(name: str, z: Tensor) -> Tensor:
    activation = activations.get(name)
    if activation.smooth:  # a transcendental function: on one code path
        return uniform(activation.torch, z)
    return activation.torch(z)  # relu, leaky relu, identity: arithmetic


@dataclass
class _Layer:
    blocks: tuple[str, ...]  # its Linear modules, outputs concatenated
    fan_in: int
    width: int
    activation: str
    skip: bool  # reads [inputs, previous layer]
    small: bool
    # Views of the parameters, made once (single-block layers; None: stacked at each call)
    w: Tensor | None = None  # [width, fan_in, 1, S]
    b: Tensor | None = None  # [width, 1, S]


@dataclass
class _Buffers:
    """What a backward over n samples writes into, made once per n: the segments and, per
    layer (last first), each block's weight rows [per, fan_in, n, S] and bias rows
    [per, n, S] in them (None for a wide layer's weight), and the loss's rows."""

    segments: list[Tensor]
    weights: list[list[Tensor | None]]
    biases: list[list[Tensor]]
    loss: Tensor  # [outputs, n, S]


class SeedNets:
    """An architecture's forward and backward for S seeds at once, seeds last: each
    parameter is [*shape, S] (the model's own state_dict names), data and activations
    [features, n, S or 1]. Seeds last, every op runs along S: contiguous and vectorised.

    `params` are read at every call: views of a buffer the engine updates in place."""

    def __init__(self, arch: Arch, params: Params, loss: str = "mse") -> None:
        self.inputs = arch.inputs
        self.params = params
        self.loss = loss
        self.seeds = next(iter(params.values())).shape[-1]
        blocks = arch.blocks()
        self.layers = []
        for i, (layer, spec) in enumerate(zip(blocks, arch.layers, strict=True)):
            names = tuple(name for name, _, _ in layer)
            fan_in = layer[0][1]
            la = _Layer(
                names,
                fan_in,
                spec.width,
                spec.activation,
                skip=arch.reads_inputs(i) > 0,
                small=small(fan_in, spec.width),
            )
            if len(names) == 1:  # views of the buffer: made once
                la.w = params[f"{names[0]}.weight"].unsqueeze(2)
                la.b = params[f"{names[0]}.bias"].unsqueeze(1)
            self.layers.append(la)
        # The backward writes each parameter's per-sample products as rows of a segment
        # [rows, n, S], consecutive parameters sharing one, all summed over the data at
        # once; a wide layer's weight, summed by bmm already, ends a segment. The loss's
        # per-sample values are the last segment's last rows: summed in the same call.
        self._offsets: dict[str, tuple[int, int]] = {}  # name -> (first row, rows) in [P, S]
        self._rows: dict[str, tuple[int, int, int]] = {}  # name -> (segment, first, count)
        self._order: list[int | str] = []  # parameters order: a segment, or a wide weight
        self._segments: list[int] = []
        self.n_params = 0
        for la in self.layers:
            per = la.width // len(la.blocks)
            for block in la.blocks:
                for name, count in ((f"{block}.weight", per * la.fan_in), (f"{block}.bias", per)):
                    self._offsets[name] = (self.n_params, count)
                    self.n_params += count
                    if name.endswith(".weight") and not la.small:
                        self._order.append(name)
                        continue
                    if not self._order or not isinstance(self._order[-1], int):
                        self._order.append(len(self._segments))
                        self._segments.append(0)
                    self._rows[name] = (len(self._segments) - 1, self._segments[-1], count)
                    self._segments[-1] += count
        self.outputs = self.layers[-1].width
        self._segments[-1] += self.outputs  # (a bias always ends the parameters: a segment)
        self._buffers: dict[int, _Buffers] = {}
        self._gathered: Tensor | None = None  # the forward's one-hot columns, for `step`
        self.seeds_first = seeds_first(arch)
        # `_one_hot`'s inputs seen last: (x, its columns, seeds first those of every seed)
        self._columns: list[tuple[Tensor, Tensor | None, Tensor | None]] = []
        self._ones_by_n: dict[int, Tensor] = {}  # `_ones`

    def _weights(self, layer: _Layer) -> tuple[Tensor, Tensor]:
        """[width, fan_in, 1, S], [width, 1, S]: the layer's blocks, stacked."""
        if layer.w is not None and layer.b is not None:
            return layer.w, layer.b
        ws = [self.params[f"{b}.weight"] for b in layer.blocks]
        bs = [self.params[f"{b}.bias"] for b in layer.blocks]
        return torch.cat(ws).unsqueeze(2), torch.cat(bs).unsqueeze(1)

    def forward(self, x: Tensor) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """The outputs [width, n, S] and, per layer, (its input [fan_in, n, S or 1], its
        activation, or its pre-activation z for one whose gradient needs z) for `backward`.

        A wide first layer over one-hot inputs (`one_hot_columns`: m inputs of each sample
        are 1, the rest 0) is a gather: z = b + W[:, i_1] + ... + W[:, i_m], m adds per
        element instead of fan_in products (its backward a scatter-add, `step`)."""
        if self.seeds_first:  # (its saved tensors are [S, n, features])
            out, kept = self._forward_seeds_first(x)
            return out.permute(2, 1, 0), kept
        saved: list[tuple[Tensor, Tensor]] = []
        h = x
        first = self.layers[0]
        self._gathered = None if first.small or first.skip else self._one_hot(x)[0]
        for layer in self.layers:
            inp = torch.cat((x.expand(-1, -1, self.seeds), h)) if layer.skip else h
            w, b = self._weights(layer)
            if layer is first and self._gathered is not None:
                rows = w.squeeze(2).permute(1, 0, 2).contiguous()  # [fan_in, width, S]
                columns = self._gathered.T  # [m, n]: the j-th set input of every sample
                g = rows.index_select(0, columns[0])  # [n, width, S], rows of width x S
                for column in columns[1:]:
                    g += rows.index_select(0, column)
                z = g.add_(b.permute(1, 0, 2)).permute(1, 0, 2).contiguous()
            elif layer.small:  # [width, fan_in, n, S] products, summed over fan_in
                z = tree_sum(w * inp, dim=1).add_(b)
            else:
                s = self.seeds
                weight, by_seed = matrices(w.squeeze(2), (2, 0, 1), s), matrices(inp, (2, 0, 1), s)
                z = per_seed_product(weight, by_seed, b.permute(2, 0, 1))  # [S, width, n]
                z = z.permute(1, 2, 0).contiguous()
            h = _activate(layer.activation, z)
            saved.append((inp, z if activations.get(layer.activation).from_z else h))
        return h, saved

    def _buffers_for(self, n: int, like: Tensor) -> _Buffers:
        """The buffers for batches of n samples, made once and reused (each step's are
        summed before the next step writes them)."""
        if n in self._buffers:
            return self._buffers[n]
        segments = [like.new_empty(rows, n, self.seeds) for rows in self._segments]

        def rows(name: str) -> Tensor:
            segment, first, count = self._rows[name]
            return segments[segment][first : first + count]

        weights, biases = [], []
        for la in reversed(self.layers):
            per = la.width // len(la.blocks)
            shape = (per, la.fan_in, n, self.seeds)
            small = la.small
            weights.append([rows(f"{b}.weight").view(shape) if small else None for b in la.blocks])
            biases.append([rows(f"{b}.bias") for b in la.blocks])
        made = _Buffers(segments, weights, biases, segments[-1][-self.outputs :])
        self._buffers[n] = made
        return made

    def step(self, x: Tensor, y: Tensor, alive: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One forward and backward on a batch x [inputs, n, S or 1], y [outputs, n, S or
        1]: the outputs [outputs, n, S], each seed's mean loss [S], and d (that loss) / d
        parameters [P, S] (each seed a column, its parameters in `parameters()` order;
        zero for a seed that is not `alive`).

        Up to COLLECT floats of per-sample products, every parameter's are gathered and
        summed over the data at once (fewest calls); beyond, each is summed as soon as it
        is made (least memory). Both sum each row by `tree_sum` over n: the same bits."""
        if self.seeds_first:
            return self._step_seeds_first(x, y, alive)
        pred, saved = self.forward(x)
        n, seeds = pred.shape[1], self.seeds
        count = self.outputs * n
        collect = sum(self._segments) * n * seeds <= COLLECT
        buffers = self._buffers_for(n, pred) if collect else None
        result = pred.new_empty(0 if collect else self.n_params, seeds)  # when not collecting

        def put(name: str, value: Tensor) -> None:
            first, size = self._offsets[name]
            result[first : first + size] = value

        losses_out = buffers.loss if buffers is not None else torch.empty_like(pred)
        grad = _loss_into(self.loss, pred, y.expand_as(pred), count, losses_out)
        grad = grad.where(alive, 0.0)
        wide: dict[str, Tensor] = {}  # wide weights, [rows, S]
        for k, i in enumerate(range(len(self.layers) - 1, -1, -1)):
            layer = self.layers[i]
            inp, h = saved[i]  # [fan_in, n, S or 1], [width, n, S] (h, or z: `from_z`)
            per = layer.width // len(layer.blocks)
            blocks = list(enumerate(layer.blocks))
            # d loss / d z, for one block straight into its bias rows
            into = buffers.biases[k][0] if buffers is not None and len(blocks) == 1 else None
            dz = _activation_grad(layer.activation, grad, h, into)
            for j, block in blocks:
                if buffers is None:
                    put(f"{block}.bias", tree_sum(dz[j * per : (j + 1) * per], dim=1))
                elif into is None:
                    buffers.biases[k][j].copy_(dz[j * per : (j + 1) * per])
            dz_ = dz.unsqueeze(1)  # [width, 1, n, S]
            if layer.small:
                for j, block in blocks:  # [per, fan_in, n, S] products
                    mine = dz_[j * per : (j + 1) * per]
                    out = buffers.weights[k][j] if buffers is not None else None
                    if out is not None:
                        torch.mul(mine, inp, out=out)
                    else:
                        put(f"{block}.weight", tree_sum(mine * inp, dim=2).reshape(-1, seeds))
            elif i == 0 and self._gathered is not None:  # the gather's scatter-add
                # sample by sample, in order: a seed's sums never depend on the others
                by_sample = dz.permute(1, 0, 2).contiguous()  # [n, width, S]
                dw0 = dz.new_zeros(layer.fan_in, layer.width, seeds)
                for column in self._gathered.T:
                    dw0.index_add_(0, column, by_sample)
                (block,) = layer.blocks
                value = dw0.permute(1, 0, 2).reshape(-1, seeds)  # (unit, input) rows
                if buffers is None:
                    put(f"{block}.weight", value)
                else:
                    wide[f"{block}.weight"] = value
            else:
                by_seed = matrices(inp, (2, 1, 0), seeds)  # [S, n, fan_in]
                dw = per_seed_product(matrices(dz, (2, 0, 1), seeds), by_seed)
                for j, block in blocks:
                    value = dw[:, j * per : (j + 1) * per].reshape(seeds, -1).T
                    if buffers is None:
                        put(f"{block}.weight", value)
                    else:
                        wide[f"{block}.weight"] = value
            if i == 0:
                break
            w, _ = self._weights(layer)
            if layer.skip:  # only the previous layer's part of the input needs a gradient
                w = w[:, self.inputs :]
            if layer.small:
                grad = tree_sum(w * dz_, dim=0)
            else:
                dz_seeds = matrices(dz, (2, 0, 1), seeds)
                grad = per_seed_product(matrices(w.squeeze(2), (2, 1, 0), seeds), dz_seeds)
                grad = grad.permute(1, 2, 0).contiguous()
        if buffers is None:
            return pred, tree_sum(tree_sum(losses_out, dim=1), dim=0) / count, result
        sums = [tree_sum(segment, dim=1) for segment in buffers.segments]
        losses = tree_sum(sums[-1][-self.outputs :], dim=0) / count
        sums[-1] = sums[-1][: -self.outputs]
        parts = [wide[item] if isinstance(item, str) else sums[item] for item in self._order]
        return pred, losses, torch.cat(parts) if len(parts) > 1 else parts[0]

    def _one_hot(self, x: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """x's one-hot columns [n, m] (`one_hot_columns`), and seeds first each sample's set
        inputs [S n, m] as rows of W^T [S fan_in, width], seed by seed; kept for the last
        SEEN_INPUTS inputs (the training inputs every epoch, the test inputs every logged
        one: neither found again each time)."""
        for seen, columns, by_seed in self._columns:
            if seen is x:
                return columns, by_seed
        columns, by_seed = one_hot_columns(x), None
        if columns is not None and self.seeds_first:
            offsets = torch.arange(self.seeds, device=columns.device) * self.layers[0].fan_in
            by_seed = (offsets[:, None, None] + columns).reshape(-1, columns.shape[1])
        self._columns = [(x, columns, by_seed), *self._columns][:SEEN_INPUTS]
        return columns, by_seed

    # Seeds first. A net of wide layers only spends its time in per-seed products. Kept
    # seeds last, every layer's activations are turned into each seed's matrices and back,
    # transposes of whole [width, n, S] tensors that cost more than the products. Here
    # they are [S, n, features] throughout, each seed's matrix as `matrices` lays it out
    # (rows: samples, as nn.Linear has them), and every product reads its operands where
    # they lie, a transposed one as a view: z = h W^T + b, dW = dz^T h, d h = dz W.

    def _forward_seeds_first(self, x: Tensor) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """`forward` on [S, n, features] activations: the outputs [S, n, outputs] and, per
        layer, its input [S, n, fan_in] (x itself for a gathered first layer) and its
        activation or pre-activation."""
        s = self.seeds
        saved: list[tuple[Tensor, Tensor]] = []
        self._gathered, seed_columns = self._one_hot(x)
        h = x if self._gathered is not None else matrices(x, (2, 1, 0), s)
        for i, layer in enumerate(self.layers):
            w, b = self._weights(layer)  # [width, fan_in, 1, S], [width, 1, S]
            bias = b.permute(2, 1, 0)  # [S, 1, width]
            if i == 0 and seed_columns is not None:  # (None exactly when _gathered is)
                # rows of W^T, every seed's one after the other: [S fan_in, width]; each
                # sample's set rows summed in order, from 0 (embedding_bag: one op)
                rows = w.squeeze(2).permute(2, 1, 0).reshape(-1, layer.width).contiguous()
                z = F.embedding_bag(seed_columns, rows, mode="sum")
                z = aligned(z.view(s, -1, layer.width).add_(bias))
            else:
                weight = aligned(w.squeeze(2).permute(2, 0, 1))  # [S, width, fan_in]
                z = per_seed_product(h, weight.transpose(1, 2), bias)  # [S, n, width]
            inp, h = h, aligned(_activate(layer.activation, z))
            saved.append((inp, z if activations.get(layer.activation).from_z else h))
        return h, saved

    def _ones(self, n: int) -> Tensor:
        """[S, 1, n] of ones, as `matrices` lays them out: a product with it sums n rows."""
        if n not in self._ones_by_n:
            like = next(iter(self.params.values()))
            self._ones_by_n[n] = _empty_matrices(like, self.seeds, 1, n).fill_(1.0)
        return self._ones_by_n[n]

    def _step_seeds_first(
        self, x: Tensor, y: Tensor, alive: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """`step` seeds first (the outputs returned as a [outputs, n, S] view, the gradients
        as a [P, S] view of [S, P]). Sums over the samples are products with ones."""
        pred, saved = self._forward_seeds_first(x)
        seeds, n = self.seeds, pred.shape[1]
        count = self.outputs * n
        elements = torch.empty_like(pred)
        target = y.permute(2, 1, 0).expand_as(pred)
        grad = _loss_into(self.loss, pred, target, count, elements, classes=2)
        grad = grad.where(alive.view(-1, 1, 1), 0.0)
        result = pred.new_empty(seeds, self.n_params)

        def put(name: str, value: Tensor) -> None:  # value [S, count]
            first, size = self._offsets[name]
            result[:, first : first + size] = value

        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            inp, h = saved[i]
            per = layer.width // len(layer.blocks)
            blocks = list(enumerate(layer.blocks))
            dz = aligned(_activation_grad(layer.activation, grad, h, None))  # [S, n, width]
            bias = per_seed_product(self._ones(n), dz)[:, 0]  # [S, width]
            for j, block in blocks:
                put(f"{block}.bias", bias[:, j * per : (j + 1) * per])
            if i == 0 and self._gathered is not None:  # the gather's scatter-add
                # row by row, in order: a seed's sums never depend on the others
                flat = dz.reshape(-1, layer.width)  # [S n, width]
                dw_t = dz.new_zeros(seeds * layer.fan_in, layer.width)
                columns = self._one_hot(x)[1]
                assert columns is not None
                for j in range(columns.shape[1]):
                    dw_t.index_add_(0, columns[:, j], flat)
                dw = dw_t.view(seeds, layer.fan_in, layer.width).transpose(1, 2)
            else:
                dw = per_seed_product(dz.transpose(1, 2), inp)  # [S, width, fan_in]
            for j, block in blocks:
                put(f"{block}.weight", dw[:, j * per : (j + 1) * per].reshape(seeds, -1))
            if i == 0:
                break
            w, _ = self._weights(layer)
            grad = per_seed_product(dz, aligned(w.squeeze(2).permute(2, 0, 1)))
        each = aligned(elements.view(seeds, 1, count))
        losses = per_seed_product(each, self._ones(count).transpose(1, 2)).view(seeds) / count
        return pred.permute(2, 1, 0), losses, result.T


def one_hot_columns(x: Tensor) -> Tensor | None:
    """For inputs x [inputs, n, 1] on the CPU of which every sample has the same number m
    >= 1 of ones and zeros elsewhere (one-hot encodings): the indices of its ones [n, m],
    in input order; else None (another device: index_add_ there adds in no fixed order)."""
    if x.device.type != "cpu" or x.shape[-1] != 1 or x.dim() != 3 or not x.shape[1]:
        return None
    rows = x[..., 0].T  # [n, inputs]
    ones = rows == 1
    counts = ones.sum(dim=1)
    m = int(counts[0])
    if m == 0 or not bool((counts == m).all()) or not bool((ones | (rows == 0)).all()):
        return None
    return ones.nonzero()[:, 1].reshape(len(rows), m)


def _activation_grad(name: str, grad: Tensor, h: Tensor, out: Tensor | None) -> Tensor:
    """d loss / d z from d loss / d h, where h = activation(z) (`h` is z for a `from_z`
    activation), into `out`."""
    out = torch.empty_like(grad) if out is None else out
    return activations.get(name).grad(grad, h, out)


def _bce_out(pred: Tensor, y: Tensor, *, out: Tensor) -> Tensor:
    torch.ops.aten.binary_cross_entropy.out(pred, y, None, 0, out=out)  # 0: no reduction
    return out


def _loss_into(
    name: str, pred: Tensor, y: Tensor, count: int, out: Tensor, classes: int = 0
) -> Tensor:
    """The loss of each output into `out` [outputs, n, S] (the outputs on dim `classes`: 2
    for [S, n, outputs]); returns d (mean loss) / d pred."""
    if name == "ce":
        return _softmax_ce(pred, y, count, out, classes)
    if name == "bce":  # log: on one code path (`uniform`)
        out.copy_(uniform(_bce_out, pred, y))
        return (pred - y) / ((1 - pred) * pred).clamp_min(BCE_EPS) / count
    err = pred - y
    if name == "l1":
        torch.abs(err, out=out)
        return err.sign() / count
    torch.mul(err, err, out=out)  # mse
    return err * (2.0 / count)


# torch.exp and torch.log with `out=` take another, far slower path on some builds (torch
# 2.13 CPU: 10 ms for 3,072 floats, against 6 us without): the same kernel, then a copy.
def _exp_out(z: Tensor, *, out: Tensor) -> Tensor:
    return out.copy_(torch.exp(z))


def _log_out(z: Tensor, *, out: Tensor) -> Tensor:
    return out.copy_(torch.log(z))


def _softmax_ce(pred: Tensor, y: Tensor, count: int, out: Tensor, dim: int = 0) -> Tensor:
    """Softmax cross-entropy over the outputs (dim `dim`, the classes) against targets y (one-hot,
    or any probabilities), stable: log p = (z - max z) - log sum exp(z - max z). Each class's
    share -y_c log p_c goes into `out` times C, so that the mean over `count` = C n
    elements is the mean over the n samples of sum_c -y_c log p_c. Elementwise ops, a
    per-sample sum by `tree_sum` and exp and log on one code path (`uniform`): a seed's bits
    do not depend on the seeds beside it. d (mean) / d z = (p sum(y) - y) / n."""
    classes = pred.shape[dim]
    shifted = pred - pred.amax(dim=dim, keepdim=True)
    e = uniform(_exp_out, shifted)
    total = tree_sum(e, dim=dim).unsqueeze(dim)  # [1, n, S] seeds last
    logp = shifted - uniform(_log_out, total)
    torch.mul(y * logp, -float(classes), out=out)
    p = e / total
    return (p * tree_sum(y, dim=dim).unsqueeze(dim) - y) / (count / classes)


def loss_and_grad(name: str, pred: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Each seed's mean loss [S] over its outputs [outputs, n, S] against y [outputs, n, S
    or 1], and d (that mean) / d pred: what `Net.step` computes, summed the same way."""
    count = pred.shape[0] * pred.shape[1]
    elements = torch.empty_like(pred)
    grad = _loss_into(name, pred, y.expand_as(pred), count, elements)
    return tree_sum(tree_sum(elements, dim=1), dim=0) / count, grad
