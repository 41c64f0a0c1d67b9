"""The read-out: canonical form, formula, meaning, diagnosis. Nets are built in-process
from constructions and seeded random weights; nothing is trained."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import sympy
import torch
from rich.console import Console
from sympy.parsing.sympy_parser import parse_expr

from tests.conftest import CLI, Make
from tiny_cli import config
from tiny_cli.read import arrays, diagnose, formula, match, readout
from tiny_cli.show.compare_view import compare_view
from tiny_cli.show.readout_view import readout_view
from tiny_cli.spec import models
from tiny_cli.spec.models import Arch, Layer
from tiny_cli.store import events, tracking
from tiny_cli.tasks import Task
from tiny_cli.tasks.integers import IsEven, is_even_chain, is_even_widths

WITH_CONSTRUCTION = [
    name
    for name in config.shipped_names()
    if (cfg := config.load(name, [])[0]).task.constructions(cfg.init)
]


def task_of(name: str) -> Task:
    return config.load(name, [])[0].task


def net_outputs(arch: Arch, state: dict[str, torch.Tensor], task: Task) -> np.ndarray:
    """The reference: the real nn.Module, in float64, on the whole domain."""
    model = arch.module()
    model.load_state_dict(state)
    x, _ = task.data()
    with torch.no_grad():
        return model.double()(x.double()).numpy().reshape(len(x), -1)


def formula_values(text: str, task: Task) -> np.ndarray:
    """Parse the formula back with sympy (the task's input names) and evaluate it."""
    names = task.input_names()
    syms = [sympy.Symbol(n, real=True) for n in names]
    expr = parse_expr(text, local_dict=dict(zip(names, syms, strict=True)))
    f = sympy.lambdify(syms, expr, modules="numpy")
    x, _ = task.data()
    cols = x.double().numpy().T
    return np.broadcast_to(np.asarray(f(*cols), dtype=np.float64), (len(x),)).reshape(-1, 1)


def check_formula(arch: Arch, state: dict[str, torch.Tensor], task: Task) -> readout.Readout:
    result = readout.read(arch, state, task)
    want = net_outputs(arch, state, task)
    got = formula_values(result.formula, task)
    assert np.abs(got - want).max() <= result.max_error + 1e-6 * max(1.0, np.abs(want).max())
    assert result.exact == (result.max_error <= result.tolerance)
    return result


def random_state(arch: Arch, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v * 2 for k, v in arch.module().state_dict().items()}  # wider than default


# --- the formula parses back and matches the net ----------------------------------------


@pytest.mark.parametrize("name", WITH_CONSTRUCTION)
def test_every_shipped_construction_reads_back_exactly(name: str) -> None:
    cfg = config.load(name, [])[0]
    construction = cfg.task.constructions(cfg.init)[0]
    result = readout.read(construction.arch, construction.weights(), cfg.task)
    if result.skipped:  # too big for a formula (modular's): right on every input still
        assert result.diagnosis["outcome"] == "solved"
        return
    result = check_formula(construction.arch, construction.weights(), cfg.task)
    assert result.exact and result.max_error == pytest.approx(0, abs=1e-9)
    assert result.diagnosis["outcome"] == "solved"


RANDOM_NETS = [
    ("abs", Arch(1, (Layer(3, "relu"), Layer(1, "identity")))),
    ("abs", Arch(1, (Layer(4, "relu"), Layer(3, "relu"), Layer(1, "identity")))),
    ("min", models.min_model()),
    ("xor", Arch(2, (Layer(3, "leaky_relu"), Layer(2, "tanh"), Layer(1, "sigmoid")))),
    ("parity", Arch(4, (Layer(5, "relu"), Layer(2, "identity"), Layer(1, "identity")))),
    ("is_even", models.relu_chain(is_even_widths(4))),
]


@pytest.mark.parametrize(("name", "arch"), RANDOM_NETS, ids=lambda v: str(v)[:30])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_nets_read_back_within_the_stated_error(name: str, arch: Arch, seed: int) -> None:
    check_formula(arch, random_state(arch, seed), task_of(name))


def test_lt10_random_net_formula_parses_back() -> None:
    arch = models.sigmoid_neuron()
    check_formula(arch, random_state(arch, 3), task_of("lt10"))


# --- canonical form ---------------------------------------------------------------------


def permuted_and_rescaled(
    arch: Arch, state: dict[str, torch.Tensor], seed: int
) -> dict[str, torch.Tensor]:
    """Hidden units shuffled and each ReLU unit scaled by a random positive factor (its
    outgoing weights divided by it): the same function."""
    gen = torch.Generator().manual_seed(seed)
    net = arrays.from_state(arch, state)
    layers = [(la.weight.copy(), la.bias.copy()) for la in net.layers]
    for i in range(len(layers) - 1):
        off = net.reads_inputs(i + 1)
        w, b = layers[i]
        nw, nb = layers[i + 1]
        perm = torch.randperm(len(b), generator=gen).numpy()
        scale = (torch.rand(len(b), generator=gen, dtype=torch.float64) * 4 + 0.25).numpy()
        layers[i] = (w[perm] * scale[:, None], b[perm] * scale)
        cols = nw[:, off:][:, perm] / scale
        layers[i + 1] = (np.concatenate((nw[:, :off], cols), axis=1), nb)
    out: dict[str, torch.Tensor] = {}
    for blocks, (w, b) in zip(arch.blocks(), layers, strict=True):
        start = 0
        for name, _, width in blocks:
            out[f"{name}.weight"] = torch.from_numpy(w[start : start + width])
            out[f"{name}.bias"] = torch.from_numpy(b[start : start + width])
            start += width
    return out


@pytest.mark.parametrize(
    ("name", "arch"),
    [
        ("abs", Arch(1, (Layer(4, "relu"), Layer(3, "relu"), Layer(1, "identity")))),
        ("parity", Arch(4, (Layer(5, "relu"), Layer(1, "identity")))),
        ("is_even", models.relu_chain(is_even_widths(4))),
    ],
    ids=["abs", "parity", "is_even"],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_permuted_and_rescaled_nets_read_back_identically(name: str, arch: Arch, seed: int) -> None:
    task = task_of(name)
    state = {k: v.double() for k, v in random_state(arch, seed).items()}
    other = permuted_and_rescaled(arch, state, seed + 100)
    a, b = readout.read(arch, state, task), readout.read(arch, other, task)
    assert np.allclose(a.canonical.net.params(), b.canonical.net.params(), atol=1e-9)
    assert a.formula == b.formula
    dist = readout.distance(
        arrays.from_state(arch, state), arrays.from_state(arch, other), arrays.domain(task)[0]
    )
    assert dist["parameters"] == pytest.approx(0, abs=1e-9) and dist["same_function"]


def test_min_model_skip_net_is_canonical_under_swap_and_rescale() -> None:
    task = task_of("min")
    state = task.constructions(config.load("min", [])[0].init)[0].weights()
    swapped = {
        "fc1.weight": state["fc2.weight"] * 3,
        "fc1.bias": state["fc2.bias"] * 3,
        "fc2.weight": state["fc1.weight"] * 0.5,
        "fc2.bias": state["fc1.bias"] * 0.5,
        "output_layer.weight": torch.tensor([[0.5, 0.5, -0.5 / 3, -0.5 / 0.5]]),
        "output_layer.bias": torch.tensor([0.0]),
    }
    a = readout.read(models.min_model(), state, task)
    b = readout.read(models.min_model(), swapped, task)
    assert np.allclose(a.canonical.net.params(), b.canonical.net.params(), atol=1e-6)
    assert a.formula == b.formula == "Min(a, b)"


def test_canonical_rescales_merges_and_drops_dead_units() -> None:
    # The article's trained MinModel, its ReLU(a - b) split over two units of one direction,
    # plus a third unit dead on the domain.
    arch = Arch(2, (Layer(3, "relu"), Layer(1, "identity")), skip_input=True)
    state = {
        "fc1.weight": torch.tensor([[0.71, -0.71], [0.5, -0.5], [-1.0, -1.0]]),
        "fc1.bias": torch.tensor([0.0, 0.0, -500.0]),
        "output_layer.weight": torch.tensor(
            [[1.0, 0.0, -0.775 * 0.964 / 0.71, -0.375 * 0.675 / 0.5, 3.0]]
        ),
        "output_layer.bias": torch.tensor([0.0]),
    }
    result = check_formula(arch, state, task_of("min"))
    hidden = result.canonical.net.layers[0]
    assert result.canonical.dead == [[2]]
    assert hidden.width == 1 and hidden.origin == ((0, 1),)
    np.testing.assert_allclose(hidden.weight, [[1.0, -1.0]])
    merged = result.canonical.net.layers[1].weight[0, 2]
    assert merged == pytest.approx(-(0.775 * 0.964 + 0.375 * 0.675), rel=1e-5)
    assert result.formula.count("Max(0") + result.formula.count("Min(") == 1


# --- task-level meaning -----------------------------------------------------------------


def a_s(*names: str) -> list[sympy.Symbol]:
    return [sympy.Symbol(n, real=True) for n in names]


def test_hardwired_min_reads_back_as_min_and_equation_1_simplifies_to_it() -> None:
    cfg = config.load("min", [])[0]
    construction = cfg.task.constructions(cfg.init)[0]
    result = readout.read(construction.arch, construction.weights(), cfg.task)
    a, b = a_s("a", "b")
    expr = parse_expr(result.formula, local_dict={"a": a, "b": b})
    assert expr == sympy.Min(a, b) and result.exact
    assert result.meaning["alpha"] == pytest.approx(0.5) and result.meaning["in_family"]
    # Equation 1, 0.5 (a + b - ReLU(b - a) - ReLU(a - b)), folds to Min(a, b)
    relu = [sympy.Max(0, a - b, evaluate=False), sympy.Max(0, b - a, evaluate=False)]
    equation1 = (a + b) / 2 - relu[0] / 2 - relu[1] / 2
    assert formula.fold_min_max(formula.fold_pairs(equation1)) == sympy.Min(a, b)


def test_the_articles_trained_min_is_in_the_family_with_alpha_1() -> None:
    state = {
        "fc1.weight": torch.tensor([[-0.0, -0.0]]),
        "fc1.bias": torch.tensor([0.0]),
        "fc2.weight": torch.tensor([[0.71, -0.71]]),
        "fc2.bias": torch.tensor([-0.0]),
        "output_layer.weight": torch.tensor([[1.0, 0.0, 0.0, -1.41]]),
        "output_layer.bias": torch.tensor([0.0]),
    }
    result = check_formula(models.min_model(), state, task_of("min"))
    a, b = a_s("a", "b")
    # exact with 4 digits: a - 1.001 ReLU(a - b), 1.001 being 1.41 * 0.71 in canonical form
    assert result.formula == "a - 1.001*Max(0, a - b)" and result.exact and result.digits == 4
    # with 3: a - ReLU(a - b) = min(a, b), approximate by 0.0011 * 100 on the domain
    approx = result.approximation
    assert approx is not None
    assert parse_expr(approx["formula"], local_dict={"a": a, "b": b}) == sympy.Min(a, b)
    assert approx["max_error"] == pytest.approx(0.0011 * 100, rel=0.05)
    assert result.meaning["alpha"] == pytest.approx(1.0, abs=0.01)
    assert result.canonical.dead == [[0]]  # fc1 never fires


def test_a_net_outside_the_family_is_said_to_be() -> None:
    result = readout.read(models.min_model(), random_state(models.min_model(), 0), task_of("min"))
    assert result.meaning["in_family"] is False


def test_lt10_hardwired_is_a_threshold_at_10() -> None:
    cfg = config.load("lt10", [("init.mode", "hardwired", "test")])[0]
    construction = cfg.task.constructions(cfg.init)[0]
    result = readout.read(construction.arch, construction.weights(), cfg.task)
    assert result.meaning["threshold"] == pytest.approx(10.0)
    assert result.meaning["steepness"] == pytest.approx(1.0)
    assert result.meaning["threshold_between"] == [9, 10]
    assert result.meaning["margin_midpoint"] == 9.5
    (x,) = a_s("x")
    expr = parse_expr(result.formula, local_dict={"x": x})
    assert sympy.simplify(expr - 1 / (1 + sympy.exp(x - 10))) == 0


def test_a_trained_like_lt10_neuron_reads_threshold_9_47_between_9_and_10() -> None:
    state = {"0.weight": torch.tensor([[-2.37]]), "0.bias": torch.tensor([2.37 * 9.47])}
    result = check_formula(models.sigmoid_neuron(), state, task_of("lt10"))
    assert result.meaning["threshold"] == pytest.approx(9.47, abs=1e-5)
    assert result.meaning["steepness"] == pytest.approx(2.37, abs=1e-6)
    assert result.meaning["threshold_between"] == [9, 10]


def abs_nest_centres(expr: sympy.Expr, x: sympy.Symbol) -> list[int]:
    """Abs(...Abs(Abs(x - c1) - c2)... - ck) -> [c1, ..., ck], or fail."""
    centres: list[int] = []
    while expr != x:
        assert isinstance(expr, sympy.Abs), expr
        const, inner = expr.args[0].as_independent(x, as_Add=True)
        centres.append(int(-const))
        expr = inner
    return centres[::-1]


@pytest.mark.parametrize("bits", [3, 4, 6])
def test_hardwired_is_even_reads_back_as_an_exact_nest_of_abs(bits: int) -> None:
    task = IsEven(name="is_even", bits=bits)
    arch = models.relu_chain(is_even_widths(bits))
    result = check_formula(arch, is_even_chain(bits), task)
    assert result.exact and result.max_error == 0
    (x,) = a_s("x")
    expr = parse_expr(result.formula, local_dict={"x": x})
    # f_1 . f_1 . f_2 ... f_(2^(bits-1)): the last f_1's ReLU(h - 1) never fires on the
    # domain (h <= 1 there), so it is dead and f_1(h) = 1 - h remains: Max(0, 1 - nest).
    assert result.canonical.dead[-1] == [1]
    assert isinstance(expr, sympy.Max) and 0 in expr.args
    (body,) = [arg for arg in expr.args if arg != 0]
    nest = (1 - body).expand()
    assert abs_nest_centres(nest, x) == [2 ** (bits - 1 - k) for k in range(bits)]


def test_a_dead_is_even_net_reads_back_as_a_constant_with_outcome_dead() -> None:
    task = IsEven(name="is_even", bits=4)
    arch = models.relu_chain(is_even_widths(4))
    state = {k: (-v.abs() - 1 if k.endswith("bias") else v) for k, v in is_even_chain(4).items()}
    result = check_formula(arch, state, task)
    assert sympy.sympify(result.formula).is_number
    assert result.diagnosis["outcome"] == "dead"
    assert [0, 1] in result.canonical.dead  # a whole layer never fires


# --- diagnosis and distance -------------------------------------------------------------


def test_not_converged_looks_at_the_last_tenth() -> None:
    assert diagnose.not_converged([1.0 / (k + 1) for k in range(100)]) is True
    assert diagnose.not_converged([1.0] * 50 + [0.5] * 50) is False
    assert diagnose.not_converged([1.0, 0.5]) is None


def test_diagnosis_uses_init_state_and_losses() -> None:
    task = IsEven(name="is_even", bits=4)
    arch = models.relu_chain(is_even_widths(4))
    init = {k: (-v.abs() - 1 if k.endswith("bias") else v) for k, v in is_even_chain(4).items()}
    result = readout.read(
        arch, is_even_chain(4), task, init_state=init, losses=[0.5] * 20,
        construction=(arch, is_even_chain(4)),
    )  # fmt: skip
    assert result.diagnosis["dead_units_at_init"][0] == [0]
    assert [0, 1] in result.diagnosis["dead_units_at_init"]
    assert result.canonical.dead == [[], [], [], [], [1]]
    assert result.diagnosis["not_converged"] is False
    assert result.diagnosis["distance_to_construction"]["parameters"] == 0


def test_distance_to_a_construction_of_a_perturbed_net() -> None:
    cfg = config.load("xor", [])[0]
    construction = cfg.task.constructions(cfg.init)[0]
    state = construction.weights()
    noisy = {k: v + 0.01 for k, v in state.items()}
    x, _ = arrays.domain(cfg.task)
    dist = readout.distance(
        arrays.from_state(construction.arch, noisy),
        arrays.from_state(construction.arch, state),
        x,
    )
    assert 0 < dist["parameters"] < 0.2
    assert 0 < dist["max_abs_difference"] < 0.1 and not dist["same_function"]


def test_loss_history_is_read_from_the_event_file(tmp_path: Path) -> None:
    writer = events.EventWriter(tmp_path)
    for step, loss in enumerate([3.0, 2.0, 1.0]):
        writer.scalars(step, [("metrics/loss", loss)])
    writer.close()
    assert tracking.scalar_history(tmp_path) == [3.0, 2.0, 1.0]
    assert tracking.scalar_history(tmp_path, "metrics/nothing") == []


def test_readout_view_renders_every_part() -> None:
    cfg = config.load("lt10", [("init.mode", "hardwired", "test")])[0]
    construction = cfg.task.constructions(cfg.init)[0]
    result = readout.read(
        construction.arch, construction.weights(), cfg.task, losses=[1 / (k + 1) for k in range(50)]
    )
    console = Console(width=100, color_system=None, record=True)
    console.print(readout_view(result.as_dict()))
    text = console.export_text()
    assert "formula: 1/(exp(x - 10) + 1)" in text
    assert "exact" in text and "t = 10" in text and "between 9 and 10" in text
    assert "diagnosis: solved" in text and "not converged" in text


def test_export_json_is_the_canonical_net() -> None:
    cfg = config.load("abs", [])[0]
    construction = cfg.task.constructions(cfg.init)[0]
    result = readout.read(construction.arch, construction.weights(), cfg.task)
    doc = json.loads(json.dumps(readout.export(result, ["x"])))
    assert doc["formula"] == "Abs(x)" and doc["layers"][0]["weight"] == [[-1.0], [1.0]]
    assert math.isclose(doc["layers"][1]["weight"][0][0], 1.0)


# --- the command line -------------------------------------------------------------------


def test_hardwired_min_inspects_and_exports_as_min(cli: CLI, make: Make) -> None:
    make("hardwire", "min")  # the scene, in-process (`tiny hardwire min`: tests/test_cli.py)
    proc = cli("inspect", "latest", "--json")
    assert proc.returncode == 0, proc.stderr
    read = json.loads(proc.stdout)["readout"]
    assert read["formula"] == "Min(a, b)" and read["exact"] is True
    assert read["alpha"] == 0.5 and read["outcome"] == "solved"
    assert read["dead_units"] == [[]] and read["distance_to_construction"]["same_function"]
    proc = cli("export", "latest", "--format", "formula")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["Min(a, b)", r"\min\left(a, b\right)"]


# --- tiny compare: every net against the first ----------------------------------------


def test_compare_a_permuted_rescaled_copy_is_the_same_function_at_distance_0() -> None:
    arch, task = models.relu_chain(is_even_widths(4)), task_of("is_even")
    state = {k: v.double() for k, v in random_state(arch, 1).items()}
    lt10 = config.load("lt10", [])[0]
    other = (lt10.arch, random_state(lt10.arch, 0), lt10.task)  # one input, as is_even
    two_inputs = config.load("min", [])[0]
    alien = (two_inputs.arch, two_inputs.task.constructions(two_inputs.init)[0].weights(),
             two_inputs.task)  # fmt: skip
    first, copy, threshold, pair, missing = match.compare(
        [(arch, state, task), (arch, permuted_and_rescaled(arch, state, 5), task), other, alien,
         None]
    )  # fmt: skip
    assert first.net is not None and copy.net is not None and copy.aligned
    assert copy.parameters == pytest.approx(0, abs=1e-9) and copy.same_function
    assert copy.max_abs_difference == pytest.approx(0, abs=1e-9)
    for mine, theirs in zip(first.net.layers, copy.net.layers, strict=True):  # unit by unit
        np.testing.assert_allclose(theirs.weight, mine.weight, atol=1e-9)
        np.testing.assert_allclose(theirs.bias, mine.bias, atol=1e-9)
    # another architecture on the same inputs: the function compares, the parameters do not
    want = np.abs(net_outputs(lt10.arch, other[1], task) - net_outputs(arch, state, task)).max()
    assert threshold.max_abs_difference == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert threshold.parameters is None and not threshold.aligned
    assert pair.net is not None and pair.max_abs_difference is None and pair.same_function is None
    assert missing.net is None and missing.as_dict()["layers"] is None


def test_comparison_to_json_is_the_document_tiny_compare_json_prints(
    cli: CLI, runs_dir: Path, make: Make
) -> None:
    from tiny_cli.read import stored
    from tiny_cli.store import runs

    hard, trained = make("hardwire", "min"), make("train", "min", epochs=2)
    proc = cli("compare", hard.name, trained.name, "--json")
    assert proc.returncode == 0, proc.stderr
    comparison = stored.compare_runs([runs.read(runs.Run(p)) for p in (hard, trained)])
    assert json.loads(json.dumps(comparison.to_json())) == json.loads(proc.stdout)


def test_compare_hardwired_and_trained_min_by_the_cli_and_at_80_columns(
    cli: CLI, runs_dir: Path, make: Make
) -> None:
    from tests.test_render import assert_whole, text_of
    from tiny_cli.store import runs

    hard, trained = make("hardwire", "min"), make("train", "min", epochs=2)
    proc = cli("compare", hard.name, trained.name, "--json")
    assert proc.returncode == 0, proc.stderr
    first, second = json.loads(proc.stdout)["runs"]
    cfg = config.load("min", [])[0]
    outputs = [
        net_outputs(cfg.arch, torch.load(p / "model.pt", weights_only=True), cfg.task)
        for p in (hard, trained)
    ]  # a direct torch forward of each stored net on min's domain
    versus = second["against_first"]
    assert versus["max_abs_difference"] == pytest.approx(np.abs(outputs[1] - outputs[0]).max())
    assert versus["same_function"] == (versus["max_abs_difference"] <= versus["tolerance"])
    tolerance = arrays.TOL_REL * max(1.0, np.abs(outputs[0]).max())  # the first run's scale
    assert versus["tolerance"] == pytest.approx(tolerance)
    hidden = first["canonical"]["layers"][0]  # Equation 1: ReLU(b - a), ReLU(a - b), sorted
    assert (
        hidden["weight"] == [[-1.0, 1.0], [1.0, -1.0]]
        and first["against_first"]["parameters"] is None
    )

    records = [runs.read(runs.Run(p)) for p in (hard, trained)]
    infos = [runs.details(r) for r in records]
    nets = [(cfg.arch, runs.Run(p).load_state(), cfg.task) for p in (hard, trained)]
    forms = [c.as_dict() for c in match.compare(nets)]
    view = compare_view(
        records, [i.config for i in infos], [i.params for i in infos], canonical=forms
    )
    out = text_of(view, 80)
    assert_whole(out, 80)
    for needle in ["hardwired", "trained", "init hardwired", "init random", "seed 0", "lr 0.01",
                   "Canonical form", "1 relu weight", "2 identity weight", "max |difference|",
                   "[[ 0.50  0.50 -0.50 -0.50]]", "canonical distance",
                   f"{versus['max_abs_difference']:.4f}"]:  # fmt: skip
        assert needle in out, (needle, out)
    assert f"same function (within {tolerance:.3g})" in out and "Parameters (as stored)" not in out


# --- read-outs that read like the article (issue 23) ------------------------------------


def view_text(read: dict[str, object], task: Task | None = None, width: int = 200) -> str:
    console = Console(width=width, color_system=None, record=True)
    console.print(readout_view(read, task))
    return console.export_text()


def test_the_shipped_min_seed_0_says_which_mechanism_its_min_is() -> None:
    """`tiny train min` (seed 0: the engine with that one seed, as tiny train trains it)
    reads Min(a, b) with alpha about 0: the net is the mirror b - ReLU(b - a) of the
    article's a - ReLU(a - b), which the formula alone hides."""
    from tiny_cli.train import engine

    cfg = config.load("min", [])[0]
    x, y = cfg.task.data()
    state = {k: v[0] for k, v in engine.fit(cfg, [0], x, y).params.items()}
    hand = cfg.task.constructions(cfg.init)[0]
    read = readout.read(cfg.arch, state, cfg.task, construction=(hand.arch, hand.weights()))
    text = view_text(read.as_dict(), cfg.task)
    assert "formula: Min(a, b)\n  as the net computes it: b - ReLU(b - a)\n" in text
    assert "alpha = 0: b - ReLU(b - a), the mirror of the article's a - ReLU(a - b)" in text
    assert "exact on the 1,000 training samples: max error" in text
    assert "construction: the same function on the 1,000 training samples" in text


@pytest.mark.parametrize(
    ("name", "formula", "mechanism", "family"),
    [
        ("min", "Min(a, b)", "a/2 + b/2 - ReLU(b - a)/2 - ReLU(a - b)/2",
         "family alpha (a - ReLU(a - b)) + (1 - alpha) (b - ReLU(b - a)): alpha = 0.5"),
        ("max", "Max(a, b)", "a/2 + b/2 + ReLU(b - a)/2 + ReLU(a - b)/2",
         "family alpha (a + ReLU(b - a)) + (1 - alpha) (b + ReLU(a - b)): alpha = 0.5"),
    ],
)  # fmt: skip
def test_equation_1_reads_as_itself_beside_its_min_or_max(
    name: str, formula: str, mechanism: str, family: str
) -> None:
    cfg = config.load(name, [])[0]
    construction = cfg.task.constructions(cfg.init)[0]
    result = readout.read(construction.arch, construction.weights(), cfg.task)
    assert result.formula == formula and result.mechanism == mechanism
    for task in (cfg.task, None):  # its task at hand, or the read-out as plain data alone
        text = view_text(result.as_dict(), task)
        assert family in text and text.count("family") == 1
        assert "alpha = 0.5: Equation 1" in text


def test_a_dead_net_reads_0_not_a_nest_of_constants() -> None:
    """Every unit's input is a number on the domain (the first layer's weight is pruned
    beside its bias): Max(0, -0.285*Max(0, 0.427*Max(0, 1) + 1) - 0.276) is 0."""
    arch = Arch(1, (Layer(1, "relu"), Layer(1, "relu"), Layer(1, "relu")))
    state = {
        "0.weight": torch.tensor([[1e-7]]), "0.bias": torch.tensor([1.0]),
        "2.weight": torch.tensor([[0.427]]), "2.bias": torch.tensor([1.0]),
        "4.weight": torch.tensor([[-0.285]]), "4.bias": torch.tensor([-0.276]),
    }  # fmt: skip
    result = check_formula(arch, state, task_of("is_even"))
    assert result.formula == "0" and result.exact
    state["4.bias"] = torch.tensor([0.5])  # alive: -0.285 * 1.427 + 0.5
    assert check_formula(arch, state, task_of("is_even")).formula == "0.093305"


def test_coefficients_are_one_style_without_float_artifacts() -> None:
    """A unit at 5/32 beside decimals is 0.156, and its Max keeps its own coefficients
    (not Max(0, 28.192*a - 32*b + 5)/32); products and sums of rounded coefficients print
    as the decimals they are; a net of dyadics alone reads in fractions."""
    arch = Arch(2, (Layer(2, "relu"), Layer(1, "identity")))
    task = task_of("min")

    def formula_of(w: list[list[float]], b: list[float], out: list[float]) -> str:
        state = {"0.weight": torch.tensor(w, dtype=torch.float64),
                 "0.bias": torch.tensor(b, dtype=torch.float64),
                 "2.weight": torch.tensor([out], dtype=torch.float64),
                 "2.bias": torch.tensor([0.0], dtype=torch.float64)}  # fmt: skip
        return check_formula(arch, state, task).formula

    mixed = formula_of([[0.881, -1.0], [1.0, 0.0]], [5 / 32, 0.0], [0.274, 0.5])
    assert mixed == "0.5*Max(0, a) + 0.274*Max(0, 0.881*a - b + 0.156)"
    # 0.3 ReLU(u) + 0.1 ReLU(-u) = 0.1 |u| + (0.3 - 0.1) ReLU(u): 0.2, not 0.19999999999999998
    pair = formula_of([[1.0, -1.0], [-1.0, 1.0]], [0.0, 0.0], [0.3, 0.1])
    assert "0.2*" in pair and "999" not in pair and "/" not in pair
    assert formula_of([[1.0, -1.0], [1.0, 0.0]], [0.0, 0.0], [0.375, 0.5]) == (
        "Max(0, a)/2 + 3*Max(0, a - b)/8"
    )


def test_a_long_formula_cuts_its_approximation_the_same_way() -> None:
    read = {"formula": "a + " * 300 + "b", "exact": False, "max_error": 1.0, "tolerance": 0.1,
            "digits": 6, "approximation": {"formula": "b + " * 300 + "a", "max_error": 2.0,
                                           "digits": 3}}  # fmt: skip
    text = view_text(read)
    assert text.count("characters; tiny export RUN --format formula prints it whole") == 2
    assert max(len(line) for line in text.splitlines()) < 500


def test_a_right_net_unlike_its_construction_solves_the_task_by_another_mechanism() -> None:
    """lt10's solved neuron Sigmoid(2.37 (9.47 - x)) is right on every input, as the step
    neuron Sigmoid(10 - x) is, yet another function; a neuron at 30 is wrong: it differs."""
    cfg = config.load("lt10", [])[0]
    hand = cfg.task.constructions(cfg.init)[0]
    lines = {}
    for t in (9.47, 30.0):
        state = {"0.weight": torch.tensor([[-2.37]]), "0.bias": torch.tensor([2.37 * t])}
        result = readout.read(hand.arch, state, cfg.task, construction=(hand.arch, hand.weights()))
        lines[t] = view_text(result.as_dict(), cfg.task).splitlines()[-1]
    box = "on the whole input box (the 60 integers in [-20, 40))"
    assert lines[9.47].startswith(f"construction: solves the task by another mechanism {box}")
    assert lines[30.0].startswith(f"construction: differs {box}")


def test_compare_says_two_right_nets_solve_the_task_by_different_mechanisms() -> None:
    """Equation 1 against the article's trained MinModel (a - 1.001 ReLU(a - b), within
    0.11 of min on the domain, more than the tolerance) and a net that is not min."""
    cfg = config.load("min", [])[0]
    eq1 = cfg.task.constructions(cfg.init)[0].weights()
    article = {"fc1.weight": torch.tensor([[0.0, 0.0]]), "fc1.bias": torch.tensor([0.0]),
               "fc2.weight": torch.tensor([[0.71, -0.71]]), "fc2.bias": torch.tensor([0.0]),
               "output_layer.weight": torch.tensor([[1.0, 0.0, 0.0, -1.41]]),
               "output_layer.bias": torch.tensor([0.0])}  # fmt: skip
    wrong = {**eq1, "output_layer.weight": torch.tensor([[0.5, 0.5, 0.5, -0.5]])}
    forms = match.compare([(cfg.arch, s, cfg.task) for s in (eq1, article, wrong)])
    assert [f.solves_task for f in forms] == [True, True, False]
    assert [f.same_function for f in forms[1:]] == [False, False]
    from tests.test_render import RECORDS, text_of

    out = text_of(compare_view(RECORDS[:3], [None] * 3, [None] * 3,
                               canonical=[f.as_dict() for f in forms]), 120)  # fmt: skip
    same = next(line for line in out.splitlines() if line.startswith("same function"))
    assert "no: another mechanism" in same and same.endswith("no: differs")
    assert "on the 1,000 training samples" in out
