"""`tiny board`: TensorBoard on the runs directory, bound to localhost, stopped by Ctrl-C.

TensorBoard runs as a child process (`python -m tensorboard.main`, the same interpreter), so
it needs no program on PATH and its own start-up time does not slow the other commands.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from tiny_cli.errors import TinyError, printable

HOST = "127.0.0.1"
IMAGES = 100  # pictures kept per run and tag

# What TensorBoard says on start-up that is no news to a tiny user: it needs no TensorFlow,
# and `tiny board` prints the URL itself once TensorBoard answers.
NOISE = (
    "TensorFlow installation not found",
    "running with reduced feature set",
    "(Press CTRL+C to quit)",
    "Serving TensorBoard on localhost",
    "to expose to the network",
    "NOTE: Using experimental fast data loading logic",
    "--load_fast=false",
    "tensorboard/issues/4784",
)


def is_noise(line: str) -> bool:
    return not line.strip() or any(marker in line for marker in NOISE)


def forward(lines: Iterable[str], write: Callable[[str], object]) -> None:
    """Pass TensorBoard's output on, without its start-up noise (warnings and errors stay)."""
    for line in lines:
        if not is_noise(line):
            write(line)


def pick_port(port: int) -> int:
    """`port` if it is free on 127.0.0.1; 0 -> a free port chosen by the system."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            raise TinyError(
                f"--port {port}: already in use on {HOST} (choose another, or --port 0 for any)"
            ) from None
        chosen: int = sock.getsockname()[1]
        return chosen


def command(logdir: Path, port: int) -> list[str]:
    from tiny_cli.spec.sections import MAX_EPOCHS

    scalars = MAX_EPOCHS + 1  # a run logs at most one point per epoch, and epoch 0
    return [
        sys.executable, "-m", "tensorboard.main",
        "--logdir", str(logdir), "--host", HOST, "--port", str(port),
        # Every logged point of a scalar: TensorBoard's default serves a sample of 1,000, so a
        # 2,001-epoch trajectory came back as steps 0, 3, 4, 10, ... (0 is no "all" here: the
        # scalars plugin would serve none). And every picture of a run, not a sample of 10.
        "--samples_per_plugin", f"scalars={scalars},images={IMAGES}",
    ]  # fmt: skip


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "data/runs", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """Ctrl-C and SIGTERM stop the board, so TensorBoard is never left behind. SIGINT is set
    explicitly: a process started in the background inherits it ignored."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _stop(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C first (TensorBoard exits on it), then SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    for escalate in (proc.terminate, proc.kill):
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            escalate()
    proc.wait()


def serve(logdir: Path, port: int, announce: Callable[[str], None]) -> int:
    """Run TensorBoard on `logdir` until it exits or Ctrl-C; `announce(url)` once it answers.

    Returns 0 after Ctrl-C, else TensorBoard's own exit code.
    """
    if not logdir.is_dir():
        raise TinyError(
            f"{logdir}: no such runs directory (train or hardwire a net first, or give --runs-dir)"
        )
    port = pick_port(port)
    url = f"http://{HOST}:{port}/"
    with _signals_as_interrupt():
        proc = subprocess.Popen(
            command(logdir, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None
        relay = threading.Thread(
            target=forward, args=(proc.stdout, _write_stderr), daemon=True, name="tensorboard"
        )
        relay.start()
        try:
            while proc.poll() is None and not _answers(url):
                time.sleep(0.2)
            if proc.poll() is None:
                announce(url)
            return proc.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            _stop(proc)
            relay.join(timeout=5)


def _write_stderr(line: str) -> None:
    sys.stderr.write(printable(line))
    sys.stderr.flush()
