"""How a sweep stops and what it shows then: a signal in its chunks or its kept runs, a lost
runner, an error; the grid points it finished, shown marked partial; a stored sweep file
that cannot be read whole (issue 24)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import REPO, make_sweep
from tests.conftest import tiny_here as tiny
from tiny_cli import config
from tiny_cli.app import sweep
from tiny_cli.errors import RunFailed
from tiny_cli.store import events, runs

MIN = [("train.epochs", 2, "--epochs 2"), ("task.n_samples", 64, "--set")]


def start_sweep(runs_dir: Path, cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TINY_RUNS_DIR": str(runs_dir), "PYTHONPATH": str(REPO)}
    env.pop("COLUMNS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tiny_cli", "sweep", *args],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def sigint_when(proc: subprocess.Popen[str], ready: Callable[[], bool]) -> str:
    """SIGINT once `ready()` (polled), then wait for the sweep to end; its stderr."""
    try:
        deadline = time.monotonic() + 120
        while not ready() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return err


def meta_of(path: Path) -> dict[str, object]:
    return json.loads((path / runs.META).read_text())


def test_a_sweep_file_that_cannot_be_read_whole_is_a_problem_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runs_dir = tmp_path / "runs"
    path = make_sweep(runs_dir, "min", 3, epochs=2, grid=["train.lr=0.01,0.1"])
    data = (path / runs.SWEEP).read_bytes()
    (path / runs.SWEEP).write_bytes(data[: len(data) // 2])  # cut short
    where = ["--runs-dir", str(runs_dir)]
    for args in (["inspect", path.name], ["inspect", path.name, "--json"],
                 ["inspect", path.name, "--solutions"], ["compare", path.name, path.name],
                 ["report", path.name, "-o", str(tmp_path / "r.html")]):  # fmt: skip
        code, _, err = tiny(capsys, monkeypatch, *args, *where)
        assert code == 1, (args, err)
        assert len(err.strip().splitlines()) == 1 and "sweep.pt is unreadable" in err, args
    assert (path / runs.SWEEP).read_bytes() == data[: len(data) // 2]  # nothing rewritten


def test_sigint_in_a_later_grid_point_keeps_and_shows_the_finished_one_as_partial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--grid train.epochs=20,1000000`, SIGINT in the second point: exit 130 in one line
    naming the phase; inspect (table, --json), --solutions and report show the first point,
    marked partial, and name the one that remains; a chunk gone bad is then a problem."""
    runs_dir = tmp_path / "runs"
    proc = start_sweep(runs_dir, tmp_path, "is_even", "--seeds", "2", "--chunk", "2",
                       "--grid", "train.epochs=20,1000000")  # fmt: skip
    err = sigint_when(proc, lambda: any(runs_dir.glob("*/chunks/*.pt")))
    assert proc.returncode == 130, err
    (line,) = err.strip().splitlines()
    assert "interrupted" in line and "while training its chunks" in line and "--resume" in line
    assert "1 of 2 grid points finished" in line
    (path,) = runs_dir.iterdir()
    meta = meta_of(path)
    assert meta["status"] == "interrupted" and "1 of 2 chunks trained" in str(meta["reason"])

    where = ["--runs-dir", str(runs_dir)]
    code, out, _ = tiny(capsys, monkeypatch, "inspect", path.name, "--json", *where)
    doc = json.loads(out)
    assert code == 0 and doc["partial"] is True
    assert doc["remaining"] == [{"train.epochs": 1000000}]
    assert [p["grid"] for p in doc["summary"]] == [{"train.epochs": 20}]
    code, out, _ = tiny(capsys, monkeypatch, "inspect", path.name, *where)
    assert code == 0 and "Partial outcomes" in out and "train.epochs=20 " in out
    assert "not yet: train.epochs=1000000" in out
    assert "20,1000000 epochs" in out and "0/1000000" not in out
    code, out, _ = tiny(capsys, monkeypatch, "inspect", path.name, "--solutions", "--json", *where)
    doc = json.loads(out)
    assert code == 0 and doc["partial"] is True and len(doc["points"]) == 1
    code, out, _ = tiny(capsys, monkeypatch, "report", path.name, *where)
    assert code == 0 and "Partial outcomes" in (path / "report.html").read_text()

    (path / "chunks" / "p0000-c00000.pt").write_bytes(b"not a chunk")
    code, _, err = tiny(capsys, monkeypatch, "inspect", path.name, *where)
    assert code == 1 and "chunks/p0000-c00000.pt is unreadable" in err
    assert len(err.strip().splitlines()) == 1


def test_sigint_in_a_kept_run_interrupts_the_sweep_and_resume_finishes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kept run is interrupted while training (and says so), the sweep with it (not left
    running), in one line; --resume trains the kept run again and ends completed, its record
    saying so (no reason left from the stop)."""
    runs_dir = tmp_path / "runs"
    proc = start_sweep(runs_dir, tmp_path, "is_even", "--seeds", "2", "--epochs", "150",
                       "--chunk", "2", "--keep", "1")  # fmt: skip
    err = sigint_when(proc, lambda: len(list(runs_dir.glob("*"))) > 1)  # the kept run began
    assert proc.returncode == 130, err
    (line,) = err.strip().splitlines()
    assert "while training its kept runs" in line and "--resume" in line
    (path,) = runs_dir.glob("*-sweep")
    (kept,) = (p for p in runs_dir.iterdir() if p != path)
    assert meta_of(path)["status"] == "interrupted"
    assert meta_of(kept)["status"] == "interrupted"
    assert "stopped by a signal after epoch" in str(meta_of(kept)["reason"])

    out = sweep.resume_sweep(runs.Run(path), runs_root=runs_dir)
    meta = meta_of(path)
    assert meta["status"] == "completed" and meta["reason"] is None
    assert [k["run"] for k in meta["kept"]] == [k["run"] for k in out.kept] != [kept.name]
    assert meta_of(runs_dir / out.kept[0]["run"])["status"] == "completed"
    assert kept.is_dir()  # the interrupted one is left as it was
    (log,) = events.run_files(path)  # stored again on resume: one event file, not two
    acc = EventAccumulator(str(log), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("outcomes/solved")] == [0]


class Lost:
    """A runner (sweep.Runner) that trains here, then fails after `after` chunks: as a lost
    cluster (`RunnerLost`) or with a bug (`error`)."""

    def __init__(self, after: int, error: BaseException | None = None) -> None:
        self.after, self.error = after, error

    def __call__(
        self, todo: Sequence[sweep.Chunk], points: Sequence[config.GridPoint], *rest: object
    ) -> Iterator[tuple[sweep.Chunk, sweep.Part]]:
        for i, c in enumerate(todo):
            if i == self.after:
                raise self.error or sweep.RunnerLost("a lost test runner")
            part = sweep.train_chunk(points[c.point].cfg, c.seeds)
            assert part is not None
            yield c, part


@pytest.mark.parametrize(
    ("error", "status"), [(None, "interrupted"), (ValueError("a bug"), "failed")]
)
def test_a_sweep_stopped_by_its_runner_says_why_and_a_resume_leaves_no_old_reason(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    error: BaseException | None,
    status: str,
) -> None:
    runs_dir = tmp_path / "runs"
    axes = config.parse_grid(["train.lr=0.01,0.1"])
    base, _ = config.load("min", MIN)
    points = config.grid_points("min", MIN, axes)
    with pytest.raises(RunFailed if error is None else ValueError):
        sweep.run_sweep(base, points, axes, range(2), runs_root=runs_dir, runner=Lost(1, error))
    (stopped,) = runs_dir.iterdir()
    meta = meta_of(stopped)
    assert meta["status"] == status
    assert "while training its chunks, with 1 of 2 chunks trained" in str(meta["reason"])
    assert ("a lost test runner" if error is None else "ValueError: a bug") in str(meta["reason"])

    sweep.resume_sweep(runs.Run(stopped), runs_root=runs_dir)
    meta = meta_of(stopped)
    assert meta["status"] == "completed" and meta["reason"] is None
    code, out, _ = tiny(capsys, monkeypatch, "inspect", stopped.name, "--runs-dir", str(runs_dir))
    assert code == 0 and "Outcomes of 2 seeds" in out
    assert "Partial outcomes" not in out and "partial:" not in out and "stopped" not in out
