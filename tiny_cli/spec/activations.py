"""The one table of activations: what each computes, for every consumer of a net.

A net is computed in four places, and all of them read this table: the `nn.Module` that
`tiny train` checkpoints (`module`), the batched engine with its hand-written backward
(`torch` + `grad`, `smooth` saying which functions must run on one code path for bit-identical
seeds), the numpy read-out (`numpy`) and the formula (`sympy`). A new activation is one entry
here plus its name in `Name`.

Functions import torch, numpy or sympy when they run, so reading the table imports nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    import numpy as np
    import sympy
    from torch import Tensor, nn

Name = Literal["identity", "relu", "sigmoid", "tanh", "leaky_relu", "quadratic"]
LEAKY_SLOPE = 0.01  # nn.LeakyReLU's default


@dataclass(frozen=True)
class Activation:
    """One activation, h = f(z), as each consumer computes it."""

    name: str
    module: Callable[[], nn.Module | None]  # its nn module (None: no module, identity)
    torch: Callable[..., Tensor]  # (z) -> h; a `smooth` one also takes `out=`
    # d loss / d z from d loss / d h and h, into `out`; from z instead where h cannot
    # tell it (`from_z`: the engine then keeps z for that layer)
    grad: Callable[[Tensor, Tensor, Tensor], Tensor]
    numpy: Callable[[np.ndarray, Any], np.ndarray]  # (z, zeros like a row of z) -> h, may write z
    sympy: Callable[[sympy.Expr], sympy.Expr]
    # Computed by a transcendental function, whose vectorised and scalar loops round
    # differently: the engine runs it through `backprop.uniform`.
    smooth: bool = False
    # f(z) > 0 exactly where z > 0, and f >= 0: a unit never > 0 on the data is dead (ReLU).
    rectifier: bool = False
    # f(c z) = c f(z) for c > 0: a unit's weights can be rescaled into the next layer's.
    homogeneous: bool = False
    linear: bool = False  # f(z) = z: no module in an nn.Sequential, no on/off regions
    probability: bool = False  # outputs in (0, 1): what a BCE loss needs of the read-out
    from_z: bool = False  # `grad` takes z, not h (x * x: h = z^2 loses z's sign)


# --- identity --------------------------------------------------------------------------


def _no_module() -> None:
    return None


def _same(z: Any, *_: Any) -> Any:
    return z


def _copy_grad(grad: Tensor, h: Tensor, out: Tensor) -> Tensor:
    return out.copy_(grad)


# --- relu ------------------------------------------------------------------------------


def _relu_module() -> nn.Module:
    from torch import nn

    return nn.ReLU()


def _relu_torch(z: Tensor) -> Tensor:
    import torch

    return torch.relu(z)


def _relu_grad(grad: Tensor, h: Tensor, out: Tensor) -> Tensor:
    import torch

    torch.ops.aten.threshold_backward.grad_input(grad, h, 0.0, grad_input=out)  # h > 0: z > 0
    return out


def _relu_numpy(z: np.ndarray, zeros: Any = 0.0) -> np.ndarray:
    import numpy as np

    # against an array of zeros: numpy's maximum with a scalar 0 takes a slower path
    h: np.ndarray = np.maximum(z, zeros, out=z)
    return h


def _relu_sympy(z: sympy.Expr) -> sympy.Expr:
    """Max(0, z) with a positive rational factor of z pulled out when z's numbers are all
    rational (pulled out of decimals, 1/32 would turn 0.881 a - b + 0.156 into
    Max(0, 28.192 a - 32 b + 5)/32)."""
    import sympy

    # Unevaluated: Max compares its arguments pairwise, seconds on a deep nest of them.
    factor, rest = z.as_coeff_Mul()
    if factor.is_positive and (
        isinstance(rest, sympy.Abs) or (isinstance(rest, sympy.Max) and 0 in rest.args)
    ):
        return z  # already >= 0: Max(0, c Max(0, u)) = c Max(0, u)
    if z.atoms(sympy.Float):
        return sympy.Max(0, z, evaluate=False)
    content, prim = z.as_content_primitive()
    if content.is_positive and content != 1:
        return content * sympy.Max(0, prim, evaluate=False)
    return sympy.Max(0, z, evaluate=False)


# --- leaky relu ------------------------------------------------------------------------


def _leaky_module() -> nn.Module:
    from torch import nn

    return nn.LeakyReLU(LEAKY_SLOPE)


def _leaky_torch(z: Tensor) -> Tensor:
    import torch.nn.functional as F

    return F.leaky_relu(z, LEAKY_SLOPE)


def _leaky_grad(grad: Tensor, h: Tensor, out: Tensor) -> Tensor:
    import torch

    aten = torch.ops.aten
    aten.leaky_relu_backward.grad_input(grad, h, LEAKY_SLOPE, False, grad_input=out)
    return out


def _leaky_numpy(z: np.ndarray, zeros: Any = 0.0) -> np.ndarray:
    import numpy as np

    return np.where(z > 0, z, LEAKY_SLOPE * z)


def _leaky_sympy(z: sympy.Expr) -> sympy.Expr:
    import sympy

    return sympy.Max(z, sympy.Float(LEAKY_SLOPE) * z)


# --- sigmoid ---------------------------------------------------------------------------


def _sigmoid_module() -> nn.Module:
    from torch import nn

    return nn.Sigmoid()


def _sigmoid_torch(z: Tensor, *, out: Tensor | None = None) -> Tensor:
    import torch

    return torch.sigmoid(z, out=out)


def _sigmoid_grad(grad: Tensor, h: Tensor, out: Tensor) -> Tensor:
    import torch

    return torch.mul(grad, h * (1 - h), out=out)


def _sigmoid_numpy(z: np.ndarray, zeros: Any = 0.0) -> np.ndarray:
    import numpy as np

    h: np.ndarray = np.exp(-np.logaddexp(0.0, -z))  # no overflow warning for large |z|
    return h


def _sigmoid_sympy(z: sympy.Expr) -> sympy.Expr:
    import sympy

    # unevaluated: exp(2.37 x - 22.4), not 1.9e-10 exp(2.37 x)
    return 1 / (1 + sympy.exp(-z, evaluate=False))


# --- tanh ------------------------------------------------------------------------------


def _tanh_module() -> nn.Module:
    from torch import nn

    return nn.Tanh()


def _tanh_torch(z: Tensor, *, out: Tensor | None = None) -> Tensor:
    import torch

    return torch.tanh(z, out=out)


def _tanh_grad(grad: Tensor, h: Tensor, out: Tensor) -> Tensor:
    import torch

    return torch.mul(grad, 1 - h * h, out=out)


def _tanh_numpy(z: np.ndarray, zeros: Any = 0.0) -> np.ndarray:
    import numpy as np

    h: np.ndarray = np.tanh(z)
    return h


def _tanh_sympy(z: sympy.Expr) -> sympy.Expr:
    import sympy

    return sympy.tanh(z)


# --- quadratic -------------------------------------------------------------------------


@functools.cache
def _square_class() -> type[nn.Module]:
    from torch import nn

    class Square(nn.Module):
        """x * x: no parameters, so a checkpoint's state_dict is as without it."""

        def forward(self, z: Tensor) -> Tensor:
            return z * z

    return Square


def _square_module() -> nn.Module:
    return _square_class()()


def _square_torch(z: Tensor) -> Tensor:
    return z * z  # one rounding per element: the same bits on every code path


def _square_grad(grad: Tensor, z: Tensor, out: Tensor) -> Tensor:
    import torch

    return torch.mul(grad, 2 * z, out=out)  # d (z^2) / dz = 2 z (z, not h: see from_z)


def _square_numpy(z: np.ndarray, zeros: Any = 0.0) -> np.ndarray:
    import numpy as np

    h: np.ndarray = np.multiply(z, z, out=z)
    return h


def _square_sympy(z: sympy.Expr) -> sympy.Expr:
    return z**2


TABLE: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation(
            "identity",
            _no_module,
            _same,
            _copy_grad,
            _same,
            _same,
            homogeneous=True,
            linear=True,
        ),
        Activation(
            "relu",
            _relu_module,
            _relu_torch,
            _relu_grad,
            _relu_numpy,
            _relu_sympy,
            rectifier=True,
            homogeneous=True,
        ),
        Activation(
            "sigmoid",
            _sigmoid_module,
            _sigmoid_torch,
            _sigmoid_grad,
            _sigmoid_numpy,
            _sigmoid_sympy,
            smooth=True,
            probability=True,
        ),
        Activation(
            "tanh", _tanh_module, _tanh_torch, _tanh_grad, _tanh_numpy, _tanh_sympy, smooth=True
        ),
        Activation(
            "leaky_relu",
            _leaky_module,
            _leaky_torch,
            _leaky_grad,
            _leaky_numpy,
            _leaky_sympy,
            homogeneous=True,
        ),
        Activation(
            "quadratic",
            _square_module,
            _square_torch,
            _square_grad,
            _square_numpy,
            _square_sympy,
            from_z=True,
        ),
    )
}
NAMES: tuple[str, ...] = get_args(Name)
assert set(NAMES) == set(TABLE), "every activation name has one entry in TABLE"


def get(name: str) -> Activation:
    return TABLE[name]
