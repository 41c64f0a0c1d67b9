"""Event files read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import CLI
from tiny_cli import config


def accumulate(run: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    return acc


def param_tag(key: str, index: tuple[int, ...]) -> str:
    module, _, name = key.rpartition(".")
    return f"{module}/{name}[{','.join(map(str, index))}]"


@pytest.mark.parametrize("name", config.shipped_names())
def test_every_parameter_has_a_scalar_per_logged_epoch_matching_the_checkpoint(
    cli: CLI, runs_dir: Path, name: str
) -> None:
    assert cli("train", name, "--epochs", "20", "--set", "log.every=7").returncode == 0
    (run,) = runs_dir.iterdir()
    acc = accumulate(run)
    state = torch.load(run / "model.pt", weights_only=True)
    steps = [0, 7, 14, 20]  # the init, every 7th epoch, and always the last one
    for key, tensor in state.items():
        for index in (
            torch.cartesian_prod(*[torch.arange(n) for n in tensor.shape])
            .reshape(tensor.numel(), -1)
            .tolist()
        ):
            events = acc.Scalars(param_tag(key, tuple(index)))
            assert [e.step for e in events] == steps
            assert events[-1].value == pytest.approx(tensor[tuple(index)].item(), rel=1e-6)
    loss = acc.Scalars("metrics/loss")
    assert [e.step for e in loss] == steps
    if name != "min":
        assert [e.step for e in acc.Scalars("metrics/accuracy")] == steps


def test_lt10_threshold_and_steepness_are_logged(cli: CLI, runs_dir: Path) -> None:
    assert cli("train", "lt10", "--epochs", "300").returncode == 0
    (run,) = runs_dir.iterdir()
    acc = accumulate(run)
    metrics = json.loads((run / "metrics.json").read_text())
    threshold = acc.Scalars("mechanism/threshold")
    assert threshold[-1].value == pytest.approx(metrics["threshold"], rel=1e-5)
    assert acc.Scalars("mechanism/steepness")[-1].value == pytest.approx(
        metrics["steepness"], rel=1e-5
    )


def test_one_event_file_per_run(cli: CLI, runs_dir: Path) -> None:
    assert cli("hardwire", "is_even").returncode == 0
    (run,) = runs_dir.iterdir()
    assert len(list(run.rglob("events.out.tfevents.*"))) == 1
    assert [p for p in run.iterdir() if p.is_dir()] == []
