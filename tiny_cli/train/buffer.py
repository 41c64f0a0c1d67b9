"""The engine's flat parameter buffer: S seeds' parameters in one tensor, seeds last.

[P, S]: each seed a column, its parameters in `parameters()` order, so each parameter is a
contiguous [*shape, S] view (what `backprop.SeedNets` computes with, under the model's own
state_dict names) and the optimizer update is one pass over the buffer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from tiny_cli.spec.models import Params


class Layout:
    """Where each of S seeds' parameters lives in a flat [P, S] buffer (the names, shapes
    and sizes of `start`, [S, *shape] each)."""

    def __init__(self, start: Params, s: int) -> None:
        self.s = s
        self.names = list(start)
        self.shapes = [start[k].shape[1:] for k in self.names]
        self.sizes = [shape.numel() for shape in self.shapes]

    def pack(self, params: Params) -> Tensor:
        """[S, *shape] parameters as one flat buffer."""
        return torch.cat([params[k].reshape(self.s, -1).T for k in self.names]).reshape(-1)

    def views(self, buffer: Tensor) -> Params:
        """Each parameter's [*shape, S] view of a flat buffer."""
        views, offset = {}, 0
        for k, shape, size in zip(self.names, self.shapes, self.sizes, strict=True):
            views[k] = buffer[offset : offset + size * self.s].view(*shape, self.s)
            offset += size * self.s
        return views

    def per_seed(self, buffer: Tensor) -> Tensor:
        """[S, P]: each seed's parameters (or gradients) in `parameters()` order, a copy."""
        return buffer.view(-1, self.s).T.clone(memory_format=torch.contiguous_format)

    def seeds_first(self, buffer: Tensor) -> Params:
        """Every seed's parameters [S, *shape], copied to the CPU."""
        return {
            k: v.movedim(-1, 0).cpu().clone(memory_format=torch.contiguous_format)
            for k, v in self.views(buffer).items()
        }
