"""What the command families share on the way out: the two consoles, the progress bar, the
`saved in` line, JSON on stdout, and the one-line failure of a run that cannot be read whole."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.text import Text

from tiny_cli.errors import one_line

if TYPE_CHECKING:
    from tiny_cli.store.tracking import EpochStats

# Piped output (files, CI logs) is not squeezed into 80 columns.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
# Progress bars only on a terminal: piped, rich would still leave a blank line behind.
err_console = Console(stderr=True, highlight=False, quiet=not sys.stderr.isatty())

STALE = (
    "run {id} is stale: its process is gone without marking it finished (killed?); "
    "tiny train --resume {id} continues it"
)


class ProgressBar:
    """One rich progress bar for training (epochs, with the loss) and sweeps (seed-epochs),
    redrawn at most 20 times a second."""

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
            console=err_console,
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


def saved(what: str, run_id: str, path: Path) -> Text:
    """`run <id> saved in <path>`: the path as text, never as markup."""
    return Text.assemble(f"{what} ", (run_id, "bold cyan"), f" saved in {path}")


def dump(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


def fail(problems: list[str]) -> None:
    """A run that cannot be read whole: one line on stderr (what could be read is shown on
    stdout), exit code 1."""
    if problems:
        sys.stderr.write(f"error: {one_line('; '.join(problems))}\n")
        raise typer.Exit(1)
