"""`tiny tasks`, `tiny runs`, `tiny board` and `tiny report`: what there is to look at, and
the two ways to look at it outside the terminal (TensorBoard, an HTML file)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from tiny_cli.cli.options import Json, Precision, RunsDir, output_file
from tiny_cli.cli.output import console, dump, fail
from tiny_cli.errors import one_line

if TYPE_CHECKING:
    pass

Wide = Annotated[bool, typer.Option("--wide", help="Full run ids and every column, however wide.")]
Port = Annotated[
    int,
    typer.Option(
        "--port",
        metavar="PORT",
        min=0,
        max=65535,
        help="Port on 127.0.0.1; 0 picks a free one.",
    ),
]
ReportRef = Annotated[
    str,
    typer.Argument(
        metavar="RUN|SWEEP", help="A run or sweep id, its short id, a unique prefix, or latest."
    ),
]
Output = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        metavar="FILE",
        parser=output_file,
        help="Where to write it (default: RUN/report.html); a link is written through.",
    ),
]


def list_tasks(as_json: Json = False) -> None:
    """List every task (built in and from plugins): parameters, default net, constructions."""
    from tiny_cli.show import render
    from tiny_cli.tasks import catalog

    entries = catalog.entries()
    if as_json:
        dump([e.as_dict() for e in entries])
        return
    console.print(render.tasks_table(entries))


def list_runs(runs_dir: RunsDir = None, as_json: Json = False, wide: Wide = False) -> None:
    """List the runs: id, task, kind, init, seed, epochs, final loss and accuracy, status, time.

    Ids are shown short (MMDD-HHMMSS of the start; see docs/runs.md); any command takes them.
    """
    from tiny_cli.show import render
    from tiny_cli.store import runs

    root = runs.root(runs_dir)
    records = runs.list_records(root)
    if as_json:
        dump([r.to_json() for r in records])
        return
    if not records:
        console.print(Text(one_line(f"no runs in {root}")))
        return
    console.print(render.runs_table(records, wide=wide))


def board(runs_dir: RunsDir = None, port: Port = 6006) -> None:
    """Start TensorBoard on the runs directory, on this machine only; Ctrl-C stops it.

    Every logged point of every scalar is served (plain TensorBoard samples 1,000), and up to
    100 pictures a run.
    """
    from tiny_cli.app.board import serve
    from tiny_cli.store import runs

    root = runs.root(runs_dir)

    def announce(url: str) -> None:
        console.print(
            Text.assemble(
                "TensorBoard for ", one_line(str(root)), " at ", (url, "bold"), " (Ctrl-C to stop)"
            )
        )

    code = serve(root, port, announce)
    if code == 0:
        console.print("TensorBoard stopped")
    raise typer.Exit(code)


def report(
    run_ref: ReportRef,
    output: Output = None,
    runs_dir: RunsDir = None,
    precision: Precision = 4,
) -> None:
    """Write one self-contained HTML file of a run or sweep to share: config, status,
    metrics, parameters, pictures, trajectories; a sweep's outcomes. Prints its path.

    A run that cannot be read whole is reported as far as it can be, with the problem on
    stderr and exit code 1.
    """
    from tiny_cli.show import report as reporting
    from tiny_cli.store import runs

    run = runs.find(runs.root(runs_dir), run_ref)
    path, problems = reporting.write(runs.read(run), output, precision)
    sys.stdout.write(f"{one_line(str(path))}\n")
    fail([f"run {run.id}: {p}" for p in problems])
