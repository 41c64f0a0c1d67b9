"""What the command families share on the way in: the help format (`Command`) and the
`Annotated` options that more than one command takes."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from tiny_cli.errors import TinyError, echo_path


@contextlib.contextmanager
def _help_as_text(command: Any, params: list[Any]) -> Iterator[None]:
    """While help is drawn: the command's and its parameters' help texts escaped, so rich
    shows them as they are written (`pip install -e '.[dask]'` keeps its `[dask]`, which
    rich would take for markup and drop). Restored after: the texts stay as written."""
    holders = [command, *params]
    kept = [getattr(h, "help", None) for h in holders]
    for holder, text in zip(holders, kept, strict=True):
        if text:
            holder.help = escape(text)
    try:
        yield
    finally:
        for holder, text in zip(holders, kept, strict=True):
            holder.help = text


class Group(typer.core.TyperGroup):
    """`tiny --help`: the command table, its texts (and each command's) never read as markup."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        with _help_as_text(self, [*self.get_params(ctx), *self.commands.values()]):
            super().format_help(ctx, formatter)


class Command(typer.core.TyperCommand):
    """Help without typer's type tags: no `<bool>` after a flag, no `<str>` or `<list[str]>`
    after an argument, and a usage line of plain metavars (`RUN RUN...`, not `{RUN...}...`);
    its texts are shown as written, never read as rich markup (`_help_as_text`)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        with _help_as_text(self, self.get_params(ctx)):
            super().format_help(ctx, formatter)

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)
        for param in params:
            if isinstance(param, typer.core.TyperArgument):
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
            elif getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, typer.core.TyperArgument):
                name = param.metavar or (param.name or "").upper()
                pieces.append(name if param.required else f"[{name}]")
        return pieces


def _runs_dir(value: str) -> Path:
    """`--runs-dir` (or $TINY_RUNS_DIR): `~` expands; an empty path is a mistake, not `.`."""
    if not value.strip():
        raise TinyError(f"--runs-dir {value!r}: an empty path; give a directory (default ./runs)")
    return Path(value).expanduser()


_KINDS = [
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
]


def output_file(value: str) -> Path:
    """An output file (`report -o`): the file it names, through symbolic links, so a link
    stays a link and its target gets the new content; a directory, a device, a FIFO or a
    socket (as root, `-o /dev/stdout` would be replaced by a file), an empty path or a
    missing directory is one line and exit 2."""
    shown = f"--output {echo_path(value)}"
    if not value.strip():
        raise TinyError(f"--output {value!r}: an empty path; give a file name")
    path = Path(value).expanduser()
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise TinyError(f"{shown}: cannot be used ({exc.strerror})") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise TinyError(f"{shown}: a directory; give a file name in it")
    if info is not None and not stat.S_ISREG(info.st_mode):
        kind = next((k for test, k in _KINDS if test(info.st_mode)), "not a regular file")
        raise TinyError(f"{shown}: {kind}, not a regular file; give a file name")
    target = Path(os.path.realpath(path))
    if not target.parent.is_dir():
        raise TinyError(f"{shown}: no directory {echo_path(target.parent)} to write it in")
    return target


RunsDir = Annotated[
    Path | None,
    typer.Option(
        "--runs-dir",
        metavar="DIR",
        envvar="TINY_RUNS_DIR",
        parser=_runs_dir,
        help="Where runs are stored (default: ./runs).",
        show_default=False,
    ),
]
Precision = Annotated[
    int,
    typer.Option(
        "--precision", metavar="N", min=0, max=17, help="Decimals shown for parameters (8 = full)."
    ),
]
MetricsPrecision = Annotated[
    int | None,
    typer.Option(
        "--precision",
        metavar="N",
        min=0,
        max=17,
        help="Decimals shown for parameters (default 2) and metrics (default 4); 8 = full.",
        show_default=False,
    ),
]
Sets = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", metavar="KEY.PATH=VALUE", help="Override any config key (repeatable)."
    ),
]
Device = Annotated[
    str,
    typer.Option(
        "--device", metavar="DEVICE", help="auto (a GPU if present, else CPU), cpu, cuda, cuda:N."
    ),
]
Epochs = Annotated[int | None, typer.Option(metavar="N", help="Override train.epochs.")]
Lr = Annotated[float | None, typer.Option(metavar="LR", help="Override train.lr.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
_CONFIG_HELP = "A shipped config (lt10, min, is_even, ...: see tiny tasks) or a YAML file."
ConfigArg = Annotated[str, typer.Argument(metavar="NAME|PATH", help=_CONFIG_HELP)]
# train and sweep: a config, or --from / --resume instead
OptionalConfigArg = Annotated[
    str | None, typer.Argument(metavar="NAME|PATH", help=_CONFIG_HELP, show_default=False)
]
