"""The task registry: every task's data against plain Python, every construction exhaustive on
its whole domain, loaded into the article's classes or the plain `nn.Sequential` a user writes.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
import torch
from torch import nn

from tests.article import ArticleMinModel, create_sequential_model
from tiny_cli import config, tasks
from tiny_cli.tasks import integers, pairs, threshold
from tiny_cli.tasks.base import correct_interval, predict_fn
from tiny_cli.train import inits

# Each built-in task's function in plain Python, on one input row.
PLAIN: dict[str, Callable[..., float]] = {
    "lt": lambda x: float(x < 10),
    "min": lambda a, b: float(min(a, b)),
    "max": lambda a, b: float(max(a, b)),
    "abs": lambda x: float(abs(x)),
    "xor": lambda a, b: float(int(a) ^ int(b)),
    "is_even": lambda x: float(int(x) % 2),
    "mod": lambda x: float(int(x) % 3),
    "mod3": lambda x: float(int(x) % 3),  # as a class: one-hot targets
    "parity": lambda *bits: float(sum(int(b) for b in bits) % 2),
    "expr": lambda a, b: float(abs(a - b)),
    "modular": lambda a, b: float((int(a) + int(b)) % 31),  # modadd; tests/test_modular.py
}
PLAYGROUND = ("circle", "gauss", "spiral", "xor2d")  # continuous: tests/test_playground.py
# A config for each: the shipped one of the same name (lt: the article's lt10).
CONFIG = {name: ("lt10" if name == "lt" else name) for name in PLAIN} | {"modular": "modadd"}


def test_every_builtin_task_is_covered_here_and_has_a_shipped_config() -> None:
    assert set(PLAIN) | set(PLAYGROUND) == set(tasks.names())
    assert set(CONFIG.values()) <= set(config.shipped_names())


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_data_and_truth_match_plain_python(name: str) -> None:
    cfg, _ = config.load(CONFIG[name])
    x, y = cfg.task.data()
    assert x.shape == (cfg.task.size(), cfg.task.net_inputs())
    if cfg.task.encoding == "one_hot":  # one unit per value, one of them set
        inputs = len(cfg.task.input_names())
        assert torch.equal(x.sum(dim=1), torch.full((len(x),), float(inputs)))
        x = cfg.task.decode(x)
    expected = torch.tensor([[PLAIN[name](*row)] for row in x.tolist()])
    if cfg.task.many_classes:  # one-hot rows
        expected = torch.nn.functional.one_hot(expected[:, 0].long(), cfg.task.outputs()).float()
    assert torch.equal(y, expected)
    assert torch.equal(cfg.task.truth(x), expected)


WITH_CONSTRUCTION = [n for n in sorted(PLAIN) if n not in ("mod", "mod3", "expr")]


@pytest.mark.parametrize("name", WITH_CONSTRUCTION)
def test_every_construction_is_exact_on_its_whole_domain(name: str) -> None:
    cfg, _ = config.load(CONFIG[name], [("init.mode", "hardwired", "test")])
    (built, *_) = cfg.task.constructions(cfg.init)
    model = built.arch.module()
    model.load_state_dict(built.weights())  # strict: the names the architecture makes
    x, _ = cfg.task.data()
    if name in ("min", "max"):  # every pair of the range, not only the sampled ones
        r = torch.arange(cfg.task.low, cfg.task.high)  # type: ignore[attr-defined]
        x = torch.cartesian_prod(r, r).float()
    pred = predict_fn(model)(x)
    rows = cfg.task.decode(x) if cfg.task.encoding == "one_hot" else x
    truth = torch.tensor([PLAIN[name](*row) for row in rows.tolist()])
    if name == "lt":  # a sigmoid is never exactly 0 or 1: right on every input
        assert cfg.task.correct(pred, truth).all()
    elif cfg.task.many_classes:  # the largest output is the answer
        assert torch.equal(pred.argmax(dim=1).float(), truth)
    else:  # the others are exact
        assert torch.equal(pred, truth)


def test_constructions_are_listed_for_exactly_the_tasks_that_have_one() -> None:
    from tiny_cli.tasks import catalog

    assert catalog.with_construction() == [n for n in tasks.names() if n in WITH_CONSTRUCTION]


def test_lt_scale_1_gives_the_articles_sigmoid_at_9_5() -> None:
    model = nn.Sequential(nn.Linear(1, 1), nn.Sigmoid())
    model.load_state_dict(threshold.step_neuron(10, scale=1))
    assert model(torch.tensor([[9.5]])).item() == pytest.approx(0.62, abs=0.005)
    model.load_state_dict(threshold.step_neuron(10, scale=100))
    assert model(torch.tensor([[9.5]])).item() > 0.999
    assert model(torch.tensor([[10.5]])).item() < 0.001


def test_min_and_max_hold_far_outside_the_domain_in_the_articles_class() -> None:
    lo, hi = ArticleMinModel(), ArticleMinModel()
    lo.load_state_dict(pairs.min_equation1())
    hi.load_state_dict(pairs.max_equation1())
    rng = random.Random(1)
    ab = torch.tensor([[rng.randrange(-(10**5), 10**5) for _ in "ab"] for _ in range(1000)])
    with torch.no_grad():
        assert torch.equal(lo(ab.float()).reshape(-1), ab.min(dim=1).values.float())
        assert torch.equal(hi(ab.float()).reshape(-1), ab.max(dim=1).values.float())


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
    state = integers.is_even_chain(4)
    assert {k: v.tolist() for k, v in state.items()} == expected


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8, 13, 24])
def test_is_even_is_exact_on_its_whole_domain_in_the_articles_model(bits: int) -> None:
    """One batched forward per size, 2^24 integers included."""
    model = create_sequential_model(integers.is_even_widths(bits))
    model.load_state_dict(integers.is_even_chain(bits))
    x = torch.arange(0, 2**bits, dtype=torch.float64)
    out = predict_fn(model)(x.float().unsqueeze(1)).double()
    assert torch.equal(out, torch.remainder(x, 2)), bits


def test_is_even_4_bits_is_right_on_minus_1_to_17_and_wrong_on_18() -> None:
    cfg, _ = config.load("is_even", [("task.bits", 4, "test")])
    model = create_sequential_model([1, 2, 2, 2, 2, 2, 1])
    model.load_state_dict(integers.is_even_chain(4))
    found = correct_interval(cfg.task, predict_fn(model), 0, 15)
    right = [x for x in range(-40, 60) if model(torch.tensor([[float(x)]])).item() == x % 2]
    # the widest run of consecutive right answers around the domain, found by plain scanning
    lo, hi = 0, 15
    while lo - 1 in right:
        lo -= 1
    while hi + 1 in right:
        hi += 1
    assert found == {"correct_interval": [lo, hi], "wrong_at": [lo - 1, hi + 1]}
    assert 18 not in right and hi >= 15


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_every_default_model_builds_with_the_tasks_inputs(name: str) -> None:
    shipped, _ = config.load(CONFIG[name])
    cfg = config.validate({"task": config.to_dict(shipped)["task"], "train": {"epochs": 1}}, "t")
    model = inits.build(cfg)
    x, _ = cfg.task.data()
    outputs = () if cfg.task.outputs() == 1 else (cfg.task.outputs(),)
    assert predict_fn(model)(x[:5]).shape == (min(5, len(x)), *outputs)
