"""Architectures, built from a resolved config, with the article's module names.

A checkpoint of any of them is a plain state_dict that loads into the article's own code:
`nn.Sequential(nn.Linear(1, 1), nn.Sigmoid())`, `MinModel()`, `create_sequential_model(...)`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from tiny_cli import hardwired


class MinModel(nn.Module):
    """The article's min(a, b) net: two one-neuron ReLU branches and a linear read-out."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, 1)  # for ReLU(a - b)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(2, 1)  # for ReLU(b - a)
        self.relu2 = nn.ReLU()
        self.output_layer = nn.Linear(4, 1)  # reads [a, b, ReLU(a - b), ReLU(b - a)]

    def forward(self, x: Tensor) -> Tensor:
        h1 = self.relu1(self.fc1(x))
        h2 = self.relu2(self.fc2(x))
        out: Tensor = self.output_layer(torch.cat((x, h1, h2), dim=-1))
        return out


def sigmoid_neuron() -> nn.Module:
    return nn.Sequential(nn.Linear(1, 1), nn.Sigmoid())


def relu_chain(widths: list[int]) -> nn.Module:
    """The article's `create_sequential_model(widths)`: Linear + ReLU for every layer."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(widths):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers)


ARCHITECTURES: dict[str, Callable[[Any], nn.Module]] = {
    "sigmoid_neuron": lambda model_cfg: sigmoid_neuron(),
    "min_model": lambda model_cfg: MinModel(),
    "relu_chain": lambda model_cfg: relu_chain(model_cfg.widths),
}


def build(cfg: Any) -> nn.Module:
    """The model for a resolved config, initialised as `cfg.init` says.

    Random init is PyTorch's default for each layer, drawn after `torch.manual_seed(seed)`,
    so seed k gives the same starting weights here, in a sweep and in a notebook. Hardwired
    noise is drawn from a generator seeded with the same seed.
    """
    torch.manual_seed(cfg.seed)
    model = ARCHITECTURES[cfg.model.arch](cfg.model)
    if cfg.init.mode in ("hardwired", "hardwired+noise"):
        model.load_state_dict(hardwired.CONSTRUCTIONS[cfg.task.name](cfg))
    if cfg.init.mode == "hardwired+noise":
        gen = torch.Generator().manual_seed(cfg.seed)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * cfg.init.noise)
    return model


def _sigmoid_neuron_derived(flat: Sequence[float]) -> dict[str, float]:
    """Sigmoid(w x + b) = Sigmoid(|w| (-b/w - x)) when w < 0: the learned threshold is -b/w
    and the steepness (the article's M) is |w|."""
    w, b = flat
    return {"threshold": -b / w if w != 0 else float("nan"), "steepness": abs(w)}


# arch -> (names, function of the flat parameters in `parameters()` order)
DERIVED: dict[str, tuple[tuple[str, ...], Callable[[Sequence[float]], dict[str, float]]]] = {
    "sigmoid_neuron": (("threshold", "steepness"), _sigmoid_neuron_derived),
}


def derived_names(arch: str) -> tuple[str, ...]:
    return DERIVED[arch][0] if arch in DERIVED else ()


def derived(arch: str, flat: Sequence[float]) -> dict[str, float]:
    """Quantities that explain the mechanism, read off the flat parameter values (plain
    floats, cheap enough to compute every epoch)."""
    return DERIVED[arch][1](flat) if arch in DERIVED else {}


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
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])
