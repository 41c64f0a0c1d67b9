"""One process at a time trains a run or a sweep: an OS advisory lock on `.lock` in its
directory, held while it trains, resumes or finishes.

The lock is `flock` on an open file, so the operating system drops it when the process
ends, however it ends (SIGKILL and the OOM killer included): a dead process never leaves a
lock behind, and the file itself stays (removing it could let two processes lock two
different files of one name). The descriptor is not inherited by the processes tiny starts
(the sidecar, Dask's workers), so none of them can keep a run locked. Where there is no
`fcntl` (Windows), nothing is locked.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from tiny_cli.errors import TinyError
from tiny_cli.store.files import Run

LOCK = ".lock"

try:
    import fcntl
except ImportError:  # pragma: no cover (not on POSIX)
    fcntl = None  # type: ignore[assignment]


class Busy(TinyError):
    """The run or sweep is being trained by another process (a user's mistake: exit 2)."""


@contextlib.contextmanager
def hold(run: Run, what: str = "run") -> Iterator[None]:
    """Hold `run`'s lock for the block; `Busy` (one line naming the run and the process that
    holds it) if another process does."""
    if fcntl is None:
        yield
        return
    try:
        fd = os.open(run.path / LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        raise TinyError(f"{what} {run.id}: cannot lock it ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"{what} {run.id}: being trained by another process{_holder(fd)}") from None
        except OSError:  # a file system without locks (some network ones): as without fcntl
            pass
        else:
            with contextlib.suppress(OSError):  # who holds it, for the message above
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    """` (pid N)` of the process holding the lock, as it wrote it; empty if unknown."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {text})" if text.isdigit() else ""
