"""Each construction checked exhaustively against plain Python, and loaded into the article's
own classes (copied from the article, with its `Relu_output1` typo fixed)."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from tests.article import ArticleMinModel, create_sequential_model
from tiny_cli import hardwired, models, tasks


def test_lt10_scale_1_gives_the_articles_sigmoid_at_9_5() -> None:
    model = nn.Sequential(nn.Linear(1, 1), nn.Sigmoid())
    model.load_state_dict(hardwired.lt10(10, scale=1))
    assert model(torch.tensor([[9.5]])).item() == pytest.approx(0.62, abs=0.005)


def test_lt10_scale_100_is_nearly_a_step() -> None:
    model = nn.Sequential(nn.Linear(1, 1), nn.Sigmoid())
    model.load_state_dict(hardwired.lt10(10, scale=100))
    assert model(torch.tensor([[9.5]])).item() > 0.999
    assert model(torch.tensor([[10.5]])).item() < 0.001


@pytest.mark.parametrize("scale", [1.0, 3.0, 100.0])
def test_lt10_classifies_every_integer_of_the_domain(scale: float) -> None:
    model = nn.Sequential(nn.Linear(1, 1), nn.Sigmoid())
    model.load_state_dict(hardwired.lt10(10, scale))
    for x in range(-20, 40):
        assert (model(torch.tensor([[float(x)]])).item() > 0.5) == (x < 10), x


def test_min_equation1_is_exact_on_every_pair_of_the_domain() -> None:
    model = ArticleMinModel()
    model.load_state_dict(hardwired.min_equation1())
    pairs = torch.cartesian_prod(torch.arange(-50, 50), torch.arange(-50, 50)).float()
    out = model(pairs).reshape(-1)
    expected = torch.tensor([float(min(a, b)) for a, b in pairs.tolist()])
    assert torch.equal(out, expected)


def test_min_equation1_holds_far_outside_the_domain() -> None:
    model = ArticleMinModel()
    model.load_state_dict(hardwired.min_equation1())
    rng = random.Random(1)
    for _ in range(1000):
        a, b = rng.randrange(-(10**5), 10**5), rng.randrange(-(10**5), 10**5)
        assert model(torch.tensor([[float(a), float(b)]])).item() == min(a, b)


def test_is_even_4_bits_matches_the_articles_state_dict() -> None:
    """The article's listing for n = 4, written out by hand."""
    abs_w = [[-1.0, -1.0], [1.0, 1.0]]
    expected = {
        "0.weight": [[-1.0], [1.0]], "0.bias": [8.0, -8.0],
        "2.weight": abs_w, "2.bias": [4.0, -4.0],
        "4.weight": abs_w, "4.bias": [2.0, -2.0],
        "6.weight": abs_w, "6.bias": [1.0, -1.0],
        "8.weight": abs_w, "8.bias": [1.0, -1.0],
        "10.weight": [[1.0, 1.0]], "10.bias": [0.0],
    }  # fmt: skip
    state = hardwired.is_even(4)
    assert {k: v.tolist() for k, v in state.items()} == expected


@pytest.mark.parametrize("bits", [*range(1, 17), 20, 24])
def test_is_even_is_exact_on_its_whole_domain(bits: int) -> None:
    model = create_sequential_model([1] + [2] * (bits + 1) + [1])
    model.load_state_dict(hardwired.is_even(bits))
    x = torch.arange(0, 2**bits, dtype=torch.float64)
    out = tasks.predict(model, x.float().unsqueeze(1)).double()
    assert torch.equal(out, torch.remainder(x, 2)), bits


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_is_even_matches_plain_python_integer_by_integer(bits: int) -> None:
    model = create_sequential_model([1] + [2] * (bits + 1) + [1])
    model.load_state_dict(hardwired.is_even(bits))
    for x in range(2**bits):
        assert model(torch.tensor([[float(x)]])).item() == x % 2


def test_is_even_4_bits_is_right_on_minus_1_to_17_and_wrong_on_18() -> None:
    model = create_sequential_model([1, 2, 2, 2, 2, 2, 1])
    model.load_state_dict(hardwired.is_even(4))
    found = tasks.correct_interval(model, 0, 15)
    right = [x for x in range(-40, 60) if model(torch.tensor([[float(x)]])).item() == x % 2]
    # the widest run of consecutive right answers around the domain, found by plain scanning
    lo, hi = 0, 15
    while lo - 1 in right:
        lo -= 1
    while hi + 1 in right:
        hi += 1
    assert found == {"correct_interval": [lo, hi], "wrong_at": [lo - 1, hi + 1]}
    assert 18 not in right and hi >= 15


@pytest.mark.parametrize("name", sorted(hardwired.CONSTRUCTIONS))
def test_every_construction_loads_into_our_model_with_the_same_names(name: str) -> None:
    from tiny_cli import config

    cfg, _ = config.load(name, [("init.mode", "hardwired", "test")])
    model = models.build(cfg)
    assert set(model.state_dict()) == set(hardwired.CONSTRUCTIONS[name](cfg))
