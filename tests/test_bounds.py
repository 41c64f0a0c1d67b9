"""Bounds on what a run does after it trains and on what it trains on: targets that float32
cannot hold are refused before anything is stored; a read-out too big to make is skipped in
one line; every phase after training honours a signal; the sidecar dies with its parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CLI, REPO, assert_one_line_error, gone


def _plugin(cls: str, name: str, truth: str, extra: str = "") -> str:
    """A plugin task's source over the integers 0..5 with a 2-ReLU net: its truth (an
    expression of the tensor x) and any further methods."""
    return f"""
import time
from typing import ClassVar, Literal

from tiny_cli.tasks import Task
from tiny_cli.tasks.base import layers


class {cls}(Task):
    name: Literal["{name}"] = "{name}"
    kind: ClassVar = "regression"

    def size(self):
        return 6

    def data(self):
        import torch

        x = torch.arange(6, dtype=torch.float32).unsqueeze(1)
        return x, self.truth(x)

    def truth(self, x):
        import torch

        return {truth}

    def default_model(self):
        return layers((2, "relu"), (1, "identity"))
{extra}"""


NAN_PLUGIN = _plugin("NanTruth", "nan_truth", 'torch.where(x == 3, float("nan"), x)')

# A task whose meaning takes two minutes of CPU: a read-out that is still being built when
# the test signals or kills the run (a real net's read-out is bounded: see below).
SLOW_PLUGIN = _plugin(
    "Slow",
    "slow_meaning",
    "2 * x",
    """
    def meaning(self, net, x, y, metrics):
        end = time.monotonic() + 120
        while time.monotonic() < end:
            pass
        return {}
""",
)


def plugin_site(root: Path, module: str, entry: str, text: str) -> Path:
    """A directory that `tiny` on its PYTHONPATH finds a task plugin in (`entry` = module:Class)."""
    site = root / f"{module}-site"
    info = site / f"{module}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[tiny.tasks]\n{entry.partition(':')[2]} = {entry}\n")
    (site / f"{module}.py").write_text(text)
    return site


def wait(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.05)
    return bool(condition())  # type: ignore[operator]


def start_slow_read_out(tmp_path: Path) -> tuple[subprocess.Popen[str], int, Path]:
    """A real `tiny train` of the slow task, once it is stored and into its read-out: the
    process, its sidecar's pid (its one child) and the run."""
    site = plugin_site(tmp_path, "tiny_slow_plugin", "tiny_slow_plugin:Slow", SLOW_PLUGIN)
    config = tmp_path / "slow.yaml"
    config.write_text("task:\n  name: slow_meaning\ntrain:\n  epochs: 3\n")
    runs_dir = tmp_path / "runs"
    env = {**os.environ, "TINY_RUNS_DIR": str(runs_dir), "PYTHONPATH": f"{site}{os.pathsep}{REPO}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tiny_cli", "train", str(config)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")

    def completed() -> bool:
        metas = list(runs_dir.glob("*/run.json"))
        return bool(metas) and json.loads(metas[0].read_text())["status"] == "completed"

    assert wait(completed, 120), proc.stderr
    (child,) = [int(p) for p in children.read_text().split()]
    (run,) = runs_dir.iterdir()
    return proc, child, run


def test_the_sidecar_stops_when_its_run_is_killed_in_the_read_out(tmp_path: Path) -> None:
    proc, child, _ = start_slow_read_out(tmp_path)
    try:
        time.sleep(0.5)  # the sidecar is in the task's meaning, at full CPU
        assert not gone(child)
        proc.kill()  # SIGKILL: nothing of the parent's runs
        proc.communicate()
        assert wait(lambda: gone(child), 5)
    finally:
        if not gone(child):
            os.kill(child, signal.SIGKILL)  # (ours: the child of the process we started)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_in_the_read_out_ends_the_run_stored_whole_at_once(
    tmp_path: Path, sig: signal.Signals
) -> None:
    proc, child, run = start_slow_read_out(tmp_path)
    try:
        time.sleep(0.5)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=5)  # not the read-out's two minutes
    finally:
        if proc.poll() is None:
            proc.kill()
        if not gone(child):
            os.kill(child, signal.SIGKILL)
    assert proc.returncode == 0, err
    (line,) = err.strip().splitlines()
    assert "read-out skipped (stopped by a signal)" in line and "Traceback" not in err
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    assert {"model.pt", "metrics.json", "prediction.png"} <= {p.name for p in run.iterdir()}
    assert not (run / "checkpoint.pt").exists()
    assert wait(lambda: gone(child), 5)


@pytest.mark.parametrize(
    "widths, skipped",
    [([1024, 1024], "parameters (bound 20,000)"), ([16] * 8, "terms or more (bound 4,000)")],
    ids=["2x1024", "8x16"],
)
def test_a_net_too_big_to_read_gets_a_read_out_without_its_formula(
    widths: list[int], skipped: str
) -> None:
    from tiny_cli import config
    from tiny_cli.read import readout
    from tiny_cli.show.readout_view import readout_lines
    from tiny_cli.train import inits

    layers = [{"width": w, "activation": "relu"} for w in widths]
    layers.append({"width": 1, "activation": "identity"})
    cfg, _ = config.load("min", [("model.layers", layers, "t"), ("model.arch", None, "t")])
    state = {k: v.detach().numpy() for k, v in inits.build(cfg).state_dict().items()}
    start = time.monotonic()
    read = readout.read(cfg.arch, state, cfg.task).as_dict()
    assert time.monotonic() - start < 15  # minutes before the bound
    assert read["formula"] == "" and skipped in read["formula_skipped"]
    assert read["max_error"] is None and read["outcome"] and read["dead_units"] is not None
    json.dumps(read, allow_nan=False)  # stays JSON
    first = "".join(text for text, _ in readout_lines(read)[0])
    assert first.startswith("formula: skipped, ") and skipped in first
    assert np.isfinite(read["tolerance"])


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
    site = plugin_site(tmp_path, "tiny_nan_plugin", "tiny_nan_plugin:NanTruth", NAN_PLUGIN)
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


def test_a_big_net_logs_its_loss_but_no_scalar_per_parameter(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tiny_cli import config
    from tiny_cli.spec import models
    from tiny_cli.store import events, tracking
    from tiny_cli.train import inits

    layers = [{"width": 2048, "activation": "relu"}, {"width": 1, "activation": "identity"}]
    cfg, _ = config.load("min", [("model.layers", layers, "t"), ("model.arch", None, "t")])
    model = inits.build(cfg)
    tracker = tracking.Tracker(events.EventWriter(tmp_path), model, cfg.arch, every=1)
    for epoch in range(3):
        params = models.flat_parameters(model)
        tracker.on_epoch_end(tracking.EpochStats(epoch, 1.0 / 2**epoch, None, params, None))
    tracker.close("completed", {"loss": 0.25})
    (found,) = tmp_path.glob("events.out.tfevents.*")
    assert found.stat().st_size < 100_000  # 8,193 parameters: no tag of their own
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.value for e in acc.Scalars("metrics/loss")] == [1.0, 0.5, 0.25]
    assert not [t for t in acc.Tags()["scalars"] if "weight" in t or "bias" in t]
