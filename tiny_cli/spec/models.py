"""Architectures as data: a list of layers (width, activation) and an optional input skip.

One `Arch` describes a net for every consumer: `module()` builds the `nn.Module` that
`tiny train` trains and checkpoints, and `batched_forward` runs S copies of it at once for
`tiny sweep`, from the same parameter names. The article's three nets are named presets
of this form, with the article's parameter names, so checkpoints load into its classes:

- `sigmoid_neuron`: `nn.Sequential(nn.Linear(1, 1), nn.Sigmoid())`  (`0.weight`, `0.bias`);
- `min_model`: the article's `MinModel` (`fc1`, `fc2`, `output_layer`): one hidden ReLU layer
  of two units, each its own `nn.Linear(2, 1)`, and a read-out over `[a, b, h1, h2]`;
- `relu_chain`: `create_sequential_model(widths)`, Linear + ReLU for every layer.

Naming. A net without a skip is the `nn.Sequential` a user writes for it: a Linear, then
its activation module (none for identity), so a checkpoint loads strictly into that plain
`nn.Sequential`. A net with `skip_input` reads `[inputs, last hidden layer]` in its last
layer, as `MinModel` does; its layers are `fc1, fc2, ...` and the read-out `output_layer`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tiny_cli.spec import activations
from tiny_cli.spec.activations import LEAKY_SLOPE as LEAKY_SLOPE
from tiny_cli.spec.activations import Name as Activation

if TYPE_CHECKING:
    from torch import Tensor, nn

MAX_LAYERS = 64
MAX_WIDTH = 4096
MAX_PARAMETERS = 10_000_000


def skip_columns(inputs: int, layers: int, i: int, skip: bool) -> int:
    """The skip rule, for every forward of every net: with `skip`, the last layer (of more
    than one) reads `[inputs, last hidden layer]`. Returns how many leading input columns
    layer i reads besides the layer before it (0: none)."""
    return inputs if skip and i == layers - 1 and i > 0 else 0


@dataclass(frozen=True)
class Layer:
    width: int
    activation: Activation


@dataclass(frozen=True)
class Arch:
    inputs: int
    layers: tuple[Layer, ...]
    skip_input: bool = False
    # Module names per layer, when a preset names them (MinModel's fc1/fc2 split one layer
    # into two Linear modules of equal width); None: the naming rule in the module docstring.
    names: tuple[tuple[str, ...], ...] | None = None

    def reads_inputs(self, i: int) -> int:
        """How many input columns layer i reads before the previous layer's (`skip_columns`)."""
        return skip_columns(self.inputs, len(self.layers), i, self.skip_input)

    def blocks(self) -> list[list[tuple[str, int, int]]]:
        """Per layer, its Linear modules: (name, fan_in, fan_out), outputs concatenated."""
        out: list[list[tuple[str, int, int]]] = []
        fan_in, index = self.inputs, 0
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            fan_in += self.reads_inputs(i)
            if self.names is not None:
                names = self.names[i]
                out.append([(n, fan_in, layer.width // len(names)) for n in names])
            elif self.skip_input:
                out.append([("output_layer" if i == last else f"fc{i + 1}", fan_in, layer.width)])
            else:
                out.append([(str(index), fan_in, layer.width)])
                index += 1 if activations.get(layer.activation).linear else 2
            fan_in = layer.width
        return out

    @property
    def n_parameters(self) -> int:
        return sum((a + 1) * b for layer in self.blocks() for _, a, b in layer)

    @property
    def hidden_units(self) -> int:
        return sum(layer.width for layer in self.layers[:-1])

    @property
    def units(self) -> int:
        """Neurons, read-out included: what `tiny tasks` counts for a construction."""
        return sum(layer.width for layer in self.layers)

    def describe(self) -> str:
        """`1 -> 2 relu -> 1 identity (+ inputs)`: the architecture in one line."""
        parts = [str(self.inputs)] + [f"{la.width} {la.activation}" for la in self.layers]
        return " -> ".join(parts) + (" (inputs skip to the read-out)" if self.skip_input else "")

    def module(self) -> nn.Module:
        """A fresh `nn.Module`, initialised by PyTorch's defaults from the global RNG, its
        Linear layers created in order (so a seed gives the article's own initial weights)."""
        from torch import nn

        if not self.skip_input:
            mods: list[nn.Module] = []
            for (block,), layer in zip(self.blocks(), self.layers, strict=True):
                mods.append(nn.Linear(block[1], block[2]))
                activation = activations.get(layer.activation).module()
                if activation is not None:
                    mods.append(activation)
            return nn.Sequential(*mods)
        return SkipNet(self)


def activate(name: str, z: Tensor) -> Tensor:
    """The activation `name` on a tensor (the table's torch function)."""
    return activations.get(name).torch(z)


@functools.cache
def _skipnet_class() -> type[nn.Module]:
    from torch import nn

    class _SkipNet(nn.Module):
        """Layers whose last one reads `[inputs, last hidden layer]` (the article's MinModel)."""

        def __init__(self, arch: Arch) -> None:
            super().__init__()
            self.arch = arch
            for layer in arch.blocks():
                for name, fan_in, fan_out in layer:
                    self.add_module(name, nn.Linear(fan_in, fan_out))

        def forward(self, x: Tensor) -> Tensor:
            import torch

            h = x
            blocks = self.arch.blocks()
            for i, (layer, spec) in enumerate(zip(blocks, self.arch.layers, strict=True)):
                inp = torch.cat((x, h), dim=-1) if self.arch.reads_inputs(i) else h
                z = torch.cat([getattr(self, name)(inp) for name, _, _ in layer], dim=-1)
                h = activate(spec.activation, z)
            return h

        def extra_repr(self) -> str:
            return self.arch.describe()

    return _SkipNet


def SkipNet(arch: Arch) -> nn.Module:
    return _skipnet_class()(arch)


# --- presets: the article's nets --------------------------------------------------------


def relu_chain(widths: Sequence[int]) -> Arch:
    """The article's `create_sequential_model(widths)`: Linear + ReLU for every layer."""
    return Arch(widths[0], tuple(Layer(w, "relu") for w in widths[1:]))


def sigmoid_neuron() -> Arch:
    return Arch(1, (Layer(1, "sigmoid"),))


def min_model() -> Arch:
    return Arch(
        2,
        (Layer(2, "relu"), Layer(1, "identity")),
        skip_input=True,
        names=(("fc1", "fc2"), ("output_layer",)),
    )


PRESETS: dict[str, str] = {
    "sigmoid_neuron": "nn.Sequential(nn.Linear(1, 1), nn.Sigmoid()): x < t",
    "min_model": "the article's MinModel: 2 ReLU units, read-out over [a, b, h1, h2]",
    "relu_chain": "create_sequential_model(widths): Linear + ReLU per layer (model.widths)",
}


def preset(name: str, widths: Sequence[int] | None) -> Arch:
    if name == "sigmoid_neuron":
        return sigmoid_neuron()
    if name == "min_model":
        return min_model()
    if name == "relu_chain" and widths is not None:
        return relu_chain(widths)
    raise ValueError(f"unknown preset {name!r}")


# --- parameters, flat -------------------------------------------------------------------


def parameter_tags(model: nn.Module) -> list[str]:
    """One TensorBoard tag per parameter element, grouped by module: `fc1/weight[0,1]`."""
    tags = []
    for name, p in model.named_parameters():
        module, _, param = name.rpartition(".")
        for idx in itertools.product(*map(range, p.shape)):
            tags.append(f"{module}/{param}[{','.join(map(str, idx))}]")
    return tags


def flat_parameters(model: nn.Module) -> Tensor:
    """All parameter elements in `parameter_tags` order, detached, as one 1-D tensor."""
    import torch

    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


# --- S nets at once ---------------------------------------------------------------------

Params = dict[str, "Tensor"]  # state_dict names -> [S, *shape]


def _linear(h: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """[S or 1, in, n] -> [S, out, n]: each seed's own `nn.Linear`, as W h + b."""
    import torch

    return torch.baddbmm(bias.unsqueeze(-1), weight, h.expand(len(weight), -1, -1))


def batched_forward(arch: Arch, params: Params, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """S nets at once. `x` is [S or 1, inputs, n] (features first: ~25% faster on a CPU for
    two-unit layers); returns the outputs [S, width, n] and every hidden layer's activations
    [S, units, n]. One code path for every architecture: layers of Linear blocks, their
    outputs concatenated, then the activation; the last layer reads `[x, h]` with a skip."""
    import torch

    h = x
    hidden: list[Tensor] = []
    blocks = arch.blocks()
    for i, (layer, spec) in enumerate(zip(blocks, arch.layers, strict=True)):
        inp = h
        if arch.reads_inputs(i):
            inp = torch.cat((x.expand(len(h), -1, -1), h), dim=1)
        parts = [_linear(inp, params[f"{n}.weight"], params[f"{n}.bias"]) for n, _, _ in layer]
        h = activate(spec.activation, parts[0] if len(parts) == 1 else torch.cat(parts, dim=1))
        if i < len(blocks) - 1:
            hidden.append(h)
    return h, hidden
