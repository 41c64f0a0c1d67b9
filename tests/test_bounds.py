"""Bounds on what a run does after it trains and on what it trains on: targets that float32
cannot hold are refused before anything is stored; a read-out too big to make is skipped in
one line; every phase after training honours a signal; the sidecar dies with its parent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CLI, assert_one_line_error

NAN_PLUGIN = """
from typing import ClassVar, Literal

from tiny_cli.tasks import Task
from tiny_cli.tasks.base import layers


class NanTruth(Task):
    name: Literal["nan_truth"] = "nan_truth"
    kind: ClassVar = "regression"

    def size(self):
        return 6

    def data(self):
        import torch

        x = torch.arange(6, dtype=torch.float32).unsqueeze(1)
        return x, self.truth(x)

    def truth(self, x):
        import torch

        return torch.where(x == 3, float("nan"), x)

    def default_model(self):
        return layers((2, "relu"), (1, "identity"))
"""


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_a_target_beyond_float32_is_refused_before_anything_is_stored(
    cli: CLI, runs_dir: Path, command: str
) -> None:
    seeds = ["--seeds", "0-1"] if command == "sweep" else []
    proc = cli(command, "expr", "--set", "task.expr=2**128 + a", *seeds)
    assert_one_line_error(proc, "task expr", "target at a=-8, b=-8", "float32")
    assert not runs_dir.exists() or list(runs_dir.iterdir()) == []


def test_a_plugin_task_whose_truth_is_nan_is_refused(
    cli: CLI, runs_dir: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    info = site / "tiny_nan_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-nan-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[tiny.tasks]\nnan_truth = tiny_nan_plugin:NanTruth\n")
    (site / "tiny_nan_plugin.py").write_text(NAN_PLUGIN)
    config = tmp_path / "nan.yaml"
    config.write_text("task:\n  name: nan_truth\ntrain:\n  epochs: 2\n")
    proc = cli("train", str(config), path=[site])
    assert_one_line_error(proc, "task nan_truth", "target at x=3 is nan")
    assert not runs_dir.exists() or list(runs_dir.iterdir()) == []


def test_a_truth_undefined_beyond_the_domain_still_draws() -> None:
    from tiny_cli import config
    from tiny_cli.show import plots
    from tiny_cli.train import inits

    expr = [("task.name", "expr", "t"), ("task.expr", "100 // (a - 12)", "t"),
            ("task.inputs", {"a": [-8, 8]}, "t"), ("task.kind", "regression", "t")]  # fmt: skip
    cfg, _ = config.load("expr", expr)  # the picture's margin reaches a = 12: a division by 0
    x, _ = cfg.task.data()
    picture = plots.PredictionPlot(cfg.task, x)
    assert picture.png(inits.build(cfg), 0).startswith(b"\x89PNG")
