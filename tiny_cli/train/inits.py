"""A net's starting parameters: one seed's module (`build`) or many seeds' at once.

Random init is PyTorch's default for each layer, drawn after `torch.manual_seed(seed)`, so
seed k gives the same starting weights in `tiny train`, in a sweep and in a notebook.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tiny_cli.spec.models import Arch, Params

if TYPE_CHECKING:
    from torch import nn

    from tiny_cli.config import ExperimentConfig


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
