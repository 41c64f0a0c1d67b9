"""What tiny writes, where it cannot be written or shown as it is: closed, full and broken
streams, unwritable stderr, terminals too narrow or ASCII-only, names from disk holding
escape sequences, and `report -o` onto what is not a regular file (through a link:
tests/test_report.py). Real subprocesses (a pty where a terminal matters): the streams are
the subject."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, assert_one_line_error, make_run

# a name from disk that would set the window title, clear the screen and break a line
HOSTILE = "\x1b]0;PWNED\x07\x1b[2J\nx\u202e"
SHOWN = "\\x1b]0;PWNED\\x07\\x1b[2J\\nx\\u202e"


def _env(runs_dir: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "TINY_RUNS_DIR": str(runs_dir), "PYTHONPATH": str(REPO), **extra}
    env.pop("COLUMNS", None)
    return env


def tiny(runs_dir: Path, *args: str, env: dict[str, str] | None = None, **kw: Any) -> Any:
    """`tiny ARGS` in a subprocess, its streams as `kw` says (text, captured by default)."""
    kw = {"capture_output": True, "text": True, **kw}
    if "stdout" in kw or "stderr" in kw:
        kw.pop("capture_output")
    return subprocess.run(
        [sys.executable, "-m", "tiny_cli", *args],
        env=env or _env(runs_dir),
        cwd=runs_dir.parent,
        timeout=120,
        **kw,
    )


def in_terminal(runs_dir: Path, *args: str, **env: str) -> tuple[int, str]:
    """`tiny ARGS` with a pty as stdout: its exit code and what the terminal got."""
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tiny_cli", *args],
        stdout=child,
        stderr=subprocess.DEVNULL,
        env=_env(runs_dir, **env),
        cwd=runs_dir.parent,
    )
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child's end closed
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    return proc.wait(timeout=60), out.decode()


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A runs directory with one run and a copy of it whose name is HOSTILE; its id."""
    runs_dir = tmp_path_factory.mktemp("output") / "runs"
    run = make_run(runs_dir, "train", "min", epochs=2)
    hostile = f"{run.name}{HOSTILE}"
    shutil.copytree(run, runs_dir / hostile)
    return runs_dir, hostile


def assert_no_controls(text: str) -> None:
    """Nothing a terminal would act on: no ESC, BEL, C1 control or bidi override."""
    bad = [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0]
    bad += [c for c in text if 0x2028 <= ord(c) <= 0x202E]
    assert not bad, (bad, text)


def test_names_from_disk_are_shown_as_data(scene: tuple[Path, str]) -> None:
    runs_dir, hostile = scene
    for args in (["runs"], ["runs", "--wide"]):  # (inspect's views: tests/test_render.py)
        proc = tiny(runs_dir, *args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert_no_controls(proc.stdout + proc.stderr)
        assert SHOWN in proc.stdout, args
    wrong = tiny(runs_dir, "inspect", hostile, "--seed", "1")  # the name in a one-line error
    assert_one_line_error(wrong, SHOWN, "is not a sweep")
    assert_no_controls(wrong.stderr)


def _fifo(where: Path) -> Path:
    os.mkfifo(where / "fifo")
    return where / "fifo"


@pytest.mark.parametrize(
    ("output", "needle"),
    [
        (lambda d: "", "an empty path"),
        (lambda d: str(d), "a directory"),
        (lambda d: os.devnull, "a character device"),
        (_fifo, "a FIFO"),
        (lambda d: str(d / "missing" / "r.html"), "no directory"),
    ],
)
def test_report_output_that_is_not_a_file_is_one_line(
    tmp_path: Path, output: Callable[[Path], Any], needle: str
) -> None:
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    path = str(output(tmp_path))
    before = sorted(tmp_path.rglob("*"))
    proc = tiny(runs_dir, "report", "latest", "-o", path)
    assert_one_line_error(proc, "--output", needle)
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, nothing replaced


def test_output_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    closed = tiny(runs_dir, "runs", preexec_fn=lambda: os.close(1))
    assert closed.returncode == 1 and closed.stdout == ""
    assert "stdout is closed" in closed.stderr and len(closed.stderr.splitlines()) == 1
    with open("/dev/full", "w") as full:
        proc = tiny(runs_dir, "runs", stdout=full, stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "error: cannot write the output to stdout (No space left on device)"
    ]
    read_end, write_end = os.pipe()
    os.close(read_end)  # `tiny runs | head -0`: a reader gone before the output
    broken = tiny(runs_dir, "runs", stdout=write_end, stderr=subprocess.PIPE, text=True)
    os.close(write_end)
    assert broken.returncode == 1 and broken.stderr == ""  # quiet, and not a success


def test_an_error_keeps_its_exit_code_when_stderr_cannot_be_written(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    with open("/dev/full", "w") as full:
        assert tiny(runs_dir, "inspect", "nosuchrun", stderr=full).returncode == 2
    assert tiny(runs_dir, "inspect", "nosuchrun", preexec_fn=lambda: os.close(2)).returncode == 2


@pytest.mark.parametrize("columns", ["1", "0"])
def test_a_narrow_terminal_still_shows_every_id_whole(
    scene: tuple[Path, str], columns: str
) -> None:
    runs_dir, hostile = scene
    code, out = in_terminal(runs_dir, "runs", COLUMNS=columns)
    assert code == 0
    plain = out.replace("\x1b[0m", "").replace("\x1b[1m", "").replace("\x1b[36m", "")
    assert hostile.split("\x1b")[0][4:15] in plain  # the short id (MMDD-HHMMSS), whole
    assert SHOWN in plain  # the copy has no short id: its name, whole and escaped


def test_an_ascii_only_terminal_gets_ascii(scene: tuple[Path, str]) -> None:
    runs_dir, _ = scene
    env = _env(runs_dir, LANG="C", LC_ALL="C", PYTHONUTF8="0")
    env.pop("PYTHONIOENCODING", None)
    shown = []
    for args in (["tasks"], ["runs"]):
        proc = tiny(runs_dir, *args, env=env, text=False)
        assert proc.returncode == 0, (args, proc.stderr)
        shown.append(proc.stdout.decode("ascii"))  # every byte ASCII
    assert "sum of +-2 ReLU" in shown[0]  # the parity construction's "±", substituted
    assert "x\\udce2\\udc80\\udcae" in shown[1]  # a name's undecodable bytes, escaped


def test_a_run_directory_whose_name_is_not_utf8_reads_whole(scene: tuple[Path, str]) -> None:
    """Bytes that are not UTF-8 in a directory name (Python keeps them as surrogates, which
    TensorBoard's event reader and an HTML page cannot encode): the read-out's loss history
    and the report's trajectories come from its events, and its report is written whole.
    In-process: what `tiny inspect` and `tiny report` call."""
    from tiny_cli.show import report
    from tiny_cli.store import runs, tracking

    runs_dir, hostile = scene
    source = runs_dir / hostile.split("\x1b")[0]
    foreign = os.fsdecode(os.fsencode(source.name) + b"-\xff")
    shutil.copytree(source, runs_dir / foreign)
    run = runs.find(runs_dir, foreign)
    assert len(tracking.scalar_history(run.path)) == 3  # epochs 0, 1, 2
    path, problems = report.write(runs.read(run), None, 4)
    assert problems == [] and path == runs_dir / foreign / "report.html"
    assert "Trajectories" in path.read_text()
