"""`tiny train` and `tiny hardwire`: one run each (`app.launch`), then what it learned."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tiny_cli.app import launch
from tiny_cli.cli.options import (
    ConfigArg,
    Device,
    Epochs,
    Lr,
    OptionalConfigArg,
    Precision,
    RunsDir,
    Sets,
)
from tiny_cli.cli.output import ProgressBar, console, saved, say

if TYPE_CHECKING:
    from tiny_cli.app.experiment import Outcome

FromRun = Annotated[
    str | None,
    typer.Option("--from", metavar="RUN", help="Repeat a stored run from its resolved config."),
]
ResumeRun = Annotated[
    str | None,
    typer.Option(
        "--resume",
        metavar="RUN",
        help="Continue an interrupted, failed or stale run from its last checkpoint.",
    ),
]
Seed = Annotated[int | None, typer.Option(metavar="N", help="Override seed.")]
Bits = Annotated[
    int | None,
    typer.Option(metavar="N", help="task.bits: is_even on [0, 2^bits) (1 to 24), mod, parity."),
]
Scale = Annotated[
    float | None,
    typer.Option(metavar="S", help="lt: Sigmoid(scale * (t - x)); 1 or 100 in the article."),
]


def train(
    config_ref: OptionalConfigArg = None,
    from_run: FromRun = None,
    resume: ResumeRun = None,
    epochs: Epochs = None,
    seed: Seed = None,
    lr: Lr = None,
    sets: Sets = None,
    runs_dir: RunsDir = None,
    device: Device = "auto",
    precision: Precision = 2,
) -> None:
    """Train a net from a YAML config; log to TensorBoard; print what it learned.

    Example: tiny train lt10 --epochs 500 --set init.mode=hardwired+noise
    """
    outcome = launch.train(
        config_ref, from_run=from_run, resume=resume, epochs=epochs, seed=seed, lr=lr,
        sets=sets, runs_dir=runs_dir, device=device, display=ProgressBar,
    )  # fmt: skip
    _report(outcome, precision)


def hardwire(
    config_ref: ConfigArg,
    bits: Bits = None,
    scale: Scale = None,
    sets: Sets = None,
    runs_dir: RunsDir = None,
    device: Device = "auto",
    precision: Precision = 2,
) -> None:
    """Build the article's hand-made weights, evaluate them on and beyond the domain, store them.

    Example: tiny hardwire is_even --bits 4
    """
    outcome = launch.hardwire(
        config_ref, bits=bits, scale=scale, sets=sets, runs_dir=runs_dir, device=device,
        display=ProgressBar,
    )  # fmt: skip
    _report(outcome, precision)


def _report(outcome: Outcome, precision: int) -> None:
    """Print what the run learned; exit 1 if it diverged, 130 if it was interrupted."""
    from tiny_cli import tasks
    from tiny_cli.show import render

    console.print(render.parameters_table(outcome.params, precision))
    console.print(render.metrics_table(outcome.metrics))
    if not outcome.readout:  # what the task's metrics mean (the read-out says it otherwise)
        lines_of = outcome.task.meaning_lines if outcome.task else tasks.meaning_lines
        for line in lines_of(outcome.metrics):
            console.print(line, markup=False, highlight=False)
    if outcome.readout:
        console.print(render.readout_view(outcome.readout, outcome.task))
    elif outcome.readout_problem:
        say(f"warning: {outcome.readout_problem}")
    if outcome.picture:
        console.print(f"prediction picture: {outcome.picture}", soft_wrap=True, markup=False)
    if outcome.units:
        console.print(f"units picture: {outcome.units}", soft_wrap=True, markup=False)
    for picture in outcome.task_pictures:  # the task's own (modular's spectrum.png)
        console.print(f"{picture.stem} picture: {picture}", soft_wrap=True, markup=False)
    if outcome.result.epochs:
        console.print(f"trained on the {outcome.result.engine} engine", markup=False)
    console.print(saved("run", outcome.run.id, outcome.run.path))
    status = outcome.result.status
    if status != "completed":
        shown = "failed" if status == "diverged" else status
        say(f"run {outcome.run.id} {shown}: {outcome.result.reason}")
        raise typer.Exit(1 if status == "diverged" else 130)
