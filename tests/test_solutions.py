"""`tiny inspect SWEEP --solutions`: solved seeds grouped by canonical form. One small min
sweep, trained in-process, serves the storage, TensorBoard, rendering and command tests."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import sympy
import torch
from sympy.parsing.sympy_parser import parse_expr
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util

from tests.conftest import Make, run_cli
from tests.conftest import tiny_here as tiny
from tests.test_readout import formula_values, net_outputs, permuted_and_rescaled, random_state
from tests.test_render import text_of
from tiny_cli import config
from tiny_cli.app import solutions as stored_solutions
from tiny_cli.app import sweep
from tiny_cli.read import canonical, solutions
from tiny_cli.read.arrays import domain, from_state
from tiny_cli.show.solutions_view import seed_ranges, solutions_view
from tiny_cli.spec import models
from tiny_cli.store import runs
from tiny_cli.tasks.integers import is_even_widths
from tiny_cli.tasks.pairs import min_equation1

# min on 64 pairs: 300 epochs of mini-batches of 16 solve most seeds in under a second;
# from Equation 1 (hardwired) every seed stays Equation 1, so that point is one group.
SMALL_MIN = ["task.n_samples=64", "train.epochs=300", "train.lr=0.03", "train.batch_size=16"]
SEEDS = 12


def make_sweep(root: Path, sets: list[str], seeds: int, grid: list[str]) -> runs.Run:
    """A sweep stored exactly as `tiny sweep min --set ... --grid ...` stores it."""
    overrides = [config.parse_override(s) for s in sets]
    axes = config.parse_grid(grid)
    base, path = config.load("min", overrides)
    points = config.grid_points("min", overrides, axes)
    out = sweep.run_sweep(base, points, axes, range(seeds), runs_root=root, source=str(path))
    return out.run


@pytest.fixture(scope="module")
def min_sweep(tmp_path_factory: pytest.TempPathFactory) -> runs.Run:
    root = tmp_path_factory.mktemp("solutions") / "runs"
    return make_sweep(root, SMALL_MIN, SEEDS, ["init.mode=random,hardwired"])


def point_config(run: runs.Run, grid: dict[str, object]) -> config.ExperimentConfig:
    overrides = [(k, v, "test") for k, v in grid.items()]
    return config.load(str(run.path / runs.CONFIG), overrides)[0]


def test_groups_partition_the_solved_seeds_and_formulas_read_back_as_their_nets(
    min_sweep: runs.Run,
) -> None:
    found, unstored = stored_solutions.solutions(min_sweep)
    assert unstored is None
    arrays = runs.read_sweep_arrays(min_sweep)
    for point, stored in zip(found.points, arrays.points, strict=True):
        cfg = point_config(min_sweep, stored["grid"])
        outcomes = [arrays.outcomes[c] for c in stored["outcome"].tolist()]
        solved = [s for s, o in zip(arrays.seeds, outcomes, strict=True) if o == "solved"]
        assert len(solved) >= 2, outcomes  # else this test would say little
        assert point.solved_seeds == solved
        grouped = [s for g in point.groups for s in g.seeds]
        assert sorted(grouped) == solved and len(set(grouped)) == len(grouped)
        assert sum(g.count for g in point.groups) == len(solved)
        x, y = domain(cfg.task)
        assert point.alpha is not None
        for seed, alpha in zip(solved, point.alpha, strict=True):
            state = {k: v[arrays.seeds.index(seed)] for k, v in stored["params"].items()}
            meaning = cfg.task.meaning(from_state(cfg.arch, state), x, y, {})
            assert alpha == (pytest.approx(meaning["alpha"]) if meaning["in_family"] else None)
        for g in point.groups:
            assert g.representative in g.seeds and g.formula is not None
            index = arrays.seeds.index(g.representative)
            state = {k: v[index] for k, v in stored["params"].items()}
            want = net_outputs(cfg.arch, state, cfg.task)  # the representative, by torch
            got = formula_values(g.formula, cfg.task)
            assert g.max_error is not None
            assert np.abs(got - want).max() <= g.max_error + 1e-6 * max(1, np.abs(want).max())
    hardwired = found.points[1]
    assert hardwired.grid == {"init.mode": "hardwired"}
    assert [g.seeds for g in hardwired.groups] == [list(range(SEEDS))]
    a, b = sympy.symbols("a b", real=True)
    formula = hardwired.groups[0].formula
    assert formula is not None
    assert parse_expr(formula, local_dict={"a": a, "b": b}) == sympy.Min(a, b)
    assert hardwired.alpha == pytest.approx([0.5] * SEEDS)


def min_net(
    units: list[tuple[float, float, float]], out: list[float], bias: float = 0.0
) -> dict[str, torch.Tensor]:
    """MinModel weights: fc1 and fc2 (w_a, w_b, bias), the read-out [c_a, c_b, v1, v2]."""
    (a1, b1, c1), (a2, b2, c2) = units
    return {
        "fc1.weight": torch.tensor([[a1, b1]]),
        "fc1.bias": torch.tensor([c1]),
        "fc2.weight": torch.tensor([[a2, b2]]),
        "fc2.bias": torch.tensor([c2]),
        "output_layer.weight": torch.tensor([out]),
        "output_layer.bias": torch.tensor([bias]),
    }


def test_the_rule_finds_mins_three_mechanisms() -> None:
    """Mixtures alpha (a - ReLU(a - b)) + (1 - alpha) (b - ReLU(b - a)), whatever alpha, are
    one mechanism; alpha 1 (a - ReLU(a - b)) is another however its unit is split, copied,
    rescaled or accompanied by a unit of no weight; alpha 0 a third."""
    arch, cfg = models.min_model(), config.load("min", [])[0]
    dead = (-1.0, -1.0, -1000.0)  # never fires on [-50, 50)^2
    a_b, b_a = (1.0, -1.0, 0.0), (-1.0, 1.0, 0.0)
    alpha1 = min_net([a_b, dead], [1, 0, -1, 0])
    nets = [
        min_equation1(),  # 0: alpha 0.5
        alpha1,  # 1
        min_net([dead, b_a], [0, 1, 0, -1]),  # 2: alpha 0
        min_net([a_b, b_a], [0.3, 0.7, -0.3, -0.7]),  # 3: alpha 0.3
        min_net([a_b, b_a], [1, 0, -1, 0.0005]),  # 4: alpha 1, a unit of no weight
        min_net([a_b, (1.0, -1.0, 0.5)], [1, 0, -0.6, -0.4]),  # 5: alpha 1 over two units
        min_net([a_b, a_b], [1, 0, -0.5, -0.5]),  # 6: alpha 1, one unit twice (merged)
        permuted_and_rescaled(arch, min_equation1(), 3),  # 7
        permuted_and_rescaled(arch, alpha1, 4),  # 8
    ]
    stacked = {k: torch.stack([n[k].double() for n in nets]) for k in nets[0]}
    x, _ = domain(cfg.task)
    found = solutions.group(
        [solutions.mechanism(n, x) for n in canonical.canonical_many(arch, stacked, x)]
    )
    assert found == [[0, 3, 7], [1, 4, 5, 6, 8], [2]]


@pytest.mark.parametrize(
    "arch",
    [
        models.relu_chain(is_even_widths(4)),
        models.min_model(),
        models.Arch(
            4, (models.Layer(5, "relu"), models.Layer(3, "tanh"), models.Layer(1, "identity"))
        ),
    ],
    ids=["is_even", "min", "relu-tanh"],
)
def test_canonical_many_is_canonical_seed_by_seed(arch: models.Arch) -> None:
    task = {1: "is_even", 2: "min", 4: "parity"}[arch.inputs]
    cfg = config.load(task, [])[0]
    states = [random_state(arch, seed) for seed in range(8)]
    twin = dict(states[0])  # two units of one direction: canonical merges them, one by one
    first = arch.blocks()[0][0][0]
    twin[f"{first}.weight"] = states[0][f"{first}.weight"].clone()
    twin[f"{first}.bias"] = states[0][f"{first}.bias"].clone()
    if len(twin[f"{first}.bias"]) > 1:
        twin[f"{first}.weight"][1] = twin[f"{first}.weight"][0] * 3
        twin[f"{first}.bias"][1] = twin[f"{first}.bias"][0] * 3
    states.append(twin)
    stacked = {k: torch.stack([s[k] for s in states]) for k in states[0]}
    x, _ = domain(cfg.task)
    for state, many in zip(states, canonical.canonical_many(arch, stacked, x), strict=True):
        one = canonical.canonical(from_state(arch, state), x).net
        assert [la.origin for la in many.layers] == [la.origin for la in one.layers]
        np.testing.assert_allclose(many.params(), one.params(), atol=1e-12)


def test_solutions_json_and_tensorboard_text_and_alpha_histogram(min_sweep: runs.Run) -> None:
    found, _ = stored_solutions.solutions(min_sweep)
    assert runs.read_solutions(min_sweep) == found
    doc = json.loads((min_sweep.path / runs.SOLUTIONS).read_text())
    assert doc["points"][1]["groups"][0]["seeds"] == list(range(SEEDS))
    (events,) = min_sweep.path.glob("*.tiny-solutions")
    assert found.events == events.name
    acc = EventAccumulator(str(min_sweep.path), size_guidance={"tensors": 0})
    acc.Reload()
    assert acc.SummaryMetadata("solutions").plugin_data.plugin_name == "text"
    texts = acc.Tensors("solutions")
    assert [t.step for t in texts] == [0, 1]
    hardwired = tensor_util.make_ndarray(texts[1].tensor_proto).item().decode()
    assert f"{SEEDS} of {SEEDS} seeds solved, 1 form" in hardwired and "`Min(a, b)`" in hardwired
    random = tensor_util.make_ndarray(texts[0].tensor_proto).item().decode()
    assert f"{len(found.points[0].solved_seeds)} of {SEEDS} seeds solved" in random
    histograms = acc.Tensors("solutions/alpha")
    assert [h.step for h in histograms] == [0, 1]
    for h, point in zip(histograms, found.points, strict=True):
        counts = tensor_util.make_ndarray(h.tensor_proto)[:, 2]
        assert counts.sum() == sum(a is not None for a in point.alpha or [])

    # cached while sweep.pt is the same; made again (one event file still) when it changes
    mtime = (min_sweep.path / runs.SOLUTIONS).stat().st_mtime_ns
    assert stored_solutions.solutions(min_sweep)[0] == found
    assert (min_sweep.path / runs.SOLUTIONS).stat().st_mtime_ns == mtime
    pt = min_sweep.path / runs.SWEEP
    os.utime(pt, ns=(pt.stat().st_atime_ns, pt.stat().st_mtime_ns + 10**9))
    again, _ = stored_solutions.solutions(min_sweep)
    assert again.source["mtime_ns"] == pt.stat().st_mtime_ns and again.points == found.points
    assert len(list(min_sweep.path.glob("*.tiny-solutions"))) == 1


def shown_seeds(line: str) -> tuple[list[int], int]:
    """`seeds 0-2, 5, … 4 more` -> ([0, 1, 2, 5], 4)."""
    text = line.split("seeds ", 1)[1].strip()
    more = re.search(r"… (\d+) more", text)
    seeds: list[int] = []
    for item in text.split(", "):
        if item.startswith("…"):
            continue
        lo, _, hi = item.partition("-")
        seeds += range(int(lo), int(hi or lo) + 1)
    return seeds, int(more.group(1)) if more else 0


def test_seed_ranges_compress_and_cut_to_the_width() -> None:
    assert seed_ranges([12, 3, 4, 5, 9]) == "3-5, 9, 12"
    seeds = [0, 1, 2, 4, 6, 7, 8, 9, 11, 13, 20, 21]
    for width in (8, 12, 20, 30, 100):
        text = seed_ranges(seeds, width)
        shown, more = shown_seeds("seeds " + text)
        assert len(text) <= max(width, len(f"… {len(seeds)} more")), text
        assert shown == seeds[: len(shown)] and len(shown) + more == len(seeds), text


def test_solutions_view_fits_80_columns_with_every_group(min_sweep: runs.Run) -> None:
    found, _ = stored_solutions.solutions(min_sweep)
    out = text_of(solutions_view(found), 80)
    assert max(len(line.rstrip()) for line in out.splitlines()) <= 80, out
    heads = [out.index(f"{p.label}: {len(p.solved_seeds)} of {SEEDS} seeds") for p in found.points]
    for point, start, end in zip(found.points, heads, [*heads[1:], len(out)], strict=True):
        part = out[start:end]
        assert f"alpha of the {sum(a is not None for a in point.alpha or [])} solved" in part
        for g in point.groups:
            assert g.formula is not None and "".join(g.formula.split()) in "".join(part.split())
            (line,) = [ln for ln in part.splitlines() if f"seed {g.representative}," in ln]
            shown, more = shown_seeds(line)
            assert shown == g.seeds[: len(shown)] and len(shown) + more == g.count


def test_inspect_solutions_command_and_its_mistakes(
    min_sweep: runs.Run,
    make: Make,
    runs_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = min_sweep.path.parent
    proc = run_cli("inspect", min_sweep.id, "--solutions", runs_dir=root, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"{SEEDS} of {SEEDS} seeds solved, 1 form" in proc.stdout and "Min(a, b)" in proc.stdout

    plain = make("hardwire", "lt10")
    code, out, err = tiny(
        capsys, monkeypatch, "inspect", plain.name, "--solutions", "--runs-dir", str(runs_dir)
    )
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert "--solutions" in err and "not a sweep" in err
    code, _, err = tiny(capsys, monkeypatch, "inspect", plain.name, "--solutions", "--seed", "1")
    assert code == 2 and "--solutions and --seed 1" in err and err.count("\n") == 1

    nothing = make_sweep(runs_dir, ["task.n_samples=64", "train.epochs=1"], 3, [])
    code, out, err = tiny(
        capsys, monkeypatch, "inspect", nothing.id, "--solutions", "--runs-dir", str(runs_dir)
    )
    assert code == 0 and err == ""
    assert out.splitlines() == [f"sweep {nothing.id}: no solved seeds (of 3)"]
