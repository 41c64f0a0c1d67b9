"""The hand-written forward and backward: autograd's gradients, and each seed's numbers
independent of the seeds beside it and of the thread count, bit for bit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tiny_cli.spec import activations, models
from tiny_cli.spec.models import Arch, Layer
from tiny_cli.train import backprop, inits

WIDE = 16  # 16 x 16 > backprop.SMALL: that layer runs on bmm
ARCHS = {
    "sigmoid_neuron": (models.sigmoid_neuron(), "bce"),
    "min_model": (models.min_model(), "mse"),
    "relu_chain": (models.relu_chain([1, 2, 2, 2, 1]), "mse"),
    "mixed": (
        Arch(2, (Layer(3, "relu"), Layer(4, "tanh"), Layer(2, "leaky_relu"), Layer(3, "identity"),
                 Layer(1, "sigmoid"))),
        "bce",
    ),
    "wide+skip": (
        Arch(2, (Layer(WIDE, "relu"), Layer(WIDE, "tanh"), Layer(1, "identity")), skip_input=True),
        "l1",
    ),
    "softmax": (Arch(2, (Layer(4, "relu"), Layer(3, "identity"))), "ce"),  # 3 classes
    # a wide layer of odd sizes (20 x 7 > SMALL): a seed's matrices at any offset in a batch
    "odd_wide": (
        ODD := Arch(2, (Layer(20, "relu"), Layer(7, "relu"), Layer(1, "identity"))),
        "mse",
    ),
    # one-hot a and b over 5 values each, a wide first layer: the gather (`one_hot_columns`)
    "one_hot": (ONE_HOT := Arch(10, (Layer(WIDE, "quadratic"), Layer(3, "identity"))), "ce"),
    # every layer wide: seeds first (`backprop.seeds_first`), over dense and one-hot inputs
    "all_wide": (Arch(12, (Layer(20, "tanh"), Layer(9, "sigmoid"))), "bce"),
    "all_wide_one_hot": (
        ALL_WIDE_ONE_HOT := Arch(10, (Layer(WIDE, "quadratic"), Layer(WIDE, "identity"))),
        "ce",
    ),
} | {  # and each activation of the table, hidden and as the read-out
    f"act:{name}": (Arch(2, (Layer(3, name), Layer(1, name))), "mse") for name in activations.TABLE
}  # fmt: skip


def seeds_last(params: models.Params) -> models.Params:
    """[S, *shape] -> [*shape, S], contiguous: the engine's layout."""
    return {k: v.movedim(0, -1).contiguous() for k, v in params.items()}


def run(arch: Arch, loss: str, params: models.Params, x: torch.Tensor, y: torch.Tensor):
    """Outputs, per-seed losses and [P, S] gradients for data x [n, in], y [n, outputs]."""
    net = backprop.SeedNets(arch, seeds_last(params), loss)
    alive = torch.ones(len(next(iter(params.values()))), dtype=torch.bool)
    return net.step(x.T.unsqueeze(-1), y.T.unsqueeze(-1), alive)


def data(arch: Arch, loss: str, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, arch.inputs, generator=gen) * 3
    if arch is ONE_HOT or arch is ALL_WIDE_ONE_HOT:
        a, b = torch.randint(0, 5, (2, n), generator=gen)
        x = torch.cat([F.one_hot(a, 5), F.one_hot(b, 5)], dim=1).float()
    if loss == "ce":  # one-hot classes
        classes = arch.layers[-1].width
        return x, F.one_hot(torch.randint(0, classes, (n,), generator=gen), classes).float()
    shape = (n, arch.layers[-1].width)
    y = torch.rand(shape, generator=gen) if loss == "bce" else torch.randn(shape, generator=gen)
    return x, y


@pytest.mark.parametrize("name", list(ARCHS))
def test_the_gradients_are_autograds_on_the_articles_modules(name: str) -> None:
    arch, loss = ARCHS[name]
    gen = torch.Generator().manual_seed(1)
    x, y = data(arch, loss, 37, gen)
    params = inits.random_inits(arch, [0, 1, 2])
    pred, losses, grads = run(arch, loss, params, x, y)
    fn = {"mse": F.mse_loss, "bce": F.binary_cross_entropy, "l1": F.l1_loss,
          "ce": F.cross_entropy}[loss]  # fmt: skip
    for seed in range(3):
        module = arch.module()
        module.load_state_dict({k: v[seed] for k, v in params.items()})
        out = module(x)
        value = fn(out, y)
        value.backward()
        torch.testing.assert_close(pred[..., seed], out.T, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(losses[seed], value.detach(), rtol=1e-5, atol=1e-6)
        theirs = torch.cat([p.grad.reshape(-1) for p in module.parameters()])
        torch.testing.assert_close(grads[:, seed], theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(ARCHS))
def test_a_seeds_numbers_do_not_depend_on_the_seeds_beside_it_or_the_threads(name: str) -> None:
    """Seed 5 trained alone and among 700
    others at several places, on 1 and 2 threads: the same bits. 700 seeds x 60 samples
    make the ops big enough to be split between threads at unaligned places."""
    arch, loss = ARCHS[name]
    gen = torch.Generator().manual_seed(2)
    x, y = data(arch, loss, 60, gen)
    others = inits.random_inits(arch, range(100, 800))
    mine = inits.random_inits(arch, [5])
    _, alone_loss, alone_grads = run(arch, loss, mine, x, y)
    threads = torch.get_num_threads()
    try:
        for count, place in ((1, 0), (2, 699), (2, 350), (1, 431)):
            torch.set_num_threads(count)
            params = {k: torch.cat([v[:place], mine[k], v[place:]]) for k, v in others.items()}
            _, losses, grads = run(arch, loss, params, x, y)
            assert torch.equal(losses[place], alone_loss[0]), (count, place)
            assert torch.equal(grads[:, place], alone_grads[:, 0]), (count, place)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", ["odd_wide", "all_wide"])
def test_a_lone_seeds_own_mini_batch_gives_the_bits_it_has_among_others(name: str) -> None:
    """Mini-batches are each seed's own (x [inputs, n, S]): seed 5's batch alone and among
    300 seeds with theirs, through wide layers of odd sizes, on 1 and 2 threads."""
    arch, loss = ARCHS[name]
    gen = torch.Generator().manual_seed(3)
    params = inits.random_inits(arch, range(300))
    x = torch.randn(arch.inputs, 32, 300, generator=gen)
    y = torch.rand(arch.layers[-1].width, 32, 300, generator=gen)
    alive = torch.ones(300, dtype=torch.bool)
    mine = {k: v[5:6] for k, v in params.items()}
    net = backprop.SeedNets(arch, seeds_last(mine), loss)
    _, loss_alone, grad = net.step(x[..., 5:6], y[..., 5:6], alive[:1])
    threads = torch.get_num_threads()
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            every = backprop.SeedNets(arch, seeds_last(params), loss)
            _, losses, grads = every.step(x, y, alive)
            assert torch.equal(losses[5], loss_alone[0]) and torch.equal(grads[:, 5], grad[:, 0])
    finally:
        torch.set_num_threads(threads)


def test_nets_of_wide_layers_only_run_seeds_first() -> None:
    """The layout the cases above cover: seeds first only where every layer is wide and
    none reads the inputs."""
    first = {name for name, (arch, _) in ARCHS.items() if backprop.seeds_first(arch)}
    assert first == {"all_wide", "all_wide_one_hot"}


@given(rows=st.integers(1, 70), cols=st.integers(1, 40), col=st.integers(0, 39))
@settings(max_examples=25, deadline=None, derandomize=True)
def test_tree_sum_of_a_column_is_the_column_summed_alone(rows: int, cols: int, col: int) -> None:
    col %= cols
    t = torch.randn(rows, cols, generator=torch.Generator().manual_seed(rows * 100 + cols)) * 1e3
    summed = backprop.tree_sum(t, dim=0)
    assert summed.shape == (cols,)
    assert torch.equal(summed[col], backprop.tree_sum(t[:, col : col + 1].clone(), dim=0)[0])
    torch.testing.assert_close(summed, t.double().sum(dim=0).float(), rtol=1e-5, atol=1e-2)


@pytest.mark.parametrize("name", ["min_model", "wide+skip"])
def test_summing_as_products_are_made_gives_the_same_bits(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Big batches sum each parameter's products as they are made, to bound memory; small
    ones gather them all first: the same sums, bit for bit."""
    arch, loss = ARCHS[name]
    x, y = data(arch, loss, 50, torch.Generator().manual_seed(3))
    params = inits.random_inits(arch, range(9))
    gathered = run(arch, loss, params, x, y)
    monkeypatch.setattr(backprop, "COLLECT", 0)
    one_by_one = run(arch, loss, params, x, y)
    for a, b in zip(gathered, one_by_one, strict=True):
        assert torch.equal(a, b)


def test_softmax_cross_entropy_is_stable_at_large_logits() -> None:
    """Logits of 1e4 (exp would overflow): a finite loss, (0 + 1e4) / 2, and gradient."""
    big = torch.tensor([[1e4, 0.0], [0.0, 1e4], [-1e4, 0.0]]).unsqueeze(-1)  # [C, n, S]
    target = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]).unsqueeze(-1)
    loss, grad = backprop.loss_and_grad("ce", big, target)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(loss[0], torch.tensor(5e3))


@pytest.mark.parametrize("name", ["one_hot", "all_wide_one_hot"])
def test_a_net_trained_on_one_set_predicts_another(name: str) -> None:
    """Training steps on the training pairs, then a forward on held-out pairs of another
    count (the test split): the module's outputs on those, not on the training pairs."""
    arch, loss = ARCHS[name]
    gen = torch.Generator().manual_seed(4)
    (x, y), (held, _) = data(arch, loss, 40, gen), data(arch, loss, 23, gen)
    params = inits.random_inits(arch, [0, 1])
    net = backprop.SeedNets(arch, seeds_last(params), loss)
    net.step(x.T.unsqueeze(-1), y.T.unsqueeze(-1), torch.ones(2, dtype=torch.bool))
    pred, _ = net.forward(held.T.unsqueeze(-1))
    for seed in range(2):
        module = arch.module()
        module.load_state_dict({k: v[seed] for k, v in params.items()})
        torch.testing.assert_close(pred[..., seed], module(held).T, rtol=1e-5, atol=1e-6)
