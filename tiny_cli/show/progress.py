"""The progress bar of a run (epochs, with the loss) and a sweep (seed-epochs): rich's, so it
draws in a terminal and, as a widget, in a Jupyter notebook (the CLI draws it on stderr,
cli/output.py; the Python API on the default console, tiny_cli/api.py)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:
    from tiny_cli.store.tracking import EpochStats


class ProgressBar:
    """One rich progress bar for training (epochs, with the loss) and sweeps (seed-epochs),
    redrawn at most 20 times a second. `console`: where it draws (a subclass sets it;
    the default console finds a terminal or a Jupyter notebook itself)."""

    console: Console | None = None

    def __init__(self, label: str, total: int | None, unit: str) -> None:
        """`total` None: work with no count (a hardwired net evaluated on its domain), shown
        as a pulsing bar with the time it takes, not as a frozen 0/0."""
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} " + unit + "{task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        if total is None:
            self.progress.columns = (
                TextColumn(f"[bold]{label}[/] the net on its domain"),
                BarColumn(),
                TimeElapsedColumn(),
            )
        self.task = self.progress.add_task(
            label, total=None if total is None else max(total, 1), loss=""
        )
        self.done = 0
        self._next = 0.0

    def _show(self, **fields: Any) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + 0.05
            self.progress.update(self.task, completed=self.done, **fields)

    def advance(self, count: int) -> None:
        """A sweep's progress: `count` more seed-epochs done."""
        self.done += count
        self._show()

    def note(self, text: str) -> None:
        """A sweep's state after its counts (a cluster's workers and chunks in flight)."""
        self.progress.update(self.task, loss=text)

    def __call__(self, stats: EpochStats) -> None:
        """A run's progress: its epoch and loss."""
        self.done = stats.epoch
        self._show(loss=f"  loss {stats.loss:.4g}")

    def __enter__(self) -> ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
