"""The `tiny` command line: the typer app, its command table, and the entry points that turn
what goes wrong into one line and an exit code.

Each command lives in the module of its family (`train`, `sweep`, `inspect`, `listing`):
it parses its options, calls one function of `tiny_cli.app` (or reads a stored run), and
renders. torch is imported inside the commands, so `tiny --help` and `tiny --version` stay
fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from tiny_cli import __version__
from tiny_cli.app import painter
from tiny_cli.cli import inspect, listing, output, reproduce, sweep, train
from tiny_cli.cli.options import Command, Group
from tiny_cli.cli.output import console
from tiny_cli.errors import TinyError

app = typer.Typer(
    name="tiny",
    help="A lab for tiny neural networks that represent basic functions: "
    "train or hardwire the article's nets, log them to TensorBoard, inspect what they learned.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=Group,
)

# The commands, in the order `tiny --help` lists them.
COMMANDS: list[tuple[str, Callable[..., None]]] = [
    ("train", train.train),
    ("hardwire", train.hardwire),
    ("sweep", sweep.sweep),
    ("inspect", inspect.inspect),
    ("export", inspect.export),
    ("compare", inspect.compare),
    ("tasks", listing.list_tasks),
    ("runs", listing.list_runs),
    ("board", listing.board),
    ("report", listing.report),
    ("reproduce", reproduce.reproduce),
]
for _name, _command in COMMANDS:
    app.command(_name, cls=Command)(_command)


def _version(value: bool) -> None:
    if value:
        console.print(f"tiny {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Run `tiny COMMAND --help` for a command's options."""


def main() -> None:
    """Entry point: user mistakes become one line on stderr and exit code 2; output that
    cannot be written is one line (a closed pipe, none) and exit code 1."""
    if not output.guard_streams():
        output.say("error: stdout is closed; tiny writes its results there (>/dev/null drops them)")
        sys.exit(1)
    try:
        code = _dispatch()
    finally:
        painter.close()  # (a second `main` in this process starts its own sidecar)
    sys.exit(code)


def _dispatch() -> int:
    """The command's exit code, what went wrong said in one line."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=sys.argv[1:], prog_name="tiny", standalone_mode=False)
        sys.stdout.flush()
    except output.OutputFailed as exc:
        return output.output_failed(exc)
    except TinyError as exc:
        output.say(f"error: {exc}")
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors from the parser
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        output.say(f"error: {' '.join(message.split())}")
        return int(getattr(exc, "exit_code", 2))
    except (KeyboardInterrupt, typer.Abort):
        output.say("aborted")
        return 130
    except Exception as exc:  # a bug of ours: one line, the traceback only on request
        if os.environ.get("TINY_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        output.say(
            f"internal error: {type(exc).__name__}: {first} (TINY_DEBUG=1 shows the traceback)"
        )
        return 1
    return code if isinstance(code, int) else 0


def run() -> None:
    """The `tiny` command (and `python -m tiny_cli`): `main`, then out of the process at once.

    Once a command is done everything it wrote is closed (run files are written whole and
    fsynced, the event file closed, the sidecar stopped), so what is left is the interpreter
    tearing down every module's objects one by one, a sizeable share of a short command once
    torch is imported. Output is flushed, then os._exit skips the teardown. `main` itself
    exits normally, for callers in the same process."""
    try:
        main()
        code: Any = 0
    except SystemExit as exc:
        code = exc.code
    if not isinstance(code, int):
        if code is not None:
            sys.stderr.write(f"{code}\n")
        code = 0 if code is None else 1
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError, output.OutputFailed):  # nothing more can be said
        code = code or 1
    os._exit(code)
