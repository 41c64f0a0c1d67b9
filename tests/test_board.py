"""A real TensorBoard server on 127.0.0.1, asked through its HTTP data API, and `tiny board`.

No mocks: the runs are stored as the CLI stores them (made in-process, `make_run`: the subject
here is what TensorBoard makes of them), TensorBoard reads their event files as a user's would,
and what it serves is compared with the runs' checkpoints, metrics and pictures.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import REPO, assert_one_line_error, make_run, run_cli
from tiny_cli import config
from tiny_cli.app import board
from tiny_cli.spec import models
from tiny_cli.store import hparams
from tiny_cli.train import inits

LT10_EPOCHS = 1200  # more points per scalar than TensorBoard's default sample of 1,000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str, data: dict[str, Any] | None = None) -> Any:
    body = None if data is None else json.dumps(data).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    return raw if response.headers.get_content_type().startswith("image/") else json.loads(raw)


@dataclass
class Board:
    url: str  # ending in /data/
    runs: Path

    def data(self, route: str, post: dict[str, Any] | None = None, **params: Any) -> Any:
        query = urllib.parse.urlencode(params)
        return get(f"{self.url}{route}" + (f"?{query}" if query else ""), post)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three runs: lt10 trained for more epochs than TensorBoard keeps points of a scalar by
    default (1,000), with pictures every 500 epochs; min trained; is_even hardwired."""
    runs_dir = tmp_path_factory.mktemp("board") / "runs"
    make_run(runs_dir, "train", "lt10", LT10_EPOCHS, sets=["log.images_every=500"])
    make_run(runs_dir, "train", "min", 2)
    make_run(runs_dir, "hardwire", "is_even")
    return runs_dir


@pytest.fixture(scope="module")
def server(runs: Path) -> Iterator[Board]:
    """`tensorboard --logdir runs` on a free port, the same command `tiny board` runs."""
    port = free_port()
    proc = subprocess.Popen(
        board.command(runs, port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}/data/"
    expected = {p.name for p in runs.iterdir()}
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                tags = get(url + "plugin/scalars/tags")
                images = get(url + "plugin/images/tags")
                if set(tags) == expected and set(images) == expected:
                    break
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, "TensorBoard did not serve the runs in 90 s"
            time.sleep(0.5)
        yield Board(url, runs)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_named(runs: Path, task: str) -> Path:
    (path,) = [p for p in runs.iterdir() if re.search(rf"-{task}(-\d+)?$", p.name)]
    return path


@pytest.mark.parametrize("task", ["lt10", "min", "is_even"])
def test_scalars_served_match_the_checkpoint_and_metrics(server: Board, task: str) -> None:
    run = run_named(server.runs, task)
    cfg, _ = config.load(str(run / "config.yaml"))
    state = torch.load(run / "model.pt", weights_only=True)
    metrics = json.loads((run / "metrics.json").read_text())
    tags = server.data("plugin/scalars/tags")[run.name]
    model = inits.build(cfg)
    param_tags = models.parameter_tags(model)
    last_epoch = cfg.train.epochs
    modules = {t.partition("/")[0] for t in param_tags}
    grad_tags = {f"grad_norm/{m}" for m in modules} if last_epoch else set()  # none untrained
    assert set(param_tags) | {"metrics/loss"} | grad_tags <= set(tags)
    flat = torch.cat([v.reshape(-1) for v in state.values()]).tolist()
    for tag, value in zip(param_tags, flat, strict=True):
        points = server.data("plugin/scalars/scalars", run=run.name, tag=tag)
        assert [step for _, step, _ in points] == list(range(last_epoch + 1))  # every one
        assert points[-1][2] == pytest.approx(value, rel=1e-6, abs=1e-7)
    final = server.data("plugin/scalars/scalars", run=run.name, tag="final/loss")
    assert final[-1][1:] == [last_epoch, pytest.approx(metrics["loss"], rel=1e-6, abs=1e-7)]
    if task == "lt10":
        threshold = server.data("plugin/scalars/scalars", run=run.name, tag="mechanism/threshold")
        assert threshold[-1][2] == pytest.approx(metrics["threshold"], rel=1e-5)


def test_custom_scalars_layout_has_a_chart_per_layer_and_one_for_loss_and_accuracy(
    server: Board,
) -> None:
    import re

    layout = server.data("plugin/custom_scalars/layout")
    charts = {
        (cat["title"], chart["title"]): chart["multiline"]["tag"]
        for cat in layout["category"]
        for chart in cat["chart"]
    }
    assert charts[("metrics", "loss and accuracy")] == ["^metrics/"]
    for task in ("lt10", "min", "is_even"):
        run = run_named(server.runs, task)
        tags = server.data("plugin/scalars/tags")[run.name]
        for tag in tags:
            module, _, rest = tag.partition("/")
            if rest.startswith(("weight[", "bias[")):
                regexes = charts[("parameters", f"layer {module}: weight and bias")]
                assert any(re.search(r, tag) for r in regexes), tag
    assert ("mechanism", "threshold and steepness") in charts


def test_pictures_are_served_at_start_every_k_and_end(server: Board) -> None:
    images = server.data("plugin/images/tags")
    for run in server.runs.iterdir():
        assert "prediction" in images[run.name]
    lt10 = run_named(server.runs, "lt10")
    served = server.data("plugin/images/images", run=lt10.name, tag="prediction", sample=0)
    assert [item["step"] for item in served] == [0, 500, 1000, LT10_EPOCHS]
    last = get(f"{server.url}plugin/images/individualImage?{served[-1]['query']}")
    assert last == (lt10 / "prediction.png").read_bytes()
    assert last.startswith(b"\x89PNG")


def test_hparams_lists_each_run_as_one_session_with_config_and_final_metrics(
    server: Board,
) -> None:
    request = {
        "experimentName": "",
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        "colParams": [],
        "startIndex": 0,
        "sliceSize": 100,
    }
    groups = server.data("plugin/hparams/session_groups", post=request)["sessionGroups"]
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {p.name for p in server.runs.iterdir()}
    for run in server.runs.iterdir():
        group = by_name[run.name]
        (session,) = group["sessions"]
        assert session["status"] == "STATUS_SUCCESS"
        cfg, _ = config.load(str(run / "config.yaml"))
        for key, value in config.flatten(cfg).items():
            if value is None:
                assert key not in group["hparams"]
            elif isinstance(value, list):
                assert group["hparams"][key] == str(value)
            else:
                assert group["hparams"][key] == value, key
        metrics = json.loads((run / "metrics.json").read_text())
        served = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        assert served["final/loss"] == pytest.approx(metrics["loss"], rel=1e-6, abs=1e-7)
    experiment = server.data("plugin/hparams/experiment", post={"experimentName": ""})
    assert {"task.name", "train.lr", "task.bits"} <= {h["name"] for h in experiment["hparamInfos"]}
    assert "final/loss" in {m["name"]["tag"] for m in experiment["metricInfos"]}
    # The default view (a few columns) opens on the keys runs are compared by.
    first = server.data("plugin/hparams/experiment", post={"experimentName": "", "hparamsLimit": 6})
    assert {h["name"] for h in first["hparamInfos"]} == set(hparams.COMPARED)


# --- tiny board -------------------------------------------------------------------------


@pytest.mark.parametrize("to_group", [True, False], ids=["terminal-ctrl-c", "sigint-to-tiny"])
def test_tiny_board_serves_and_stops_cleanly_on_ctrl_c(
    runs: Path, tmp_path: Path, to_group: bool
) -> None:
    """Ctrl-C in a terminal signals tiny and TensorBoard (one process group); a SIGINT to tiny
    alone must stop TensorBoard too."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tiny_cli", "board", "--runs-dir", str(runs), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "COLUMNS": "200"},
        cwd=tmp_path,
        start_new_session=True,  # its own process group, as a terminal gives it
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once TensorBoard answers
        assert "http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.stderr else "")
        url = line[line.index("http://") :].split()[0]
        assert set(get(url + "data/runs")) == {p.name for p in runs.iterdir()}
        if to_group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:  # only on a failure above: tiny and its TensorBoard
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err
    assert time.monotonic() - started < 15
    assert "Traceback" not in out + err
    assert "stopped" in out
    with pytest.raises((urllib.error.URLError, OSError)):
        get(url + "data/runs")  # TensorBoard went with it


def test_tiny_board_without_a_runs_directory_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("board", "--port", "0", runs_dir=tmp_path / "nothing", cwd=tmp_path)
    assert_one_line_error(proc, "nothing", "no such runs directory")


def test_tiny_board_on_a_busy_port_is_one_line(runs: Path, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc = run_cli("board", "--port", str(port), runs_dir=runs, cwd=tmp_path)
    assert_one_line_error(proc, f"--port {port}", "in use")


def test_tensorboard_start_up_noise_is_dropped() -> None:
    said = [
        "TensorFlow installation not found - running with reduced feature set.\n",
        "\n",
        "NOTE: Using experimental fast data loading logic. To disable, pass\n",
        '    "--load_fast=false" and report issues on GitHub. More details:\n',
        "    https://github.com/tensorflow/tensorboard/issues/4784\n",
        "TensorBoard 2.21.0 at http://127.0.0.1:6006/ (Press CTRL+C to quit)\n",
        "E1122 04:45:43 something real went wrong\n",
    ]
    kept: list[str] = []
    board.forward(said, kept.append)
    assert kept == ["E1122 04:45:43 something real went wrong\n"]
