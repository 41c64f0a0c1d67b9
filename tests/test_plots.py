"""Pictures tell the truth: read back from the figure's own artists, not by eye."""

from __future__ import annotations

import torch

from tiny_cli import config, models, plots
from tiny_cli.tasks.base import correct_interval, predict_fn


def hardwired(name: str, *sets: tuple[str, object]) -> tuple[config.ExperimentConfig, object]:
    cfg, _ = config.load(name, [("init.mode", "hardwired", "t"), *[(k, v, "t") for k, v in sets]])
    return cfg, models.build(cfg)


def test_is_even_marks_exactly_the_integers_where_the_net_is_wrong() -> None:
    cfg, model = hardwired("is_even")
    x, _ = cfg.task.data()
    picture = plots.PredictionPlot(cfg.task, x, hardwired=True)
    assert picture.png(model, 0).startswith(b"\x89PNG")  # type: ignore[arg-type]
    drawn = plots.canvas(picture.layout)  # the figure the PNG was drawn from
    shown = picture._ints.reshape(-1).tolist()
    found = correct_interval(cfg.task, predict_fn(model), 0, 15)
    lo, hi = found["correct_interval"]
    wrong = [int(v) for v in drawn._wrong.get_xdata()]
    assert wrong == [v for v in shown if not lo <= v <= hi]
    assert -2 in wrong and 18 in wrong  # the failures the metrics report are in the picture
    assert "hardwired" in drawn._title.get_text() and "epoch" not in drawn._title.get_text()


def test_a_huge_domain_is_drawn_at_integers_thinned_with_an_odd_stride_and_says_so() -> None:
    cfg, model = hardwired("is_even", ("task.bits", 20))
    x = torch.arange(0, 2**20, dtype=torch.float32).unsqueeze(1)
    picture = plots.PredictionPlot(cfg.task, x)
    picture.png(model, 3)  # type: ignore[arg-type]
    drawn, stride = plots.canvas(picture.layout), picture.layout.data["stride"]
    xs = picture._ints.reshape(-1)
    assert torch.equal(xs, xs.round()) and stride % 2 == 1 and stride > 1
    assert picture._dense is None and drawn._line is None  # no curve through non-integers
    inside = [v for v in drawn._wrong.get_xdata() if 0 <= v < 2**20]
    assert inside == []  # exact on its domain, as the metrics say
    assert f"every {stride}th integer" in drawn._title.get_text()


def test_mins_error_panel_uses_the_training_points_and_their_max_error() -> None:
    cfg, _ = config.load("min")
    model = models.build(cfg)  # a random net: far from min
    x, y = cfg.task.data()
    picture = plots.PredictionPlot(cfg.task, x)
    picture.png(model, 0)  # type: ignore[arg-type]
    drawn = plots.canvas(picture.layout)
    worst = float((predict_fn(model)(x) - y.reshape(-1)).abs().max())
    assert len(drawn._err_pts.get_array()) == len(x)
    low, high = drawn._err_pts.get_clim()
    assert high == -low and abs(high - worst) < 1e-3 * worst
    assert f"{worst:.3g}" in drawn._err_title.get_text()
    assert "training points" in drawn._err_title.get_text()
