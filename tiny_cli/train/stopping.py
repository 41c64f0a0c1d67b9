"""Signals as requests to stop: the first Ctrl-C or SIGTERM asks the work to stop at its next
safe point (before the next mini-batch, chunk or run); a second Ctrl-C aborts at once."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from typing import Any

from tiny_cli.errors import Stopped as Stopped  # raised where work sees a stop request


class StopFlag:
    def __init__(self) -> None:
        self.signal: int | None = None
        self.count = 0  # signals received

    def __call__(self) -> bool:
        return self.signal is not None

    def handle(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    def from_now(self) -> Callable[[], bool]:
        """A stop request made after this call: the work after a stopped phase (evaluating
        a net whose training was stopped) still runs, unless asked to stop again."""
        seen = self.count
        return lambda: self.count > seen


@contextlib.contextmanager
def catch_signals(flag: StopFlag) -> Iterator[StopFlag]:
    """SIGINT and SIGTERM set `flag` while the block runs; the old handlers come back after."""
    previous = {s: signal.signal(s, flag.handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
