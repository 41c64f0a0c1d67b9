"""This process's sidecar (`tiny_cli.sidecar`), which draws a run's pictures and builds its
read-out: started once, by `tiny train` and `tiny hardwire` before anything imports torch,
and closed by the CLI's `main` when the command is done."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tiny_cli.sidecar import Sidecar

_STARTED: list[Sidecar] = []  # this process's sidecar, once started


def start() -> Sidecar:
    """The sidecar, started on the first call. It is started before validating a config
    (which may import torch), so that its own imports (matplotlib, sympy) run beside
    torch's on the other core."""
    if not _STARTED:
        from tiny_cli.sidecar import Sidecar

        _STARTED.append(Sidecar(readout=True))
    return _STARTED[0]


def close() -> None:
    """Stop the sidecar, if one was started; a later `start` in this process starts anew."""
    for side in _STARTED:
        side.close()
    _STARTED.clear()
