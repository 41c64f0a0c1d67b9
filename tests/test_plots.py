"""Pictures tell the truth: read back from the figure's own artists, not by eye."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from tiny_cli import config
from tiny_cli.read import arrays
from tiny_cli.show import plots, unitplot
from tiny_cli.store import events
from tiny_cli.tasks.base import correct_interval, predict_fn
from tiny_cli.train import inits


def hardwired(name: str, *sets: tuple[str, object]) -> tuple[config.ExperimentConfig, object]:
    cfg, _ = config.load(name, [("init.mode", "hardwired", "t"), *[(k, v, "t") for k, v in sets]])
    return cfg, inits.build(cfg)


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
    assert f"every {plots.ordinal(stride)} integer" in drawn._title.get_text()


def test_ordinals_read_as_english() -> None:
    words = [plots.ordinal(k) for k in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111, 1003)]
    assert words == ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd",
                     "101st", "111th", "1003rd"]  # fmt: skip


def test_mins_error_panel_uses_the_training_points_and_their_max_error() -> None:
    cfg, _ = config.load("min")
    model = inits.build(cfg)  # a random net: far from min
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


# --- units.png: each hidden unit's activation (unitplot) ---------------------------------


def units_of(cfg: config.ExperimentConfig, state: dict[str, torch.Tensor]) -> unitplot.UnitData:
    x, _ = cfg.task.data()
    net = arrays.from_state(cfg.arch, state)
    data = unitplot.unit_data(net, x.numpy(), cfg.task.input_names(), cfg.task.name)
    assert data is not None
    return data


@pytest.mark.parametrize("kill", [None, "fc2"], ids=["hardwired", "fc2 dead"])
def test_mins_units_are_heat_maps_of_relu_wx_plus_b_a_dead_one_labelled(kill: str | None) -> None:
    cfg, model = hardwired("min")
    state = {k: v.clone() for k, v in model.state_dict().items()}  # type: ignore[attr-defined]
    if kill:
        state[f"{kill}.bias"] = torch.tensor([-1000.0])  # never > 0 on [-50, 50]^2
    data = units_of(cfg, state)
    figure = unitplot.figure(data)
    panels = [ax for ax in figure.axes if ax.images]
    assert len(panels) == 2  # fc1 and fc2: one unit each
    points = torch.from_numpy(data.points)
    for ax, name in zip(panels, ("fc1", "fc2"), strict=True):
        weight, bias = state[f"{name}.weight"].double(), state[f"{name}.bias"].double()
        want = torch.relu(points @ weight.T + bias)
        (image,) = ax.images
        shown = image.get_array()
        assert shown.shape == (len(data.ys), len(data.xs))
        assert np.allclose(shown.filled(0.0).reshape(-1), want.reshape(-1).numpy())
        assert np.array_equal(shown.mask.reshape(-1), (want <= 0).reshape(-1).numpy())  # grey
        title = ax.get_title()
        assert title.endswith(": dead") == (name == kill), title
    assert events.png_size(unitplot.draw(data)) == figure.canvas.get_width_height()


def test_is_even_units_are_curves_per_layer_as_torch_computes_them_the_dead_one_marked() -> None:
    cfg, model = hardwired("is_even")
    data = units_of(cfg, model.state_dict())  # type: ignore[attr-defined]
    figure = unitplot.figure(data)
    panels = [ax for ax in figure.axes if ax.lines]
    assert len(panels) == 5  # 5 hidden layers of 2 units
    # the reference: the nn.Sequential's own ReLU outputs at the points drawn
    h = torch.from_numpy(data.points).float()
    reference = []
    with torch.no_grad():
        for module in model:  # type: ignore[attr-defined]
            h = module(h)
            if isinstance(module, torch.nn.ReLU):
                reference.append(h)
    assert data.points[:, 0].tolist() == list(range(16))  # every integer of the domain
    for ax, acts in zip(panels, reference[:-1], strict=True):  # the last ReLU is the output
        for j, line in enumerate(ax.lines):
            assert np.array_equal(line.get_xdata(), data.points[:, 0])
            assert np.allclose(line.get_ydata(), acts[:, j].numpy())
    # the last layer's ReLU(h - 1) never fires on the domain (see test_readout)
    assert panels[-1].get_title().endswith("dead: unit 1")
    assert [ax.get_title().count("dead") for ax in panels] == [0, 0, 0, 0, 1]
    assert "dead unit" in [t.get_text() for t in figure.legends[0].get_texts()]
    assert figure._suptitle is not None and figure._suptitle.get_text() == data.title
    assert "1 dead" in data.title


def test_a_huge_domain_draws_few_units_at_few_inputs_and_says_so() -> None:
    cfg, model = hardwired("is_even", ("task.bits", 20))
    data = units_of(cfg, model.state_dict())  # type: ignore[attr-defined]
    stride = int(data.xs[1] - data.xs[0])
    assert len(data.points) <= unitplot.MAX_POINTS and stride % 2 == 1
    assert np.array_equal(data.xs, np.arange(0, 2**20, stride))
    assert len(data.units) == unitplot.MAX_UNITS  # of 42
    assert f"of the {2**20} inputs" in data.title and "16 of 42 units drawn" in data.title


def test_drawing_needs_neither_torch_nor_anything_but_its_pickled_data() -> None:
    """unitplot imports no torch, and `draw` works from the data alone, in another process."""
    code = (
        "import pickle, sys\n"
        "from tiny_cli.show import unitplot\n"
        "png = unitplot.draw(pickle.loads(sys.stdin.buffer.read()))\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "sys.stdout.buffer.write(png)\n"
    )
    cfg, model = hardwired("xor")
    data = units_of(cfg, model.state_dict())  # type: ignore[attr-defined]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code], input=pickle.dumps(data), capture_output=True, env=env
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == unitplot.draw(data)


# --- fit for a projector: size, titles, a classifier's boundary, text as written ----------


def test_a_two_input_classifier_shows_its_expression_and_its_decision_boundary() -> None:
    """expr `a < b` as a classifier, with a net whose output is 0.5 + 0.1 (b - a): the
    picture is 1,000 pixels wide or more, titled by the expression, and its 0.5 contour is
    the line a = b."""
    sets = [
        ("task.expr", "a < b", "t"),
        ("task.kind", "classification", "t"),
        ("task.inputs", {"a": [0, 7], "b": [0, 7]}, "t"),
        ("model.layers", [{"width": 1, "activation": "relu"},
                          {"width": 1, "activation": "identity"}], "t"),
    ]  # fmt: skip
    cfg, _ = config.load("expr", sets)
    model = inits.build(cfg)
    with torch.no_grad():  # h = relu(b - a + 100) > 0 on the domain; out = 0.1 h - 9.5
        weights = [torch.tensor([[-1.0, 1.0]]), torch.tensor([100.0])]
        weights += [torch.tensor([[0.1]]), torch.tensor([-9.5])]
        for p, w in zip(model.parameters(), weights, strict=True):  # type: ignore[attr-defined]
            p.copy_(w)
    x, _ = cfg.task.data()
    picture = plots.PredictionPlot(cfg.task, x)
    png = picture.png(model, 3)  # type: ignore[arg-type]
    assert events.png_size(png)[0] >= 1000
    drawn = plots.canvas(picture.layout)
    assert drawn._title.get_text().startswith("a < b")
    assert "white line: output 0.5, the decision" in drawn._left.get_title()
    assert drawn._boundary is not None
    vertices = np.concatenate([p.vertices for p in drawn._boundary.get_paths()])
    assert len(vertices) and np.allclose(vertices[:, 0], vertices[:, 1], atol=1e-6)


def test_every_picture_is_wide_enough_for_a_projector_and_draws_user_text_as_written() -> None:
    for name in ("lt10", "min", "is_even", "parity"):
        cfg, model = hardwired(name)
        x, _ = cfg.task.data()
        picture = plots.PredictionPlot(cfg.task, x)
        assert events.png_size(picture.png(model, 0))[0] >= 1000, name  # type: ignore[arg-type]
        drawn = plots.canvas(picture.layout)
        assert not drawn._title.get_parse_math()  # a `$` in a title stays a `$`
        if name in ("min", "is_even"):  # heat maps, curves (lt10 has no hidden unit)
            data = units_of(cfg, model.state_dict())  # type: ignore[attr-defined]
            assert events.png_size(unitplot.draw(data))[0] >= 1000, name
