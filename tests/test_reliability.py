"""Runs that stop early, broken run directories, untrusted files (repeating a run with
`tiny train --from`: tests/test_train.py)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import CLI, REPO, Make, assert_one_line_error
from tiny_cli.errors import TinyError
from tiny_cli.store import runs


def start_training(runs_dir: Path, cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TINY_RUNS_DIR": str(runs_dir), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "tiny_cli", "train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
    )


def wait_until_training(runs_dir: Path, timeout: float = 120) -> Path:
    """The run directory, once its event file shows epochs beyond the init (flushed every 2 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in runs_dir.glob("*"):
            events = list(run.glob("events.out.tfevents.*"))
            if events and events[0].stat().st_size > 4000:
                return run
        time.sleep(0.2)
    raise AssertionError("training did not start")


def wait_for(runs_dir: Path, pattern: str, timeout: float = 120) -> None:
    """Until a file matching `pattern` exists below the runs directory (or the timeout: the
    test's own assertions then say what did not happen)."""
    deadline = time.monotonic() + timeout
    while not list(runs_dir.glob(pattern)) and time.monotonic() < deadline:
        time.sleep(0.05)


def last_logged_step(run: Path) -> int:
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    return int(acc.Scalars("metrics/loss")[-1].step)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_training_and_keeps_the_run(
    cli: CLI, runs_dir: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    proc = start_training(
        runs_dir, tmp_path, "is_even", "--epochs", "10000000", "--set", "log.every=10"
    )
    run = wait_until_training(runs_dir)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "interrupted" and 0 < meta["epochs_done"] < 10_000_000
    assert last_logged_step(run) == meta["epochs_done"]  # the last epoch is logged even off-grid
    torch.load(run / "model.pt", weights_only=True)
    if sig == signal.SIGINT:  # what inspect shows is run.json's status, asserted above for both
        shown = cli("inspect", run.name, "--json")
        assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "interrupted"


def test_a_second_ctrl_c_aborts_but_keeps_the_last_epoch(runs_dir: Path, tmp_path: Path) -> None:
    proc = start_training(
        runs_dir, tmp_path, "is_even", "--epochs", "10000000", "--set", "log.every=1"
    )
    run = wait_until_training(runs_dir)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "interrupted"
    state = torch.load(run / "model.pt", weights_only=True)
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    # the checkpoint is the last completed epoch, and that epoch is in the event file
    assert acc.Scalars("0/bias[0]")[-1].step == meta["epochs_done"]
    assert acc.Scalars("0/bias[0]")[-1].value == pytest.approx(state["0.bias"][0].item(), rel=1e-6)


def test_an_exception_marks_the_run_failed_with_its_traceback(runs_dir: Path) -> None:
    """A callback raising after epoch 7 (made in-process: the CLI adds nothing here)."""
    from tiny_cli import config
    from tiny_cli.app import experiment
    from tiny_cli.errors import RunFailed
    from tiny_cli.store import tracking

    def boom(stats: tracking.EpochStats) -> None:
        if stats.epoch == 7:
            raise ValueError("disk on fire")

    cfg, _ = config.load("min")
    with pytest.raises(RunFailed) as failed:
        experiment.run_experiment(cfg, runs_root=runs_dir, progress=boom)
    # epoch 7 itself completed: the error came from a callback after it
    assert "failed (ValueError: disk on fire) after epoch 7" in str(failed.value)
    (run,) = runs_dir.iterdir()
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "failed" and meta["epochs_done"] == 7
    assert "disk on fire" in meta["reason"]
    assert "Traceback" in (run / "error.txt").read_text()
    assert last_logged_step(run) == 7
    torch.load(run / "model.pt", weights_only=True)


def test_divergence_is_reported_in_one_line_and_exit_1(cli: CLI, runs_dir: Path) -> None:
    proc = cli("train", "min", "--set", "train.optimizer=sgd", "--lr", "5", "--epochs", "50")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "failed" in proc.stderr and "loss became" in proc.stderr
    (run,) = runs_dir.iterdir()
    assert json.loads((run / "run.json").read_text())["status"] == "failed"


def test_simultaneous_trainings_get_distinct_complete_runs(runs_dir: Path, tmp_path: Path) -> None:
    """Two at once, end to end (the race for run ids: 4 processes creating 200 runs in
    tests/test_runs.py)."""
    procs = [start_training(runs_dir, tmp_path, "lt10", "--epochs", "5") for _ in range(2)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    runs = sorted(runs_dir.iterdir())
    assert len(runs) == 2
    for run in runs:
        assert json.loads((run / "run.json").read_text())["status"] == "completed"
        torch.load(run / "model.pt", weights_only=True)


def test_broken_runs_are_reported_and_the_others_still_list(
    cli: CLI, runs_dir: Path, make: Make
) -> None:
    make("hardwire", "lt10")
    (first,) = runs_dir.iterdir()
    for n in range(2, 6):  # four more copies of a good run, to break one file in each
        shutil.copytree(first, first.with_name(f"{first.name}-00{n}"))
    good, bad_metrics, no_model, bad_model, bad_config = sorted(runs_dir.iterdir())
    (bad_metrics / "metrics.json").write_text('{"loss": 0.')
    (no_model / "model.pt").unlink()
    (bad_model / "model.pt").write_bytes(b"not a checkpoint")
    (bad_config / "config.yaml").write_text("task: [\n")
    listed = cli("runs", "--json")
    rows = {r["id"]: r for r in json.loads(listed.stdout)}
    assert len(rows) == 5 and rows[good.name]["problem"] is None
    assert "metrics.json" in rows[bad_metrics.name]["problem"]
    assert cli("runs").returncode == 0
    from tiny_cli.store import runs

    for run, needle in [
        (bad_metrics, "metrics.json"),
        (no_model, "model.pt is missing"),
        (bad_model, "model.pt is unreadable"),
        (bad_config, "config.yaml is unreadable"),
    ]:
        record = runs.read(runs.Run(run))
        problems = [record.problem, *runs.details(record).problems]
        assert any(needle in p for p in problems), (needle, problems)
    for run, needle in [(bad_model, "model.pt is unreadable"), (bad_config, "config.yaml")]:
        shown = cli("inspect", run.name)  # what a user sees: the problem, exit 1, one line
        assert shown.returncode == 1 and needle in shown.stdout and "Traceback" not in shown.stderr
        assert len(shown.stderr.strip().splitlines()) == 1
    assert cli("inspect", good.name).returncode == 0


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch pwned",))


def test_a_malicious_checkpoint_is_not_executed(
    cli: CLI, runs_dir: Path, tmp_path: Path, make: Make
) -> None:
    make("hardwire", "lt10")
    (run,) = runs_dir.iterdir()
    (run / "model.pt").write_bytes(pickle.dumps({"0.weight": _Evil()}))
    shown = cli("inspect", run.name)
    assert shown.returncode == 1 and "model.pt is unreadable" in shown.stdout
    assert not (tmp_path / "work" / "pwned").exists()
    # a pickle of another protocol than torch's: tiny's one line, not torch's warning too
    for command in ("inspect", "export"):
        shown = cli(command, run.name)
        assert shown.returncode == 1 and len(shown.stderr.strip().splitlines()) == 1, shown.stderr


def test_a_bad_device_is_one_line(cli: CLI) -> None:
    assert_one_line_error(cli("train", "lt10", "--device", "meta"), "--device meta")


def test_a_sweep_stopped_by_sigterm_keeps_its_chunks_and_resume_finishes_it_bit_for_bit(
    tmp_path: Path,
) -> None:
    """SIGTERM mid-sweep: exit 130, one line, the finished chunks kept; `--resume` trains
    only the rest, and the result is what an uninterrupted sweep computes."""
    from tiny_cli import config
    from tiny_cli.app import sweep

    runs_dir = tmp_path / "runs"
    env = {**os.environ, "TINY_RUNS_DIR": str(runs_dir), "PYTHONPATH": str(REPO)}
    # 20 chunks: the compiled kernel trains one in milliseconds, so that the signal still
    # lands mid-sweep
    args = ["is_even", "--seeds", "30", "--epochs", "200", "--set", "train.batch_size=4",
            "--grid", "train.lr=0.01,0.05", "--chunk", "3"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "tiny_cli", "sweep", *args],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(runs_dir, "*/chunks/*.pt")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "--resume" in err
    (path,) = runs_dir.iterdir()
    assert json.loads((path / "run.json").read_text())["status"] == "interrupted"
    kept = sorted(p.name for p in (path / "chunks").iterdir())
    assert 0 < len(kept) < 20

    # a sweep stopped under an earlier engine would mix two arithmetics: refused, untouched
    meta_text = (path / "run.json").read_text()
    older = json.loads(meta_text)
    del older["versions"]["engine"]
    (path / "run.json").write_text(json.dumps(older))
    with pytest.raises(TinyError, match="another version of tiny's training engine"):
        sweep.resume_sweep(runs.Run(path), runs_root=runs_dir)
    assert json.loads((path / "run.json").read_text()) == older
    assert sorted(p.name for p in (path / "chunks").iterdir()) == kept
    (path / "run.json").write_text(meta_text)

    resumed = subprocess.run(
        [sys.executable, "-m", "tiny_cli", "sweep", "--resume", path.name],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((path / "run.json").read_text())["status"] == "completed"
    data = torch.load(path / "sweep.pt", weights_only=True)
    overrides = [("train.epochs", 200, "t"), ("train.batch_size", 4, "t")]
    points = config.grid_points("is_even", overrides, config.parse_grid(["train.lr=0.01,0.05"]))
    for point, stored in zip(points, data["points"], strict=True):
        fresh = sweep.run_point(point, range(30), chunk=4)  # other chunks: the same seeds
        for key, value in fresh.params.items():
            assert torch.equal(stored["params"][key], value), key
        assert torch.equal(stored["outcome"], fresh.outcome)


def test_a_run_killed_with_sigkill_is_stale_and_resumes_bit_identical(tmp_path: Path) -> None:
    """SIGKILL leaves `running` in run.json: `tiny runs` and `inspect` say stale (exit 1);
    `tiny train --resume` continues from the last checkpoint (the killed process's lock
    died with it) and ends with the weights of a run that never stopped, and one event file
    with each epoch once (what the killed run logged after its checkpoint is not repeated)."""
    from tiny_cli import config
    from tiny_cli.app import experiment
    from tiny_cli.train import engine

    runs_dir = tmp_path / "runs"
    env = {**os.environ, "TINY_RUNS_DIR": str(runs_dir), "PYTHONPATH": str(REPO)}
    # mini-batches (the resumed run must restore the shuffling too) of 4 of is_even's 8
    # integers of 3 bits; the first checkpoint is written at epoch 1000
    sets = ["--epochs", "1500", "--set", "train.batch_size=4", "--set", "task.bits=3"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tiny_cli", "train", "is_even", *sets],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(runs_dir, "*/checkpoint.pt")
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    (run,) = runs_dir.iterdir()
    assert json.loads((run / "run.json").read_text())["status"] == "running"
    assert (run / ".lock").is_file()  # held by the killed process: released by its death
    meta_before = (run / "run.json").read_bytes()
    saved = (run / "checkpoint.pt").read_bytes()

    def tiny(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tiny_cli", *args],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    assert "stale" in tiny("runs").stdout
    inspected = tiny("inspect", run.name)
    assert inspected.returncode == 1 and "stale" in inspected.stderr
    assert "--resume" in inspected.stderr
    # a checkpoint from an earlier engine (no "engine" key): one line, nothing touched
    older = torch.load(run / "checkpoint.pt", weights_only=True)
    del older["engine"]
    torch.save(older, run / "checkpoint.pt")
    older_bytes = (run / "checkpoint.pt").read_bytes()
    stopped_cfg = config.load(str(run / "config.yaml"))[0]
    with pytest.raises(runs.RunProblem, match=r"checkpoint\.pt: written by another version"):
        experiment.run_experiment(stopped_cfg, runs_root=runs_dir, resume=runs.Run(run))
    assert (run / "run.json").read_bytes() == meta_before
    assert (run / "checkpoint.pt").read_bytes() == older_bytes
    (run / "checkpoint.pt").write_bytes(saved)
    resumed = tiny("train", "--resume", run.name)
    assert resumed.returncode == 0, resumed.stderr
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "completed" and meta["epochs_done"] == 1500 and meta["reason"] == ""
    assert not (run / "checkpoint.pt").exists()
    (events,) = run.glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("metrics/loss")] == list(range(1501))
    overrides = [("train.epochs", 1500, "t"), ("train.batch_size", 4, "t"), ("task.bits", 3, "t")]
    cfg, _ = config.load("is_even", overrides)
    x, y = cfg.task.data()
    never_stopped = engine.fit(cfg, [0], x, y)
    state = torch.load(run / "model.pt", weights_only=True)
    for key, value in never_stopped.params.items():
        assert torch.equal(state[key], value[0]), key
    again = tiny("train", "--resume", run.name)
    assert again.returncode == 2 and "complete" in again.stderr


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 400 KiB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()[:80]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_fails_the_run_cleanly(small_disk: Path, tmp_path: Path) -> None:
    """The disk fills mid-run: one line, exit 1, run.json says failed with the reason, no
    temporary file left, the event file ends on a whole record, the last checkpoint kept."""
    runs_dir = small_disk / "runs"
    env = {**os.environ, "TINY_RUNS_DIR": str(runs_dir), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "tiny_cli", "train", "is_even"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], proc.stderr
    (run,) = runs_dir.iterdir()
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "failed" and "No space left" in meta["reason"]
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    assert (run / "checkpoint.pt").is_file() or (run / "model.pt").is_file()
    (events,) = run.glob("events.out.tfevents.*")
    data = events.read_bytes()
    offset = records = 0
    while offset < len(data):  # TFRecord framing: length, its crc, the record, its crc
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        offset += 8 + 4 + length + 4
        records += 1
    assert offset == len(data) and records > 2  # ends on a whole record


def test_sigterm_while_a_big_domain_is_evaluated_stops_the_run_promptly(tmp_path: Path) -> None:
    """`tiny hardwire is_even --bits 22` spends seconds evaluating 2^22 integers (in chunks
    of 2^20) and more: a SIGTERM then ends it at the next chunk, interrupted, in one line
    (exit 130)."""
    runs_dir = tmp_path / "runs"
    env = {**os.environ, "TINY_RUNS_DIR": str(runs_dir), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tiny_cli", "hardwire", "is_even", "--bits", "22"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(runs_dir, "*/events.out.tfevents.*")
        time.sleep(0.5)  # into the evaluation
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err
    assert "signal" in err and "traceback" not in err  # asked for: nothing to debug
    (run,) = runs_dir.iterdir()
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "interrupted" and "signal" in meta["reason"]


def test_a_checkpoint_of_another_shape_is_one_line_not_a_crash(
    cli: CLI, runs_dir: Path, make: Make
) -> None:
    run = make("hardwire", "lt10")
    torch.save({"0.weight": torch.zeros(3, 3), "0.bias": torch.zeros(3)}, run / "model.pt")
    for command in ("inspect", "export"):
        shown = cli(command, run.name)
        lines = shown.stderr.strip().splitlines()
        assert shown.returncode == 1 and len(lines) == 1, shown.stderr
        assert "does not match its config" in lines[0] and "internal error" not in lines[0]
