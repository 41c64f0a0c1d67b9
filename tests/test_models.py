"""Architectures as data: the modules they build, their names, and the batched forward."""

from __future__ import annotations

from typing import get_args

import pytest
import torch
from torch import nn

from tests.article import ArticleMinModel, create_sequential_model, lt10_model
from tiny_cli.spec import models
from tiny_cli.spec.models import Arch, Layer
from tiny_cli.spec.sections import INIT_MODES, SCHEMES, InitConfig, InitMode
from tiny_cli.train import inits

MIXED = (
    Layer(3, "relu"),
    Layer(4, "tanh"),
    Layer(2, "leaky_relu"),
    Layer(3, "identity"),
    Layer(1, "sigmoid"),
)


def plain_sequential(inputs: int, layers: tuple[Layer, ...]) -> nn.Sequential:
    """What a user writes by hand: Linear, then the activation module (none for identity)."""
    acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU}
    mods: list[nn.Module] = []
    fan_in = inputs
    for layer in layers:
        mods.append(nn.Linear(fan_in, layer.width))
        if layer.activation != "identity":
            mods.append(acts[layer.activation]())
        fan_in = layer.width
    return nn.Sequential(*mods)


def test_a_layers_net_loads_strictly_into_the_plain_sequential_a_user_writes() -> None:
    ours = Arch(2, MIXED).module()
    theirs = plain_sequential(2, MIXED)
    theirs.load_state_dict(ours.state_dict())  # strict
    x = torch.randn(50, 2)
    assert torch.equal(ours(x), theirs(x))


@pytest.mark.parametrize(
    ("arch", "article"),
    [
        (models.sigmoid_neuron(), lt10_model),
        (models.min_model(), ArticleMinModel),
        (models.relu_chain([1, 2, 2, 2, 1]), lambda: create_sequential_model([1, 2, 2, 2, 1])),
    ],
    ids=["sigmoid_neuron", "min_model", "relu_chain"],
)
def test_presets_are_the_articles_classes_with_the_same_initial_weights(
    arch: Arch, article: type[nn.Module]
) -> None:
    torch.manual_seed(3)
    ours = arch.module()
    torch.manual_seed(3)
    theirs = article()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    x = torch.randn(20, arch.inputs)
    assert torch.equal(ours(x), theirs(x))


@pytest.mark.parametrize(
    "arch",
    [
        models.sigmoid_neuron(),
        models.min_model(),
        models.relu_chain([1, 2, 2, 1]),
        Arch(2, MIXED),
        Arch(3, MIXED, skip_input=True),
    ],
    ids=["sigmoid_neuron", "min_model", "relu_chain", "mixed", "mixed+skip"],
)
def test_batched_forward_is_each_nets_own_forward(arch: Arch) -> None:
    nets = []
    for seed in range(3):
        torch.manual_seed(seed)
        nets.append(arch.module())
    params = {k: torch.stack([n.state_dict()[k] for n in nets]) for k in nets[0].state_dict()}
    x = torch.randn(40, arch.inputs)
    out, hidden = models.batched_forward(arch, params, x.T.unsqueeze(0))
    assert out.shape == (3, 1, 40) and len(hidden) == len(arch.layers) - 1
    for i, net in enumerate(nets):
        torch.testing.assert_close(out[i, 0], net(x).reshape(-1), rtol=1e-6, atol=1e-6)


def test_a_skip_net_reads_the_inputs_and_the_last_hidden_layer() -> None:
    arch = Arch(2, (Layer(2, "relu"), Layer(1, "identity")), skip_input=True)
    net = arch.module()
    assert [n for n, _ in net.named_parameters()] == [
        "fc1.weight", "fc1.bias", "output_layer.weight", "output_layer.bias",
    ]  # fmt: skip
    assert net.state_dict()["output_layer.weight"].shape == (1, 4)
    assert arch.n_parameters == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(
    "arch",
    [models.sigmoid_neuron(), models.min_model(), models.relu_chain([1, 3, 2, 1]),
     Arch(3, MIXED, skip_input=True)],
    ids=["sigmoid_neuron", "min_model", "relu_chain", "mixed+skip"],
)  # fmt: skip
def test_random_inits_are_the_modules_a_seed_builds(arch: Arch) -> None:
    """The engine's fast init of many seeds draws what `torch.manual_seed(k)` then
    `arch.module()` draws, for every seed; and so for every scheme, what `torch.manual_seed`,
    `arch.module()` then torch.nn.init's initialiser on each Linear in turn draw."""
    seeds = [0, 1, 17, 4096]
    for mode in ("random", *SCHEMES):
        init = InitConfig(mode=mode, std=0.3)
        many = inits.random_inits(arch, seeds, init)
        for i, seed in enumerate(seeds):
            torch.manual_seed(seed)
            module = arch.module()
            inits.redraw([m for m in module.modules() if isinstance(m, nn.Linear)], init)
            built = module.state_dict()
            assert list(many) == list(built)
            for key, value in built.items():
                assert torch.equal(many[key][i], value), (mode, seed, key)


@pytest.mark.parametrize(
    "arch",
    [models.relu_chain([1, 2, 2, 2, 2, 2, 1]), models.min_model(), models.sigmoid_neuron(),
     Arch(3, MIXED, skip_input=True), Arch(256, (Layer(64, "relu"), Layer(1, "identity"))),
     Arch(2, (Layer(20, "relu"), Layer(7, "relu"), Layer(1, "identity")))],
    ids=["is_even", "min_model", "sigmoid_neuron", "mixed+skip", "wide", "odd_wide"],
)  # fmt: skip
def test_the_default_init_drawn_directly_is_the_modules_reset_per_seed(arch: Arch) -> None:
    """PyTorch's default init drawn straight into the stacked parameters (`default_draws`)
    is, to the bit, what re-initialising the module per seed draws (`module_inits`)."""
    seeds = range(51)
    assert inits.default_draws(arch.module(), None) is not None
    fast = inits.random_inits(arch, seeds)
    oracle = inits.module_inits(arch.module(), seeds, None)
    assert list(fast) == list(oracle)
    for key, value in oracle.items():
        assert torch.equal(fast[key], value), key


def test_a_layer_other_than_a_plain_linear_is_reset_per_seed() -> None:
    class Scaled(nn.Linear):
        def reset_parameters(self) -> None:
            super().reset_parameters()
            with torch.no_grad():
                self.weight.mul_(2)

    assert inits.default_draws(nn.Sequential(Scaled(2, 3), nn.Linear(3, 1)), None) is None
    assert inits.default_draws(nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3)), None) is None
    assert inits.default_draws(nn.Linear(2, 3), InitConfig(mode="xavier_normal")) is None
    assert inits.default_draws(nn.Linear(2, 3, bias=False), None) is not None


def test_the_schemes_are_torchs_initialisers() -> None:
    """Seed 0's 64 x 256 layer as torch.nn.init draws it: the bounds and spreads its
    documentation gives (xavier: gain 1, fan_in + fan_out; kaiming for ReLU: sqrt(2 /
    fan_in)), zero biases, and `normal` with the std asked for, biases too."""
    arch = Arch(256, (Layer(64, "relu"), Layer(1, "identity")))

    def first(mode: str, std: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
        params = inits.random_inits(arch, [0], InitConfig(mode=mode, std=std))
        return params["0.weight"][0], params["0.bias"][0]

    for mode, bound in (
        ("xavier_uniform", (6 / 320) ** 0.5),
        ("kaiming_uniform", (6 / 256) ** 0.5),
    ):
        w, b = first(mode)
        assert 0.9 * bound < float(w.abs().max()) <= bound and not b.any(), mode
    for mode, std in (("xavier_normal", (2 / 320) ** 0.5), ("kaiming_normal", (2 / 256) ** 0.5)):
        w, b = first(mode)
        assert abs(float(w.std()) / std - 1) < 0.05 and not b.any(), mode
    w, b = first("normal", 2.5)
    assert abs(float(w.std()) / 2.5 - 1) < 0.05 and 1.0 < float(b.std()) < 4.0
    assert get_args(InitMode) == INIT_MODES  # the config's choices are the documented modes
