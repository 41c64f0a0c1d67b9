"""Many-class nets (mod3: a read-out of three units, softmax cross-entropy, argmax), one-hot
integer inputs (`task.encoding: one_hot`) and the quadratic activation, through the real
engine, the sweep, the read-out and `tiny inspect`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import Make, make_sweep, tiny_here
from tiny_cli import config
from tiny_cli.errors import TinyError
from tiny_cli.store import runs
from tiny_cli.tasks.integers import Mod3
from tiny_cli.train import engine

QUADRATIC = "model.layers=[{width: 2, activation: quadratic}, {width: 1, activation: identity}]"


def load(name: str, *sets: str) -> config.ExperimentConfig:
    return config.load(name, [config.parse_override(s) for s in sets])[0]


def test_mod3_trains_with_softmax_cross_entropy_and_reads_back(
    make: Make, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped mod3 (one-hot x, 8 ReLUs, 3 identity outputs, ce): solved, every integer
    right by argmax; `tiny inspect --json` reads the run back with its units named."""
    path = make("train", "mod3", sets=["log.images_every=0"])  # (pictures: not the subject)
    code, out, err = tiny_here(
        capsys, monkeypatch, "inspect", path.name, "--runs-dir", str(path.parent), "--json"
    )
    assert code == 0, err
    shown = json.loads(out)
    assert shown["config"]["train"]["loss"] == "ce"
    assert shown["metrics"]["accuracy"] == 1.0
    assert shown["metrics"]["correct_interval"] == [0, 15]
    assert shown["readout"]["outcome"] == "solved"
    assert "x=14" in shown["readout"]["formula"]  # input units by input and value
    metrics = json.loads((path / runs.METRICS).read_text())
    assert metrics["loss"] < 0.05
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(path), size_guidance={"scalars": 0})
    events.Reload()
    accuracy = events.Scalars("metrics/accuracy")  # by argmax, every epoch
    assert len(accuracy) == 301 and accuracy[0].value < 1 and accuracy[-1].value == 1.0


def test_one_hot_inputs_have_one_unit_per_value_named_by_input_and_value() -> None:
    layers = "model.layers=[{width: 4, activation: relu}, {width: 1, activation: identity}]"
    cfg = load("min", "task.encoding=one_hot", "task.high=5", "task.low=0", "model.arch=null",
               layers)  # fmt: skip
    task = cfg.task
    x, y = task.data()
    assert x.shape == (task.size(), 10) and cfg.arch.inputs == 10
    assert task.unit_names() == tuple(f"{n}={v}" for n in "ab" for v in range(5))
    assert torch.equal(x.sum(dim=1), torch.full((len(x),), 2.0))  # one unit per input
    raw = task.decode(x)
    assert torch.equal(task.encode(raw), x) and torch.equal(task.truth(raw), y)
    model = cfg.arch.module()
    f = task.net_fn(model)  # the task's inputs or the net's own: the same outputs
    assert torch.equal(f(raw), f(x))


def test_one_hot_on_inputs_that_are_not_integers_names_task_encoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Mod3, "integer_ranges", lambda self: None)
    with pytest.raises(TinyError, match=r"task\.encoding.*not integers"):
        load("mod3")


def test_a_quadratic_layer_on_one_hot_bits_trains_and_reads_as_squares(
    make: Make, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make("train", "xor", epochs=20, sets=["task.encoding=one_hot", QUADRATIC])
    code, out, _ = tiny_here(
        capsys,
        monkeypatch,
        "export",
        path.name,
        "--runs-dir",
        str(path.parent),
        "--format",
        "formula",
    )
    assert code == 0 and "**2" in out and "a=1" in out


def test_a_sweep_of_three_outputs_is_tiny_train_seed_by_seed_bit_for_bit(
    runs_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """C outputs through the sweep: each seed's weights are `tiny train --seed k`'s, its
    outcome is judged by argmax, and inspect shows the sweep."""
    from tiny_cli.app import sweep

    cfg = load("mod3", "train.epochs=40", "train.batch_size=5")
    seeds = [0, 3, 4]
    result = sweep.run_point(config.GridPoint({}, cfg), seeds, chunk=2)
    x, y = cfg.task.data()
    for i, seed in enumerate(seeds):
        alone = engine.fit(cfg.model_copy(update={"seed": seed}), [seed], x, y)
        for key, value in alone.params.items():
            assert torch.equal(result.params[key][i], value[0]), key
    path = make_sweep(runs_dir, "mod3", seeds=4, epochs=300)
    code, out, _ = tiny_here(
        capsys, monkeypatch, "inspect", path.name, "--runs-dir", str(path.parent), "--json"
    )
    assert code == 0 and '"solved"' in out
