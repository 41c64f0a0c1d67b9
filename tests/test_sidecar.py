"""The sidecar process draws what this process would draw, and never gets in the way:
it dies and the work is done here; its parent dies and it goes too; the working directory's
files are never its modules."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import gone
from tiny_cli import config, sidecar
from tiny_cli.show import plots
from tiny_cli.train import inits

REPO = Path(__file__).resolve().parents[1]


def a_picture(name: str) -> tuple[plots.Layout, plots.Frame]:
    cfg, _ = config.load(name, [])
    x, _ = cfg.task.data()
    picture = plots.PredictionPlot(cfg.task, x)
    return picture.layout, picture.frame(inits.build(cfg), 0)


def test_the_sidecar_draws_the_picture_drawn_here_and_survives_its_own_death() -> None:
    layout, frame = a_picture("min")
    here = plots.Canvas(layout).png(frame)
    with sidecar.Sidecar() as side:
        assert side.alive and side._proc is not None
        child = side._proc.pid
        assert side.call("picture", layout, frame).result() == here
        # Many calls before any answer is read fill both pipes (a min frame and its PNG are
        # tens of kB each): writing must not wait on the reader, nor the reader on it.
        flood: list[sidecar.Pending] = []
        sender = threading.Thread(
            target=lambda: flood.extend(side.call("picture", layout, frame) for _ in range(40))
        )
        sender.start()
        sender.join(timeout=60)
        deadlocked = sender.is_alive()
        if deadlocked:  # unblock it (the write fails), then fail
            os.kill(child, signal.SIGKILL)
            sender.join()
        assert not deadlocked
        assert all(p.result() == here for p in flood) and side.alive
        os.kill(child, signal.SIGKILL)  # the sidecar dies: the next calls are done here
        again = [side.call("picture", layout, frame) for _ in range(2)]
        assert [p.result() for p in again] == [here, here]
        assert not side.alive
    with pytest.raises(sidecar.SidecarError, match="KeyError"), sidecar.Sidecar() as side:
        side.call("picture", layout, plots.Frame("broken", {})).result()


def test_the_sidecar_goes_with_its_parent_and_ignores_the_working_directory(
    tmp_path: Path,
) -> None:
    here = tmp_path / "cwd"
    here.mkdir()
    for name in ("numpy", "matplotlib", "sympy", "tiny_cli"):  # would be imported first
        (here / f"{name}.py").write_text(f"open({str(tmp_path / name)!r}, 'w').close()\n")
    script = tmp_path / "bin" / "parent.py"
    script.parent.mkdir()
    script.write_text(
        "import sys, time\n"
        "from tiny_cli import sidecar\n"
        "side = sidecar.Sidecar(readout=True)\n"
        "side.call('picture', None, None)  # a call that fails, in the child\n"
        "print(side._proc.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen(
        [sys.executable, str(script)], cwd=here, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        time.sleep(1.0)  # let it import what it warms up with
        assert not gone(child)
    finally:
        parent.kill()  # SIGKILL: no clean-up of ours runs in the parent
        parent.wait()
    deadline = time.monotonic() + 30
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(child)
    assert not [p.name for p in tmp_path.iterdir() if p.is_file()]  # no module of cwd ran
