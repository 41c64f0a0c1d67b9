"""The one exception type the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TinyError(Exception):
    """A mistake in the user's input (config, argument, run id): shown as one line, exit 2."""

    exit_code = 2


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a choice is close to `word`, else ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class RunFailed(TinyError):
    """A run that started but did not finish: already stored as failed or interrupted."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str, limit: int = 500) -> str:
    """`text` safe to print as one line of a terminal: newlines, carriage returns, escape
    sequences and other control characters become visible escapes (`\\n`, `\\x1b`), and an
    absurdly long message (an echoed argument, a file's content) is cut at `limit`."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif code in (0x2028, 0x2029) or 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069:
            out.append(f"\\u{code:04x}")  # line separators and bidi overrides
        else:
            out.append(ch)
    line = "".join(out)
    if len(line) > limit:
        line = f"{line[: limit - 30]}... ({len(line) - limit + 30} more characters)"
    return line
