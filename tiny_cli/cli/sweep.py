"""`tiny sweep`: many seeds as batched models, here or on a Dask cluster (`app.launch`),
then the outcome table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from tiny_cli.app import launch
from tiny_cli.cli.options import Epochs, Lr, OptionalConfigArg, RunsDir, Sets
from tiny_cli.cli.output import ProgressBar, console, saved

if TYPE_CHECKING:
    from tiny_cli.app.sweep import SweepOutcome

Seeds = Annotated[
    str | None,
    typer.Option("--seeds", metavar="N|A-B", help="N: seeds 0..N-1; A-B: seeds A..B inclusive."),
]
ResumeSweep = Annotated[
    str | None,
    typer.Option(
        "--resume",
        metavar="SWEEP",
        help="Finish an interrupted sweep: train only the chunks it has not stored.",
    ),
]
Grid = Annotated[
    list[str] | None,
    typer.Option(
        "--grid",
        metavar="KEY.PATH=V1,V2,...",
        help="Cross the seeds with these config values (repeatable). Values are YAML; "
        "lists or mappings are separated by ';': model.widths='[1,2,1];[1,4,1]'.",
    ),
]
Keep = Annotated[
    int,
    typer.Option(
        "--keep", metavar="K", min=0, help="Also store K seeds per grid point as ordinary runs."
    ),
]
Threads = Annotated[
    int | None,
    typer.Option(
        "--threads",
        metavar="N",
        min=1,
        help="Threads for the batched training [default: the compiled kernel on every CPU, "
        "the torch engine on one].",
        show_default=False,
    ),
]
Chunk = Annotated[
    int | None,
    typer.Option(
        "--chunk",
        metavar="N",
        min=1,
        max=65536,
        help="Seeds per batched model (default: from memory, at most 8192).",
    ),
]
ClusterAddress = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        metavar="tcp://HOST:PORT",
        help="Train the chunks on a running Dask scheduler's workers (pip install -e '.[dask]').",
    ),
]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        metavar="N",
        min=1,
        max=1024,
        help="Train the chunks on a local Dask cluster of N single-threaded processes.",
    ),
]
SweepDevice = Annotated[
    str,
    typer.Option(
        "--device", metavar="DEVICE", help="cpu, cuda or cuda:N (on the cluster's workers)."
    ),
]


def sweep(
    config_ref: OptionalConfigArg = None,
    seeds: Seeds = None,
    resume: ResumeSweep = None,
    grid: Grid = None,
    keep: Keep = 0,
    epochs: Epochs = None,
    lr: Lr = None,
    sets: Sets = None,
    runs_dir: RunsDir = None,
    threads: Threads = None,
    chunk: Chunk = None,
    cluster: ClusterAddress = None,
    workers: Workers = None,
    device: SweepDevice = "cpu",
) -> None:
    """Train many seeds at once as one batched model; count how each seed ends up.

    Outcomes: solved, stuck at mean, dead, partial, diverged (the README's glossary).
    Held-out data (test solved: 99% right): generalised, grokked (test solved > G = 100 epochs after
    training), memorised, not learned; over two --grid keys, a phase diagram.
    Example: tiny sweep is_even --seeds 1000 --grid train.lr=0.01,0.1
    """
    outcome = launch.sweep(
        config_ref, seeds=seeds, resume=resume, grid=grid, keep=keep, epochs=epochs, lr=lr,
        sets=sets, runs_dir=runs_dir, threads=threads, chunk=chunk, cluster=cluster,
        workers=workers, device=device, display=ProgressBar, announce=_announce,
    )  # fmt: skip
    _report(outcome)


def _announce(where: str, link: str | None) -> None:
    """Where a cluster sweep trains, and its dashboard's link if it has one."""
    console.print(Text.assemble("training on ", where, *(("; dashboard ", link) if link else ())))


def _report(outcome: SweepOutcome) -> None:
    from tiny_cli.show import render

    console.print(render.sweep_table(outcome.summary))
    diagram = render.phase_view(outcome.summary)
    if diagram is not None:
        console.print(diagram)
    for kept in outcome.kept:
        label = outcome.results[kept["point"]].point.label
        console.print(
            f"kept seed {kept['seed']} ({kept['why']}, {label}) as run {kept['run']}",
            markup=False,
        )
    versions = outcome.run.read_json("run.json").get("versions") or {}
    if versions.get("trainer") not in (None, "none"):
        console.print(f"trained on the {versions['trainer']} engine", markup=False)
    console.print(saved("sweep", outcome.run.id, outcome.run.path))
