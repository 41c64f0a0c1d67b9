"""A net's starting parameters: one seed's module (`build`) or many seeds' at once.

Every init starts from `torch.manual_seed(seed)` and PyTorch's default for each layer
(`random`), so seed k gives the same starting weights in `tiny train`, in a sweep and in a
notebook. The schemes (`spec.sections.SCHEMES`) then draw each Linear's parameters again,
in the order the Linears are made, from the same generator, with torch.nn.init's own
initialisers: `xavier_normal` / `xavier_uniform` (Glorot) and `kaiming_normal` /
`kaiming_uniform` (He, for ReLU: gain sqrt(2), fan_in) for the weight, the bias zero;
`normal`: every weight and bias from N(0, init.std).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from tiny_cli.spec.models import Arch, Params
from tiny_cli.spec.sections import HARDWIRED, SCHEMES, InitConfig

if TYPE_CHECKING:
    from torch import nn

    from tiny_cli.config import ExperimentConfig


def build(cfg: ExperimentConfig) -> nn.Module:
    """The model for a resolved config, initialised as `cfg.init` says.

    Random init is PyTorch's default for each layer, drawn after `torch.manual_seed(seed)`,
    so seed k gives the same starting weights here, in a sweep and in a notebook; a scheme
    draws each Linear again after that (`redraw`). Hardwired weights are the task's
    construction for this architecture; hardwired noise is drawn from a generator seeded
    with the same seed.
    """
    import torch

    torch.manual_seed(cfg.seed)
    arch = cfg.arch
    model = arch.module()
    redraw(linears(model), cfg.init)
    if cfg.init.mode in HARDWIRED:
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


def linears(model: nn.Module) -> list[nn.Linear]:
    """The model's Linears in `modules()` order, which is the order they are made in."""
    from torch import nn

    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def redraw(layers: Iterable[nn.Linear], init: InitConfig | None) -> None:
    """Each Linear's weight and bias drawn again by `init.mode`'s scheme, in turn, from
    torch's default generator; nothing for random or hardwired modes."""
    if init is None or init.mode not in SCHEMES:
        return
    import torch
    from torch.nn import init as nn_init

    with torch.no_grad():
        for m in layers:
            if init.mode == "normal":
                nn_init.normal_(m.weight, 0.0, init.std)
                nn_init.normal_(m.bias, 0.0, init.std)
                continue
            if init.mode == "xavier_normal":
                nn_init.xavier_normal_(m.weight)
            elif init.mode == "xavier_uniform":
                nn_init.xavier_uniform_(m.weight)
            elif init.mode == "kaiming_normal":
                nn_init.kaiming_normal_(m.weight, nonlinearity="relu")
            else:
                nn_init.kaiming_uniform_(m.weight, nonlinearity="relu")
            nn_init.zeros_(m.bias)


def random_inits(arch: Arch, seeds: Sequence[int], init: InitConfig | None = None) -> Params:
    """`build`'s random init (or a scheme's: `init`) for many seeds at once, [S, *shape] per
    parameter, seeding only the CPU generator per seed (all that draws here;
    `torch.manual_seed` also formats a stack trace per device kind). PyTorch's default init
    is drawn straight into the result (`default_draws`); a scheme, or a net of other layers,
    re-initialises one module per seed (`module_inits`). The same numbers either way."""
    import torch

    model = arch.module()
    named = list(model.state_dict(keep_vars=True).items())
    draws = default_draws(model, init)
    if draws is None:
        return module_inits(model, seeds, init)
    out = {k: torch.empty(len(seeds), *v.shape) for k, v in named}
    with torch.no_grad():
        for i, seed in enumerate(seeds):
            torch.default_generator.manual_seed(seed)
            for key, bound in draws:
                out[key][i].uniform_(-bound, bound)
    return out


def default_draws(model: nn.Module, init: InitConfig | None) -> list[tuple[str, float]] | None:
    """What making `model` draws, in order, when every parameter is a plain Linear's and no
    scheme draws again: per Linear (`modules()` order, the order they are made in) its weight
    then its bias, each `uniform_(-bound, bound)` with the bounds of `nn.Linear.reset_parameters`
    (`kaiming_uniform_(a=sqrt(5))` on the weight: gain sqrt(2 / (1 + a^2)), bound gain *
    sqrt(3 / fan_in); the bias 1 / sqrt(fan_in)), computed as torch.nn.init computes them.
    None where anything else draws (a scheme, another kind of layer, an empty layer)."""
    import math

    from torch import nn
    from torch.nn import init as nn_init

    if init is not None and init.mode in SCHEMES:
        return None
    state = model.state_dict(keep_vars=True)
    keys = {id(v): k for k, v in state.items()}
    gain = nn_init.calculate_gain("leaky_relu", math.sqrt(5))
    draws: list[tuple[str, float]] = []
    for m in model.modules():
        if type(m) is not nn.Linear:
            continue
        if m.weight.numel() == 0:
            return None
        fan_in = m.in_features
        draws.append((keys[id(m.weight)], math.sqrt(3.0) * (gain / math.sqrt(fan_in))))
        if m.bias is not None:
            draws.append((keys[id(m.bias)], 1 / math.sqrt(fan_in)))
    # every parameter drawn so (not a buffer, a subclass's or another layer's parameter)
    return draws if len(draws) == len(state) else None


def module_inits(model: nn.Module, seeds: Sequence[int], init: InitConfig | None) -> Params:
    """`random_inits` by re-initialising `model` per seed: making a module draws each
    Linear's weight then its bias, in the order the Linears are made (= `modules()` order
    here), which is what `reset_parameters` over them in that order draws again (then the
    scheme's `redraw`): the same numbers, without making a thousand modules."""
    import torch

    layers = linears(model)
    named = list(model.state_dict(keep_vars=True).items())
    out = {k: torch.empty(len(seeds), *v.shape) for k, v in named}
    with torch.no_grad():
        for i, seed in enumerate(seeds):
            torch.default_generator.manual_seed(seed)
            for m in layers:
                m.reset_parameters()
            redraw(layers, init)
            for k, v in named:
                out[k][i] = v
    return out
