"""TensorFlow Playground's datasets (tiny_cli/tasks/playground.py), checked against what
Playground's `src/dataset.ts` draws: the counts, the geometry, the labels against the
truth with and without noise, and that one config gives the same points everywhere."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from tiny_cli import config

PLAYGROUND = ("circle", "gauss", "spiral", "xor2d")


def task(name: str, **values: Any) -> Any:
    sets = [(f"task.{k}", v, "test") for k, v in values.items()]
    return config.load(name, sets)[0].task


@pytest.mark.parametrize("name", PLAYGROUND)
def test_points_and_labels_come_from_the_config_alone(name: str) -> None:
    """An odd n: the first class (label 1) gets the extra point; the same config draws the
    same points, another data_seed others (spiral: once noise moves its points)."""
    x, y = task(name, n_samples=101, noise=0.1).data()
    assert x.shape == (101, 2) and y.shape == (101, 1) and x.dtype == torch.float32
    assert set(y.flatten().tolist()) == {0.0, 1.0}
    again, same = task(name, n_samples=101, noise=0.1).data()
    assert torch.equal(x, again) and torch.equal(y, same)
    other, _ = task(name, n_samples=101, noise=0.1, data_seed=1).data()
    assert not torch.equal(x, other)
    if name != "circle" and name != "xor2d":  # labels by class: 51 of label 1, then 50
        assert y[:51].eq(1).all() and y[51:].eq(0).all()


def test_without_noise_the_labels_are_the_truth() -> None:
    for name in ("circle", "xor2d"):
        t = task(name, n_samples=400)
        x, y = t.data()
        assert torch.equal(t.truth(x), y), name
    t = task("spiral", n_samples=400)
    x, y = t.data()
    wrong = (t.truth(x) != y).flatten().nonzero().flatten().tolist()
    assert wrong == [200]  # the label-0 arm's first point: the origin, as the other arm's


def test_circle_noise_flips_labels_only_near_the_circle() -> None:
    t = task("circle", n_samples=2000, noise=0.5)
    x, y = t.data()
    flipped = (t.truth(x) != y).flatten()
    assert 0.05 < flipped.double().mean() < 0.5
    # a point moves by at most 0.5 x 5 in each coordinate: 2.5 sqrt(2) in all
    distance = (x.double().norm(dim=1) - 2.5).abs()
    assert distance[flipped].max() <= 2.5 * math.sqrt(2) + 1e-6


def test_the_geometry_is_playgrounds() -> None:
    x, y = task("circle", n_samples=1000).data()
    r = x.double().norm(dim=1)
    inner = y.flatten() == 1
    assert r[inner].max() < 2.5 and r[~inner].min() >= 3.5 and r.max() <= 5

    x, _ = task("xor2d", n_samples=1000).data()
    assert x.abs().min() >= 0.3 and x.abs().max() <= 5.3  # pushed 0.3 away from the axes

    x, y = task("gauss", n_samples=4000).data()
    ones = x[y.flatten() == 1].double()
    assert torch.allclose(
        ones.mean(dim=0), torch.tensor([2.0, 2.0], dtype=torch.float64), atol=0.05
    )
    assert abs(ones.var(dim=0).mean().item() - 0.5) < 0.05  # variance 0.5 at noise 0
    noisy, _ = task("gauss", n_samples=4000, noise=0.5).data()
    assert abs(noisy[:2000].double().var(dim=0).mean().item() - 4.0) < 0.4  # 0.5 + 7 x 0.5

    x, _ = task("spiral", n_samples=500).data()
    arm = x[:250].double()  # point i: radius 5 i / 250, angle 3.5 pi i / 250
    i = torch.arange(250, dtype=torch.float64)
    assert torch.allclose(arm.norm(dim=1), 5 * i / 250, atol=1e-5)
    angle = 1.75 * 2 * math.pi * i / 250
    assert torch.allclose(arm[:, 0], 5 * i / 250 * torch.sin(angle), atol=1e-5)


@pytest.mark.parametrize(
    ("key", "value"), [("noise", 0.6), ("noise", -0.1), ("n_samples", 1), ("data_seed", -1)]
)
def test_out_of_range_values_are_one_line_errors(key: str, value: float) -> None:
    from tiny_cli.errors import TinyError

    with pytest.raises(TinyError) as caught:
        task("spiral", **{key: value})
    message = str(caught.value)
    assert f"task.{key}" in message and "\n" not in message
