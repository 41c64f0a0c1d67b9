"""S nets' forward and backward pass written out by hand: the engine's gradients, no autograd.

Why by hand. Our nets are tiny (2x2 weights) and a sweep trains a thousand of them at once.
With autograd every product is a `baddbmm` forward and two `bmm`s backward: a BLAS call per
seed per product, 60% of a 1000-seed is_even epoch (measured, torch 2.13, one thread).
Written out, a small layer is a few elementwise ops over all seeds at once, and no graph is
recorded: 1000-seed epochs run several times faster, and one seed's too.

Batch invariance, bit for bit (see engine.py): every op here is elementwise (one rounding per
element: mul, add, sub, div, compare) or a per-seed sum in a fixed order, so a seed's numbers
never depend on how many seeds run beside it or on the thread count:

- a small layer (fan_in x width at most SMALL) forms the products w_ji * h_i as one
  [S, width, fan_in, n] tensor and sums them, and the backward's sums over the data, by
  halving (`tree_sum`: first half + second half, again and again): additions whose order is
  fixed by the shapes alone;
- a wide layer stays a per-seed `baddbmm` / `bmm` (the engine trains a lone seed beside a
  twin copy of itself for those: a batch of one takes another BLAS path).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from tiny_cli import models

if TYPE_CHECKING:
    from tiny_cli.models import Arch, Params

ALIGN = 64  # elements: a multiple of any CPU's vector-loop step (AVX-512 floats: 32)
BLOCK = 1 << 14  # elements per call: under ATen's GRAIN_SIZE (32768), never split in threads
SMALL = 128  # fan_in x width at most this: elementwise products (faster up to ~120-140)
BCE_EPS = 1e-12  # torch's binary_cross_entropy_backward: (p - y) / max(p (1 - p), eps)


def tree_sum(t: Tensor, dim: int) -> Tensor:
    """Sum over `dim` in an order fixed by its size alone: up to 4 slices pairwise,
    ((a + b) + (c + d)); more by halving (first half + second half, an odd last slice added
    to the first)."""
    m = t.shape[dim]
    if m <= 4:
        parts = list(t.unbind(dim))
        while len(parts) > 1:
            pairs = [parts[i] + parts[i + 1] for i in range(0, len(parts) - 1, 2)]
            parts = pairs + ([parts[-1]] if len(parts) % 2 else [])
        return parts[0]
    half = m // 2
    s = t.narrow(dim, 0, half) + t.narrow(dim, half, half)
    if m % 2:
        s.narrow(dim, 0, 1).add_(t.narrow(dim, 2 * half, 1))
    return tree_sum(s, dim)


def uniform(fn: Callable[..., Tensor], *args: Tensor) -> Tensor:
    """`fn(*args, out=...)`, elementwise, with every element computed by the same code path.

    ATen runs an elementwise op's vectorised loop over the bulk of a tensor and a scalar
    loop over the last few elements (and over the last few of each thread's share). For
    arithmetic both give the same bits; for some functions they do not (torch.sigmoid:
    3.5% of elements differ, torch 2.13, AVX-512: measured). Which elements of a seed land
    in a tail depends on the seeds beside it and the thread count. So: the seeds dimension
    is padded to a multiple of ALIGN and fn runs on blocks of at most BLOCK elements (never
    split between threads): every element goes through the vectorised loop."""
    shape = torch.broadcast_shapes(*(a.shape for a in args))
    seeds = shape[-1]
    width = -(-seeds // ALIGN) * ALIGN
    padded = [F.pad(a.expand(shape), (0, width - seeds)).view(-1, width) for a in args]
    out = padded[0].new_empty(padded[0].shape)
    step = max(1, BLOCK // width)
    for r in range(0, len(out), step):
        fn(*(t[r : r + step] for t in padded), out=out[r : r + step])
    return out.view(*shape[:-1], width)[..., :seeds]


def _activate(name: str, z: Tensor) -> Tensor:
    if name == "sigmoid":
        return uniform(torch.sigmoid, z)
    if name == "tanh":
        return uniform(torch.tanh, z)
    return models.activate(name, z)  # relu, leaky relu, identity: arithmetic


@dataclass
class _Layer:
    blocks: tuple[str, ...]  # its Linear modules, outputs concatenated
    fan_in: int
    width: int
    activation: str
    skip: bool  # reads [inputs, previous layer]
    small: bool
    # Views of the parameters, made once (single-block layers; None: stacked at each call)
    w: Tensor | None = None  # [width, fan_in, S]
    b: Tensor | None = None  # [width, S]


class Net:
    """An architecture's forward and backward for S seeds at once, seeds last: each
    parameter is [*shape, S] (the model's own state_dict names), data and activations
    [features, n, S or 1]. Seeds last, every op runs along S: contiguous and vectorised.

    `params` are read at every call: views of a buffer the engine updates in place."""

    def __init__(self, arch: Arch, params: Params) -> None:
        self.inputs = arch.inputs
        self.params = params
        self.seeds = next(iter(params.values())).shape[-1]
        blocks = arch.blocks()
        last = len(blocks) - 1
        self.layers = []
        for i, (layer, spec) in enumerate(zip(blocks, arch.layers, strict=True)):
            names = tuple(name for name, _, _ in layer)
            fan_in = layer[0][1]
            la = _Layer(
                names,
                fan_in,
                spec.width,
                spec.activation,
                skip=arch.skip_input and i == last and i > 0,
                small=fan_in * spec.width <= SMALL,
            )
            if len(names) == 1:  # views of the buffer: made once
                la.w, la.b = params[f"{names[0]}.weight"], params[f"{names[0]}.bias"]
            self.layers.append(la)
        # The backward writes each parameter's per-sample products as rows of a segment
        # [rows, n, S], consecutive parameters sharing one, all summed over the data at
        # the end; a wide layer's weight, summed by bmm already, ends a segment.
        self._rows: dict[str, tuple[int, int, int]] = {}  # name -> (segment, first, count)
        self._order: list[int | str] = []  # parameters order: a segment, or a wide weight
        self._segments: list[int] = []
        for la in self.layers:
            per = la.width // len(la.blocks)
            for block in la.blocks:
                for name, count in ((f"{block}.weight", per * la.fan_in), (f"{block}.bias", per)):
                    if name.endswith(".weight") and not la.small:
                        self._order.append(name)
                        continue
                    if not self._order or not isinstance(self._order[-1], int):
                        self._order.append(len(self._segments))
                        self._segments.append(0)
                    self._rows[name] = (len(self._segments) - 1, self._segments[-1], count)
                    self._segments[-1] += count
        self._buffers: dict[int, list[Tensor]] = {}  # n -> the segments

    def _weights(self, layer: _Layer) -> tuple[Tensor, Tensor]:
        """[width, fan_in, S], [width, S]: the layer's blocks, stacked."""
        if layer.w is not None and layer.b is not None:
            return layer.w, layer.b
        ws = [self.params[f"{b}.weight"] for b in layer.blocks]
        bs = [self.params[f"{b}.bias"] for b in layer.blocks]
        return torch.cat(ws), torch.cat(bs)

    def forward(self, x: Tensor) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """The outputs [width, n, S] and, per layer, (its input [1, fan_in, n, S or 1], its
        activation) for `backward`."""
        saved: list[tuple[Tensor, Tensor]] = []
        h = x
        for layer in self.layers:
            inp = torch.cat((x.expand(-1, -1, self.seeds), h)) if layer.skip else h
            w, b = self._weights(layer)
            if layer.small:  # [width, fan_in, n, S] products, summed over fan_in
                inp = inp.unsqueeze(0)
                z = tree_sum(w.unsqueeze(2) * inp, dim=1).add_(b.unsqueeze(1))
            else:
                by_seed = inp.permute(2, 0, 1).expand(self.seeds, -1, -1)  # [S, fan_in, n]
                z = torch.baddbmm(b.T.unsqueeze(-1), w.permute(2, 0, 1), by_seed)
                z = z.permute(1, 2, 0).contiguous()
                inp = inp.unsqueeze(0)
            h = _activate(layer.activation, z)
            saved.append((inp, h))
        return h, saved

    def _segments_for(self, n: int, like: Tensor) -> list[Tensor]:
        """The segments for batches of n samples, made once and reused (each call's are
        summed before the next call writes them)."""
        if n not in self._buffers:
            self._buffers[n] = [like.new_empty(rows, n, self.seeds) for rows in self._segments]
        return self._buffers[n]

    def backward(self, saved: list[tuple[Tensor, Tensor]], grad: Tensor) -> Tensor:
        """d loss / d parameters [P, S] from d loss / d outputs [width, n, S]: each seed a
        column, its parameters in `parameters()` order."""
        n, seeds = grad.shape[1], self.seeds
        segments = self._segments_for(n, grad)
        summed: dict[str, Tensor] = {}  # wide weights, [rows, S]

        def rows(name: str) -> Tensor:
            segment, first, count = self._rows[name]
            return segments[segment][first : first + count]

        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            inp, h = saved[i]  # [1, fan_in, n, S or 1], [width, n, S]
            per = layer.width // len(layer.blocks)
            if len(layer.blocks) == 1:  # d loss / d z straight into the bias's rows
                dz = _activation_grad(layer.activation, grad, h, rows(f"{layer.blocks[0]}.bias"))
            else:
                dz = _activation_grad(layer.activation, grad, h, None)
                for j, block in enumerate(layer.blocks):
                    rows(f"{block}.bias").copy_(dz[j * per : (j + 1) * per])
            dz_ = dz.unsqueeze(1)  # [width, 1, n, S]
            w, _ = self._weights(layer)
            if layer.small:
                for j, block in enumerate(layer.blocks):  # [per, fan_in, n, S] products
                    out = rows(f"{block}.weight").view(per, layer.fan_in, n, seeds)
                    torch.mul(dz_[j * per : (j + 1) * per], inp, out=out)
            else:
                dw = torch.bmm(dz.permute(2, 0, 1), inp[0].permute(2, 1, 0).expand(seeds, -1, -1))
                for j, block in enumerate(layer.blocks):
                    summed[f"{block}.weight"] = dw[:, j * per : (j + 1) * per].reshape(seeds, -1).T
            if i == 0:
                break
            if layer.skip:  # only the previous layer's part of the input needs a gradient
                w = w[:, self.inputs :]
            if layer.small:
                grad = tree_sum(w.unsqueeze(2) * dz_, dim=0)
            else:
                grad = torch.bmm(w.permute(2, 1, 0), dz.permute(2, 0, 1)).permute(1, 2, 0)
                grad = grad.contiguous()
        parts = [
            summed[item] if isinstance(item, str) else tree_sum(segments[item], dim=1)
            for item in self._order
        ]
        return torch.cat(parts) if len(parts) > 1 else parts[0]


def _activation_grad(name: str, grad: Tensor, h: Tensor, out: Tensor | None) -> Tensor:
    """d loss / d z from d loss / d h, where h = activation(z), into `out` (h > 0 exactly
    when z > 0 for relu and leaky relu)."""
    out = torch.empty_like(grad) if out is None else out
    aten = torch.ops.aten
    if name == "relu":
        aten.threshold_backward.grad_input(grad, h, 0.0, grad_input=out)
    elif name == "leaky_relu":
        aten.leaky_relu_backward.grad_input(grad, h, models.LEAKY_SLOPE, False, grad_input=out)
    elif name == "sigmoid":
        torch.mul(grad, h * (1 - h), out=out)
    elif name == "tanh":
        torch.mul(grad, 1 - h * h, out=out)
    else:
        out.copy_(grad)
    return out


def _mse(pred: Tensor, y: Tensor, count: int) -> tuple[Tensor, Tensor]:
    err = pred - y
    return err * err, err * (2.0 / count)


def _l1(pred: Tensor, y: Tensor, count: int) -> tuple[Tensor, Tensor]:
    err = pred - y
    return err.abs(), err.sign() / count


def _bce_out(pred: Tensor, y: Tensor, *, out: Tensor) -> Tensor:
    torch.ops.aten.binary_cross_entropy.out(pred, y, None, 0, out=out)  # 0: no reduction
    return out


def _bce(pred: Tensor, y: Tensor, count: int) -> tuple[Tensor, Tensor]:
    elements = uniform(_bce_out, pred, y)
    slope = (pred - y) / ((1 - pred) * pred).clamp_min(BCE_EPS)
    return elements, slope / count


LOSSES: dict[str, Callable[[Tensor, Tensor, int], tuple[Tensor, Tensor]]] = {
    "mse": _mse,
    "bce": _bce,
    "l1": _l1,
}


def loss_and_grad(name: str, pred: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Each seed's mean loss [S] over its outputs [width, n, S] against y [width, n, S or 1],
    and d (that mean) / d pred."""
    count = pred.shape[0] * pred.shape[1]
    elements, grad = LOSSES[name](pred, y.expand_as(pred), count)
    return tree_sum(elements.reshape(count, -1), dim=0) / count, grad
