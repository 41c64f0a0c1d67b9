"""`--resume`: one process at a time, only from what is the run's own and unchanged, and a
resumed run ends as one that never stopped (its one event file included). A run killed and
resumed: tests/test_reliability.py."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto.event_pb2 import Event

from tests.conftest import REPO, assert_one_line_error
from tiny_cli import config
from tiny_cli.errors import RunFailed, TinyError
from tiny_cli.store import locks, runs

# is_even's 8 integers of 3 bits in mini-batches of 4 (the batch order must resume too)
SETS = [("train.batch_size", 4, "t"), ("task.bits", 3, "t")]


def stop_at(epoch: int) -> object:
    """A progress callback that sends this process SIGINT at `epoch`: a real Ctrl-C."""

    def progress(stats: object) -> None:
        if getattr(stats, "epoch", None) == epoch:
            os.kill(os.getpid(), signal.SIGINT)

    return progress


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An is_even run of 400 epochs stopped by Ctrl-C after epoch 250 (its checkpoint)."""
    from tiny_cli.app import experiment

    root = tmp_path_factory.mktemp("stopped")
    cfg, _ = config.load("is_even", [("train.epochs", 400, "t"), *SETS])
    out = experiment.run_experiment(cfg, runs_root=root, progress=stop_at(250))  # type: ignore[arg-type]
    assert out.result.epochs == 250  # stopped there, evaluated and stored as it was
    (run,) = root.iterdir()
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    return run


def copy_of(run: Path, runs_dir: Path) -> Path:
    runs_dir.mkdir(exist_ok=True)
    return Path(shutil.copytree(run, runs_dir / run.name))


def tiny(runs_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TINY_RUNS_DIR": str(runs_dir), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "tiny_cli", *args],
        env=env, cwd=runs_dir, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def resume(run: Path) -> None:
    from tiny_cli.app import experiment

    cfg, _ = config.load(str(run / "config.yaml"))
    experiment.run_experiment(cfg, runs_root=run.parent, resume=runs.Run(run))


def test_a_run_being_trained_is_locked_and_its_resume_ends_as_if_it_never_stopped(
    stopped: Path, tmp_path: Path
) -> None:
    """While a process holds the run (here: this one), `tiny train --resume` is one line,
    exit 2, naming the run and that process, and changes nothing. Then the resume trains it
    to the end: one event file with every epoch once, the weights of a run that never
    stopped, and a record that says it completed (no stale "stopped by a signal")."""
    from tiny_cli.train import engine

    run = copy_of(stopped, tmp_path / "runs")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with locks.hold(runs.Run(run)):
        second = tiny(run.parent, "train", "--resume", run.name)
    assert_one_line_error(second, run.name, f"being trained by another process (pid {os.getpid()})")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before

    resume(run)
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "completed" and meta["reason"] == "" and meta["epochs_done"] == 400
    (events,) = run.glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("metrics/loss")] == list(range(401))
    assert [e.step for e in acc.Scalars("final/loss")] == [400]
    assert [e.step for e in acc.Tensors("_hparams_/session_end_info")] == [400]
    cfg, _ = config.load("is_even", [("train.epochs", 400, "t"), *SETS])
    never_stopped = engine.fit(cfg, [0], *cfg.task.data())
    state = torch.load(run / "model.pt", weights_only=True)
    for key, value in never_stopped.params.items():
        assert torch.equal(state[key], value[0]), key


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (("lr: 0.01", "lr: 0.02"), "config.yaml changed since the run started"),
        (("bits: 3", "bits: 4"), "config.yaml changed since the run started"),
        (None, "checkpoint.pt: its weights hold NaN or infinite values"),
    ],
    ids=["lr", "task-parameter", "nan-weights"],
)
def test_a_resume_refuses_a_changed_config_or_broken_weights_and_touches_nothing(
    stopped: Path, tmp_path: Path, edit: tuple[str, str] | None, needle: str
) -> None:
    run = copy_of(stopped, tmp_path / "runs")
    if edit is not None:
        text = (run / "config.yaml").read_text()
        assert edit[0] in text
        (run / "config.yaml").write_text(text.replace(edit[0], edit[1]))
    else:
        state = torch.load(run / "checkpoint.pt", weights_only=True)
        state["flat"][0] = float("nan")
        torch.save(state, run / "checkpoint.pt")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(TinyError, match=needle) as refused:
        resume(run)
    assert refused.value.exit_code == (2 if edit is not None else 1)  # the user's edit; a bad file
    assert run.name in str(refused.value)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


@pytest.fixture(scope="module")
def stopped_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep of seeds 0-3 in two chunks of 1500 epochs, stopped by Ctrl-C in its second."""
    from tiny_cli.app import sweep

    root = tmp_path_factory.mktemp("sweep")
    overrides = [("train.epochs", 1500, "t"), *SETS]
    base, _ = config.load("is_even", overrides)
    points = config.grid_points("is_even", overrides, [])
    done = [0]

    def on_epoch(count: int) -> None:
        done[0] += count
        if done[0] > 2 * 1500 + 100:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(RunFailed):
        sweep.run_sweep(base, points, [], range(4), runs_root=root, chunk=2, on_epoch=on_epoch)
    (path,) = root.iterdir()
    assert [p.name for p in (path / "chunks").iterdir()] == ["p0000-c00000.pt"]
    return path


def test_two_resumes_of_one_sweep_at_once_train_it_once(
    stopped_sweep: Path, tmp_path: Path
) -> None:
    """Two real `tiny sweep --resume` processes: one finishes the sweep, the other is one
    line (exit 2) naming it, and the sweep is complete."""
    path = copy_of(stopped_sweep, tmp_path / "runs")
    env = {**os.environ, "TINY_RUNS_DIR": str(path.parent), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "tiny_cli", "sweep", "--resume", path.name]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    procs = [subprocess.Popen(command, env=env, cwd=tmp_path, **pipes) for _ in range(2)]
    done = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    assert sorted(p.returncode for p in done) == [0, 2], [p.stderr for p in done]
    assert_one_line_error(next(p for p in done if p.returncode == 2), path.name)
    assert json.loads((path / "run.json").read_text())["status"] == "completed"


def test_a_sweep_resume_takes_only_its_own_chunks(
    stopped_sweep: Path, tmp_path: Path, recwarn: pytest.WarningsRecorder
) -> None:
    """A chunk copied from elsewhere (other seeds, another config) or garbage is one line
    naming it (exit 1), before anything is trained or marked; no warning of torch's."""
    from tiny_cli.app import sweep

    path = copy_of(stopped_sweep, tmp_path / "runs")
    first, second = path / "chunks" / "p0000-c00000.pt", path / "chunks" / "p0000-c00001.pt"
    other_config = torch.load(first, weights_only=True)
    other_config["config"] = "0123456789abcdef"
    meta = (path / "run.json").read_bytes()
    for name, data, needle in [
        (second, first.read_bytes(), "is not this sweep's (its seeds are not 2-3)"),
        (first, pickle_bytes(other_config), "is not this sweep's (trained with another config)"),
        (second, pickle.dumps({"seeds": [2, 3]}, protocol=4), "is unreadable"),
    ]:
        kept = name.read_bytes() if name.exists() else None
        name.write_bytes(data)
        with pytest.raises(runs.RunProblem, match=re.escape(f"{name.name} {needle}")) as refused:
            sweep.resume_sweep(runs.Run(path), runs_root=path.parent)
        assert refused.value.exit_code == 1
        assert (path / "run.json").read_bytes() == meta
        name.unlink() if kept is None else name.write_bytes(kept)
    assert not [w for w in recwarn if "pickle" in str(w.message)]


def pickle_bytes(data: dict[str, object]) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(data, buf)
    return buf.getvalue()


def test_an_earlier_resumes_two_event_files_become_one_with_each_step_once(
    tmp_path: Path,
) -> None:
    """A run resumed by an earlier tiny has two event files: the first ran past its
    checkpoint (epoch 3) to 5 before it stopped, the second resumed at 4 and stopped at 8.
    Resumed again from epoch 6, it keeps one file: steps 0-6 once, no end-of-run marks."""
    from tiny_cli.store import events, hparams, tracking

    def stopped_file(name: str, steps: range) -> None:
        writer = events.EventWriter(tmp_path, append=tmp_path / name)
        writer.write(Event(wall_time=0.0, file_version=events.FILE_VERSION))
        for step in steps:
            writer.scalars(step, [("metrics/loss", float(step))])
        writer.scalars(steps[-1], [("final/loss", 0.0)])
        writer.summary(steps[-1], hparams.session_end_summary("interrupted"))
        writer.close()

    stopped_file("events.out.tfevents.1.host.1.tiny", range(6))
    stopped_file("events.out.tfevents.2.host.2.tiny", range(4, 9))
    kept = tracking.rewind(tmp_path, 6)
    assert kept is not None and events.run_files(tmp_path) == [kept]
    acc = EventAccumulator(str(kept), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("metrics/loss")] == list(range(7))
    assert acc.Tags()["scalars"] == ["metrics/loss"] and acc.Tags()["tensors"] == []
