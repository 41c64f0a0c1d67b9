"""What the command families share on the way out: the two consoles, the progress bar, the
`saved in` line, JSON on stdout, the one-line failure of a run that cannot be read whole, and
the streams themselves (`guard_streams`): output that cannot be written is one line (a closed
pipe a quiet exit), an unwritable stderr never changes an exit code, and text falls back to
what the terminal can encode."""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.text import Text

from tiny_cli.errors import one_line, printable
from tiny_cli.show import progress

MIN_WIDTH = 40  # a narrower terminal (COLUMNS=1, COLUMNS=0) is drawn 40 wide, ids whole


class SafeConsole(Console):
    """A console that shows text as data: whatever a view built from names on disk, configs
    or plugins, a control character in it (an escape sequence, BEL, a bidi override) reaches
    the terminal as a visible escape (`\\x1b`), never as itself. Views escape their text
    where they build it (`printable`), so that widths are right; this is the net under them.
    Nothing is cropped at the console's width: a table wider than a narrow terminal wraps
    there, its ids whole."""

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            shown = segment.text if segment.control else printable(segment.text)
            yield segment if shown == segment.text else Segment(shown, segment.style)

    def print(self, *objects: Any, crop: bool = False, **kwargs: Any) -> None:
        super().print(*objects, crop=crop, **kwargs)


def _isatty(stream: Any) -> bool:
    return stream is not None and stream.isatty()


def _stdout_console() -> SafeConsole:
    # Piped output (files, CI logs) is not squeezed into 80 columns.
    out = SafeConsole(highlight=False, width=None if _isatty(sys.stdout) else 160)
    if out.width < MIN_WIDTH:
        out.width = MIN_WIDTH
    return out


console = _stdout_console()
# Progress bars only on a terminal: piped, rich would still leave a blank line behind.
err_console = SafeConsole(stderr=True, highlight=False, quiet=not _isatty(sys.stderr))

STALE = (
    "run {id} is stale: its process is gone without marking it finished (killed?); "
    "tiny train --resume {id} continues it"
)


class ProgressBar(progress.ProgressBar):
    """The commands' progress bar, on stderr (drawn only on a terminal)."""

    console = err_console


def saved(what: str, run_id: str, path: Path) -> Text:
    """`run <id> saved in <path>`: the path as text, never as markup."""
    return Text.assemble(f"{what} ", (one_line(run_id), "bold cyan"), one_line(f" saved in {path}"))


def dump(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


def fail(problems: list[str]) -> None:
    """A run that cannot be read whole: one line on stderr (what could be read is shown on
    stdout), exit code 1."""
    if problems:
        say(f"error: {'; '.join(problems)}")
        raise typer.Exit(1)


# --- the streams ------------------------------------------------------------------------

# What an ASCII-only terminal shows for the few non-ASCII characters tiny writes itself;
# anything else (a name from disk) becomes a visible escape, `\xe9`.
_ASCII = {
    "\u00b1": "+-",  # plus-minus
    "\u2026": "...",  # ellipsis
    "\u2588": "#",  # full block (a histogram's bar)
    "\u2014": "-",  # em dash
    "\u2013": "-",  # en dash
    "\u2264": "<=",
    "\u2265": ">=",
    "\u00d7": "x",  # multiplication sign
}


def _ascii_fallback(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    bad = error.object[error.start : error.end]
    shown = "".join(_ASCII.get(ch) or ch.encode("ascii", "backslashreplace").decode() for ch in bad)
    return shown, error.end


codecs.register_error("tiny-fallback", _ascii_fallback)


class OutputFailed(Exception):
    """Standard output cannot be written (a full disk, a closed pipe, a bad descriptor)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error.strerror or str(error))
        self.error = error


class _Stdout:
    """sys.stdout as tiny writes it: a failed write or flush is `OutputFailed`, which
    `cli.main` turns into one line, not an OSError from somewhere in a command."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except OSError as exc:
            raise OutputFailed(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise OutputFailed(exc) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Stderr(_Stdout):
    """sys.stderr as tiny writes it: what cannot be written there is dropped, so that the
    exit code says what happened even when the message cannot."""

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except (OSError, ValueError):
            return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()


def _fallback(stream: Any) -> None:
    """Characters the stream's encoding lacks (an ASCII-only locale; a file name's undecodable
    bytes, even in UTF-8) fall back, not fail."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="tiny-fallback")


def guard_streams() -> bool:
    """Make the standard streams safe for one command (`cli.main`); False when stdout is
    closed, where every command's results would go. A closed stderr is /dev/null, so that
    no file tiny opens takes its descriptor."""
    if sys.stderr is None:
        _null_onto(2)
        sys.stderr = os.fdopen(2, "w", buffering=1)
    _fallback(sys.stderr)
    if not isinstance(sys.stderr, _Stderr):
        sys.stderr = _Stderr(sys.stderr)
    if sys.stdout is None:
        _null_onto(1)
        return False
    _fallback(sys.stdout)
    if not isinstance(sys.stdout, _Stdout):
        sys.stdout = _Stdout(sys.stdout)
    return True


def _null_onto(fd: int) -> None:
    null = os.open(os.devnull, os.O_WRONLY)
    if null != fd:
        os.dup2(null, fd)
        os.close(null)


def say(line: str) -> None:
    """One line on stderr, made safe (`one_line`); dropped if stderr cannot take it."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(f"{one_line(line)}\n")
        stream.flush()
    except (OSError, ValueError):
        pass


def output_failed(exc: OutputFailed) -> int:
    """The exit code of output that could not be written, its line said: a closed pipe
    (`tiny runs | head -1`) exits quietly. What is still buffered goes to /dev/null."""
    import errno

    if exc.error.errno != errno.EPIPE:
        say(f"error: cannot write the output to stdout ({exc})")
    stream = sys.stdout
    try:
        fd = stream.fileno() if stream is not None else 1
    except (OSError, ValueError):
        fd = 1
    _null_onto(fd)
    return 1
