"""A net as plain numpy arrays, and its forward pass: what every read-out reads.

`Net` is the read-out's view of a net (float64 layers, each unit remembering which original
units it stands for), built from a state_dict by `from_state`; `forward` runs it on a
domain in chunks, keeping per unit only its largest activation (`Pass`), so a 2^24-input
domain never holds every activation at once. Activations come from the one table
(`spec.activations`), the skip from the one rule (`spec.models.skip_columns`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tiny_cli.spec import activations
from tiny_cli.spec.models import Arch, skip_columns

if TYPE_CHECKING:
    from tiny_cli.tasks import Task

CHUNK = 1 << 15  # samples per chunk of the forward pass (fits in cache)
BIG_DOMAIN = 1 << 20  # domains larger than this are run in float32
TOL_REL = 1e-3  # exact, the same function: max error <= 0.1% of max(1, max |output|)


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

    @property
    def rectifier(self) -> bool:
        """Its activation is >= 0 and 0 where the unit is off (ReLU): such a unit can die."""
        return activations.get(self.activation).rectifier

    @property
    def homogeneous(self) -> bool:
        """f(s z) = s f(z) for s > 0: the unit can be rescaled exactly."""
        return activations.get(self.activation).homogeneous


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


def as_array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def from_state(arch: Arch, state: Mapping[str, Any]) -> Net:
    """The net of a state_dict: each layer's Linear blocks concatenated, as float64."""
    layers = []
    for blocks, spec in zip(arch.blocks(), arch.layers, strict=True):
        weight = np.concatenate([as_array(state[f"{n}.weight"]) for n, _, _ in blocks])
        bias = np.concatenate([as_array(state[f"{n}.bias"]).reshape(-1) for n, _, _ in blocks])
        origin = tuple((j,) for j in range(len(bias)))
        layers.append(Dense(weight, bias, spec.activation, origin))
    return Net(arch.inputs, tuple(layers), arch.skip_input)


def activate(name: str, z: np.ndarray, zeros: np.ndarray | float = 0.0) -> np.ndarray:
    """The activation `name` of pre-activations `z` (the table's numpy function; may write
    into z); `zeros`: an array of zeros as long as a row of z (faster than the scalar, see
    `forward`)."""
    return activations.get(name).numpy(z, zeros)


@dataclass
class Pass:
    """A forward pass over the domain: outputs [n, outs]; per hidden layer and unit, the
    largest activation and the largest |activation|."""

    out: np.ndarray
    top: list[np.ndarray]
    top_abs: list[np.ndarray]


def _affine(weight: np.ndarray, bias: np.ndarray, inp: np.ndarray, z: np.ndarray) -> None:
    """z = weight @ inp + bias, into z. One input: a broadcast multiply (numpy's matmul
    with an inner dimension of 1 is much slower than that); otherwise matmul (faster than a
    multiply-add per unit and input)."""
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
    # several times slower than with an array
    zeros = np.zeros(min(max(n, 1), CHUNK), dtype=dtype)
    for start in range(0, max(n, 1), CHUNK):
        xc = np.ascontiguousarray(x[start : start + CHUNK].T, dtype=dtype)  # [inputs, chunk]
        h = xc
        for i, (layer, (weight, bias)) in enumerate(zip(net.layers, params, strict=True)):
            inp = np.concatenate((xc, h)) if net.reads_inputs(i) else h
            z = np.empty((layer.width, xc.shape[1]), dtype=dtype)
            _affine(weight, bias, inp, z)
            h = activate(layer.activation, z, zeros[: z.shape[1]])
            if i < len(hidden) and h.shape[1]:
                np.maximum(top[i], h.max(axis=1), out=top[i])
                if not layer.rectifier:  # a rectifier's outputs are >= 0
                    np.maximum(top_abs[i], np.abs(h).max(axis=1), out=top_abs[i])
        out[start : start + CHUNK] = h.T
    for i, layer in enumerate(hidden):
        if layer.rectifier:
            top_abs[i] = np.maximum(top[i], 0.0)
    return Pass(out, top, top_abs)


def max_abs(a: np.ndarray, axis: int | None = None) -> np.ndarray:
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
        h = activate(layer.activation, h @ layer.weight.T + layer.bias)
        out.append(h)
    return out


def replace_columns(layer: Dense, offset: int, columns: np.ndarray) -> Dense:
    """`layer` with its weight columns from `offset` on replaced by `columns`."""
    weight = np.concatenate((layer.weight[:, :offset], columns), axis=1)
    return Dense(weight, layer.bias, layer.activation, layer.origin)


def tolerance_of(out: np.ndarray) -> float:
    """What "exact" and "the same function" allow on outputs `out`: TOL_REL * max(1, max |out|)."""
    return TOL_REL * max(1.0, float(max_abs(out)))


def domain(task: Task) -> tuple[np.ndarray, np.ndarray]:
    """The training inputs [n, inputs] and targets [n, 1], as numpy (float32 as given)."""
    x, y = task.data()
    return x.detach().cpu().numpy(), y.detach().cpu().numpy().reshape(len(x), -1)
