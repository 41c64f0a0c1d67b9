"""The one exception type the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

MAX_MESSAGE = 300  # characters of an error line, the echoed input included
MAX_ECHO = 80  # characters of one echoed value


class TinyError(Exception):
    """A mistake in the user's input (config, argument, run id): shown as one line, exit 2.

    The message is made safe on the way in (`one_line`, at most MAX_MESSAGE characters, the
    middle elided), so whatever a config or an argument contained, `str(exc)` is one line of
    plain text."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(_short(str(message)))


def _short(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` as one line of at most about `limit` characters, cut in the middle so that
    where (the start) and what (the end) stay readable."""
    line = one_line(text[: 2 * limit], limit=10 * limit)
    if len(text) <= 2 * limit and len(line) <= limit:
        return line
    head = line[: limit // 2]
    tail = one_line(text[-limit:], limit=10 * limit)[-(limit // 4) :]
    return f"{head}... ({max(1, len(text) - len(head) - len(tail))} more characters) ...{tail}"


def echo(value: Any, limit: int = MAX_ECHO) -> str:
    """A value from the input as a message shows it: repr-like (strings quoted, newlines,
    escapes and control characters escaped), one line, at most `limit` characters."""
    text = one_line(repr(value)[: 2 * limit], limit=10 * limit)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def echo_key(key: str, limit: int = MAX_ECHO) -> str:
    """A dotted key as typed when it is plain (`train.lr`), else `echo`ed."""
    plain = len(key) <= limit and all(
        part.split("[", 1)[0].isidentifier() and all(ch.isalnum() or ch in "_[]" for ch in part)
        for part in key.split(".")
    )
    return key if plain else echo(key, limit)


def echo_path(path: object, limit: int = 120) -> str:
    """A file name in a message: unquoted, control characters escaped, the end kept."""
    text = one_line(str(path)[-2 * limit :], limit=10 * limit)
    return text if len(text) <= limit else f"...{text[-(limit - 3) :]}"


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
# What a terminal would act on rather than show: C0 and C1 controls (ESC, BEL, CSI, ...),
# DEL, line separators and bidi overrides.
_SPECIALS = "\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\x00-\x1f{_SPECIALS}]")
_CONTROL_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f{_SPECIALS}]")


def _visible(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    return f"\\x{code:02x}" if code < 0xA0 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """Text from disk, a config or a plugin as data for a terminal: every control character
    (escape sequences, BEL, carriage returns, bidi overrides) shown as a visible escape
    (`\\x1b`), newlines kept. The one rule every output point applies to untrusted text."""
    return _CONTROL_BUT_NEWLINE.sub(_visible, text)


def one_line(text: str, limit: int = 500) -> str:
    """`text` safe to print as one line of a terminal: newlines, carriage returns, escape
    sequences and other control characters become visible escapes (`\\n`, `\\x1b`), and an
    absurdly long message (an echoed argument, a file's content) is cut at `limit`."""
    line = _CONTROL.sub(_visible, text)
    if len(line) > limit:
        line = f"{line[: limit - 30]}... ({len(line) - limit + 30} more characters)"
    return line


class Stopped(Exception):
    """Raised where long work (evaluating a big domain) sees a stop request (a signal)."""
