"""A helper process for the work of a run that needs no torch: pictures and the read-out.

`tiny train` and `tiny hardwire` spend most of a short run importing torch on one core
while the other idles, and importing matplotlib and sympy would come on top (the README's
"A sidecar process" has the figures).
So before the CLI imports torch it starts this process (a `python -c` running `_serve`),
which imports them on the second core, then draws each picture and builds the read-out
while the run goes on: a picture costs training nothing, and `tiny hardwire lt10` costs
little more than `import torch`.

Work is a call to one of `JOBS` (module:function, arguments picklable, numpy and plain
data: nothing here imports torch) and comes back as a `Pending`. Anything that goes wrong
with the process (it cannot start, it dies, it answers garbage, TINY_SIDECAR=0) makes the
calls run in this process instead: the same functions, the same results, only slower.

The child (`_serve`) reads calls from stdin and answers on its own copy of stdout (its fd 1 is then
pointed at stderr, so a stray print cannot corrupt the stream). It ignores SIGINT and SIGTERM
(Ctrl-C, or a `timeout` that signals the whole process group, is the parent's to handle),
exits when stdin closes, and a watchdog thread ends it within PARENT_POLL seconds of its
parent's death, whatever job it is in the middle of (a parent killed with SIGKILL while the
child builds a read-out included).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import IO, Any

# What the child may be asked to run, by name: nothing else is ever imported or called.
JOBS = {
    "picture": "tiny_cli.show.plots:render",
    "units": "tiny_cli.show.unitplot:draw",
    "task_picture": "tiny_cli.show.taskplot:draw",
    "readout": "tiny_cli.read.readout:read_dict",
}
# Imported by the child before it waits for work (in parallel with the parent's torch).
WARM = ("numpy", "matplotlib.figure", "matplotlib.backends.backend_agg", "PIL.Image")
WARM_READOUT = ("sympy", "tiny_cli.read.readout")

WAIT_POLL = 0.1  # seconds between a waiting `result`'s looks at its stop request
PARENT_POLL = 0.25  # seconds between the child's checks that its parent is alive
_PARENT = "TINY_SIDECAR_PARENT"  # the parent's pid, in the child's environment
_HEADER = struct.Struct("<Q")
# `python -c` puts the working directory first on sys.path: a `numpy.py` there must not
# become the child's numpy.
_BOOT = (
    "import sys; sys.path = [p for p in sys.path if p not in ('', '.')]; "
    "from tiny_cli.sidecar import _serve; _serve(sys.argv[1:])"
)


def _job(name: str) -> Callable[..., Any]:
    module, _, function = JOBS[name].partition(":")
    return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]


def _send(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    """The next message, or EOFError when the other side is gone."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


class Pending:
    """A call's result, now or later (`result` waits, re-raising the call's error)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        return self._event.is_set()

    def _set(self, value: Any = None, error: BaseException | None = None) -> None:
        self._value, self._error = value, error
        self._event.set()

    def result(self, waiting: Callable[[], None] | None = None) -> Any:
        """The value (or the call's error). `waiting` is called every WAIT_POLL seconds
        until then: what it raises (a stop request) ends the wait, the call going on."""
        if waiting is None:
            self._event.wait()
        while not self._event.wait(WAIT_POLL):
            waiting()  # type: ignore[misc]
        if self._error is not None:
            raise self._error
        return self._value


class SidecarError(RuntimeError):
    """A call that failed in the child: its exception type, message and traceback."""


class Sidecar:
    """The parent's handle: `call(job, *args)` -> Pending; `close()` when done.

    Calls are answered in order. After the process fails, calls run here instead."""

    def __init__(self, readout: bool = False, spawn: bool = True) -> None:
        self._lock = threading.Lock()
        self._sending = threading.Lock()
        self._waiting: dict[int, tuple[Pending, str, tuple[Any, ...]]] = {}
        self._next = 0
        self._closing = False
        self._proc: subprocess.Popen[bytes] | None = None
        if not spawn or os.environ.get("TINY_SIDECAR", "1") == "0":
            return
        warm = WARM + (WARM_READOUT if readout else ())
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, *warm],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": _pythonpath(), _PARENT: str(os.getpid())},
            )
        except OSError:
            self._proc = None
            return
        self._reader = threading.Thread(target=self._read, name="tiny-sidecar", daemon=True)
        self._reader.start()

    @property
    def alive(self) -> bool:
        return self._proc is not None

    def call(self, job: str, *args: Any) -> Pending:
        pending = Pending()
        with self._lock:  # (never held while writing: see `_sending`)
            proc = self._proc
            if proc is not None:
                ticket = self._next
                self._next += 1
                self._waiting[ticket] = (pending, job, args)
        if proc is None:
            _run_here(pending, job, args)
            return pending
        try:
            # A write blocks while the child's stdin pipe is full, which lasts until the child
            # has written its answers and the reader has taken them: the reader must not wait
            # for anything this thread holds meanwhile, hence a lock of its own for writing.
            with self._sending:
                assert proc.stdin is not None
                _send(proc.stdin, (ticket, job, args))
        except (OSError, ValueError, pickle.PicklingError):
            with self._lock:
                mine = self._waiting.pop(ticket, None) is not None
                self._give_up_locked()
            if mine:  # (else the reader, finding the child gone, ran it here already)
                _run_here(pending, job, args)
        return pending

    def _read(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        try:
            while True:
                ticket, ok, value = _receive(proc.stdout)
                with self._lock:
                    pending, job, _ = self._waiting.pop(ticket)
                pending._set(value) if ok else pending._set(error=SidecarError(value))
        except Exception:  # EOF, a dead child, garbage: finish what is left here
            with self._lock:
                left = list(self._waiting.values())
                self._waiting.clear()
                self._give_up_locked()
                closing = self._closing
            for pending, job, args in left:
                if closing:
                    pending._set(error=SidecarError(f"{job}: not done (the sidecar was closed)"))
                else:
                    _run_here(pending, job, args)

    def _give_up_locked(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop(proc)

    def close(self) -> None:
        """Stop the child now (it keeps nothing: a command refused before any call does not
        wait for its imports, nor one stopped by a signal for a read-out it no longer
        wants); unanswered calls end with a SidecarError, not done here."""
        with self._lock:
            proc = self._proc
            self._closing = True
        if proc is None:
            return
        _stop(proc)
        self._reader.join(timeout=10)

    def __enter__(self) -> Sidecar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        if proc.stdin is not None:
            proc.stdin.close()
    except OSError:
        pass
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _run_here(pending: Pending, job: str, args: tuple[Any, ...]) -> None:
    try:
        pending._set(_job(job)(*args))
    except Exception as exc:
        pending._set(error=exc)


def _pythonpath() -> str:
    """This package's parent first, so the child runs the same tiny_cli as the parent."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rest = os.environ.get("PYTHONPATH", "")
    return here + (os.pathsep + rest if rest else "")


def local() -> Sidecar:
    """A handle that runs every call in this process (no child)."""
    return Sidecar(spawn=False)


def _watch_parent(parent: int) -> None:
    """End this process (at once: no cleanup to wait for) once `parent` is gone: the child
    is then someone else's (init's, or a subreaper's)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL)
    os._exit(0)


def _serve(warm: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = int(os.environ.get(_PARENT) or os.getppid())
    threading.Thread(target=_watch_parent, args=(parent,), name="parent", daemon=True).start()
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print goes to stderr (devnull), not into the answers
    inp = sys.stdin.buffer
    for name in warm:
        with contextlib.suppress(Exception):  # the call that needs it will say what is wrong
            importlib.import_module(name)
    while True:
        try:
            ticket, job, args = _receive(inp)
        except EOFError:
            return
        try:
            message = (ticket, True, _job(job)(*args))
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
            message = (ticket, False, text)
        _send(out, message)
