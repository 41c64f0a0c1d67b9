"""Shared fixtures: the real CLI in a subprocess, run from outside the repository, and the
same entry point in this process where a subprocess proves nothing more."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# One torch thread per test process (and the CLIs they start, which inherit it): pytest -n
# runs a worker per core, and two threads each on two cores made the suite 15% slower (the
# idle pool threads spin beside the other worker's). Tests of threading set their own.
os.environ.setdefault("OMP_NUM_THREADS", "1")
CLI = Callable[..., subprocess.CompletedProcess[str]]


def run_cli(
    *args: str, runs_dir: Path, cwd: Path, timeout: float = 300, path: Sequence[Path] = ()
) -> subprocess.CompletedProcess[str]:
    """`path`: directories put before the repository on PYTHONPATH (installed plugins)."""
    pythonpath = os.pathsep.join(str(p) for p in [*path, REPO])
    env = {**os.environ, "TINY_RUNS_DIR": str(runs_dir), "PYTHONPATH": pythonpath}
    env.pop("COLUMNS", None)
    return subprocess.run(
        [sys.executable, "-m", "tiny_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def cli(tmp_path: Path, runs_dir: Path) -> CLI:
    """`cli("train", "lt10")`: the installed command, run in an empty directory
    (`path=[dir]` puts `dir` on its PYTHONPATH too)."""
    work = tmp_path / "work"
    work.mkdir()
    return lambda *args, **kw: run_cli(*args, runs_dir=runs_dir, cwd=work, **kw)


@pytest.fixture
def cli_here(tmp_path: Path, runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> CLI:
    """`cli_here("train", "x.yaml")`: what `cli` runs, through the same dispatch as the
    installed command (`tiny_cli.cli._dispatch`: the one line, the exit code) but in this
    process, its output captured: for refusals, which stop before anything is trained."""
    from tiny_cli import cli as entry
    from tiny_cli.app import painter

    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    monkeypatch.setenv("TINY_RUNS_DIR", str(runs_dir))
    monkeypatch.delenv("COLUMNS", raising=False)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        out, err = io.StringIO(), io.StringIO()
        with monkeypatch.context() as patch:
            patch.chdir(work)
            patch.setattr(sys, "argv", ["tiny", *args])
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = entry._dispatch()
                finally:
                    painter.close()
        return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())

    return run


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """A user mistake: exit 2, one line on stderr naming what is wrong, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


Make = Callable[..., Path]


def make_run(
    runs_dir: Path, command: str, name: str, epochs: int | None = None, sets: Sequence[str] = ()
) -> Path:
    """A run stored in `runs_dir` exactly as `tiny COMMAND NAME [--epochs N] [--set K=V ...]`
    would store it, made in-process (no interpreter and torch start-up): the scene for tests
    whose subject is another command (inspect, runs, compare, report, TensorBoard)."""
    from tiny_cli import config
    from tiny_cli.app import experiment

    overrides: list[config.Override] = []
    if command == "hardwire":
        overrides = [("init.mode", "hardwired", "hardwire"), ("train.epochs", 0, "hardwire")]
    elif epochs is not None:
        overrides = [("train.epochs", epochs, f"--epochs {epochs}")]
    overrides += [config.parse_override(s) for s in sets]
    cfg, path = config.load(name, overrides)
    out = experiment.run_experiment(
        cfg, kind=command, runs_root=runs_dir, source=str(path), device="cpu"
    )
    return out.run.path


def make_sweep(
    runs_dir: Path,
    name: str,
    seeds: int,
    epochs: int | None = None,
    grid: Sequence[str] = (),
    sets: Sequence[str] = (),
    chunk: int | None = None,
) -> Path:
    """A sweep stored in `runs_dir` as `tiny sweep NAME --seeds N [--epochs E] [--grid ...]
    [--set K=V ...]` would store it (in chunks of `chunk` seeds), made in-process: the
    sweep's directory."""
    from tiny_cli import config
    from tiny_cli.app import sweep

    overrides: list[config.Override] = []
    if epochs is not None:
        overrides = [("train.epochs", epochs, f"--epochs {epochs}")]
    overrides += [config.parse_override(s) for s in sets]
    axes = config.parse_grid(list(grid))
    base, path = config.load(name, overrides)
    points = config.grid_points(name, overrides, axes)
    out = sweep.run_sweep(
        base, points, axes, range(seeds), runs_root=runs_dir, source=str(path), chunk=chunk
    )
    return out.run.path


@pytest.fixture
def make(runs_dir: Path) -> Make:
    """`make("train", "min", epochs=2)`: `make_run` into this test's runs directory."""
    return lambda *args, **kw: make_run(runs_dir, *args, **kw)


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for a parent that is gone counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def tiny_here(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[object, str, str]:
    """The real entry point, `tiny ARGS`, in this process: (exit code, stdout, stderr)."""
    from tiny_cli import cli

    monkeypatch.setattr(sys, "argv", ["tiny", *args])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    out, err = capsys.readouterr()
    return exit_.value.code, out, err
