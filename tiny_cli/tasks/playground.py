"""TensorFlow Playground's four classification datasets: circle, gauss, spiral, xor2d.

Each follows `classify*Data` in Playground's `src/dataset.ts`, with its `noise` slider
(0 to 50 there, divided by 100 before it reaches the dataset) as this task's `noise`, 0 to
0.5, and Playground's labels -1 / 1 as 0 / 1. The points are drawn from `data_seed`
(float64, then float32), so one config gives the same points everywhere:

- circle: half the points at radius U(0, 2.5) (label 1), half at U(3.5, 5) (label 0), at
  an angle U(0, 2 pi). The label is whether the point *plus* U(-5, 5) x noise in each
  coordinate lies within 2.5 of the centre: with noise, points near the circle get the other
  side's label, as in Playground. Truth: |p| < 2.5.
- xor2d: x and y each U(-5, 5) pushed 0.3 away from 0 (Playground's padding), labelled 1
  where (x + nx)(y + ny) >= 0, the n's U(-5, 5) x noise. Truth: x y >= 0. (`xor` stays the
  task on two bits.)
- gauss: half the points N((2, 2), variance), label 1, half N((-2, -2), variance), label
  0, with variance 0.5 + 7 noise (Playground's scale from [0, 0.5] to [0.5, 4]). Truth: the
  nearer centre, x + y > 0 (the Bayes rule: both have the same variance).
- spiral: two arms of n/2 points; point i of an arm is at radius r = 5 i / (n/2) and angle
  t = 1.75 x 2 pi x i / (n/2) + delta (delta 0: label 1, pi: label 0), position (r sin t,
  r cos t) + U(-1, 1) x noise per coordinate. Truth: the nearer arm. Both arms start at the
  origin, so their first points coincide with opposite labels (as in Playground): one of
  the n is always wrong, and accuracy peaks at (n - 1) / n.

With an odd `n_samples`, the first class gets the extra point (Playground draws n/2 of
each, rounded up: n + 1 in all).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, StrictInt

from tiny_cli.spec.schema import Float
from tiny_cli.tasks.base import Kind, Task, layers

if TYPE_CHECKING:
    import torch
    from torch import Tensor

PLANE = (-6.0, 6.0, -6.0, 6.0)  # Playground's picture: x and y in [-6, 6]
RADIUS = 5.0
ARM_POINTS = 2000  # points along each spiral arm, for the nearer-arm truth


class _Playground(Task):
    """A dataset of TensorFlow Playground: `n_samples` points of the plane, labels 0 / 1."""

    n_samples: StrictInt = Field(500, ge=2, le=10**6)
    noise: Float = Field(0.0, ge=0, le=0.5)  # Playground's noise slider / 100
    data_seed: StrictInt = Field(0, ge=0, le=2**63 - 1)

    kind: ClassVar[Kind] = "classification"
    default_loss: ClassVar[str] = "bce"
    summary_metrics: ClassVar[tuple[str, ...]] = ("accuracy",)

    def input_names(self) -> tuple[str, ...]:
        return ("x1", "x2")  # Playground's names

    def size(self) -> int:
        return self.n_samples

    def plane(self) -> tuple[float, float, float, float] | None:
        return PLANE

    def domain_text(self) -> str:
        return f"the {self.n_samples:,} training points"

    def data(self) -> tuple[Tensor, Tensor]:
        import torch

        gen = torch.Generator().manual_seed(self.data_seed)
        x, label = self._draw(gen)
        return x.float(), label.float().reshape(-1, 1)

    def _draw(self, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Points [n, 2] and labels [n] (0 / 1), float64, drawn from `gen`."""
        raise NotImplementedError

    def _halves(self) -> tuple[int, int]:
        first = self.n_samples - self.n_samples // 2
        return first, self.n_samples - first

    def default_model(self) -> dict[str, Any]:
        return layers((8, "tanh"), (8, "tanh"), (1, "sigmoid"))


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float) -> Tensor:
    import torch

    return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)


class Circle(_Playground):
    name: Literal["circle"]
    summary: ClassVar[str] = "Playground's circle: a disc of radius 2.5 inside a ring, 3.5 to 5"

    def _draw(self, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        import torch

        parts = []
        for count, (lo, hi) in zip(self._halves(), ((0.0, 0.5), (0.7, 1.0)), strict=True):
            r = _uniform(gen, count, lo * RADIUS, hi * RADIUS)
            angle = _uniform(gen, count, 0.0, 2 * math.pi)
            p = torch.stack([r * torch.sin(angle), r * torch.cos(angle)], dim=1)
            moved = p + self.noise * _uniform(gen, 2 * count, -RADIUS, RADIUS).reshape(count, 2)
            parts.append((p, (moved.norm(dim=1) < RADIUS / 2).double()))
        return torch.cat([p for p, _ in parts]), torch.cat([y for _, y in parts])

    def truth(self, x: Tensor) -> Tensor:
        import torch

        inside: Tensor = torch.linalg.vector_norm(x.double(), dim=1, keepdim=True) < RADIUS / 2
        return inside.to(x.dtype)


class Xor2d(_Playground):
    name: Literal["xor2d"]
    summary: ClassVar[str] = "Playground's xor: points of [-5, 5]^2, label sign(x1 x2)"

    def _draw(self, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        import torch

        n, padding = self.n_samples, 0.3
        p = _uniform(gen, 2 * n, -5.0, 5.0).reshape(n, 2)
        p = p + torch.where(p > 0, padding, -padding)
        moved = p + self.noise * _uniform(gen, 2 * n, -5.0, 5.0).reshape(n, 2)
        return p, (moved[:, 0] * moved[:, 1] >= 0).double()

    def truth(self, x: Tensor) -> Tensor:
        return (x[:, :1] * x[:, 1:2] >= 0).to(x.dtype)


class Gauss(_Playground):
    name: Literal["gauss"]
    summary: ClassVar[str] = "Playground's gauss: two Gaussians at (2, 2) and (-2, -2)"

    def _draw(self, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        import torch

        std = math.sqrt(0.5 + 7.0 * self.noise)  # variance 0.5..4 as noise goes 0..0.5
        parts = []
        for count, (centre, label) in zip(self._halves(), ((2.0, 1.0), (-2.0, 0.0)), strict=True):
            p = centre + std * torch.randn(count, 2, generator=gen, dtype=torch.float64)
            parts.append((p, torch.full((count,), label, dtype=torch.float64)))
        return torch.cat([p for p, _ in parts]), torch.cat([y for _, y in parts])

    def truth(self, x: Tensor) -> Tensor:
        return (x[:, :1] + x[:, 1:2] > 0).to(x.dtype)


def _arm(s: Tensor, delta: float) -> Tensor:
    """Points of a spiral arm at s = i / (n/2) in [0, 1): radius 5 s, angle 3.5 pi s + delta."""
    import torch

    r, t = RADIUS * s, 1.75 * 2 * math.pi * s + delta
    return torch.stack([r * torch.sin(t), r * torch.cos(t)], dim=1)


class Spiral(_Playground):
    name: Literal["spiral"]
    summary: ClassVar[str] = "Playground's spiral: two interleaved arms, 1.75 turns each"

    def _draw(self, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        import torch

        parts = []
        for count, (delta, label) in zip(self._halves(), ((0.0, 1.0), (math.pi, 0.0)), strict=True):
            half = self.n_samples / 2  # Playground's n: the step along the arm
            s = torch.arange(count, dtype=torch.float64) / half
            p = _arm(s, delta) + self.noise * _uniform(gen, 2 * count, -1.0, 1.0).reshape(count, 2)
            parts.append((p, torch.full((count,), label, dtype=torch.float64)))
        return torch.cat([p for p, _ in parts]), torch.cat([y for _, y in parts])

    def truth(self, x: Tensor) -> Tensor:
        """1 where the label-1 arm (delta 0) is nearer than the other, each arm as
        ARM_POINTS points from its centre outwards (ties, the origin: 1)."""
        import torch

        s = torch.arange(ARM_POINTS, dtype=torch.float64) / ARM_POINTS
        arms = [_arm(s, d) for d in (0.0, math.pi)]
        parts = []
        for i in range(0, len(x), 2048):  # [2048, ARM_POINTS] distances at a time
            pts = x[i : i + 2048].double()
            near = [torch.cdist(pts, arm).min(dim=1).values for arm in arms]
            parts.append(near[0] <= near[1])
        return torch.cat(parts).to(x.dtype).reshape(-1, 1) if parts else x[:, :1]
