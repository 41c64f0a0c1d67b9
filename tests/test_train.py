"""Training: deterministic, and the shipped configs reproduce the article's findings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import CLI
from tiny_cli import config
from tiny_cli.app import experiment
from tiny_cli.train import engine, outcomes


def train(name: str, tmp_path: Path, *sets: str) -> experiment.Outcome:
    cfg, path = config.load(name, [config.parse_override(s) for s in sets])
    return experiment.run_experiment(cfg, runs_root=tmp_path / "runs", source=str(path))


def test_same_config_and_seed_give_bit_identical_weights(cli: CLI, runs_dir: Path) -> None:
    """A run, then `tiny train --from` it (the same config and seed, from its stored config, in
    another process): bit-identical weights and the same metrics; another seed differs."""
    sets = ["--epochs", "4", "--seed", "11", "--set", "init.mode=hardwired+noise"]
    assert cli("train", "min", *sets).returncode == 0
    (first,) = runs_dir.iterdir()
    again = cli("train", "--from", first.name[:-2])
    assert again.returncode == 0, again.stderr
    second = next(p for p in runs_dir.iterdir() if p != first)
    a, b = [torch.load(p / "model.pt", weights_only=True) for p in (first, second)]
    assert all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = [json.loads((p / "metrics.json").read_text()) for p in (first, second)]
    assert ma == mb
    assert json.loads((second / "run.json").read_text())["from_run"] == first.name
    cfg, _ = config.load(str(first / "config.yaml"))
    assert (cfg.seed, cfg.train.epochs, cfg.init.mode) == (11, 4, "hardwired+noise")
    x, y = cfg.task.data()
    other = engine.fit(cfg.model_copy(update={"seed": 12}), [12], x, y).params  # another seed
    assert not all(torch.equal(a[k], other[k][0]) for k in a)


def test_lt10_threshold_settles_between_9_and_10_while_the_weight_grows(tmp_path: Path) -> None:
    steep = []
    for epochs in (500, 1000, 2000):
        out = train("lt10", tmp_path, f"train.epochs={epochs}")
        assert 9 < out.metrics["threshold"] < 10
        assert out.metrics["accuracy"] == 1.0
        steep.append(out.metrics["steepness"])
    assert steep == sorted(steep) and steep[-1] > 1.5 * steep[0]


def seeds_0_to_2(name: str) -> outcomes.Evaluation:
    """What `tiny train NAME --seed k` ends with for k = 0, 1, 2: one engine, so the three
    train at once, bit-identical to three runs (tests/test_sweep.py)."""
    cfg, _ = config.load(name)
    x, y = cfg.task.data()
    fitted = engine.fit(cfg, [0, 1, 2], x, y)
    return outcomes.evaluate(cfg, fitted.params, x, y)


def test_min_converges_with_the_shipped_settings() -> None:
    cfg, _ = config.load("min")
    _, y = cfg.task.data()
    worst = (seeds_0_to_2("min").pred - y.reshape(1, -1)).abs().max(dim=1).values
    assert int((worst < 0.5).sum()) >= 2


def test_is_even_from_random_init_does_not_find_the_solution() -> None:
    accuracy = seeds_0_to_2("is_even").accuracy
    assert accuracy is not None and bool((accuracy < 1.0).all())


def test_hardwired_init_is_a_fixed_point_of_training_for_is_even(tmp_path: Path) -> None:
    out = train("is_even", tmp_path, "init.mode=hardwired", "train.epochs=50")
    assert out.metrics["accuracy"] == 1.0 and out.metrics["loss"] == 0.0


def test_diverging_training_stops_and_keeps_finite_weights(tmp_path: Path) -> None:
    out = train("min", tmp_path, "train.optimizer=sgd", "train.lr=5", "train.epochs=50")
    assert out.result.status == "diverged"
    meta = json.loads((out.run.path / "run.json").read_text())
    assert meta["status"] == "failed" and "epoch" in meta["reason"]
    state = torch.load(out.run.path / "model.pt", weights_only=True)
    assert all(bool(v.isfinite().all()) for v in state.values())


def test_a_training_state_that_cannot_resume_says_why() -> None:
    """`engine.state_problem` names what is wrong with a checkpoint before anything is
    touched: another engine, missing or misshapen tensors, other seeds, a hostile type."""
    cfg, _ = config.load("is_even", [("train.epochs", 3, "t"), ("train.batch_size", 4, "t")])
    x, y = cfg.task.data()
    states: list[engine.State] = []
    engine.fit(cfg, [0], x, y, checkpoint=lambda e, snap, force: states.append(snap()))
    good = states[-1]
    assert engine.state_problem(cfg, [0], good) is None
    broken = {
        "another version": {**good, "engine": 1},
        "flat": {k: v for k, v in good.items() if k != "flat"},
        "m is missing": {**good, "m": good["m"][:-1]},
        "other seeds": {**good, "seeds": [1, 1]},
        "epoch": {**good, "epoch": 10**9},
        "gens": {**good, "gens": ["x"]},
        "not a training state": [1, 2],
    }
    for needle, state in broken.items():
        problem = engine.state_problem(cfg, [0], state)
        assert problem is not None and needle in problem, (needle, problem)
        with pytest.raises(ValueError, match="unusable"):
            engine.fit(cfg, [0], x, y, resume=state)  # type: ignore[arg-type]
