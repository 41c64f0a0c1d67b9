"""Event files read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as custom_scalars_metadata
from tensorboard.util import tensor_util

from tests.conftest import CLI, Make
from tiny_cli import config
from tiny_cli.app import experiment
from tiny_cli.errors import RunFailed
from tiny_cli.spec import models
from tiny_cli.store import events, hparams, tracking
from tiny_cli.train import inits


def accumulate(run: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    return acc


def param_tag(key: str, index: tuple[int, ...]) -> str:
    module, _, name = key.rpartition(".")
    return f"{module}/{name}[{','.join(map(str, index))}]"


def test_lt10_threshold_and_steepness_are_logged(cli: CLI, runs_dir: Path, make: Make) -> None:
    make("train", "lt10", epochs=300)
    (run,) = runs_dir.iterdir()
    acc = accumulate(run)
    metrics = json.loads((run / "metrics.json").read_text())
    threshold = acc.Scalars("mechanism/threshold")
    assert threshold[-1].value == pytest.approx(metrics["threshold"], rel=1e-5)
    assert acc.Scalars("mechanism/steepness")[-1].value == pytest.approx(
        metrics["steepness"], rel=1e-5
    )


def test_one_event_file_per_run(cli: CLI, runs_dir: Path, make: Make) -> None:
    make("hardwire", "is_even")
    (run,) = runs_dir.iterdir()
    assert len(list(run.rglob("events.out.tfevents.*"))) == 1
    assert [p for p in run.iterdir() if p.is_dir()] == []


# --- the fast writer, gradient norms, pictures, and complete files on every exit path ----


def all_of(run: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def session_status(acc: EventAccumulator) -> int:
    from tensorboard.plugins.hparams import metadata

    content = acc.SummaryMetadata(metadata.SESSION_END_INFO_TAG).plugin_data.content
    status: int = metadata.parse_session_end_info_plugin_data(content).status
    return status


def test_every_scalar_of_every_epoch_reads_back_and_a_float32_overflow_is_inf(
    tmp_path: Path,
) -> None:
    cfg, _ = config.load("lt10")
    model = inits.build(cfg)
    tracker = tracking.Tracker(
        events.EventWriter(tmp_path), model, cfg.arch, every=1, task=cfg.task
    )
    tracker.begin({"train.lr": 0.1}, {"train.lr": "number"}, ["final/loss"], group="g")
    losses = [0.5, 0.25, 1e39, math.nan]  # 1e39 is too large for a float32
    logged = []
    for epoch, loss in enumerate(losses):
        params = models.flat_parameters(model) + epoch + 1
        grads = None if epoch == 0 else torch.ones_like(params)  # no gradients at the init
        logged.append(params.tolist())
        tracker.on_epoch_end(tracking.EpochStats(epoch, loss, 0.75, params, grads))
    tracker.close("completed", {"loss": 1e39})

    acc = all_of(tmp_path)
    steps = list(range(len(losses)))
    for i, tag in enumerate(tracker.param_tags):
        assert [(e.step, e.value) for e in acc.Scalars(tag)] == [
            (step, values[i]) for step, values in enumerate(logged)
        ]
    loss = [e.value for e in acc.Scalars("metrics/loss")]
    assert loss[:3] == [0.5, 0.25, math.inf] and math.isnan(loss[3])
    assert [e.value for e in acc.Scalars("metrics/accuracy")] == [0.75] * len(steps)
    assert [e.step for e in acc.Scalars("mechanism/threshold")] == steps
    assert [e.step for e in acc.Scalars("grad_norm/0")] == steps[1:]
    assert acc.Scalars("final/loss")[0].value == math.inf

    (config_event,) = acc.Tensors(custom_scalars_metadata.CONFIG_SUMMARY_TAG)
    layout = layout_pb2.Layout.FromString(config_event.tensor_proto.string_val[0])
    charts = {
        (c.title, ch.title): list(ch.multiline.tag) for c in layout.category for ch in c.chart
    }
    assert charts[("metrics", "loss and accuracy")] == ["^metrics/"]
    assert charts[("parameters", "layer 0: weight and bias")] == ["^0/"]
    assert ("mechanism", "threshold and steepness") in charts


@pytest.mark.parametrize(
    ("values", "count", "lo", "hi"),
    [
        ([3.0, -1.5, math.nan, 2.0, math.inf, 0.5, -math.inf], 4, -1.5, 3.0),
        ([2.0, 2.0, 2.0], 3, 2.0, 2.0),
        ([math.nan], 0, 0.0, 0.0),
    ],
)
def test_a_histogram_reads_back_with_its_count_min_and_max(
    tmp_path: Path, values: list[float], count: int, lo: float, hi: float
) -> None:
    writer = events.EventWriter(tmp_path)
    value = events.histogram_value("loss", torch.tensor(values), buckets=4)
    writer.summary(3, Summary(value=[value]))
    writer.close()
    (event,) = all_of(tmp_path).Tensors("loss")
    buckets = tensor_util.make_ndarray(event.tensor_proto)  # [left edge, right edge, count] rows
    assert event.step == 3 and buckets.shape == (4, 3)
    assert (buckets[:, 2].sum(), buckets[0, 0], buckets[-1, 1]) == (count, lo, hi)


def test_grad_norm_is_the_norm_of_the_epochs_gradient_per_layer(tmp_path: Path) -> None:
    cfg, _ = config.load("lt10", [("train.epochs", 1, "test")])
    out = experiment.run_experiment(cfg, runs_root=tmp_path)
    model = inits.build(cfg)  # the same init; lt10 trains full batch: one step an epoch
    x, y = cfg.task.data()
    torch.nn.functional.binary_cross_entropy(model(x), y).backward()
    expected = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm().item()
    (point,) = all_of(out.run.path).Scalars("grad_norm/0")
    assert point.step == 1 and point.value == pytest.approx(expected, rel=1e-5)


def test_pictures_at_start_every_k_and_end_and_the_last_one_saved(tmp_path: Path) -> None:
    cfg, _ = config.load("is_even", [("train.epochs", 9, "t"), ("log.images_every", 4, "t")])
    out = experiment.run_experiment(cfg, runs_root=tmp_path)
    images = all_of(out.run.path).Images("prediction")
    assert [i.step for i in images] == [0, 4, 8, 9]
    assert out.picture == out.run.path / "prediction.png"
    assert images[-1].encoded_image_string == out.picture.read_bytes()
    (units,) = all_of(out.run.path).Images("units")  # once, at the last epoch
    assert out.units == out.run.path / "units.png" and units.step == 9
    assert units.encoded_image_string == out.units.read_bytes()
    with Image.open(out.units) as image:
        assert (units.width, units.height) == image.size


@pytest.mark.parametrize(("epochs", "most"), [(0, 1), (5, 2), (300, 9), (5000, 9), (10**6, 9)])
def test_the_default_picture_cadence_stays_small(epochs: int, most: int) -> None:
    every = config.LogConfig().image_interval(epochs)
    pictures = {0, epochs} | (set(range(every, epochs + 1, every)) if every else set())
    assert len(pictures) <= most


class Boom:
    """A callback that raises after a given epoch, as a bug or a second Ctrl-C would."""

    def __init__(self, after: int, exc: BaseException) -> None:
        self.after, self.exc = after, exc

    def __call__(self, stats: Any) -> None:
        if stats.epoch == self.after:
            raise self.exc


@pytest.mark.parametrize(
    ("exc", "status", "session"),
    [(RuntimeError("bug"), "failed", 2), (KeyboardInterrupt(), "interrupted", 0)],
)
def test_a_run_that_dies_leaves_a_complete_event_file_with_its_last_epoch(
    tmp_path: Path, exc: BaseException, status: str, session: int
) -> None:
    cfg, _ = config.load("min", [("train.epochs", 50, "t"), ("log.every", 3, "t")])
    with pytest.raises(RunFailed) as info:
        experiment.run_experiment(cfg, runs_root=tmp_path, progress=Boom(5, exc))
    assert info.value.__cause__ is exc
    (run,) = tmp_path.iterdir()
    assert json.loads((run / "run.json").read_text())["status"] == status
    if status == "failed":
        assert type(exc).__name__ in (run / "error.txt").read_text()  # the run's, not ours
    else:  # a stop that was asked for has no traceback to look at
        assert not (run / "error.txt").exists() and "traceback" not in str(info.value)
    acc = all_of(run)
    assert [e.step for e in acc.Scalars("metrics/loss")] == [0, 3, 6 - 1]  # 5 was pending
    assert acc.Scalars("grad_norm/fc1")[-1].step == 5
    assert [i.step for i in acc.Images("prediction")] == [0, 5]
    assert session_status(acc) == session


def test_a_diverged_run_logs_its_last_finite_epoch(tmp_path: Path) -> None:
    sets = [("train.optimizer", "sgd", "t"), ("train.lr", 0.0015, "t"), ("train.epochs", 50, "t")]
    cfg, _ = config.load("min", [*sets, ("train.batch_size", None, "t"), ("log.every", 100, "t")])
    out = experiment.run_experiment(cfg, runs_root=tmp_path)
    assert out.result.status == "diverged" and out.result.epochs > 1  # a few epochs in
    acc = all_of(out.run.path)
    state = torch.load(out.run.path / "model.pt", weights_only=True)
    last = acc.Scalars("fc1/weight[0,0]")[-1]
    assert last.step == out.result.epochs
    assert last.value == pytest.approx(state["fc1.weight"][0, 0].item(), rel=1e-6)
    assert all(math.isfinite(e.value) for e in acc.Scalars("grad_norm/fc1"))
    assert session_status(acc) == 2  # failed


def test_the_hand_built_summaries_are_tensorboards_byte_for_byte() -> None:
    """events and hparams build these from the protos to keep TensorFlow's stub out of start-up."""
    from tensorboard.compat.proto import types_pb2
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    assert hparams.NULL_TENSOR.SerializeToString() == metadata.NULL_TENSOR.SerializeToString()
    data = b"\x00layout\xff"
    ours = events.string_tensor(data).SerializeToString()
    assert (
        ours == tensor_util.make_tensor_proto(data, dtype=types_pb2.DT_STRING).SerializeToString()
    )
    assert (hparams.EXPERIMENT_TAG, hparams.SESSION_START_INFO_TAG) == (
        metadata.EXPERIMENT_TAG,
        metadata.SESSION_START_INFO_TAG,
    )
    end = hparams.session_end_summary("completed").value[0]
    assert end.tag == metadata.SESSION_END_INFO_TAG
    info = plugin_data_pb2.HParamsPluginData()
    info.session_end_info.CopyFrom(
        metadata.parse_session_end_info_plugin_data(end.metadata.plugin_data.content)
    )
    theirs = metadata.create_summary_metadata(info)
    assert end.metadata.SerializeToString() == theirs.SerializeToString()
    assert end.tensor.SerializeToString() == metadata.NULL_TENSOR.SerializeToString()


def test_a_run_does_not_import_tensorflows_stub() -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    code = (
        "import sys, tempfile, pathlib\n"
        "from tiny_cli import config\nfrom tiny_cli.app import experiment\n"
        "cfg, _ = config.load('lt10', [('train.epochs', 2, 'test')])\n"
        "experiment.run_experiment(cfg, runs_root=pathlib.Path(tempfile.mkdtemp()))\n"
        "print(sorted(m for m in sys.modules if m.startswith(('absl', 'tensorboard.compat.t'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
