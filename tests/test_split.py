"""Held-out data and label noise (a config's `data:` section): the split is the config's
alone, the noise lands on the training targets only, and a run, its sweep seed, its read-out,
its event file and its JSON all tell training and test apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import Make, tiny_here
from tiny_cli import config
from tiny_cli.app import sweep
from tiny_cli.train import data as datasets


def load(name: str, *sets: str) -> config.ExperimentConfig:
    return config.load(name, [config.parse_override(s) for s in sets])[0]


def test_the_split_partitions_the_domain_and_depends_on_split_seed_alone() -> None:
    x, y = load("is_even", "task.bits=6").task.data()
    cfg = load("is_even", "task.bits=6", "data.train_fraction=0.25", "seed=1")
    data = datasets.prepare(cfg)
    assert (len(data.x), len(data.x_test)) == (16, 48)
    rows = data.test_rows
    assert rows is not None
    assert torch.equal(data.x, x[~rows]) and torch.equal(data.x_test, x[rows])
    assert torch.equal(data.y_test, y[rows].reshape(-1, 1))
    # the run's seed does not move it; the split seed does
    again = datasets.prepare(load("is_even", "task.bits=6", "data.train_fraction=0.25", "seed=7"))
    assert torch.equal(again.x, data.x)
    other = datasets.prepare(
        load("is_even", "task.bits=6", "data.train_fraction=0.25", "data.split_seed=1")
    )
    assert not torch.equal(other.x, data.x)
    # at least one input trains, whatever the fraction
    assert len(datasets.prepare(load("xor", "data.train_fraction=0.01")).x) == 1


def test_label_noise_flips_that_fraction_of_training_labels_and_leaves_the_truth_clean() -> None:
    cfg = load("is_even", "task.bits=6", "data.train_fraction=0.5", "data.noise=0.25")
    data = datasets.prepare(cfg)
    flipped = (data.y != data.truth).flatten()
    assert int(flipped.sum()) == 8  # round(0.25 x 32)
    assert torch.equal(data.y[flipped], 1 - data.truth[flipped])
    clean = datasets.prepare(load("is_even", "task.bits=6", "data.train_fraction=0.5"))
    assert torch.equal(data.truth, clean.y) and torch.equal(data.y_test, clean.y_test)
    regression = datasets.prepare(load("min", "data.noise=0.1", "data.noise_seed=3"))
    spread = float((regression.y - regression.truth).std())
    assert 0.08 < spread < 0.12  # N(0, 0.1) on each target
    assert not regression.has_test


@pytest.mark.parametrize(
    ("name", "sets"),
    [
        ("is_even", ["train.epochs=60", "train.batch_size=8", "task.bits=5"]),
        ("min", ["train.epochs=12"]),  # mini-batches of 32, Adam
    ],
)
def test_seed_k_of_a_sweep_is_tiny_train_seed_k_with_a_split_and_noise(
    make: Make, name: str, sets: list[str]
) -> None:
    data = ["data.train_fraction=0.6", "data.noise=0.1", "data.split_seed=2"]
    cfg = load(name, *sets, *data)
    batched = sweep.run_point(config.GridPoint({}, cfg), [2, 3], chunk=2)
    run = make("train", name, sets=[*sets, *data, "seed=3"])
    state = torch.load(run / "model.pt", weights_only=True)
    for i, (key, value) in enumerate(state.items()):
        assert torch.equal(batched.params[key][1], value), (i, key)
    assert batched.test_loss is not None and len(batched.test_loss) == 2


def test_a_run_with_a_split_reports_training_and_test_apart(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TINY_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("COLUMNS", "80")
    sets = ["--set", "data.train_fraction=0.5", "--set", "data.noise=0.125"]
    code, out, err = tiny_here(capsys, monkeypatch, "train", "xor", "--epochs", "300", *sets)
    assert code in (0, None), err
    assert "test_accuracy" in out and "generalisation: on the 2 training inputs" in out
    run = next((tmp_path / "runs").iterdir())
    meta = json.loads((run / "run.json").read_text())
    assert meta["split"]["train"] == 2 and meta["split"]["test"] == 2
    assert meta["split"]["noisy_targets"] == 0  # round(0.125 x 2)

    code, out, _ = tiny_here(capsys, monkeypatch, "inspect", run.name, "--json")
    shown = json.loads(out)
    assert {"loss", "accuracy", "test_loss", "test_accuracy"} <= set(shown["metrics"])
    split = shown["readout"]["split"]
    assert split["train"]["inputs"] == split["test"]["inputs"] == 2

    # TensorBoard: the test curves at every logged epoch, each on a chart with its twin
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    steps = [e.step for e in acc.Scalars("metrics/loss")]
    assert [e.step for e in acc.Scalars("metrics/test_loss")] == steps
    assert [e.step for e in acc.Scalars("metrics/test_accuracy")] == steps
    charts = _layout_charts(acc)
    assert charts["loss: training and test"] and charts["accuracy: training and test"]
    final = shown["metrics"]["test_accuracy"]
    assert acc.Scalars("metrics/test_accuracy")[-1].value == pytest.approx(final)

    # the report: the test metrics in its table, the generalisation line in its read-out
    code, out, err = tiny_here(capsys, monkeypatch, "report", run.name)
    assert code in (0, None), err
    page = (run / "report.html").read_text()
    assert "test_accuracy" in page and "test_loss" in page
    assert "generalisation: on the 2 training inputs" in page


def _layout_charts(acc: EventAccumulator) -> dict[str, list[str]]:
    from tensorboard.plugins.custom_scalar import layout_pb2

    (tensor,) = acc.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout()
    layout.ParseFromString(tensor.tensor_proto.string_val[0])
    return {
        chart.title: list(chart.multiline.tag) for cat in layout.category for chart in cat.chart
    }


def test_a_run_with_a_split_resumes_on_the_same_split_as_if_it_never_stopped(
    tmp_path: Path,
) -> None:
    from tests.test_resume import stop_at
    from tiny_cli.app import experiment
    from tiny_cli.store import runs

    sets = ["train.epochs=60", "train.batch_size=4", "task.bits=4", "data.train_fraction=0.5",
            "data.noise=0.25"]  # fmt: skip
    cfg = load("is_even", *sets)
    out = experiment.run_experiment(cfg, runs_root=tmp_path / "a", progress=stop_at(30))  # type: ignore[arg-type]
    assert out.result.epochs == 30
    held = torch.load(out.run.path / runs.CHECKPOINT_STATE, weights_only=True)
    assert (
        held["split"] == json.loads((out.run.path / "run.json").read_text())["split"]["test_rows"]
    )
    experiment.run_experiment(cfg, runs_root=out.run.path.parent, resume=out.run)
    whole = experiment.run_experiment(cfg, runs_root=tmp_path / "b")
    resumed = torch.load(out.run.path / "model.pt", weights_only=True)
    straight = torch.load(whole.run.path / "model.pt", weights_only=True)
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)


def test_a_run_with_noise_and_no_held_out_inputs_inspects_and_exports(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A `data:` section that keeps every input (train_fraction 1, noise only): no test
    side, and the read-out of the stored run is the training side's (it was a crash)."""
    monkeypatch.setenv("TINY_RUNS_DIR", str(tmp_path / "runs"))
    code, _, err = tiny_here(
        capsys, monkeypatch, "train", "xor", "--epochs", "10", "--set", "data.noise=0.25"
    )
    assert code in (0, None), err
    code, out, err = tiny_here(capsys, monkeypatch, "inspect", "latest", "--json")
    assert code in (0, None), err
    shown = json.loads(out)
    assert "test_loss" not in shown["metrics"] and "split" not in shown["readout"]
    code, out, err = tiny_here(capsys, monkeypatch, "export", "latest")
    assert code in (0, None), err
    assert json.loads(out)["inputs"] == ["a", "b"]
