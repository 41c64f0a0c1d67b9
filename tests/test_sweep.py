"""Sweeps: seed k of a batched sweep is `tiny train --seed k`; outcomes on constructed nets;
the command, its storage and its errors through the real CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util

from tests.conftest import CLI, REPO, assert_one_line_error
from tiny_cli import config
from tiny_cli.app import sweep
from tiny_cli.errors import TinyError
from tiny_cli.tasks import integers, pairs, threshold
from tiny_cli.train import engine, inits, outcomes


def load(name: str, *sets: str) -> config.ExperimentConfig:
    return config.load(name, [config.parse_override(s) for s in sets])[0]


def alone(cfg: config.ExperimentConfig, seed: int) -> engine.Result:
    """What `tiny train --seed k` trains: the engine with that one seed."""
    x, y = cfg.task.data()
    return engine.fit(cfg.model_copy(update={"seed": seed}), [seed], x, y)


def assert_same_seed(batched: sweep.PointResult, i: int, single: engine.Result) -> None:
    assert int(batched.epochs[i]) == int(single.epochs[0])
    for key, value in single.params.items():
        assert torch.equal(batched.params[key][i], value[0]), key


# (config, overrides, seeds): every task, full batch and mini-batches, each optimizer.
EQUIVALENCE = [
    ("lt10", ["train.epochs=300"], [0, 3, 11]),
    ("min", ["train.epochs=15"], [0, 1, 5]),  # shipped: Adam, mini-batches of 32
    ("min", ["train.epochs=40", "train.batch_size=null", "train.optimizer=sgd",
             "train.lr=1e-4", "train.momentum=0.9", "train.weight_decay=0.01"], [2, 4]),
    ("min", ["train.epochs=10", "train.optimizer=sgd", "train.lr=5"], [0, 1]),  # diverge
    ("is_even", ["train.epochs=500"], [0, 1, 2, 9]),
    ("is_even", ["train.epochs=100", "train.batch_size=5", "train.optimizer=adamw",
                 "train.weight_decay=0.1"], [0, 6, 7]),
    ("is_even", ["train.epochs=100", "init.mode=hardwired+noise", "init.noise=0.05",
                 "task.bits=3"], [1, 2]),
    ("mod", ["train.epochs=8", "train.batch_size=7"], [0, 3, 4]),
    ("expr", ["train.epochs=30"], [1, 2]),
    ("parity", ["train.epochs=50", "train.optimizer=sgd", "train.lr=0.1"], [0, 5]),
    ("min", ["train.epochs=5", "init.mode=xavier_uniform"], [0, 3]),  # torch.nn.init's
    ("mod", ["train.epochs=8", "init.mode=kaiming_normal"], [1, 2]),
    ("expr", ["train.epochs=10", "init.mode=normal", "init.std=0.5"], [0, 4]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "sets", "seeds"), EQUIVALENCE)
def test_seed_k_of_a_sweep_is_tiny_train_seed_k_bit_for_bit(
    name: str, sets: list[str], seeds: list[int]
) -> None:
    cfg = load(name, *sets)
    result = sweep.run_point(config.GridPoint({}, cfg), seeds, chunk=2)  # odd chunks too
    for i, seed in enumerate(seeds):
        assert_same_seed(result, i, alone(cfg, seed))


def test_the_chaotic_cases_do_not_depend_on_the_other_seeds() -> None:
    """The cases where batched BLAS and fused optimizer kernels used to disagree: is_even
    seed 11 (shipped config), seed 41 at lr 0.1 alone and among others, min long after it
    converged (where Adam rescales rounding noise to full steps)."""
    cfg = load("is_even", "train.epochs=600")
    assert_same_seed(sweep.run_point(config.GridPoint({}, cfg), range(8, 14)), 3, alone(cfg, 11))
    fast = load("is_even", "train.lr=0.1", "train.epochs=600")
    single = alone(fast, 41)
    for seeds, chunk in ((range(40, 43), None), (range(25, 50), 7)):
        batched = sweep.run_point(config.GridPoint({}, fast), seeds, chunk=chunk)
        assert_same_seed(batched, list(seeds).index(41), single)
    converged = load("min", "train.epochs=200")
    assert_same_seed(
        sweep.run_point(config.GridPoint({}, converged), [2, 3]), 1, alone(converged, 3)
    )


@given(start=st.integers(0, 40), count=st.integers(1, 6), chunk=st.integers(1, 4))
@settings(max_examples=6, deadline=None, derandomize=True)
def test_property_any_seed_range_and_chunk_give_each_seed_its_own_trajectory(
    start: int, count: int, chunk: int
) -> None:
    cfg = load("is_even", "train.epochs=60", "train.batch_size=5")
    seeds = range(start, start + count)
    batched = sweep.run_point(config.GridPoint({}, cfg), seeds, chunk=chunk)
    k = start + count // 2
    assert_same_seed(batched, k - start, alone(cfg, k))


def test_engine_updates_are_torch_optims(tmp_path: Path) -> None:
    """The hand-written updates follow torch.optim's SGD, Adam and AdamW: the same
    trajectory as a plain nn.Module loop with them, up to float rounding."""
    cases = [
        (torch.optim.SGD, ["train.optimizer=sgd", "train.lr=1e-4", "train.momentum=0.9"]),
        (torch.optim.Adam, ["train.optimizer=adam", "train.lr=0.001"]),
        (torch.optim.AdamW, ["train.optimizer=adamw", "train.lr=0.001"]),
    ]
    for cls, sets in cases:
        common = ["train.epochs=30", "train.batch_size=null", "train.weight_decay=0.01"]
        cfg = load("min", *common, *sets)
        extra = {"momentum": 0.9} if cls is torch.optim.SGD else {}
        x, y = cfg.task.data()
        model = inits.build(cfg)
        opt = cls(model.parameters(), lr=cfg.train.lr, weight_decay=0.01, foreach=False, **extra)  # type: ignore[operator]
        for _ in range(30):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        ours = alone(cfg, 0)
        for key, value in model.state_dict().items():
            torch.testing.assert_close(ours.params[key][0], value, atol=1e-5, rtol=1e-5)


def test_a_diverging_seed_does_not_touch_the_others() -> None:
    cfg = load("min", "train.epochs=5")
    x, y = cfg.task.data()
    params = engine.initial_params(cfg, [0, 1])
    start = {k: v.clone() for k, v in params.items()}
    params["output_layer.weight"][1] = 1e30  # seed 1: the loss overflows at once
    fitted = engine.fit(cfg, [0, 1], x, y, params=params)
    assert fitted.diverged.tolist() == [False, True]
    assert fitted.epochs.tolist() == [5, 0]
    single = alone(cfg, 0)
    for key in single.params:
        assert torch.equal(fitted.params[key][0], single.params[key][0])
        if key != "output_layer.weight":  # seed 1 keeps its last finite parameters
            assert torch.equal(fitted.params[key][1], start[key][1])


# --- the outcome rule on constructed nets ---------------------------------------------


def outcome_of(name: str, state: dict[str, torch.Tensor], *sets: str) -> str:
    cfg = load(name, *sets)
    task = cfg.task
    x, y = task.data()
    params = {k: v.unsqueeze(0) for k, v in state.items()}
    ev = outcomes.evaluate(cfg, params, x, y)
    (code,) = outcomes.classify(task.kind, ev.pred, y, ev.hidden, right=ev.right).tolist()
    return outcomes.OUTCOMES[code]


def zeros_like(name: str) -> dict[str, torch.Tensor]:
    return {k: torch.zeros_like(v) for k, v in inits.build(load(name)).state_dict().items()}


def test_hardwired_nets_are_solved() -> None:
    assert outcome_of("lt10", threshold.step_neuron(10.0, 1.0)) == "solved"  # F(10) = 0.5 is "no"
    assert outcome_of("min", pairs.min_equation1()) == "solved"
    assert outcome_of("is_even", integers.is_even_chain(4)) == "solved"


def test_a_constant_at_the_targets_mean_is_stuck_at_mean() -> None:
    state = zeros_like("is_even")
    state["10.bias"] = torch.tensor([0.5])  # ReLU(0.5): the mean of x mod 2
    assert outcome_of("is_even", state) == "stuck at mean"
    cfg = load("min")
    _, y = cfg.task.data()
    state = zeros_like("min")
    state["output_layer.bias"] = y.mean().reshape(1)
    assert outcome_of("min", state) == "stuck at mean"


def test_a_constant_elsewhere_or_a_silent_layer_is_dead() -> None:
    state = inits.build(load("is_even")).state_dict()
    state["4.bias"] = torch.tensor([-100.0, -100.0])  # layer 3 never fires
    assert outcome_of("is_even", state) == "dead"
    assert outcome_of("lt10", {"0.weight": torch.zeros(1, 1), "0.bias": torch.ones(1)}) == "dead"
    state = pairs.min_equation1()
    state["fc1.bias"] = state["fc2.bias"] = torch.tensor([-1000.0])  # both branches silent
    assert outcome_of("min", state) == "dead"  # the read-out still varies: the layer rule


def test_anything_else_is_partial_and_non_finite_is_diverged() -> None:
    state = pairs.min_equation1()
    state["output_layer.weight"] = torch.tensor([[0.5, 0.5, 0.0, 0.0]])  # (a + b) / 2
    assert outcome_of("min", state) == "partial"
    state = integers.is_even_chain(4)
    state["6.bias"] = torch.tensor([1.0, -0.5])  # right on some integers only
    assert outcome_of("is_even", state) == "partial"
    pred = torch.tensor([[0.0, 1.0], [float("nan"), 1.0], [0.0, 1.0], [0.0, -float("inf")]])
    codes = outcomes.classify("classification", pred, torch.tensor([0.0, 1.0]),
                           diverged=torch.tensor([False, False, True, False]))  # fmt: skip
    assert [outcomes.OUTCOMES[c] for c in codes.tolist()] == ["solved"] + ["diverged"] * 3


def test_regression_tolerance_is_the_stated_one() -> None:
    y = torch.arange(10.0)
    pred = torch.stack([y + 0.099, y + 0.101])  # MSE 0.0098 and 0.0102
    codes = outcomes.classify("regression", pred, y).tolist()
    assert [outcomes.OUTCOMES[c] for c in codes] == ["solved", "partial"]


# --- parsing --------------------------------------------------------------------------


def test_seeds_and_grid_parse() -> None:
    assert config.parse_seeds("5") == range(5)
    assert config.parse_seeds("10-12") == range(10, 13)
    assert config.parse_grid(["train.lr=0.01,0.1", "init.mode=random,hardwired"]) == [
        ("train.lr", [0.01, 0.1]),
        ("init.mode", ["random", "hardwired"]),
    ]
    for bad in ("0", "-3", "5-2", "x", "1-", "0-1000000"):
        with pytest.raises(TinyError, match="--seeds"):
            config.parse_seeds(bad)


@pytest.mark.parametrize(
    ("grid", "needles"),
    [
        (["train.lr=0.1,-1"], ["--grid train.lr=-1", "train.lr", "greater than 0"]),
        (["train.lrr=0.1"], ["--grid train.lrr=0.1", "did you mean 'lr'"]),
        (["init.mode=random,hardwire"], ["--grid init.mode=hardwire", "did you mean"]),
        (["train.batch_size=8,100"], ["--grid train.batch_size=100", "larger than"]),
        (["seed=1,2"], ["--grid seed=1,2", "--seeds"]),
        (["train.lr"], ["--grid", "key.path=v1,v2"]),
        (["train.lr=0.1,0.1"], ["--grid", "repeated"]),
        (["train.lr=0.1", "train.lr=0.2"], ["--grid", "given twice"]),
    ],
)
def test_every_grid_point_is_validated_before_anything_runs(
    grid: list[str], needles: list[str]
) -> None:
    with pytest.raises(TinyError) as info:
        config.grid_points("is_even", [], config.parse_grid(grid))
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_pick_seeds_takes_best_worst_and_one_per_outcome() -> None:
    loss = torch.tensor([0.3, 0.0, 0.5, 0.25, 0.2])
    outcome = torch.tensor([3, 0, 2, 1, 3], dtype=torch.int8)
    seeds = [10, 11, 12, 13, 14]
    assert outcomes.pick_seeds(loss, outcome, seeds, 2) == [(11, "best"), (12, "worst")]
    picks = outcomes.pick_seeds(loss, outcome, seeds, 5)
    assert [s for s, _ in picks] == [11, 12, 13, 14, 10]
    assert dict(picks)[13] == "stuck at mean" and dict(picks)[14] == "partial"


def test_summary_and_its_table() -> None:
    from rich.console import Console

    from tiny_cli.show import render

    cfg = load("is_even", "train.epochs=10")
    result = sweep.run_point(config.GridPoint({"train.lr": 0.01}, cfg), range(20))
    summary = result.summary()
    assert sum(summary["counts"].values()) == 20
    assert summary["fractions"]["dead"] == summary["counts"]["dead"] / 20
    assert summary["loss"]["q0"] <= summary["loss"]["q50"] <= summary["loss"]["q100"]
    assert summary["seed_epochs_per_second"] > 0
    console = Console(width=80, color_system=None, record=True)
    console.print(render.sweep_table([summary]))
    text = console.export_text()
    assert "train.lr=0.01" in text and "20 seeds" in text
    for name in ("solved", "dead", "partial"):
        assert name in text
    assert f"{summary['counts']['dead']}" in text
    assert max(len(line) for line in text.splitlines()) <= 80


# --- the command ----------------------------------------------------------------------


def only_sweep(runs_dir: Path) -> Path:
    (path,) = [p for p in runs_dir.iterdir() if "sweep" in p.name]
    return path


def test_sweep_with_grid_and_keep(cli: CLI, runs_dir: Path) -> None:
    proc = cli(
        "sweep", "is_even", "--seeds", "3-8", "--epochs", "40",
        "--grid", "train.lr=0.01,0.1", "--keep", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    path = only_sweep(runs_dir)
    assert path.name in proc.stdout and "stuck" in proc.stdout
    meta = json.loads((path / "run.json").read_text())
    assert meta["kind"] == "sweep" and meta["status"] == "completed"
    assert meta["seeds"] == [3, 8] and meta["grid"] == {"train.lr": [0.01, 0.1]}
    summary = json.loads((path / "summary.json").read_text())
    assert [p["grid"] for p in summary] == [{"train.lr": 0.01}, {"train.lr": 0.1}]
    assert all(sum(p["counts"].values()) == 6 for p in summary)
    assert config.load(str(path / "config.yaml"))[0].train.epochs == 40
    data = torch.load(path / "sweep.pt", weights_only=True)
    assert data["seeds"].tolist() == list(range(3, 9))
    assert data["points"][1]["params"]["0.weight"].shape == (6, 2, 1)

    # kept seeds are ordinary runs whose weights are the sweep's
    assert len(meta["kept"]) == 2
    for kept in meta["kept"]:
        run = runs_dir / kept["run"]
        stored = json.loads((run / "run.json").read_text())
        assert stored["kind"] == "train" and stored["seed"] == kept["seed"]
        assert list(run.glob("events.out.tfevents.*"))
        state = torch.load(run / "model.pt", weights_only=True)
        point = data["points"][kept["point"]]
        index = kept["seed"] - 3
        for key, value in state.items():  # bit for bit: one engine
            assert torch.equal(point["params"][key][index], value), key

    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    solved = acc.Scalars("outcomes/solved")
    assert [e.step for e in solved] == [0, 1]
    assert [e.value for e in solved] == [p["counts"]["solved"] for p in summary]
    histo = acc.Tensors("final_loss")  # TensorBoard's own histogram format (summary_v2)
    counts = tensor_util.make_ndarray(histo[0].tensor_proto)[:, 2]
    assert [h.step for h in histo] == [0, 1] and counts.sum() == 6

    listed = {r["id"]: r for r in json.loads(cli("runs", "--json").stdout)}
    assert listed[path.name]["meta"]["kind"] == "sweep"
    assert listed[path.name]["metrics"]["seeds"] == 6
    table = cli("runs")
    assert table.returncode == 0 and "sweep" in table.stdout and "solved" in table.stdout
    stuck = acc.Scalars("outcomes/stuck_at_mean")
    assert [e.value for e in stuck] == [p["counts"]["stuck at mean"] for p in summary]

    shown = cli("inspect", path.name[:-2])
    assert shown.returncode == 0, shown.stderr
    assert "train.lr=0.1" in shown.stdout and "Outcomes" in shown.stdout
    one = cli("inspect", path.name, "--seed", "5", "--json")
    assert one.returncode == 0, one.stderr
    doc = json.loads(one.stdout)
    assert doc["seed"] == 5
    assert (
        doc["points"][0]["parameters"]["10.bias"]
        == data["points"][0]["params"]["10.bias"][2].tolist()
    )
    text = cli("inspect", path.name, "--seed", "5", "--precision", "4")
    assert text.returncode == 0 and "seed 5, train.lr=0.01" in text.stdout
    assert "10.weight" in text.stdout
    assert_one_line_error(cli("inspect", path.name, "--seed", "99"), "--seed 99", "not in sweep")
    kept_run = meta["kept"][0]["run"]
    assert_one_line_error(cli("inspect", kept_run, "--seed", "1"), "--seed 1", "not a sweep")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--seeds", "9-2"], ["--seeds 9-2", "empty"]),
        (["--seeds", "3", "--grid", "train.lr=0.1,-1"], ["--grid train.lr=-1", "train.lr"]),
        (["--seeds", "3", "--grid", "seed=1,2"], ["--grid seed=1,2", "--seeds"]),
        (["--seeds", "3", "--keep", "-1"], ["--keep"]),
        ([], ["--seeds"]),
    ],
)
def test_bad_sweep_input_is_one_line_exit_2_and_stores_nothing(
    cli: CLI, runs_dir: Path, args: list[str], needles: list[str]
) -> None:
    assert_one_line_error(cli("sweep", "is_even", *args), *needles)
    assert not runs_dir.exists() or list(runs_dir.iterdir()) == []


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 300),
    chunk=st.integers(1, 64),
    slots=st.integers(1, 5),
    start=st.integers(0, 9),
)
def test_a_plan_partitions_the_seeds_into_a_multiple_of_the_workers(
    n: int, chunk: int, slots: int, start: int
) -> None:
    """Every seed once, in order, chunks of at most `chunk` seeds; on `slots` workers their
    count is a multiple of them (or one chunk per seed, when fewer) and their sizes differ
    by at most one seed."""
    cfg, _ = config.load("is_even", [])
    seeds = range(start, start + n)
    work = sweep.plan([config.GridPoint({}, cfg)], seeds, chunk, slots)
    assert [s for c in work for s in c.seeds] == list(seeds)
    sizes = [len(c.seeds) for c in work]
    assert max(sizes) <= chunk
    if slots > 1 and len(work) > 1:
        assert len(work) % slots == 0 or len(work) == n
        assert max(sizes) - min(sizes) <= 1
    assert work == sweep.plan([config.GridPoint({}, cfg)], seeds, chunk, slots)  # resumable


def test_training_keeps_its_freed_memory_under_dasks_malloc_settings(tmp_path: Path) -> None:
    """Dask's workers run with MALLOC_TRIM_THRESHOLD_=65536: glibc then hands freed memory
    back at once, and a step's few MB of temporaries fault back in page by page (2.3x
    slower). The engine asks glibc to keep it: a second chunk trains with few page faults."""
    import subprocess
    import sys

    code = (
        "import resource\n"
        "from tiny_cli import config\nfrom tiny_cli.app import sweep\n"
        "cfg, _ = config.load('is_even', [('train.epochs', 30, 't')])\n"
        "sweep.train_chunk(cfg, range(2000))\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "sweep.train_chunk(cfg, range(2000))\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536", "PYTHONPATH": str(REPO)}
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's mallopt: Linux only")
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    faults = int(proc.stdout.split()[-1])
    assert faults < 20_000, faults  # without it: about 100,000 (one per 4 KiB page touched)


def test_a_sweep_without_threads_runs_the_kernel_and_wide_nets_on_every_cpu_else_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    is_even, _ = config.load("is_even")
    modadd, _ = config.load("modadd")  # wide layers only: the torch engine, seeds first
    spiral, _ = config.load("spiral")  # small layers beside wide ones: seeds last
    cpus = len(os.sched_getaffinity(0))
    assert sweep.default_threads(is_even) == cpus and sweep.default_threads(modadd) == cpus
    assert sweep.default_threads(spiral) == 1 and sweep.default_threads(modadd, "cuda") == 1
    monkeypatch.setenv("TINY_ENGINE", "torch")
    assert sweep.default_threads(is_even) == 1
