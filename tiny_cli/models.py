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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from torch import Tensor, nn

    from tiny_cli.config import ExperimentConfig

Activation = Literal["identity", "relu", "sigmoid", "tanh", "leaky_relu"]
ACTIVATIONS: tuple[str, ...] = get_args(Activation)
LEAKY_SLOPE = 0.01  # nn.LeakyReLU's default
MAX_LAYERS = 64
MAX_WIDTH = 4096
MAX_PARAMETERS = 10_000_000


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

    def blocks(self) -> list[list[tuple[str, int, int]]]:
        """Per layer, its Linear modules: (name, fan_in, fan_out), outputs concatenated."""
        out: list[list[tuple[str, int, int]]] = []
        fan_in, index = self.inputs, 0
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if self.skip_input and i == last and i > 0:
                fan_in += self.inputs
            if self.names is not None:
                names = self.names[i]
                out.append([(n, fan_in, layer.width // len(names)) for n in names])
            elif self.skip_input:
                out.append([("output_layer" if i == last else f"fc{i + 1}", fan_in, layer.width)])
            else:
                out.append([(str(index), fan_in, layer.width)])
                index += 1 if layer.activation == "identity" else 2
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
                if layer.activation != "identity":
                    mods.append(_activation_module(layer.activation))
            return nn.Sequential(*mods)
        return SkipNet(self)


def _activation_module(name: str) -> nn.Module:
    from torch import nn

    modules: dict[str, Callable[[], nn.Module]] = {
        "relu": nn.ReLU,
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "leaky_relu": lambda: nn.LeakyReLU(LEAKY_SLOPE),
        "identity": nn.Identity,
    }
    return modules[name]()


def activate(name: str, z: Tensor) -> Tensor:
    import torch
    import torch.nn.functional as F

    if name == "relu":
        return torch.relu(z)
    if name == "sigmoid":
        return torch.sigmoid(z)
    if name == "tanh":
        return torch.tanh(z)
    if name == "leaky_relu":
        return F.leaky_relu(z, LEAKY_SLOPE)
    return z


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
                inp = torch.cat((x, h), dim=-1) if i == len(blocks) - 1 and i > 0 else h
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


def is_threshold_neuron(arch: Arch) -> bool:
    """One input, one sigmoid unit: Sigmoid(w x + b), a soft step at -b/w."""
    return arch.inputs == 1 and arch.layers == (Layer(1, "sigmoid"),)


def derived_names(arch: Arch) -> tuple[str, ...]:
    return ("threshold", "steepness") if is_threshold_neuron(arch) else ()


def derived(arch: Arch, flat: Sequence[float]) -> dict[str, float]:
    """Quantities that explain the mechanism, from the flat parameters (plain floats, cheap
    enough for every epoch). A threshold neuron: Sigmoid(w x + b) = Sigmoid(|w| (-b/w - x))
    when w < 0, so the learned threshold is -b/w and the steepness (the article's M) |w|."""
    if not is_threshold_neuron(arch):
        return {}
    w, b = flat
    return {"threshold": -b / w if w != 0 else float("nan"), "steepness": abs(w)}


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
        if arch.skip_input and i == len(blocks) - 1 and i > 0:
            inp = torch.cat((x.expand(len(h), -1, -1), h), dim=1)
        parts = [_linear(inp, params[f"{n}.weight"], params[f"{n}.bias"]) for n, _, _ in layer]
        h = activate(spec.activation, parts[0] if len(parts) == 1 else torch.cat(parts, dim=1))
        if i < len(blocks) - 1:
            hidden.append(h)
    return h, hidden


# --- a net for a config -----------------------------------------------------------------


def build(cfg: ExperimentConfig) -> nn.Module:
    """The model for a resolved config, initialised as `cfg.init` says.

    Random init is PyTorch's default for each layer, drawn after `torch.manual_seed(seed)`,
    so seed k gives the same starting weights here, in a sweep and in a notebook. Hardwired
    weights are the task's construction for this architecture; hardwired noise is drawn from
    a generator seeded with the same seed.
    """
    import torch

    torch.manual_seed(cfg.seed)
    arch = cfg.arch
    model = arch.module()
    if cfg.init.mode in ("hardwired", "hardwired+noise"):
        construction = cfg.task.construction_for(cfg.init, arch)
        if construction is None:  # (config.resolve refuses such a config)
            raise ValueError(f"task {cfg.task.name} has no construction of {arch.describe()}")
        model.load_state_dict(construction.weights())
    if cfg.init.mode == "hardwired+noise":
        gen = torch.Generator().manual_seed(cfg.seed)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * cfg.init.noise)
    return model


def random_inits(arch: Arch, seeds: Sequence[int]) -> Params:
    """`build`'s random init for many seeds at once, [S, *shape] per parameter: one module,
    re-initialised per seed. Making a module draws each Linear's weight then its bias, in
    the order the Linears are made (= `modules()` order here), which is what
    `reset_parameters` over them in that order draws again: the same numbers, without
    making a thousand modules (and seeding only the CPU generator, which is all that
    draws here; `torch.manual_seed` also formats a stack trace per device kind).
    """
    import torch
    from torch import nn

    model = arch.module()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    named = list(model.state_dict(keep_vars=True).items())
    out = {k: torch.empty(len(seeds), *v.shape) for k, v in named}
    with torch.no_grad():
        for i, seed in enumerate(seeds):
            torch.default_generator.manual_seed(seed)
            for m in linears:
                m.reset_parameters()
            for k, v in named:
                out[k][i] = v
    return out
